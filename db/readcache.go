package db

import (
	"fmt"
	"strconv"
	"sync"
	"time"
)

// recentTTL bounds how old a "recent" read may be (FindUserByIDRecent, the capped backup count).
const recentTTL = time.Second

// maxRecent bounds the entries of a recentCache; a full cache starts over.
const maxRecent = 1024

// recentCache keeps the results of a few hot reads for at most recentTTL. An entry is used only while no write
// went through this DB since it was read (stmtCache.writes), so this process always sees its own writes at
// once; a write by another process on the same catalog file (an offline admin command such as disabling a
// user) is seen within recentTTL. Values must not be modified by callers: copy them out.
type recentCache struct {
	writes func() uint64
	mu     sync.Mutex
	m      map[string]recentEntry
}

type recentEntry struct {
	writes uint64
	at     time.Time // monotonic clock, never DB.Now (tests freeze that one)
	v      any
}

// get returns key's value, reading it with load when it is missing, older than recentTTL or older than the
// last write.
func (c *recentCache) get(key string, load func() (any, error)) (any, error) {
	w, now := c.writes(), time.Now()
	c.mu.Lock()
	e, ok := c.m[key]
	c.mu.Unlock()
	if ok && e.writes == w && now.Sub(e.at) < recentTTL {
		return e.v, nil
	}
	v, err := load()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxRecent {
		c.m = map[string]recentEntry{}
	}
	c.m[key] = recentEntry{writes: w, at: now, v: v}
	c.mu.Unlock()
	return v, nil
}

// queryKey is the recentCache key of a query with its arguments, without fmt for the usual strings and ints.
func queryKey(query string, args []any) string {
	k := make([]byte, 0, len(query)+16*len(args))
	k = append(k, query...)
	for _, a := range args {
		k = append(k, 0)
		switch a := a.(type) {
		case string:
			k = strconv.AppendQuote(k, a)
		case int:
			k = strconv.AppendInt(k, int64(a), 10)
		default:
			k = fmt.Appendf(k, "%T %#v", a, a)
		}
	}
	return string(k)
}

package db

import (
	"errors"
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
//
// Callers that miss the same entry while it is being read wait for that read instead of reading it again: when
// a deep page of the Backups tab expired under 50 concurrent requests, each of them skipped and counted the same
// thousands of backups at once, a burst that stretched the slowest requests of the second (p99 48-113 ms, 34-40
// ms with the read shared; bench/backups_tab.sh).
type recentCache struct {
	writes  func() uint64
	mu      sync.Mutex
	m       map[string]recentEntry
	loading map[string]*recentLoad
}

type recentEntry struct {
	writes uint64
	at     time.Time // monotonic clock, never DB.Now (tests freeze that one)
	v      any
}

// recentLoad is a read in progress; done is closed once v and err are set.
type recentLoad struct {
	writes uint64
	done   chan struct{}
	v      any
	err    error
}

// get returns key's value, reading it with load when it is missing, older than recentTTL or older than the
// last write. A caller that finds the same read in progress, started after the last write, waits for it; if
// that read failed (its request was cancelled, say), the caller reads alone.
func (c *recentCache) get(key string, load func() (any, error)) (any, error) {
	w, now := c.writes(), time.Now()
	c.mu.Lock()
	if e, ok := c.m[key]; ok && e.writes == w && now.Sub(e.at) < recentTTL {
		c.mu.Unlock()
		return e.v, nil
	}
	if l, ok := c.loading[key]; ok && l.writes == w {
		c.mu.Unlock()
		<-l.done
		if l.err == nil {
			return l.v, nil
		}
		return load()
	}
	l := &recentLoad{writes: w, done: make(chan struct{}), err: errRecentAborted}
	if c.loading == nil {
		c.loading = map[string]*recentLoad{}
	}
	c.loading[key] = l
	c.mu.Unlock()

	defer func() { // also when load panics: the waiters then read alone
		c.mu.Lock()
		if c.loading[key] == l {
			delete(c.loading, key)
		}
		if l.err == nil {
			if c.m == nil || len(c.m) >= maxRecent {
				c.m = map[string]recentEntry{}
			}
			c.m[key] = recentEntry{writes: w, at: now, v: l.v}
		}
		c.mu.Unlock()
		close(l.done)
	}()
	v, err := load()
	l.v, l.err = v, err
	return v, err
}

var errRecentAborted = errors.New("recent read aborted")

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

// Recent returns what load reads for key, or what it read for the same key up to a second ago if no write went
// through this DB since (recentCache): for a value derived from several reads that a hot page shows, such as an
// environment's restore drill status on every view of its Backups tab. The value is shared between callers:
// never modify it.
func (db *DB) Recent(key string, load func() (any, error)) (any, error) {
	return db.recent.get("derived\x00"+key, load)
}

package redis

import (
	"bufio"
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Database returns the server address (host:port) and the database number of a Redis URL.
func Database(rawURL string) (addr string, db int, err error) {
	opts, err := goredis.ParseURL(rawURL)
	if err != nil {
		// never echo the URL: it may hold a password
		return "", 0, fmt.Errorf("url must look like redis://:password@host:6379/0")
	}
	return opts.Addr, opts.DB, nil
}

// FreeDatabase returns rawURL with its database number replaced by the lowest one on the same server that holds
// no keys and is not in taken (the databases Rewind already gave to services, the caller's own included):
// a branch environment's own database, since Redis databases are numbered, not named. It refuses when every
// database of the server (its `databases` setting; 16 when CONFIG is not allowed) is in use.
func FreeDatabase(ctx context.Context, rawURL string, taken []int) (string, error) {
	opts, err := goredis.ParseURL(rawURL)
	if err != nil {
		return "", fmt.Errorf("url must look like redis://:password@host:6379/0")
	}
	opts.DialTimeout, opts.ReadTimeout, opts.MaxRetries = 10*time.Second, 10*time.Second, -1
	c := goredis.NewClient(opts)
	defer c.Close() //nolint:errcheck

	count := 16
	if cfg, err := c.ConfigGet(ctx, "databases").Result(); err == nil {
		if n, err := strconv.Atoi(cfg["databases"]); err == nil && n > 0 {
			count = n
		}
	}
	info, err := c.Info(ctx, "keyspace").Result()
	if err != nil {
		return "", fmt.Errorf("read the databases of redis at %s: %w", opts.Addr, err)
	}
	used := map[int]bool{}
	for _, n := range taken {
		used[n] = true
	}
	for n := range nonEmpty(info) {
		used[n] = true
	}
	for n := 0; n < count; n++ {
		if !used[n] {
			return withDatabase(rawURL, n)
		}
	}
	return "", fmt.Errorf("every one of the %d databases of redis at %s holds keys or belongs to an environment: "+
		"free one (or raise `databases` in redis.conf), or create the environment with a Redis of its own and "+
		"restore into it", count, opts.Addr)
}

// nonEmpty returns the databases INFO keyspace lists ("db3:keys=10,expires=0,avg_ttl=0").
func nonEmpty(info string) map[int]bool {
	out := map[int]bool{}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		name, rest, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		if !ok || !strings.HasPrefix(name, "db") || !strings.HasPrefix(rest, "keys=") {
			continue
		}
		if n, err := strconv.Atoi(name[2:]); err == nil {
			out[n] = true
		}
	}
	return out
}

// withDatabase returns rawURL with database n (the URL's path, or its db query parameter).
func withDatabase(rawURL string, n int) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("url must look like redis://:password@host:6379/0")
	}
	q := u.Query()
	if q.Has("db") {
		q.Set("db", strconv.Itoa(n))
		u.RawQuery = q.Encode()
		return u.String(), nil
	}
	u.Path = "/" + strconv.Itoa(n)
	u.RawPath = ""
	return u.String(), nil
}

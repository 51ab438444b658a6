package testserver

import (
	"context"
	"os"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/rewind/rewind/backup/scratch"
)

// redisDatabases is how many logical databases the private Redis has: one per test.
const redisDatabases = 1000

// Redis is a private Redis server without persistence.
type Redis struct {
	*scratch.Redis

	mu   sync.Mutex
	next int
}

var (
	rdOnce sync.Once
	rdSrv  *Redis
	rdErr  error
)

// StartRedis returns the test binary's private Redis server, starting it on first use; it skips t when Redis is
// not installed.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	rdOnce.Do(func() { rdSrv, rdErr = startRedis() })
	checkStart(t, "Redis", rdErr)
	return rdSrv
}

func startRedis() (*Redis, error) {
	dir, err := tempDir("rewind-redis-")
	if err != nil {
		return nil, err
	}
	srv, err := scratch.StartRedis(dir, scratch.RedisOptions{Databases: redisDatabases})
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	register(func() { _ = srv.Stop() })
	return &Redis{Redis: srv, next: 1}, nil
}

// CreateDatabase reserves an unused logical database for the test, flushes it at the end, and returns its
// number.
func (s *Redis) CreateDatabase(t testing.TB) int {
	t.Helper()
	s.mu.Lock()
	db := s.next
	s.next++
	s.mu.Unlock()
	if db >= redisDatabases {
		t.Fatalf("private Redis has only %d databases", redisDatabases)
	}
	t.Cleanup(func() {
		c := s.Client(db)
		defer c.Close()
		_ = c.FlushDB(context.Background()).Err()
	})
	return db
}

// Client returns a client of logical database db; the caller closes it.
func (s *Redis) Client(db int) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: s.Addr(), DB: db})
}

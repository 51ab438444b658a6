package testserver

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisDatabases is how many logical databases the private Redis has: one per test.
const redisDatabases = 1000

// Redis is a private Redis server without persistence.
type Redis struct {
	Port int
	Dir  string

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
	server, err := lookBin("redis-server", "/usr/bin")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "rewind-redis-")
	if err != nil {
		return nil, err
	}
	var last error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		p, err := start(exec.Command(server, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
			"--save", "", "--appendonly", "no", "--databases", strconv.Itoa(redisDatabases)), nil)
		if err != nil {
			return nil, err
		}
		srv := &Redis{Port: port, Dir: dir, next: 1}
		err = p.waitReady(30*time.Second, func() error {
			c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			return c.Ping(ctx).Err()
		})
		if err != nil {
			last = err
			continue
		}
		register(func() {
			p.stop(syscall.SIGTERM)
			_ = os.RemoveAll(dir)
		})
		return srv, nil
	}
	return nil, last
}

// Addr returns host:port.
func (s *Redis) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// URL returns the URL of logical database db.
func (s *Redis) URL(db int) string { return fmt.Sprintf("redis://127.0.0.1:%d/%d", s.Port, db) }

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

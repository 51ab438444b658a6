package scratch

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisOptions tune a private Redis server.
type RedisOptions struct {
	// Databases is the number of logical databases; 0 means Redis's default, 16.
	Databases int
	// RDB is an RDB file the server loads at start (moved into its directory); it answers PING once loaded.
	RDB string
}

// Redis is a private Redis server without persistence.
type Redis struct {
	Port int
	Dir  string

	proc *process
}

// StartRedis starts a server in dir (created; it must be empty), returning once it answers PING.
func StartRedis(dir string, opt RedisOptions) (*Redis, error) {
	server, err := lookBin("redis-server", "/usr/bin")
	if err != nil {
		return nil, err
	}
	if err := makeDir(dir); err != nil {
		return nil, err
	}
	srv := &Redis{Dir: dir}
	timeout := 30 * time.Second
	if opt.RDB != "" {
		if err := os.Rename(opt.RDB, filepath.Join(dir, "dump.rdb")); err != nil {
			return nil, fmt.Errorf("move the RDB into the server directory: %w", err)
		}
		timeout = 30 * time.Minute // loading a large RDB takes a while; a bad one makes the server exit at once
	}
	p, port, err := startReady(dir, nil, timeout, func(port int) *exec.Cmd {
		args := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
			"--save", "", "--appendonly", "no", "--dbfilename", "dump.rdb"}
		if opt.Databases > 0 {
			args = append(args, "--databases", strconv.Itoa(opt.Databases))
		}
		return exec.Command(server, args...)
	}, func(port int) error {
		srv.Port = port
		c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return c.Ping(ctx).Err()
	})
	if err != nil {
		return nil, fmt.Errorf("start redis: %w", err)
	}
	srv.Port, srv.proc = port, p
	return srv, nil
}

// Addr returns host:port.
func (s *Redis) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// URL returns the URL of logical database db.
func (s *Redis) URL(db int) string { return fmt.Sprintf("redis://127.0.0.1:%d/%d", s.Port, db) }

// Stop stops the server and removes its directory.
func (s *Redis) Stop() error {
	s.proc.stop(syscall.SIGTERM)
	if err := os.RemoveAll(s.Dir); err != nil {
		return fmt.Errorf("remove redis directory: %w", err)
	}
	return nil
}

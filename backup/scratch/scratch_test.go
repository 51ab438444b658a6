package scratch_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"

	"github.com/rewind/rewind/backup/scratch"
)

// startRedis starts a private Redis in dir, skipping t when Redis is not installed.
func startRedis(t *testing.T, dir string) *scratch.Redis {
	t.Helper()
	srv, err := scratch.StartRedis(dir, scratch.RedisOptions{Databases: 4})
	if errors.Is(err, scratch.ErrNotInstalled) {
		t.Skipf("skipping: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

// TestStopRemovesTheServer starts a Redis that answers, with the databases asked for; Stop ends it and removes
// its directory.
func TestStopRemovesTheServer(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "redis")
	srv := startRedis(t, dir)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), DB: 3})
	defer c.Close()
	if err := c.Set(context.Background(), "k", "v", 0).Err(); err != nil {
		t.Fatalf("the server does not answer in database 3: %v", err)
	}
	pid := serverPid(t, dir)
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("after Stop the directory is still there: %v", err)
	}
	if scratch.RunsFrom(pid, dir) {
		t.Fatalf("after Stop the server (pid %d) still runs", pid)
	}
}

// TestSweepKillsWhatACrashLeft leaves a server running as a crash would, then sweeps its parent directory: the
// server is killed and the directory removed. A directory in use is refused to a new server.
func TestSweepKillsWhatACrashLeft(t *testing.T) {
	base := filepath.Join(t.TempDir(), "drill")
	dir := filepath.Join(base, "redis")
	startRedis(t, dir)
	if _, err := scratch.StartRedis(dir, scratch.RedisOptions{}); err == nil {
		t.Fatal("a second server started in a directory in use")
	}
	pid := serverPid(t, dir)
	if err := scratch.Sweep(base); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(base); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("after Sweep the directory is still there: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for scratch.RunsFrom(pid, dir) {
		if time.Now().After(deadline) {
			t.Fatalf("after Sweep the server (pid %d) still runs", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := scratch.Sweep(base); err != nil {
		t.Fatalf("Sweep of a missing directory = %v, want nil", err)
	}
}

func serverPid(t *testing.T, dir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "scratch.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// TestMariaDBSocketOnly: a MariaDB started with Socket answers on its socket only (no TCP port: --skip-networking),
// and Stop ends it and removes its directory.
func TestMariaDBSocketOnly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mariadb")
	srv, err := scratch.StartMariaDB(dir, scratch.MariaDBOptions{Socket: true})
	if errors.Is(err, scratch.ErrNotInstalled) {
		t.Skipf("skipping: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if srv.Port != 0 {
		t.Errorf("Port = %d, want 0 for a server without TCP", srv.Port)
	}
	db, err := sql.Open("mysql", srv.DSN(""))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var networking int
	if err := db.QueryRow("SELECT @@skip_networking").Scan(&networking); err != nil {
		t.Fatalf("the server does not answer on its socket: %v", err)
	}
	if networking != 1 {
		t.Errorf("skip_networking = %d, want 1", networking)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("after Stop the directory is still there: %v", err)
	}
}

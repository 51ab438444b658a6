package db_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/rewind/rewind/db"
)

// testKey is a fixed catalog key for tests.
var testKey = bytes.Repeat([]byte{7}, db.KeySize)

// MustOpenDB opens a fresh catalog in a temporary directory, with a clock
// that advances one second per call, and closes it when the test ends.
func MustOpenDB(tb testing.TB) *db.DB {
	tb.Helper()
	return mustOpenAt(tb, filepath.Join(tb.TempDir(), "rewind.db"))
}

func mustOpenAt(tb testing.TB, path string) *db.DB {
	tb.Helper()
	c, err := db.Open(context.Background(), path, testKey)
	if err != nil {
		tb.Fatalf("Open(%q) = %v", path, err)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c.Now = func() time.Time {
		now = now.Add(time.Second)
		return now
	}
	tb.Cleanup(func() {
		if err := c.Close(); err != nil {
			tb.Errorf("Close() = %v", err)
		}
	})
	return c
}

// rawDB opens the catalog file directly, bypassing the package.
func rawDB(tb testing.TB, c *db.DB) *sql.DB {
	tb.Helper()
	raw, err := sql.Open("sqlite", c.Path())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { raw.Close() })
	return raw
}

func TestOpen_MigratesAndReopens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rewind.db")
	c := mustOpenAt(t, path)
	var n int
	if err := rawDB(t, c).QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if got, want := n, db.SchemaVersion(); got != want {
		t.Fatalf("recorded migrations = %d, want %d", got, want)
	}
	var mode string
	if err := rawDB(t, c).QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if got, want := mode, "wal"; got != want {
		t.Fatalf("journal_mode = %q, want %q", got, want)
	}
	// A second open applies nothing and succeeds.
	mustOpenAt(t, path)
}

func TestOpen_RefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rewind.db")
	c := mustOpenAt(t, path)
	future := db.SchemaVersion() + 5
	if _, err := rawDB(t, c).Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'future.sql', '')`, future); err != nil {
		t.Fatal(err)
	}
	_, err := db.Open(context.Background(), path, testKey)
	if !errors.Is(err, db.ErrSchemaTooNew) {
		t.Fatalf("Open() = %v, want ErrSchemaTooNew", err)
	}
	want := "catalog schema version " + strconv.Itoa(future) + " is newer than this rewind (knows " + strconv.Itoa(db.SchemaVersion()) + "): upgrade rewind"
	if got := err.Error(); got != want {
		t.Fatalf("Open() error = %q, want %q", got, want)
	}
}

func TestOpen_BadKey(t *testing.T) {
	if _, err := db.Open(context.Background(), filepath.Join(t.TempDir(), "x.db"), []byte("short")); err == nil {
		t.Fatal("Open() with a 5-byte key succeeded, want error")
	}
}

func readFile(path string) ([]byte, error) { return os.ReadFile(path) }

// Two processes starting at once (serve and an admin command) both migrate
// the same new catalog safely.
func TestOpen_Concurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rewind.db")
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			c, err := db.Open(context.Background(), path, testKey)
			if err == nil {
				_, err = c.CountUsers(context.Background())
				c.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent Open() = %v", err)
		}
	}
	c := mustOpenAt(t, path)
	var n int
	rawDB(t, c).QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&n)
	if got, want := n, db.SchemaVersion(); got != want {
		t.Fatalf("recorded migrations = %d, want %d (each once)", got, want)
	}
}

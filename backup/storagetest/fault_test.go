package storagetest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kopia/kopia/repo/blob"
	_ "modernc.org/sqlite"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/files"
	"github.com/rewind/rewind/backup/s3"
	"github.com/rewind/rewind/backup/sqlite"
	"github.com/rewind/rewind/backup/storagetest"
)

// faults is the weather the S3 storage must survive: 10% of requests fail with 500/503, 1% hang, 5% of reads
// are cut halfway.
var faults = storagetest.Faults{Errors: 0.10, Timeouts: 0.01, Truncate: 0.05, Hang: 2 * time.Second, Seed: 1}

// faultyOptions returns options for a new bucket reached through a fault proxy, with short timeouts and
// backoffs so the test takes seconds.
func faultyOptions(t *testing.T, srv *storagetest.S3Server, prefix string) (s3.Options, *storagetest.FaultProxy) {
	opts := srv.Bucket(t, prefix)
	proxy := storagetest.StartFaultProxy(t, srv.Endpoint, faults)
	opts.Endpoint = proxy.URL
	opts.Timeout = 400 * time.Millisecond
	opts.RetryBase, opts.RetryMax = 5*time.Millisecond, 100*time.Millisecond
	opts.ListPageSize = 50
	return opts, proxy
}

// TestS3StorageWithFaults runs the whole contract through the fault proxy: the retries hide every fault.
func TestS3StorageWithFaults(t *testing.T) {
	s3.Register()
	srv := storagetest.StartS3(t)
	var proxy *storagetest.FaultProxy
	storagetest.Run(t, func(t *testing.T) blob.Storage {
		var opts s3.Options
		opts, proxy = faultyOptions(t, srv, "faulty/")
		st, err := s3.New(storagetest.Context(t), opts)
		if err != nil {
			t.Fatal(err)
		}
		return st
	})
	t.Log(proxy.Stats.String())
	if proxy.Stats.Errors.Load() == 0 || proxy.Stats.Truncated.Load() == 0 {
		t.Fatalf("the proxy injected too few faults to prove anything: %s", proxy.Stats.String())
	}
}

// app is a SQLite database and a files mount.
type app struct{ db, mount string }

func (a app) exec(t *testing.T, q string) {
	t.Helper()
	c, err := sql.Open("sqlite", a.db)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Exec(q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// state is a digest of every row and every file, byte for byte.
func (a app) state(t *testing.T) string {
	t.Helper()
	c, err := sql.Open("sqlite", a.db)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h := sha256.New()
	rows, err := c.Query(`SELECT id, body FROM notes ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int
		var body []byte
		if err := rows.Scan(&id, &body); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(h, "%d %x\n", id, sha256.Sum256(body))
	}
	rows.Close()
	var lines []string
	filepath.WalkDir(a.mount, func(p string, d fs.DirEntry, err error) error { //nolint:errcheck
		if err == nil && d.Type().IsRegular() {
			b, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(a.mount, p)
			lines = append(lines, fmt.Sprintf("%s %x", rel, sha256.Sum256(b)))
		}
		return nil
	})
	sort.Strings(lines)
	h.Write([]byte(strings.Join(lines, "\n")))
	return fmt.Sprintf("%x", h.Sum(nil))
}

// TestEngineThroughFaults: 20 backups and 20 restores of a SQLite database and a files mount, through the
// engine, to a real S3 server behind the fault proxy. Every one completes and every restore is identical to
// what its backup captured.
func TestEngineThroughFaults(t *testing.T) {
	s3.Register()
	srv := storagetest.StartS3(t)
	opts, proxy := faultyOptions(t, srv, "repo/")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	dir := t.TempDir()
	repo, err := backup.OpenRepository(ctx, backup.RepositoryOptions{
		Storage:   func(ctx context.Context, _ bool) (blob.Storage, error) { return s3.New(ctx, opts) },
		Password:  "fault injection",
		ConfigDir: filepath.Join(dir, "kopia"),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close(context.Background()) //nolint:errcheck
	engine := &backup.Engine{Repo: repo, Drivers: map[string]backup.Driver{
		backup.TypeSQLite: sqlite.Driver,
		backup.TypeFiles:  func(s backup.ServiceSpec) (backup.Source, error) { return files.New(s.Path, s.Exclude) },
	}}

	a := app{db: filepath.Join(dir, "app.db"), mount: filepath.Join(dir, "uploads")}
	if err := os.MkdirAll(a.mount, 0o755); err != nil {
		t.Fatal(err)
	}
	a.exec(t, `CREATE TABLE notes (id INTEGER PRIMARY KEY, body BLOB)`)
	services := []backup.ServiceSpec{
		{Name: "app", Type: backup.TypeSQLite, Path: a.db},
		{Name: "uploads", Type: backup.TypeFiles, Path: a.mount},
	}
	type taken struct{ id, state string }
	var backups []taken
	for i := range 20 {
		a.exec(t, fmt.Sprintf(`INSERT INTO notes (body) VALUES (randomblob(%d))`, 2000+i*500))
		a.exec(t, fmt.Sprintf(`UPDATE notes SET body = randomblob(100) WHERE id = %d`, i/2+1))
		name := filepath.Join(a.mount, fmt.Sprintf("dir%d", i%4), fmt.Sprintf("file%d.bin", i))
		os.MkdirAll(filepath.Dir(name), 0o755) //nolint:errcheck
		if err := os.WriteFile(name, bytes.Repeat([]byte(fmt.Sprint(i)), 20000+i*3000), 0o644); err != nil {
			t.Fatal(err)
		}
		if i%5 == 4 {
			os.Remove(filepath.Join(a.mount, fmt.Sprintf("dir%d", (i-1)%4), fmt.Sprintf("file%d.bin", i-1))) //nolint:errcheck
		}
		m, err := engine.Backup(ctx, backup.BackupRequest{Environment: "faulty", Kind: backup.KindManual, Live: true, Services: services}, nil)
		if err != nil {
			t.Fatalf("backup %d: %v (%s)", i, err, proxy.Stats.String())
		}
		backups = append(backups, taken{m.ID, a.state(t)})
	}
	// Restore in an order that changes the state every time: newest, oldest, second newest, second oldest, ...
	for k := range backups {
		j := k / 2
		if k%2 == 0 {
			j = len(backups) - 1 - k/2
		}
		b := backups[j]
		res, err := engine.Restore(ctx, backup.RestoreRequest{ID: b.id, Services: services}, nil)
		if err != nil {
			t.Fatalf("restore %d of backup %d: %v (%s)", k, j, err, proxy.Stats.String())
		}
		for _, r := range res.Replaced {
			r.Replaced.Discard(ctx) //nolint:errcheck
		}
		if got := a.state(t); got != b.state {
			t.Fatalf("restore %d of backup %d: data differs from what the backup captured", k, j)
		}
	}
	t.Log(proxy.Stats.String())
	if proxy.Stats.Errors.Load() < 20 || proxy.Stats.Truncated.Load() == 0 || proxy.Stats.Timeouts.Load() == 0 {
		t.Fatalf("too few faults to prove anything: %s", proxy.Stats.String())
	}
}

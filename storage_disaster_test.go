package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rewind/rewind/backup/storagetest"
	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/jobs"
)

// s3Env points the AWS credential chain at a test server only (no shared files, no instance metadata).
func s3Env(t *testing.T, srv *storagetest.S3Server) {
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// appData is a SQLite database and a files mount of a test app.
type appData struct{ dbPath, mount string }

func newAppData(t *testing.T) appData {
	dir := t.TempDir()
	a := appData{dbPath: filepath.Join(dir, "app.db"), mount: filepath.Join(dir, "uploads")}
	sqlExec(t, a.dbPath, `CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)`)
	for i := range 50 {
		sqlExec(t, a.dbPath, fmt.Sprintf(`INSERT INTO notes (body) VALUES ('note %d %s')`, i, strings.Repeat("x", i*10)))
	}
	for i := range 8 {
		p := filepath.Join(a.mount, fmt.Sprintf("d%d", i%3), fmt.Sprintf("f%d.bin", i))
		os.MkdirAll(filepath.Dir(p), 0o755) //nolint:errcheck
		if err := os.WriteFile(p, bytes.Repeat([]byte{byte(i)}, 1000*(i+1)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return a
}

func sqlExec(t testing.TB, path, query string) {
	t.Helper()
	conn, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Exec(query); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// state digests the app's data: every row and every file.
func (a appData) state(t testing.TB) string {
	t.Helper()
	conn, err := sql.Open("sqlite", a.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	h := sha256.New()
	rows, err := conn.Query(`SELECT id, body FROM notes ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int
		var body string
		if err := rows.Scan(&id, &body); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(h, "%d %s\n", id, body)
	}
	rows.Close()
	var files []string
	filepath.WalkDir(a.mount, func(p string, d fs.DirEntry, err error) error { //nolint:errcheck
		if err == nil && d.Type().IsRegular() {
			b, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(a.mount, p)
			files = append(files, fmt.Sprintf("%s %x", rel, sha256.Sum256(b)))
		}
		return nil
	})
	sort.Strings(files)
	fmt.Fprintln(h, strings.Join(files, "\n"))
	return hex.EncodeToString(h.Sum(nil))
}

func (a appData) damage(t testing.TB) {
	sqlExec(t, a.dbPath, `DELETE FROM notes WHERE id % 2 = 0`)
	sqlExec(t, a.dbPath, `INSERT INTO notes (body) VALUES ('written after the backup')`)
	os.RemoveAll(filepath.Join(a.mount, "d1"))                            //nolint:errcheck
	os.WriteFile(filepath.Join(a.mount, "new.txt"), []byte("new"), 0o644) //nolint:errcheck
}

func bootMainOn(t *testing.T, dataDir, storage string, env map[string]string) *Main {
	t.Helper()
	return bootMainSaving(t, dataDir, storage, env, 100*time.Millisecond)
}

// bootMainSaving boots a Main whose catalog saver saves every interval.
func bootMainSaving(t *testing.T, dataDir, storage string, env map[string]string, interval time.Duration) *Main {
	t.Helper()
	m := NewMain()
	m.DataDir, m.Addr, m.Storage = dataDir, "127.0.0.1:0", storage
	m.Console, m.Logger = &bytes.Buffer{}, slog.New(slog.DiscardHandler)
	m.Getenv = func(k string) string { return env[k] }
	m.CatalogSaveInterval = interval
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	return m
}

func waitActivityDone(t *testing.T, catalog *db.DB, id int64) *db.Activity {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		a, err := catalog.FindActivityByID(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if a.Done() {
			if a.State != db.ActivitySucceeded {
				t.Fatalf("activity %d (%s) ended %s: %s", a.ID, a.Summary, a.State, a.Log)
			}
			return a
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("activity %d did not finish", id)
	return nil
}

// TestDisasterRecoveryFromS3: back up an environment with every service type (PostgreSQL, MariaDB, Redis on
// the private test servers; SQLite and files) to a real S3 server, lose the whole data directory, rebuild the
// catalog from the bucket with the repository password, sign in with the old credentials, restore: the data of
// every service is back, identical.
func TestDisasterRecoveryFromS3(t *testing.T) {
	srv := storagetest.StartS3(t)
	s3Env(t, srv)
	storage := srv.Bucket(t, "rewind/").URL()
	const password = "correct horse battery staple"
	env := map[string]string{
		"REWIND_REPO_PASSWORD":  password,
		"REWIND_ADMIN_EMAIL":    "ana@example.com",
		"REWIND_ADMIN_PASSWORD": "a long admin password",
	}
	app := newAppData(t)
	servers := newStack(t, "main", db.EnvProduction, true) // PostgreSQL, MariaDB, Redis (and its own SQLite, files)
	servers.set("before the disaster")
	dbs := &db.Environment{Services: []db.Service{
		{Name: "db", Type: db.ServicePostgreSQL, URL: servers.pgURL},
		{Name: "shop", Type: db.ServiceMySQL, URL: servers.myURL},
		{Name: "cache", Type: db.ServiceRedis, URL: servers.rd.URL(servers.rdDB)},
		{Name: "local", Type: db.ServiceSQLite, Path: servers.sqlitePath},
		{Name: "files", Type: db.ServiceFiles, Path: servers.filesPath},
	}}
	ctx := context.Background()

	lost := t.TempDir()
	m := bootMainOn(t, lost, storage, env)
	if err := m.Catalog.CreateEnvironment(ctx, &db.Environment{Name: "main", Title: "Main shop", Type: db.EnvProduction,
		Status: db.StatusActive, Services: append([]db.Service{
			{Name: "app", Type: db.ServiceSQLite, Path: app.dbPath},
			{Name: "uploads", Type: db.ServiceFiles, Path: app.mount},
		}, dbs.Services...)}); err != nil {
		t.Fatal(err)
	}
	a, b, err := m.Ops.StartBackup(ctx, jobs.BackupRequest{Environment: "main", Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	waitActivityDone(t, m.Catalog, a.ID)
	want := app.state(t)
	if err := m.Close(); err != nil { // saves the catalog a last time
		t.Fatal(err)
	}
	if err := os.RemoveAll(lost); err != nil {
		t.Fatal(err)
	}
	app.damage(t)
	if app.state(t) == want {
		t.Fatal("damage did not change the app's data")
	}
	servers.set("written after the backup")

	// A new server: only the storage URL and the password.
	fresh := filepath.Join(t.TempDir(), "data")
	var out bytes.Buffer
	if err := jobs.RebuildCatalog(ctx, fresh, storage, func(k string) string { return env[k] }, &out); err != nil {
		t.Fatal(err)
	}
	t.Log(out.String())
	if !strings.Contains(out.String(), "catalog copy of") {
		t.Fatalf("rebuild did not use the saved catalog copy:\n%s", out.String())
	}
	if strings.Contains(out.String(), srv.SecretKey) || strings.Contains(out.String(), password) {
		t.Fatal("rebuild printed a secret")
	}
	m2 := bootMainOn(t, fresh, storage, map[string]string{}) // the password is in the data directory now
	defer m2.Close()
	signIn(t, m2.URL(), "ana@example.com", "a long admin password")

	got, err := m2.Catalog.FindBackupByID(ctx, b.ID)
	if err != nil {
		t.Fatalf("backup %s is not in the rebuilt catalog: %v", b.ID, err)
	}
	if got.Status != db.BackupComplete {
		t.Fatalf("rebuilt backup status = %s, want complete", got.Status)
	}
	e, err := m2.Catalog.FindEnvironmentByName(ctx, "main")
	if err != nil {
		t.Fatal(err)
	}
	if e.Title != "Main shop" || len(e.Services) != 7 || e.Service("db").URL != servers.pgURL {
		t.Fatalf("rebuilt environment = %+v, want the saved one with its 7 services and their URLs", e.Masked())
	}
	ra, _, err := m2.Ops.StartRestore(ctx, jobs.RestoreRequest{BackupID: b.ID, Confirm: "main", Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	waitActivityDone(t, m2.Catalog, ra.ID)
	if got := app.state(t); got != want {
		t.Fatal("restored data differs from the backed-up data")
	}
	if got, want := servers.values(dbs), servers.want(dbs, "before the disaster"); got != want {
		t.Fatalf("restored services = %s, want %s", got, want)
	}
}

// TestRebuildWithoutCatalogCopy: a repository whose catalog copies are gone (or that another tool wrote) still
// gives back every backup, from each backup's rewind.json.
func TestRebuildWithoutCatalogCopy(t *testing.T) {
	ctx := context.Background()
	app := newAppData(t)
	repoDir := t.TempDir()
	storage := "file://" + repoDir
	env := map[string]string{"REWIND_REPO_PASSWORD": "pw for the test repository"}
	m := bootMainSaving(t, t.TempDir(), storage, env, time.Hour) // no save while the test runs
	if err := m.Catalog.CreateEnvironment(ctx, &db.Environment{Name: "shop", Type: db.EnvStaging, Status: db.StatusActive,
		Services: []db.Service{{Name: "app", Type: db.ServiceSQLite, Path: app.dbPath}}}); err != nil {
		t.Fatal(err)
	}
	a, b, err := m.Ops.StartBackup(ctx, jobs.BackupRequest{Environment: "shop", Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	waitActivityDone(t, m.Catalog, a.ID)
	m.CatalogSaver.Stop()
	m.CatalogSaver = nil // nor at Close: no catalog copy
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	fresh := t.TempDir()
	var out bytes.Buffer
	if err := jobs.RebuildCatalog(ctx, fresh, storage, func(k string) string { return env[k] }, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "no catalog copy") || !strings.Contains(out.String(), "1 backups added") {
		t.Fatalf("rebuild output:\n%s", out.String())
	}
	catalog, _, err := db.OpenDataDir(ctx, fresh)
	if err != nil {
		t.Fatal(err)
	}
	defer catalog.Close()
	got, err := catalog.FindBackupByID(ctx, b.ID)
	if err != nil || got.Status != db.BackupComplete || got.Environment != "shop" || len(got.Services) != 1 {
		t.Fatalf("rebuilt backup = %+v, %v", got, err)
	}

	// A second rebuild into the same directory is refused; a wrong password or an empty storage too.
	if err := jobs.RebuildCatalog(ctx, fresh, storage, func(k string) string { return env[k] }, &out); err == nil {
		t.Fatal("rebuild into a data directory with a catalog succeeded")
	}
	wrong := func(k string) string { return "wrong" }
	if err := jobs.RebuildCatalog(ctx, t.TempDir(), storage, wrong, &out); err == nil || !strings.Contains(err.Error(), "password") {
		t.Fatalf("rebuild with a wrong password = %v", err)
	}
	if err := jobs.RebuildCatalog(ctx, t.TempDir(), "file://"+t.TempDir(), func(k string) string { return env[k] }, &out); err == nil ||
		!strings.Contains(err.Error(), "holds no backup repository") {
		t.Fatalf("rebuild from an empty storage = %v", err)
	}
}

package main

import (
	"archive/tar"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	_ "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite"

	rewindredis "github.com/rewind/rewind/backup/redis"
	"github.com/rewind/rewind/backup/testserver"
	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/handlers"
	"github.com/rewind/rewind/jobs"
)

// TestMain runs the tests, or, with REWIND_TEST_AS_CLI set, runs this test binary as the rewind command (the
// crash test starts and kills `rewind serve` as a child process without building the binary).
func TestMain(m *testing.M) {
	if args, ok := os.LookupEnv(cliArgsEnv); ok {
		os.Args = append([]string{"rewind"}, strings.Split(args, "\x1f")...)
		main()
		os.Exit(0)
	}
	testserver.Main(m)
}

const cliArgsEnv = "REWIND_TEST_AS_CLI"

// rewindCommand is `rewind args...`, run by this test binary.
func rewindCommand(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), cliArgsEnv+"="+strings.Join(args, "\x1f"))
	return cmd
}

// stack is one environment's five services on the private test servers and in a temp dir, with one value in each
// that the test reads and changes.
type stack struct {
	t               testing.TB
	pg              *testserver.Postgres
	my              *testserver.MariaDB
	rd              *testserver.Redis
	pgDB, myDB      string
	rdDB            int
	sqlitePath, dir string
	withRedis       bool
	pgURL, myURL    string
	filesPath       string
	name, envType   string
}

func newStack(t testing.TB, name, envType string, withRedis bool) *stack {
	t.Helper()
	s := &stack{t: t, name: name, envType: envType, withRedis: withRedis,
		pg: testserver.StartPostgres(t), my: testserver.StartMariaDB(t)}
	s.pgDB = s.pg.CreateDatabase(t, "")
	s.myDB = s.my.CreateDatabase(t)
	s.pgURL, s.myURL = s.pg.URL(s.pgDB), s.my.URL(s.myDB)
	if withRedis {
		s.rd = testserver.StartRedis(t)
		s.rdDB = s.rd.CreateDatabase(t)
	}
	s.dir = t.TempDir()
	s.sqlitePath = filepath.Join(s.dir, "app.db")
	s.filesPath = filepath.Join(s.dir, "uploads")
	if err := os.MkdirAll(s.filesPath, 0o755); err != nil {
		t.Fatal(err)
	}
	s.pg.Exec(t, s.pgDB, `CREATE TABLE items (id int PRIMARY KEY, v text)`)
	s.myExec(s.myDB, "CREATE TABLE items (id int PRIMARY KEY, v text)")
	s.sqliteExec(s.sqlitePath, `PRAGMA journal_mode=WAL; CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT)`)
	s.set("v1")
	return s
}

func (s *stack) yaml() string {
	y := fmt.Sprintf(`  - name: %s
    type: %s
    services:
      - {name: db, type: postgresql, url: %q}
      - {name: shop, type: mysql, url: %q}
      - {name: local, type: sqlite, path: %q}
      - {name: uploads, type: files, path: %q}
`, s.name, s.envType, s.pgURL, s.myURL, s.sqlitePath, s.filesPath)
	if s.withRedis {
		y += fmt.Sprintf("      - {name: cache, type: redis, url: %q}\n", s.rd.URL(s.rdDB))
	}
	return y
}

func (s *stack) myExec(dbName, q string, args ...any) {
	s.t.Helper()
	d, err := sql.Open("mysql", s.my.DSN(dbName))
	if err != nil {
		s.t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Exec(q, args...); err != nil {
		s.t.Fatalf("mysql %q: %v", q, err)
	}
}

func (s *stack) sqliteExec(path, q string, args ...any) {
	s.t.Helper()
	d, err := sql.Open("sqlite", path)
	if err != nil {
		s.t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Exec(q, args...); err != nil {
		s.t.Fatalf("sqlite %q: %v", q, err)
	}
}

// set writes v into every service.
func (s *stack) set(v string) {
	s.t.Helper()
	s.pg.Exec(s.t, s.pgDB, `INSERT INTO items VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET v = excluded.v`, v)
	s.myExec(s.myDB, "INSERT INTO items VALUES (1, ?) ON DUPLICATE KEY UPDATE v = VALUES(v)", v)
	s.sqliteExec(s.sqlitePath, `INSERT INTO items VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET v = excluded.v`, v)
	if err := os.WriteFile(filepath.Join(s.filesPath, "a.txt"), []byte(v), 0o644); err != nil {
		s.t.Fatal(err)
	}
	if s.withRedis {
		c := s.rd.Client(s.rdDB)
		defer c.Close()
		if err := c.Set(context.Background(), "k", v, 0).Err(); err != nil {
			s.t.Fatal(err)
		}
	}
}

// values reads the value of every service of env (whose service locations may differ from s's own, for a
// branch) as "service=value" lines.
func (s *stack) values(env *db.Environment) string {
	s.t.Helper()
	ctx := context.Background()
	var out []string
	for _, svc := range env.Services {
		var v string
		var err error
		switch svc.Type {
		case db.ServicePostgreSQL:
			var c *pgx.Conn
			if c, err = pgx.Connect(ctx, svc.URL); err == nil {
				err = c.QueryRow(ctx, `SELECT v FROM items WHERE id = 1`).Scan(&v)
				c.Close(ctx)
			}
		case db.ServiceMySQL:
			name := svc.URL[strings.LastIndex(svc.URL, "/")+1:]
			var d *sql.DB
			if d, err = sql.Open("mysql", s.my.DSN(name)); err == nil {
				err = d.QueryRow(`SELECT v FROM items WHERE id = 1`).Scan(&v)
				d.Close()
			}
		case db.ServiceSQLite:
			var d *sql.DB
			if d, err = sql.Open("sqlite", svc.Path); err == nil {
				err = d.QueryRow(`SELECT v FROM items WHERE id = 1`).Scan(&v)
				d.Close()
			}
		case db.ServiceFiles:
			var b []byte
			b, err = os.ReadFile(filepath.Join(svc.Path, "a.txt"))
			v = string(b)
		case db.ServiceRedis:
			var n int
			if _, n, err = rewindredis.Database(svc.URL); err == nil {
				c := s.rd.Client(n)
				v, err = c.Get(ctx, "k").Result()
				c.Close()
			}
		}
		if err != nil {
			v = "error: " + err.Error()
		}
		out = append(out, svc.Name+"="+v)
	}
	return strings.Join(out, " ")
}

func (s *stack) want(env *db.Environment, v string) string {
	var out []string
	for _, svc := range env.Services {
		out = append(out, svc.Name+"="+v)
	}
	return strings.Join(out, " ")
}

// TestBackupsEndToEnd drives every backup verb of the CLI against the real server (Main) with all five service
// types on private PostgreSQL, MariaDB and Redis servers: create → mutate → restore → the exact data back; undo
// the restore; restore into another environment; branch a new environment from a parent; download and read
// the tar; delete.
func TestBackupsEndToEnd(t *testing.T) {
	m, token := startRewind(t, db.RoleAdmin)
	t.Setenv("REWIND_URL", m.URL())
	t.Setenv("REWIND_TOKEN", token)
	ctx := context.Background()
	main := newStack(t, "main", "production", true)
	other := newStack(t, "other", "staging", true)
	web := newStack(t, "web", "production", true)
	cfg := filepath.Join(t.TempDir(), "rewind.yaml")
	if err := os.WriteFile(cfg, []byte("environments:\n"+main.yaml()+other.yaml()+web.yaml()), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCommand(t, "apply", "", "-f", cfg); err != nil {
		t.Fatalf("apply: %v", err)
	}
	env := func(name string) *db.Environment {
		t.Helper()
		e, err := m.Catalog.FindEnvironmentByName(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}

	// Back up main (consistent, waiting with a progress bar on stderr).
	out, errOut, err := runCommand(t, "backup:create", "", "-e", "main")
	if err != nil {
		t.Fatalf("backup:create: %v\n%s", err, errOut)
	}
	id := strings.TrimSpace(out)
	if !strings.Contains(errOut, "100%") {
		t.Fatalf("backup:create stderr has no progress to 100%%:\n%s", errOut)
	}
	out, _, err = runCommand(t, "backups", "", "-e", "main")
	if err != nil || !strings.Contains(out, "% COMPLETE") || !strings.Contains(out, id) || !strings.Contains(out, "complete") {
		t.Fatalf("backups -e main = %q, %v", out, err)
	}
	out, _, err = runCommand(t, "backup:get", "", id, "--json")
	var got struct {
		Backup db.Backup `json:"backup"`
	}
	if err != nil || json.Unmarshal([]byte(out), &got) != nil {
		t.Fatalf("backup:get --json = %q, %v", out, err)
	}
	if got.Backup.Status != db.BackupComplete || len(got.Backup.Services) != 5 || got.Backup.Live || got.Backup.NewBytes <= 0 {
		t.Fatalf("backup = %+v, want a complete consistent backup of 5 services", got.Backup)
	}
	for _, s := range got.Backup.Services {
		if s.Type != db.ServiceFiles && s.Version == "" {
			t.Errorf("service %s has no version", s.Name)
		}
	}

	// Mutate, restore, read the exact data back.
	main.set("v2")
	if _, _, err := runCommand(t, "backup:restore", "", id, "-e", "other"); err == nil ||
		!strings.Contains(err.Error(), "taken on main") {
		t.Fatalf("restore with the wrong -e = %v, want a refusal naming main", err)
	}
	if _, _, err := runCommand(t, "backup:restore", "", id, "-e", "main"); err == nil ||
		!strings.Contains(err.Error(), "not a terminal") {
		t.Fatalf("restore without --yes and without a terminal = %v, want a refusal", err)
	}
	if got, want := main.values(env("main")), main.want(env("main"), "v2"); got != want {
		t.Fatalf("a refused restore changed the data: %s", got)
	}
	// --dry-run prints the plan and what changes (the updated file; the tables keep their rows), changes nothing.
	out, _, err = runCommand(t, "backup:restore", "", id, "-e", "main", "--dry-run")
	if err != nil {
		t.Fatalf("backup:restore --dry-run: %v", err)
	}
	if !hasFields(out, "public.items 1 1 same") || !hasFields(out, "items 1 1 same") {
		t.Errorf("--dry-run output lacks the items tables, 1 row now and in the backup:\n%s", out)
	}
	for _, want := range []string{"old: the backup holds",
		"1 file put back as backed up", "    a.txt (2 B)", "database " + strconv.Itoa(main.rdDB) + ": 1 keys now, 1 in the backup",
		"Dry run: nothing was changed."} {
		if !strings.Contains(out, want) {
			t.Errorf("--dry-run output lacks %q:\n%s", want, out)
		}
	}
	out, _, err = runCommand(t, "backup:restore", "", id, "-e", "main", "--dry-run", "--json")
	var dry struct {
		Plan handlers.RestorePlanJSON `json:"plan"`
	}
	if err != nil || json.Unmarshal([]byte(out), &dry) != nil || dry.Plan.Preview == nil || len(dry.Plan.Preview.Services) != 5 {
		t.Fatalf("--dry-run --json = %q, %v", out, err)
	}
	if got, want := main.values(env("main")), main.want(env("main"), "v2"); got != want {
		t.Fatalf("a dry run changed the data: %s", got)
	}
	if _, errOut, err := runCommand(t, "backup:restore", "", id, "-e", "main", "--yes"); err != nil {
		t.Fatalf("backup:restore: %v\n%s", err, errOut)
	}
	if got, want := main.values(env("main")), main.want(env("main"), "v1"); got != want {
		t.Fatalf("after restore: %s, want %s", got, want)
	}

	// Undo: restore the pre-restore backup the restore took.
	acts, _, err := m.Catalog.FindActivities(ctx, db.ActivityFilter{Environment: ptr("main"), Type: ptr(jobs.TypeRestore)})
	if err != nil || len(acts) == 0 {
		t.Fatalf("restore activity: %v", err)
	}
	pre := jobs.PreRestoreBackupID(acts[0])
	if _, errOut, err := runCommand(t, "backup:restore", "", pre, "--yes"); err != nil {
		t.Fatalf("undo (restore %s): %v\n%s", pre, err, errOut)
	}
	if got, want := main.values(env("main")), main.want(env("main"), "v2"); got != want {
		t.Fatalf("after undo: %s, want %s", got, want)
	}

	// Into another environment: main's backup replaces other's data, main is untouched.
	other.set("other")
	if _, errOut, err := runCommand(t, "backup:restore", "", id, "-e", "main", "--target", "other", "--yes"); err != nil {
		t.Fatalf("restore into other: %v\n%s", err, errOut)
	}
	if got, want := other.values(env("other")), other.want(env("other"), "v1"); got != want {
		t.Fatalf("other after restore: %s, want %s", got, want)
	}
	if got, want := main.values(env("main")), main.want(env("main"), "v2"); got != want {
		t.Fatalf("main changed by a restore into other: %s", got)
	}

	// Branch from a parent: every service gets its own database, file or directory; Redis the lowest numbered
	// database that holds no keys and belongs to no environment.
	out, errOut, err = runCommand(t, "backup:create", "", "-e", "web")
	if err != nil {
		t.Fatalf("backup:create -e web: %v\n%s", err, errOut)
	}
	webID := strings.TrimSpace(out)
	if _, errOut, err := runCommand(t, "backup:restore", "", webID, "--branch-from", "web", "--yes"); err != nil {
		t.Fatalf("restore --branch-from web: %v\n%s", err, errOut)
	}
	branch := env("restore-" + webID[:8])
	if branch.Parent != "web" {
		t.Fatalf("branch parent = %q", branch.Parent)
	}
	cache := branch.Service("cache")
	_, cacheDB, err := rewindredis.Database(cache.URL)
	if err != nil || cacheDB == web.rdDB || cacheDB == main.rdDB || cacheDB == other.rdDB {
		t.Fatalf("branch's Redis database = %d, %v: want one of its own", cacheDB, err)
	}
	t.Cleanup(func() {
		c := web.rd.Client(cacheDB)
		defer c.Close()
		c.FlushDB(context.Background())
	})
	if got, want := web.values(branch), web.want(branch, "v1"); got != want {
		t.Fatalf("branch: %s, want %s", got, want)
	}
	web.set("web changed")
	if got, want := web.values(branch), web.want(branch, "v1"); got != want {
		t.Fatalf("branch shares data with its parent: %s", got)
	}

	// Download and read the tar.
	tarPath := filepath.Join(t.TempDir(), "b.tar")
	if _, errOut, err := runCommand(t, "backup:download", "", id, "-o", tarPath); err != nil {
		t.Fatalf("backup:download: %v\n%s", err, errOut)
	}
	entries := tarEntries(t, tarPath)
	for _, want := range []string{"rewind.json", "uploads/a.txt"} {
		if _, ok := entries[want]; !ok {
			t.Fatalf("tar has no %s; entries: %v", want, keys(entries))
		}
	}
	if got := entries["uploads/a.txt"]; got != "v1" {
		t.Fatalf("uploads/a.txt in the tar = %q, want v1", got)
	}
	for _, svc := range []string{"db/", "shop/", "local/", "cache/"} {
		if !hasPrefix(entries, svc) {
			t.Fatalf("tar has no folder %s; entries: %v", svc, keys(entries))
		}
	}

	// Delete: refused without a terminal, then gone.
	if _, _, err := runCommand(t, "backup:delete", "", id); err == nil {
		t.Fatal("backup:delete without --yes and without a terminal went ahead")
	}
	if _, _, err := runCommand(t, "backup:delete", "", id, "--yes"); err != nil {
		t.Fatalf("backup:delete: %v", err)
	}
	if _, err := m.Catalog.FindBackupByID(ctx, id); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("backup after delete: %v", err)
	}
	if _, _, err := runCommand(t, "backup:get", "", id); err == nil || !strings.Contains(err.Error(), "Not found") {
		t.Fatalf("backup:get of a deleted backup = %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

// hasFields reports whether a line of out has exactly the space-separated fields of want.
func hasFields(out, want string) bool {
	for _, line := range strings.Split(out, "\n") {
		if strings.Join(strings.Fields(line), " ") == want {
			return true
		}
	}
	return false
}

func tarEntries(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("read tar: %v", err)
		}
		b, _ := io.ReadAll(io.LimitReader(tr, 1<<20))
		out[strings.TrimPrefix(h.Name, "./")] = string(b)
	}
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func hasPrefix(m map[string]string, p string) bool {
	for k := range m {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

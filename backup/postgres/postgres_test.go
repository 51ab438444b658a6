package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/kopia/kopia/fs"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/backuptest"
	"github.com/rewind/rewind/backup/internal/testserver"
)

func TestMain(m *testing.M) { testserver.Main(m) }

// conn connects to url for the test.
func conn(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func run(t testing.TB, c *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := c.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("exec %.80q: %v", sql, err)
	}
}

const fillSQL = `
CREATE SCHEMA shop;
CREATE TABLE public.users (
	id bigserial PRIMARY KEY, email text UNIQUE NOT NULL, name text, bio text, avatar bytea,
	score numeric(12,4), born date, seen timestamptz, tags text[], prefs jsonb
);
CREATE INDEX users_name_idx ON public.users (lower(name));
CREATE TABLE shop.products (sku text PRIMARY KEY, title text NOT NULL, price_cents int CHECK (price_cents >= 0), data jsonb);
CREATE TABLE shop.orders (
	id serial PRIMARY KEY, user_id bigint REFERENCES public.users(id), sku text REFERENCES shop.products(sku),
	qty int NOT NULL DEFAULT 1, note text
);
CREATE SEQUENCE shop.invoice_no START 1000;
CREATE VIEW shop.order_totals AS
	SELECT o.user_id, sum(o.qty * p.price_cents) AS cents FROM shop.orders o JOIN shop.products p USING (sku) GROUP BY o.user_id;
CREATE FUNCTION shop.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.note := coalesce(NEW.note, 'auto'); RETURN NEW; END $$;
CREATE TRIGGER orders_touch BEFORE INSERT ON shop.orders FOR EACH ROW EXECUTE FUNCTION shop.touch();
CREATE TABLE public.empty (id int);
INSERT INTO public.users (email, name, bio, avatar, score, born, seen, tags, prefs)
SELECT 'u' || i || '@example.com',
	CASE WHEN i % 7 = 0 THEN NULL ELSE 'Zoë ' || i || ' 日本語 🚀' END,
	CASE WHEN i = 3 THEN repeat('large value ', 50000) ELSE E'line\nbreak\ttab ''quote'' \\ backslash' END,
	CASE WHEN i % 5 = 0 THEN NULL ELSE decode(md5(i::text), 'hex') || '\x00ff'::bytea END,
	i * 1.2345, date '2000-01-01' + i, timestamptz '2024-01-01 00:00:00+00' + i * interval '1 hour',
	ARRAY['a', NULL, 'c' || i], jsonb_build_object('i', i, 'nested', jsonb_build_array(1, 'two', NULL))
FROM generate_series(1, 300) i;
INSERT INTO shop.products SELECT 'sku-' || i, 'Product ' || i, i * 100, '{"k": "v"}' FROM generate_series(1, 50) i;
INSERT INTO shop.orders (user_id, sku, qty) SELECT 1 + i % 300, 'sku-' || (1 + i % 50), 1 + i % 3 FROM generate_series(1, 1000) i;
SELECT nextval('shop.invoice_no') FROM generate_series(1, 5);
`

// checksum returns the state of the database: every table's rows, every sequence's position, and the
// definitions of views, functions, triggers and indexes.
func checksum(t testing.TB, url string) backuptest.State {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer c.Close(ctx)
	st := backuptest.State{}
	rows, err := c.Query(ctx, `SELECT n.nspname, c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND c.relkind IN ('r', 'S', 'v', 'i')`)
	if err != nil {
		t.Fatal(err)
	}
	type rel struct{ schema, name, kind string }
	var rels []rel
	for rows.Next() {
		var r rel
		var kind byte
		if err := rows.Scan(&r.schema, &r.name, &kind); err != nil {
			t.Fatal(err)
		}
		r.kind = string(kind)
		rels = append(rels, r)
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	for _, r := range rels {
		qn := pgx.Identifier{r.schema, r.name}.Sanitize()
		var q string
		switch r.kind {
		case "r":
			q = "SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)), '') FROM " + qn + " t"
		case "S":
			q = "SELECT last_value || ':' || is_called FROM " + qn
		case "v":
			q = "SELECT md5(pg_get_viewdef('" + qn + "'::regclass))"
		case "i":
			q = "SELECT md5(pg_get_indexdef('" + qn + "'::regclass))"
		}
		var sum string
		if err := c.QueryRow(ctx, q).Scan(&sum); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		st[r.kind+" "+r.schema+"."+r.name] = sum
	}
	rows, err = c.Query(ctx, `SELECT 'function ' || p.oid::regprocedure::text, md5(pg_get_functiondef(p.oid)) FROM pg_proc p
		JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
		UNION ALL SELECT 'trigger ' || tgname, md5(pg_get_triggerdef(oid)) FROM pg_trigger WHERE NOT tgisinternal`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		st[k] = v
	}
	return st
}

// newCase builds a round-trip case on database db reached through url (the service's URL).
func newCase(t *testing.T, url string, opts Options) backuptest.Case {
	src, err := NewWithOptions(backup.ServiceSpec{Name: "db", Type: backup.TypePostgreSQL, URL: url}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return backuptest.Case{
		Source: src,
		Fill: func(t testing.TB) {
			run(t, conn(t, url), fillSQL)
		},
		Checksum: func(t testing.TB) backuptest.State { return checksum(t, url) },
		Write: func(t testing.TB, n int) {
			c := conn(t, url)
			run(t, c, "INSERT INTO shop.products VALUES ($1, 'late', 1, NULL)", fmt.Sprintf("late-%d", n))
			// No nextval here: sequences are not transactional, so pg_dump reads their current position,
			// which may be ahead of the snapshot (harmless: never behind). See the package doc.
		},
		Damage: func(t testing.TB) {
			run(t, conn(t, url), `
				UPDATE public.users SET name = 'damaged' WHERE id % 3 = 0;
				DELETE FROM shop.orders WHERE id % 2 = 0;
				DROP VIEW shop.order_totals;
				DROP TABLE public.empty;
				CREATE TABLE public.added (x int); INSERT INTO public.added VALUES (1);
				SELECT nextval('shop.invoice_no');`)
		},
	}
}

func TestRoundTripSuperuser(t *testing.T) {
	t.Parallel()
	srv := testserver.StartPostgres(t)
	db := srv.CreateDatabase(t, "")
	backuptest.RoundTrip(t, newCase(t, srv.URL(db), Options{}))
	// Every session the source opened is closed. (A backend whose client just closed, the suite's own checksum
	// connection say, leaves pg_stat_activity a moment later: only one still there after 5 s is left open.)
	admin := conn(t, srv.URL("postgres"))
	var open []string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		rows, err := admin.Query(context.Background(), `SELECT format('%s on %s: %s', backend_type, datname, left(query, 80))
			FROM pg_stat_activity WHERE starts_with(datname, $1)`, db)
		if err != nil {
			t.Fatal(err)
		}
		if open, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			t.Fatal(err)
		}
		if len(open) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(open) != 0 {
		t.Fatalf("%d sessions still open on %s*: %v", len(open), db, open)
	}
}

// TestRoundTripAppRole runs the suite as the application's own role: not a superuser, but CREATEDB and the
// owner of its database, reached with a password.
func TestRoundTripAppRole(t *testing.T) {
	t.Parallel()
	srv := testserver.StartPostgres(t)
	role := srv.CreateRole(t, "s3cret pass'word", "CREATEDB")
	db := srv.CreateDatabase(t, role)
	backuptest.RoundTrip(t, newCase(t, srv.RoleURL(role, "s3cret pass'word", db), Options{}))
}

func TestPrepareNeedsCreateDB(t *testing.T) {
	t.Parallel()
	srv := testserver.StartPostgres(t)
	role := srv.CreateRole(t, "pw", "")
	db := srv.CreateDatabase(t, role)
	url := srv.RoleURL(role, "pw", db)
	c := newCase(t, url, Options{})
	c.Fill(t)
	before := c.Checksum(t)
	capture, err := c.Source.Pin(context.Background())
	if err != nil {
		t.Fatalf("Pin without CREATEDB: %v", err)
	}
	dir := backuptest.Stream(t, capture, backup.NopProgress)
	capture.Close()

	_, err = c.Source.Prepare(context.Background(), backuptest.Dir(t, dir), backup.NopProgress)
	if !errors.Is(err, ErrNoCreateDB) || !strings.Contains(err.Error(), "ALTER ROLE") {
		t.Fatalf("Prepare without CREATEDB: %v, want ErrNoCreateDB with how to grant it", err)
	}
	backuptest.MustEqual(t, "live state", before, c.Checksum(t))
	if n := countDatabases(t, srv, db); n != 1 {
		t.Fatalf("%d databases named %s*, want 1", n, db)
	}
}

func countDatabases(t testing.TB, srv *testserver.Postgres, prefix string) int {
	var n int
	if err := conn(t, srv.URL("postgres")).QueryRow(context.Background(),
		"SELECT count(*) FROM pg_database WHERE starts_with(datname, $1)", prefix).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPinErrors(t *testing.T) {
	t.Parallel()
	srv := testserver.StartPostgres(t)
	role := srv.CreateRole(t, "right-password", "")
	db := srv.CreateDatabase(t, role)
	for _, tc := range []struct {
		name, url string
		opts      Options
		want      string
	}{
		{"unreachable", "postgres://app:hunter2@127.0.0.1:1/app?sslmode=disable", Options{}, "connect"},
		{"wrong password", srv.RoleURL(role, "hunter2", db), Options{}, "password authentication failed"},
		{"no pg_dump", srv.URL(db), Options{ToolDirs: []string{t.TempDir()}}, "pg_dump not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, err := NewWithOptions(backup.ServiceSpec{Name: "db", URL: tc.url}, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err = src.Pin(ctx)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Pin: %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error shows the password: %v", err)
			}
		})
	}
}

// TestUnixSocket reaches the server through its Unix socket (postgres:///db?host=/dir).
func TestUnixSocket(t *testing.T) {
	t.Parallel()
	srv := testserver.StartPostgres(t)
	db := srv.CreateDatabase(t, "")
	url := fmt.Sprintf("postgres://postgres@/%s?host=%s&port=%d", db, srv.Dir, srv.Port)
	src, err := NewWithOptions(backup.ServiceSpec{Name: "db", URL: url}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	cp, err := src.Pin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	backuptest.Stream(t, cp, backup.NopProgress)
	if err := cp.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestNewRejectsBadURL(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"", "mysql://a:b@h/db", "postgres://u:topsecret@h:5432/"} {
		_, err := New(backup.ServiceSpec{Name: "db", URL: u})
		if err == nil {
			t.Errorf("New(%q) succeeded", u)
		} else if strings.Contains(err.Error(), "topsecret") {
			t.Errorf("error shows the password: %v", err)
		}
	}
}

// TestDumpKilled kills pg_dump halfway: reading the folder must fail, naming the cause, instead of
// ending as if the dump were complete.
func TestDumpKilled(t *testing.T) {
	t.Parallel()
	srv := testserver.StartPostgres(t)
	db := srv.CreateDatabase(t, "")
	c := conn(t, srv.URL(db))
	run(t, c, "CREATE TABLE big AS SELECT i, md5(i::text) || repeat('x', 200) AS v FROM generate_series(1, 200000) i")
	src, err := NewWithOptions(backup.ServiceSpec{Name: "db", URL: srv.URL(db)}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cp, err := src.Pin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	dir, err := cp.Folder(ctx, backup.NopProgress)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := dir.Child(ctx, DumpFile)
	if err != nil {
		t.Fatal(err)
	}
	r, err := entry.(fs.StreamingFile).GetReader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Fatalf("read start of dump: %v", err)
	}
	if err := cp.(*capture).reader.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(io.Discard, r)
	if err == nil || !strings.Contains(err.Error(), "pg_dump") || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("reading a killed dump: %v, want an error naming pg_dump and the kill", err)
	}
	if _, err2 := r.Read(buf); err2 == nil || err2 == io.EOF {
		t.Fatalf("read after failure: %v, want the error again", err2)
	}
}

// TestDumpServerGone terminates pg_dump's server session halfway: the folder read fails with the server's
// reason.
func TestDumpServerGone(t *testing.T) {
	t.Parallel()
	srv := testserver.StartPostgres(t)
	db := srv.CreateDatabase(t, "")
	c := conn(t, srv.URL(db))
	run(t, c, "CREATE TABLE big AS SELECT i, md5(i::text) || repeat('x', 200) AS v FROM generate_series(1, 200000) i")
	src, _ := NewWithOptions(backup.ServiceSpec{Name: "db", URL: srv.URL(db)}, Options{})
	ctx := context.Background()
	capture, err := src.Pin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer capture.Close()
	dir, err := capture.Folder(ctx, backup.NopProgress)
	if err != nil {
		t.Fatal(err)
	}
	entry, _ := dir.Child(ctx, DumpFile)
	r, _ := entry.(fs.StreamingFile).GetReader(ctx)
	if _, err := io.ReadFull(r, make([]byte, 64<<10)); err != nil {
		t.Fatalf("read start of dump: %v", err)
	}
	run(t, c, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pg_dump' AND datname = $1", db)
	_, err = io.Copy(io.Discard, r)
	if err == nil || !strings.Contains(err.Error(), "pg_dump") || !strings.Contains(err.Error(), "terminat") {
		t.Fatalf("reading a dump whose session was terminated: %v", err)
	}
}

// TestFailedPrepareLeavesLiveUntouched restores a truncated dump: Prepare fails, the live database is as
// it was and no restored copy is left behind.
func TestFailedPrepareLeavesLiveUntouched(t *testing.T) {
	t.Parallel()
	srv := testserver.StartPostgres(t)
	db := srv.CreateDatabase(t, "")
	c := newCase(t, srv.URL(db), Options{})
	c.Fill(t)
	capture, err := c.Source.Pin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	dir := backuptest.Stream(t, capture, backup.NopProgress)
	capture.Close()
	c.Damage(t)
	before := c.Checksum(t)

	path := filepath.Join(dir, DumpFile)
	st, _ := os.Stat(path)
	if err := os.Truncate(path, st.Size()/2); err != nil {
		t.Fatal(err)
	}
	_, err = c.Source.Prepare(context.Background(), backuptest.Dir(t, dir), backup.NopProgress)
	if err == nil || !strings.Contains(err.Error(), "pg_restore") {
		t.Fatalf("Prepare of a truncated dump: %v, want a pg_restore error", err)
	}
	backuptest.MustEqual(t, "live state after failed Prepare", before, c.Checksum(t))
	if n := countDatabases(t, srv, db); n != 1 {
		t.Fatalf("%d databases named %s*, want 1 (the restored copy was left behind)", n, db)
	}

	// The same dump streamed as from the repository (Rewind reads the archive and loads the data itself).
	src := c.Source.(*Source)
	src.opts.SpoolDir = t.TempDir()
	_, err = src.Prepare(context.Background(), remoteDir{backuptest.Dir(t, dir)}, backup.NopProgress)
	if err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("Prepare of a truncated streamed dump: %v, want an error saying the dump is truncated", err)
	}
	backuptest.MustEqual(t, "live state after failed streamed Prepare", before, c.Checksum(t))
	if n := countDatabases(t, srv, db); n != 1 {
		t.Fatalf("%d databases named %s*, want 1 (the restored copy was left behind)", n, db)
	}
	if left, _ := os.ReadDir(src.opts.SpoolDir); len(left) != 0 {
		t.Errorf("spool file left behind: %v", left)
	}

	// A spool directory that cannot be written fails the same way.
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
}

// remoteDir hides that a folder's files are local, so Prepare must spool them like files of the repository.
type remoteDir struct{ fs.Directory }

func (d remoteDir) Child(ctx context.Context, name string) (fs.Entry, error) {
	e, err := d.Directory.Child(ctx, name)
	if f, ok := e.(fs.File); ok {
		return remoteFile{f}, err
	}
	return e, err
}

type remoteFile struct{ fs.File }

func (remoteFile) LocalFilesystemPath() string { return "" }

func TestPrepareSpools(t *testing.T) {
	t.Parallel()
	srv := testserver.StartPostgres(t)
	db := srv.CreateDatabase(t, "")
	c := newCase(t, srv.URL(db), Options{})
	c.Fill(t)
	want := c.Checksum(t)
	capture, err := c.Source.Pin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	dir := backuptest.Stream(t, capture, backup.NopProgress)
	capture.Close()
	c.Damage(t)

	// The spool directory is missing: Prepare fails before touching anything.
	src := c.Source.(*Source)
	src.opts.SpoolDir = filepath.Join(t.TempDir(), "missing")
	_, err = src.Prepare(context.Background(), remoteDir{backuptest.Dir(t, dir)}, backup.NopProgress)
	if err == nil || !strings.Contains(err.Error(), "spool") {
		t.Fatalf("Prepare with a missing spool dir: %v", err)
	}
	if n := countDatabases(t, srv, db); n != 1 {
		t.Fatalf("%d databases named %s*, want 1", n, db)
	}

	spool := t.TempDir()
	src.opts.SpoolDir = spool
	var progress backuptest.Counter
	prep, err := src.Prepare(context.Background(), remoteDir{backuptest.Dir(t, dir)}, &progress)
	if err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(spool); len(left) != 0 {
		t.Errorf("spool file left behind: %v", left)
	}
	if progress.Done() == 0 || progress.Done() != progress.Total() {
		t.Errorf("progress %d of %d", progress.Done(), progress.Total())
	}
	rep, err := prep.Switch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	backuptest.MustEqual(t, "restored state", want, c.Checksum(t))
	if err := rep.Discard(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := countDatabases(t, srv, db); n != 1 {
		t.Fatalf("%d databases named %s*, want 1", n, db)
	}
}

// TestSwitchTerminatesSessions: an application session open on the live database does not block Switch.
func TestSwitchTerminatesSessions(t *testing.T) {
	t.Parallel()
	srv := testserver.StartPostgres(t)
	db := srv.CreateDatabase(t, "")
	c := newCase(t, srv.URL(db), Options{})
	c.Fill(t)
	want := c.Checksum(t)
	capture, err := c.Source.Pin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	dir := backuptest.Stream(t, capture, backup.NopProgress)
	capture.Close()
	c.Damage(t)
	prep, err := c.Source.Prepare(context.Background(), backuptest.Dir(t, dir), backup.NopProgress)
	if err != nil {
		t.Fatal(err)
	}
	app, err := pgx.Connect(context.Background(), srv.URL(db))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close(context.Background())
	run(t, app, "BEGIN; SELECT count(*) FROM public.users")
	start := time.Now()
	rep, err := prep.Switch(context.Background())
	if err != nil {
		t.Fatalf("Switch with an open session: %v", err)
	}
	t.Logf("Switch took %s", time.Since(start))
	defer rep.Discard(context.Background())
	backuptest.MustEqual(t, "restored state", want, c.Checksum(t))
}

// TestPinConsistency: while a writer commits numbered rows as fast as it can, the backup holds exactly the
// rows 1..k for a k between the rows committed before Pin started and those committed when it returned.
func TestPinConsistency(t *testing.T) {
	t.Parallel()
	srv := testserver.StartPostgres(t)
	db := srv.CreateDatabase(t, "")
	url := srv.URL(db)
	run(t, conn(t, url), "CREATE TABLE seq (n int PRIMARY KEY)")
	src, _ := NewWithOptions(backup.ServiceSpec{Name: "db", URL: url}, Options{})

	var committed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		w, err := pgx.Connect(context.Background(), url)
		if err != nil {
			t.Error(err)
			return
		}
		defer w.Close(context.Background())
		for n := int64(1); ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := w.Exec(context.Background(), "INSERT INTO seq VALUES ($1)", n); err != nil {
				t.Error(err)
				return
			}
			committed.Store(n)
		}
	}()
	for committed.Load() < 200 {
		time.Sleep(time.Millisecond)
	}
	lo := committed.Load()
	capture, err := src.Pin(context.Background())
	hi := committed.Load()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // more writes after the pin
	dir := backuptest.Stream(t, capture, backup.NopProgress)
	capture.Close()
	close(stop)
	wg.Wait()
	after := committed.Load()

	prep, err := src.Prepare(context.Background(), backuptest.Dir(t, dir), backup.NopProgress)
	if err != nil {
		t.Fatal(err)
	}
	defer prep.Discard(context.Background())
	var count, max int64
	if err := conn(t, srv.URL(prep.(*prepared).tmp)).QueryRow(context.Background(),
		"SELECT count(*), coalesce(max(n), 0) FROM seq").Scan(&count, &max); err != nil {
		t.Fatal(err)
	}
	t.Logf("committed before Pin %d, when Pin returned %d, at the end %d; backup has %d rows", lo, hi, after, count)
	if count != max {
		t.Fatalf("backup has %d rows but max %d: not a prefix", count, max)
	}
	// The writer records n after the server acknowledged its commit, so row hi+1 may be committed (and in
	// the snapshot) before the writer records it: one insert is in flight at any time.
	if count < lo || count > hi+1 {
		t.Fatalf("backup has rows 1..%d, want k in [%d, %d]", count, lo, hi+1)
	}
	if after <= hi {
		t.Fatalf("writer made no writes after the pin (%d ≤ %d): the test proves nothing", after, hi)
	}
}

// TestSuperuserRestoreKeepsOwner: Rewind connects as a superuser to a database owned by the application's
// role; after a restore the database and its objects still belong to that role, which can use them.
func TestSuperuserRestoreKeepsOwner(t *testing.T) {
	t.Parallel()
	srv := testserver.StartPostgres(t)
	role := srv.CreateRole(t, "pw", "")
	db := srv.CreateDatabase(t, role)
	app := srv.RoleURL(role, "pw", db)
	run(t, conn(t, app), "CREATE TABLE notes (id int PRIMARY KEY, body text); INSERT INTO notes VALUES (1, 'x')")
	src, _ := NewWithOptions(backup.ServiceSpec{Name: "db", URL: srv.URL(db)}, Options{})
	ctx := context.Background()
	cp, err := src.Pin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dir := backuptest.Stream(t, cp, backup.NopProgress)
	cp.Close()
	prep, err := src.Prepare(ctx, backuptest.Dir(t, dir), backup.NopProgress)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := prep.Switch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer rep.Discard(ctx)
	var dbOwner, tableOwner string
	c := conn(t, app)
	if err := c.QueryRow(ctx, `SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()`).Scan(&dbOwner); err != nil {
		t.Fatal(err)
	}
	if err := c.QueryRow(ctx, `SELECT tableowner FROM pg_tables WHERE tablename = 'notes'`).Scan(&tableOwner); err != nil {
		t.Fatal(err)
	}
	if dbOwner != role || tableOwner != role {
		t.Fatalf("owners after restore: database %q, table %q; want %q", dbOwner, tableOwner, role)
	}
	run(t, c, "INSERT INTO notes VALUES (2, 'app can still write')")
}

// TestSwitchRefusedBySession: when a session of another role cannot be terminated, Switch fails after its
// wait, names the role, and leaves the live database open and the prepared one discardable.
func TestSwitchRefusedBySession(t *testing.T) {
	t.Parallel()
	srv := testserver.StartPostgres(t)
	role := srv.CreateRole(t, "pw", "CREATEDB")
	db := srv.CreateDatabase(t, role)
	url := srv.RoleURL(role, "pw", db)
	run(t, conn(t, url), "CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
	src, _ := NewWithOptions(backup.ServiceSpec{Name: "db", URL: url}, Options{TerminateWait: 300 * time.Millisecond})
	ctx := context.Background()
	cp, err := src.Pin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dir := backuptest.Stream(t, cp, backup.NopProgress)
	cp.Close()
	prep, err := src.Prepare(ctx, backuptest.Dir(t, dir), backup.NopProgress)
	if err != nil {
		t.Fatal(err)
	}
	conn(t, srv.URL(db)) // a superuser session the app role may not terminate
	_, err = prep.Switch(ctx)
	if err == nil || !strings.Contains(err.Error(), "postgres") || !strings.Contains(err.Error(), "pg_signal_backend") {
		t.Fatalf("Switch with a foreign session: %v", err)
	}
	t.Logf("Switch: %v", err)
	run(t, conn(t, url), "INSERT INTO t VALUES (2)") // still open to new connections
	if err := prep.Discard(ctx); err != nil {
		t.Fatal(err)
	}
	if n := countDatabases(t, srv, db); n != 1 {
		t.Fatalf("%d databases named %s*, want 1", n, db)
	}
}

// TestRestoreIntoNewDatabase restores into a database that does not exist yet (a branch environment): it is
// created; the state it replaced is an empty database.
func TestRestoreIntoNewDatabase(t *testing.T) {
	t.Parallel()
	srv := testserver.StartPostgres(t)
	role := srv.CreateRole(t, "pw", "CREATEDB")
	db := srv.CreateDatabase(t, role)
	c := newCase(t, srv.RoleURL(role, "pw", db), Options{})
	c.Fill(t)
	want := c.Checksum(t)
	ctx := context.Background()
	cp, err := c.Source.Pin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dir := backuptest.Stream(t, cp, backup.NopProgress)
	cp.Close()

	branch := db + "_branch"
	url := srv.RoleURL(role, "pw", branch)
	src, _ := NewWithOptions(backup.ServiceSpec{Name: "db", URL: url}, Options{})
	prep, err := src.Prepare(ctx, backuptest.Dir(t, dir), backup.NopProgress)
	if err != nil {
		t.Fatalf("Prepare into a new database: %v", err)
	}
	rep, err := prep.Switch(ctx)
	if err != nil {
		t.Fatalf("Switch into a new database: %v", err)
	}
	backuptest.MustEqual(t, "new database", want, checksum(t, url))
	rc, err := rep.Pin(ctx)
	if err != nil {
		t.Fatalf("Pin of the replaced (absent) database: %v", err)
	}
	backuptest.Stream(t, rc, backup.NopProgress)
	rc.Close()
	if err := rep.Revert(ctx); err != nil {
		t.Fatal(err)
	}
	if got := checksum(t, url); len(got) != 0 {
		t.Fatalf("after Revert the database is not empty: %v", got)
	}
}

// TestPasswordNotOnCommandLine: pg_dump gets the password through its environment, never its arguments.
func TestPasswordNotOnCommandLine(t *testing.T) {
	t.Parallel()
	srv := testserver.StartPostgres(t)
	role := srv.CreateRole(t, "argv-secret", "")
	db := srv.CreateDatabase(t, role)
	src, _ := NewWithOptions(backup.ServiceSpec{Name: "db", URL: srv.RoleURL(role, "argv-secret", db)}, Options{})
	cp, err := src.Pin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	if _, err := cp.Folder(context.Background(), backup.NopProgress); err != nil {
		t.Fatal(err)
	}
	cmd := cp.(*capture).reader.cmd
	if args := strings.Join(cmd.Args, " "); strings.Contains(args, "argv-secret") {
		t.Fatalf("password on pg_dump's command line: %s", args)
	}
	found := false
	for _, e := range cmd.Env {
		found = found || e == "PGPASSWORD=argv-secret"
	}
	if !found {
		t.Fatal("PGPASSWORD not in pg_dump's environment")
	}
}

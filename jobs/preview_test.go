package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kopia/kopia/fs"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/sqlite"
	"github.com/rewind/rewind/backup/testserver"
	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/jobs"
)

// previewEnv is an environment with one service of every type on real servers, filled with known data.
type previewEnv struct {
	pg      *testserver.Postgres
	pgDB    string
	maria   *testserver.MariaDB
	schema  string
	redis   *testserver.Redis
	redisDB int
	sqlite  string
	mount   string
}

func newPreviewEnv(t *testing.T, w *world, name string) *previewEnv {
	t.Helper()
	e := &previewEnv{pg: testserver.StartPostgres(t), maria: testserver.StartMariaDB(t), redis: testserver.StartRedis(t)}
	e.pgDB = e.pg.CreateDatabase(t, "")
	e.schema = e.maria.CreateDatabase(t)
	e.redisDB = e.redis.CreateDatabase(t)
	e.sqlite = filepath.Join(w.dir, name, "app.db")
	e.mount = filepath.Join(w.dir, name, "uploads")
	for _, d := range []string{filepath.Join(e.mount, "dir"), filepath.Join(e.mount, "cache")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Every database: keep (10 rows, 1 deleted later), grow (5, 2 inserted later), same (4), gone (3, dropped
	// later); "fresh" is created after the backup.
	e.pg.Exec(t, e.pgDB, `CREATE TABLE keep (id int); INSERT INTO keep SELECT generate_series(1, 10);
		CREATE TABLE grow (id int, note text); INSERT INTO grow SELECT i, 'line
break' FROM generate_series(1, 5) i;
		CREATE TABLE same (id int); INSERT INTO same SELECT generate_series(1, 4);
		CREATE TABLE gone (id int); INSERT INTO gone SELECT generate_series(1, 3);`)
	my := e.maria.Open(t, e.schema)
	for _, q := range []string{
		"CREATE TABLE keep (id int)", "INSERT INTO keep VALUES (1),(2),(3),(4),(5),(6),(7),(8),(9),(10)",
		"CREATE TABLE grow (id int)", "INSERT INTO grow VALUES (1),(2),(3),(4),(5)",
		"CREATE TABLE same (id int)", "INSERT INTO same VALUES (1),(2),(3),(4)",
		"CREATE TABLE gone (id int)", "INSERT INTO gone VALUES (1),(2),(3)",
	} {
		if _, err := my.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(t, e.sqlite, `PRAGMA journal_mode=WAL;
		CREATE TABLE keep (id int); INSERT INTO keep VALUES (1),(2),(3),(4),(5),(6),(7),(8),(9),(10);
		CREATE TABLE grow (id int); INSERT INTO grow VALUES (1),(2),(3),(4),(5);
		CREATE TABLE same (id int); INSERT INTO same VALUES (1),(2),(3),(4);
		CREATE TABLE gone (id int); INSERT INTO gone VALUES (1),(2),(3);`)
	rc := e.redis.Client(e.redisDB)
	for i := range 5 {
		if err := rc.Set(context.Background(), fmt.Sprintf("k%d", i), "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"a.txt", "b.txt", "c.txt", "dir/d.txt", "e.txt", "cache/x.tmp"} {
		writeFile(t, filepath.Join(e.mount, f), "content of "+f)
	}
	env := &db.Environment{Name: name, Type: db.EnvProduction, Status: db.StatusActive, Services: []db.Service{
		{Name: "pg", Type: db.ServicePostgreSQL, URL: e.pg.URL(e.pgDB)},
		{Name: "shop", Type: db.ServiceMySQL, URL: e.maria.URL(e.schema)},
		{Name: "cache", Type: db.ServiceRedis, URL: e.redis.URL(e.redisDB)},
		{Name: "local", Type: db.ServiceSQLite, Path: e.sqlite},
		{Name: "uploads", Type: db.ServiceFiles, Path: e.mount, Exclude: []string{"cache/"}},
	}}
	if err := w.catalog.CreateEnvironment(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	return e
}

// damage changes every service in known ways after the backup.
func (e *previewEnv) damage(t *testing.T) {
	t.Helper()
	e.pg.Exec(t, e.pgDB, `DELETE FROM keep WHERE id = 1; INSERT INTO grow VALUES (6, 'x'), (7, 'y'); DROP TABLE gone;
		CREATE TABLE fresh (id int); INSERT INTO fresh VALUES (1);`)
	my := e.maria.Open(t, e.schema)
	for _, q := range []string{"DELETE FROM keep WHERE id = 1", "INSERT INTO grow VALUES (6),(7)", "DROP TABLE gone",
		"CREATE TABLE fresh (id int)", "INSERT INTO fresh VALUES (1)"} {
		if _, err := my.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(t, e.sqlite, `DELETE FROM keep WHERE id = 1; INSERT INTO grow VALUES (6),(7); DROP TABLE gone;
		CREATE TABLE fresh (id int); INSERT INTO fresh VALUES (1);`)
	ctx := context.Background()
	rc := e.redis.Client(e.redisDB)
	if err := rc.Del(ctx, "k0").Err(); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"new1", "new2"} {
		if err := rc.Set(ctx, k, "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	m := e.mount
	if err := os.Remove(filepath.Join(m, "a.txt")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(m, "new.txt"), "new file")
	writeFile(t, filepath.Join(m, "b.txt"), "content of b.txt, longer now")
	if err := os.Chmod(filepath.Join(m, "c.txt"), 0o600); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(m, "dir/d.txt"), later, later); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(m, "cache/y.tmp"), "excluded")
}

// tables renders a service's table changes as "name now/backup flags" lines.
func tables(sp jobs.ServicePreview) string {
	var out []string
	for _, tc := range sp.Tables {
		s := fmt.Sprintf("%s %d/%d", tc.Name, tc.Now, tc.Backup)
		if tc.Added {
			s += " added"
		}
		if tc.Removed {
			s += " removed"
		}
		if tc.NowEstimated {
			s += " estimated"
		}
		out = append(out, s)
	}
	return strings.Join(out, ", ")
}

func paths(g jobs.FileGroup) string {
	var out []string
	for _, f := range g.Files {
		out = append(out, fmt.Sprintf("%s %d", f.Path, f.Size))
	}
	return strings.Join(out, ", ")
}

func backupEnv(t testing.TB, w *world, env string) *db.Backup {
	t.Helper()
	a, b, err := w.ops.StartBackup(context.Background(), jobs.BackupRequest{Environment: env, Live: true, Actor: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	if got := waitDone(t, w.catalog, a.ID); got.State != db.ActivitySucceeded {
		t.Fatalf("backup: %s\n%s", got.State, got.Log)
	}
	return b
}

func previewOf(t testing.TB, w *world, req jobs.RestoreRequest) *jobs.Preview {
	t.Helper()
	req.Preview = true
	plan, err := w.ops.PlanRestore(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if plan.Problem != nil || plan.Preview == nil {
		t.Fatalf("plan: problem %v, preview %v", plan.Problem, plan.Preview)
	}
	return plan.Preview
}

// TestPreviewListsExactlyTheDamage backs up an environment with a service of every type (real PostgreSQL,
// MariaDB and Redis servers, a SQLite file, a files mount), damages each in known ways, and checks that the
// restore's preview lists exactly those changes, and that previewing changed nothing.
func TestPreviewListsExactlyTheDamage(t *testing.T) {
	w := newWorld(t)
	e := newPreviewEnv(t, w, "main")
	before := time.Now()
	b := backupEnv(t, w, "main")
	after := time.Now()

	p := previewOf(t, w, jobs.RestoreRequest{BackupID: b.ID})
	if p.Unavailable != "" {
		t.Fatalf("preview unavailable: %s", p.Unavailable)
	}
	for _, sp := range p.Services { // nothing changed yet
		if sp.Unavailable != "" {
			t.Fatalf("%s: %s", sp.Name, sp.Unavailable)
		}
		for _, tc := range sp.Tables {
			if tc.Changed() {
				t.Errorf("%s: table %+v changed before any damage", sp.Name, tc)
			}
		}
		if f := sp.Files; f != nil && (f.Added.Count+f.Removed.Count+f.Changed.Count != 0 || f.Same != 5) {
			t.Errorf("files before any damage: %+v", *f)
		}
	}

	e.damage(t)
	p = previewOf(t, w, jobs.RestoreRequest{BackupID: b.ID})
	if age := p.Age(); age <= 0 || age > time.Minute {
		t.Errorf("Age() = %s, want the few seconds since the backup", age)
	}
	if p.BackupTime.Before(before) || p.BackupTime.After(after) {
		t.Errorf("BackupTime = %s, want the pins, within the backup's %s .. %s", p.BackupTime, before, after)
	}
	byName := map[string]jobs.ServicePreview{}
	for _, sp := range p.Services {
		if sp.Unavailable != "" {
			t.Fatalf("%s: %s", sp.Name, sp.Unavailable)
		}
		byName[sp.Name] = sp
	}
	want := map[string]string{
		"pg":    "public.fresh 1/0 removed, public.gone 0/3 added, public.grow 7/5, public.keep 9/10, public.same 4/4",
		"shop":  "fresh 1/0 removed, gone 0/3 added, grow 7/5, keep 9/10, same 4/4",
		"local": "fresh 1/0 removed, gone 0/3 added, grow 7/5, keep 9/10, same 4/4",
	}
	for name, w := range want {
		if got := tables(byName[name]); got != w {
			t.Errorf("%s tables = %q,\nwant %q", name, got, w)
		}
	}
	if got, want := fmt.Sprint(byName["cache"].Keyspaces), fmt.Sprintf("[{%d 6 5}]", e.redisDB); got != want {
		t.Errorf("redis keyspaces = %s, want %s", got, want)
	}
	f := byName["uploads"].Files
	if f == nil {
		t.Fatal("no files preview")
	}
	for _, c := range []struct{ what, got, want string }{
		{"added", paths(f.Added), "a.txt 16"},
		{"removed", paths(f.Removed), "new.txt 8"},
		{"changed", paths(f.Changed), "b.txt 16, c.txt 16, dir/d.txt 20"},
	} {
		if c.got != c.want {
			t.Errorf("files %s = %q, want %q", c.what, c.got, c.want)
		}
	}
	if f.Added.Count != 1 || f.Added.Bytes != 16 || f.Removed.Count != 1 || f.Removed.Bytes != 8 ||
		f.Changed.Count != 3 || f.Changed.Bytes != 52 || f.Same != 1 {
		t.Errorf("files counts = %+v", *f)
	}
	if got := f.Changed.Files[0].NowSize; got != 28 {
		t.Errorf("b.txt's live size = %d, want 28", got)
	}

	// Previewing changed nothing: the live state is as damaged.
	if got, want := readFile(t, filepath.Join(e.mount, "new.txt")), "new file"; got != want {
		t.Errorf("new.txt = %q after the preview", got)
	}

	// A restore puts the backup back: a second preview shows nothing left to change.
	ra, _, err := w.ops.StartRestore(context.Background(), jobs.RestoreRequest{BackupID: b.ID, Confirm: "main", Actor: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	if got := waitDone(t, w.catalog, ra.ID); got.State != db.ActivitySucceeded {
		t.Fatalf("restore: %s\n%s", got.State, got.Log)
	}
	p = previewOf(t, w, jobs.RestoreRequest{BackupID: b.ID})
	for _, sp := range p.Services {
		for _, tc := range sp.Tables {
			if tc.Changed() {
				t.Errorf("after the restore, %s: table %+v still differs", sp.Name, tc)
			}
		}
		for _, k := range sp.Keyspaces {
			if k.Now != k.Backup {
				t.Errorf("after the restore, redis %+v", k)
			}
		}
		if f := sp.Files; f != nil && f.Added.Count+f.Removed.Count+f.Changed.Count != 0 {
			t.Errorf("after the restore, files %+v", *f)
		}
	}

	// Into a new branch: nothing is there yet, everything is added.
	p = previewOf(t, w, jobs.RestoreRequest{BackupID: b.ID, BranchFrom: "main"})
	for _, sp := range p.Services {
		for _, tc := range sp.Tables {
			if !tc.Added {
				t.Errorf("branch: %s table %+v not added", sp.Name, tc)
			}
		}
		if f := sp.Files; f != nil && (f.Added.Count != 5 || f.Removed.Count+f.Changed.Count != 0) {
			t.Errorf("branch: files %+v", *f)
		}
	}
}

// hiddenSummaries is a SQLite source without summaries: neither its captures (like a backup taken before
// they were recorded) nor its live state (like a type without a preview).
type hiddenSummaries struct{ src backup.Source }

func (h hiddenSummaries) Pin(ctx context.Context) (backup.Capture, error) {
	c, err := h.src.Pin(ctx)
	return struct{ backup.Capture }{c}, err
}

func (h hiddenSummaries) Prepare(ctx context.Context, dir fs.Directory, p backup.Progress) (backup.Prepared, error) {
	return h.src.Prepare(ctx, dir, p)
}

// failingSummaries is a real SQLite source whose live summary fails.
type failingSummaries struct{ backup.Source }

func (failingSummaries) Summarize(context.Context) (*backup.Summary, error) {
	return nil, errors.New("the server is busy")
}

// TestPreviewWithoutSummariesStillRestores: a backup without summaries, of a source without Summarize, says
// what it cannot preview, a preview that fails says why, and the backup restores.
func TestPreviewWithoutSummariesStillRestores(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	dbPath, mount := w.addEnvironment(t, "main")
	hide := true
	w.ops.Engine.Drivers[backup.TypeSQLite] = func(s backup.ServiceSpec) (backup.Source, error) {
		src, err := sqlite.Driver(s)
		if err != nil || !hide {
			return src, err
		}
		return hiddenSummaries{src}, nil
	}
	exec(t, dbPath, `INSERT INTO notes (body) VALUES ('kept')`)
	writeFile(t, filepath.Join(mount, "a.txt"), "A")
	b := backupEnv(t, w, "main")
	exec(t, dbPath, `INSERT INTO notes (body) VALUES ('later')`)

	p := previewOf(t, w, jobs.RestoreRequest{BackupID: b.ID})
	var app, uploads jobs.ServicePreview
	for _, sp := range p.Services {
		switch sp.Name {
		case "app":
			app = sp
		case "uploads":
			uploads = sp
		}
	}
	if !strings.HasPrefix(app.Unavailable, "no preview for this service: backup "+b.ID+" was taken before") {
		t.Errorf("app: Unavailable = %q", app.Unavailable)
	}
	if uploads.Unavailable != "" || uploads.Files == nil || uploads.Files.Same != 1 {
		t.Errorf("uploads: %+v", uploads)
	}

	// The backup's summary is recorded again, but the live side has none.
	hide = false
	b2 := backupEnv(t, w, "main")
	hide = true
	p = previewOf(t, w, jobs.RestoreRequest{BackupID: b2.ID})
	if got := p.Services[0]; got.Name != "app" || !strings.Contains(got.Unavailable, "no preview for this service: sqlite services cannot be previewed") {
		t.Errorf("app: %+v", got)
	}

	// A live summary that fails: the plan has no problem, the service says why it has no preview.
	w.ops.Engine.Drivers[backup.TypeSQLite] = func(s backup.ServiceSpec) (backup.Source, error) {
		src, err := sqlite.Driver(s)
		return failingSummaries{src}, err
	}
	p = previewOf(t, w, jobs.RestoreRequest{BackupID: b2.ID})
	if got, want := p.Services[0].Unavailable, `preview unavailable: read the live state of "app": the server is busy`; got != want {
		t.Errorf("app: Unavailable = %q, want %q", got, want)
	}

	ra, _, err := w.ops.StartRestore(ctx, jobs.RestoreRequest{BackupID: b.ID, Confirm: "main", Actor: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	if got := waitDone(t, w.catalog, ra.ID); got.State != db.ActivitySucceeded {
		t.Fatalf("restore: %s\n%s", got.State, got.Log)
	}
	if got, want := notes(t, dbPath), "kept"; got != want {
		t.Errorf("notes = %q, want %q", got, want)
	}
}

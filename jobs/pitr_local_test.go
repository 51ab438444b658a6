package jobs_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/pitr"
	"github.com/rewind/rewind/backup/pitr/filesnap"
	"github.com/rewind/rewind/backup/pitr/mariadb"
	pitrsqlite "github.com/rewind/rewind/backup/pitr/sqlite"
	"github.com/rewind/rewind/backup/testserver"
	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/jobs"
)

// TestRestoreAtOtherKindsThroughTheRunner follows a MariaDB server (binlog), a SQLite database (Litestream)
// and a files mount of one environment from the supervisor, changes all three in three phases, and restores the
// environment through the runner to a moment after the second phase: each holds the first two phases' rows or
// files, and the third phase, made after the moment, is gone; the plan names each service's own moment.
func TestRestoreAtOtherKindsThroughTheRunner(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	my := testserver.StartMariaDBBinlog(t)
	myDB := my.CreateDatabase(t)
	shop := my.Open(t, myDB)
	if _, err := shop.Exec(`CREATE TABLE orders (n int PRIMARY KEY) ENGINE=InnoDB`); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	dbPath, mount := filepath.Join(dir, "app.db"), filepath.Join(dir, "uploads")
	if err := os.Mkdir(mount, 0o755); err != nil {
		t.Fatal(err)
	}
	app, err := sql.Open("sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	app.SetMaxOpenConns(1)
	for _, q := range []string{`PRAGMA journal_mode=WAL`, `CREATE TABLE notes (n INTEGER PRIMARY KEY)`} {
		if _, err := app.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	// phase writes rows from..to into the database and a file per row into the mount.
	phase := func(from, to int) {
		t.Helper()
		for n := from; n <= to; n++ {
			if _, err := app.Exec(`INSERT INTO notes VALUES (?)`, n); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(mount, "note-"+strconv.Itoa(n)), []byte(strconv.Itoa(n)), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := shop.Exec(`INSERT INTO orders VALUES (?)`, n); err != nil {
				t.Fatal(err)
			}
		}
	}
	phase(1, 5)
	env := &db.Environment{Name: "local", Type: db.EnvProduction, PITR: &db.PITR{Enabled: true}, Services: []db.Service{
		{Name: "app", Type: db.ServiceSQLite, Path: dbPath}, {Name: "uploads", Type: db.ServiceFiles, Path: mount},
		{Name: "shop", Type: db.ServiceMySQL, URL: my.URL(myDB)}}}
	if err := w.catalog.CreateEnvironment(ctx, env); err != nil {
		t.Fatal(err)
	}
	sup := &jobs.PITR{Catalog: w.catalog, Repo: w.ops.Engine.Repo, SpoolDir: filepath.Join(w.dir, "pitr"),
		Kinds: map[string]pitr.Kind{backup.TypeSQLite: pitrsqlite.New(w.catalog.Path()), backup.TypeFiles: filesnap.Kind{},
			backup.TypeMySQL: &mariadb.Kind{}},
		Poll: 200 * time.Millisecond, ShipEvery: 200 * time.Millisecond}
	w.ops.PITR = sup
	sup.Start(ctx)
	t.Cleanup(sup.Close)
	checks, err := sup.Check(ctx, "local")
	if err != nil {
		t.Fatal(err)
	}
	for _, svc := range []string{"app", "uploads", "shop"} {
		if len(checks[svc]) == 0 {
			t.Fatalf("no check of %s", svc)
		}
		for _, c := range checks[svc] {
			if c.Status == pitr.CheckFailed {
				t.Fatalf("check %s %s: %s", svc, c.Name, c.Message)
			}
		}
	}
	// covered waits until every stream has shipped every change made before now.
	covered := func() {
		t.Helper()
		now := time.Now()
		for _, svc := range []string{"app", "uploads", "shop"} {
			waitServiceStream(t, w.catalog, "local", svc, func(s *db.PITRStream) bool {
				return s.CoveredUntil != nil && s.CoveredUntil.After(now.Add(300*time.Millisecond))
			})
		}
	}
	covered()
	phase(6, 10)
	covered()
	at := time.Now() // every stream has shipped the second phase (a files tree is restorable once its walk ended)
	time.Sleep(400 * time.Millisecond)
	phase(11, 15)
	covered()

	plan, err := w.ops.PlanRestoreAt(ctx, jobs.RestoreAtRequest{Environment: "local", At: at})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range plan.Services {
		if s.RestoredTo == nil || s.RestoredTo.After(at) {
			t.Errorf("plan for %s restores to %v, want its own last change at or before %s", s.Name, s.RestoredTo, at)
		}
	}
	a, _, err := w.ops.StartRestoreAt(ctx, jobs.RestoreAtRequest{Environment: "local", At: at, Confirm: "local", Actor: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	if done := waitDone(t, w.catalog, a.ID); done.State != db.ActivitySucceeded {
		t.Fatalf("restore to %s: %s\n%s", at, done.State, done.Log)
	}
	var rows, max int
	if err := app.QueryRow(`SELECT count(*), COALESCE(max(n), 0) FROM notes`).Scan(&rows, &max); err != nil {
		t.Fatal(err)
	}
	if rows != 10 || max != 10 {
		t.Errorf("SQLite after the restore: %d rows up to %d, want 1..10", rows, max)
	}
	if err := shop.QueryRow(`SELECT count(*), COALESCE(max(n), 0) FROM orders`).Scan(&rows, &max); err != nil {
		t.Fatal(err)
	}
	if rows != 10 || max != 10 {
		t.Errorf("MariaDB after the restore: %d rows up to %d, want 1..10", rows, max)
	}
	entries, err := os.ReadDir(mount)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 10 {
		t.Errorf("the mount after the restore holds %v, want note-1..note-10", names)
	}
}

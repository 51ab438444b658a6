package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/mysql"
	"github.com/rewind/rewind/backup/postgres"
	"github.com/rewind/rewind/backup/redis"
	"github.com/rewind/rewind/backup/scratch"
	"github.com/rewind/rewind/backup/testserver"
	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/jobs"
)

// drillWorld is a world whose environment "main" has five services on private real servers: PostgreSQL (a
// database owned by a role of its own), MariaDB, Redis, SQLite and a files mount, each holding "v1" data.
type drillWorld struct {
	*world
	pg      *testserver.Postgres
	my      *testserver.MariaDB
	rd      *testserver.Redis
	pgDB    string
	myDB    string
	rdDB    int
	scratch string // Operations.ScratchDir
	sqlite  string
	mount   string
}

func newDrillWorld(t *testing.T) *drillWorld {
	t.Helper()
	ctx := context.Background()
	w := &drillWorld{world: newWorld(t), pg: testserver.StartPostgres(t), my: testserver.StartMariaDB(t),
		rd: testserver.StartRedis(t)}
	w.ops.Engine.Drivers[backup.TypePostgreSQL] = postgres.New
	w.ops.Engine.Drivers[backup.TypeMySQL] = mysql.New
	w.ops.Engine.Drivers[backup.TypeRedis] = redis.New
	// Like the machine's temporary directory, the scratch directory lets the postgres user through (a test's
	// own temporary directory does not).
	scratchDir, err := os.MkdirTemp("", "rewind-drill-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(scratchDir) })
	if err := os.Chmod(scratchDir, 0o711); err != nil {
		t.Fatal(err)
	}
	w.scratch, w.ops.ScratchDir = scratchDir, scratchDir

	role := w.pg.CreateRole(t, "app secret", "CREATEDB")
	w.pgDB = w.pg.CreateDatabase(t, role)
	w.myDB = w.my.CreateDatabase(t)
	w.rdDB = w.rd.CreateDatabase(t)
	w.sqlite = filepath.Join(w.dir, "main", "app.db")
	w.mount = filepath.Join(w.dir, "main", "uploads")
	if err := os.MkdirAll(w.mount, 0o755); err != nil {
		t.Fatal(err)
	}
	pgURL := w.pg.RoleURL(role, "app secret", w.pgDB)
	w.pgExec(t, pgURL, `CREATE TABLE items (id int PRIMARY KEY, v text); INSERT INTO items VALUES (1, 'pg-v1')`)
	// A grant to another role, which the scratch server does not have.
	reader := w.pg.CreateRole(t, "reader secret", "")
	w.pgExec(t, pgURL, `GRANT SELECT ON items TO `+reader)
	if _, err := w.my.Open(t, w.myDB).Exec(`CREATE TABLE items (id int PRIMARY KEY, v text); INSERT INTO items VALUES (1, 'my-v1')`); err != nil {
		t.Fatal(err)
	}
	c := w.rd.Client(w.rdDB)
	defer c.Close()
	if err := c.Set(ctx, "greeting", "redis-v1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	exec(t, w.sqlite, `CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes (body) VALUES ('sqlite-v1')`)
	writeFile(t, filepath.Join(w.mount, "logo.txt"), "files-v1")

	env := &db.Environment{Name: "main", Type: db.EnvProduction, Status: db.StatusActive, Services: []db.Service{
		{Name: "db", Type: db.ServicePostgreSQL, URL: pgURL},
		{Name: "shop", Type: db.ServiceMySQL, URL: w.my.URL(w.myDB)},
		{Name: "cache", Type: db.ServiceRedis, URL: w.rd.URL(w.rdDB)},
		{Name: "app", Type: db.ServiceSQLite, Path: w.sqlite},
		{Name: "uploads", Type: db.ServiceFiles, Path: w.mount},
	}}
	if err := w.catalog.CreateEnvironment(ctx, env); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *drillWorld) pgExec(t *testing.T, url, sql string) {
	t.Helper()
	if _, err := pgQuery(url, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// pgQuery runs sql and returns the first column of its first row ("" when it returns none).
func pgQuery(url, sql string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return "", err
	}
	defer c.Close(ctx)
	rows, err := c.Query(ctx, sql, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	out := ""
	if rows.Next() {
		if vals, err := rows.Values(); err == nil && len(vals) > 0 && vals[0] != nil {
			out = fmt.Sprint(vals[0])
		}
	}
	rows.Close()
	return out, rows.Err()
}

// backup takes a manual backup of main and returns it.
func (w *drillWorld) backup(t *testing.T) *db.Backup {
	t.Helper()
	a, b, err := w.ops.StartBackup(context.Background(), jobs.BackupRequest{Environment: "main", Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if got := waitDone(t, w.catalog, a.ID); got.State != db.ActivitySucceeded {
		t.Fatalf("backup: %s\n%s", got.State, got.Log)
	}
	return b
}

// setSmoke sets main's smoke command.
func (w *drillWorld) setSmoke(t *testing.T, cmd string) {
	t.Helper()
	ctx := context.Background()
	env, err := w.catalog.FindEnvironmentByName(ctx, "main")
	if err != nil {
		t.Fatal(err)
	}
	env.Drill = db.DrillSettings{Schedule: db.DrillWeekly, Smoke: cmd}
	if err := w.catalog.UpdateEnvironment(ctx, env); err != nil {
		t.Fatal(err)
	}
}

// drill runs a drill of main to its end and returns its activity and its row.
func (w *drillWorld) drill(t *testing.T) (*db.Activity, *db.Drill) {
	t.Helper()
	ctx := context.Background()
	a, err := w.ops.StartDrill(ctx, jobs.DrillRequest{Environment: "main", Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	a = waitDone(t, w.catalog, a.ID)
	env := "main"
	drills, err := w.catalog.FindDrills(ctx, db.DrillFilter{Environment: &env, Limit: 1})
	if err != nil || len(drills) != 1 || drills[0].ActivityID != a.ID {
		t.Fatalf("drills after the drill = %v, %v; want the drill of activity %d", drills, err, a.ID)
	}
	return a, drills[0]
}

// checkLeftNothing fails t if a drill left a scratch directory, a scratch server process, or anything beside
// the live data (a database or directory of the restore's naming).
func (w *drillWorld) checkLeftNothing(t *testing.T) {
	t.Helper()
	if ents, err := os.ReadDir(w.scratch); err == nil && len(ents) > 0 {
		t.Fatalf("the drill left %s in the scratch directory", ents[0].Name())
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		pid, err := strconv.Atoi(filepath.Base(p))
		if err == nil && scratch.RunsFrom(pid, w.scratch) {
			cmd, _ := os.ReadFile(p + "/cmdline")
			t.Fatalf("a scratch server still runs: pid %d, %s", pid, strings.ReplaceAll(string(cmd), "\x00", " "))
		}
	}
	if left, _ := filepath.Glob(filepath.Join(w.dir, "main", "*rewind*")); len(left) > 0 {
		t.Fatalf("the drill left %v beside the live data", left)
	}
	names, err := pgQuery(w.pg.URL("postgres"),
		"SELECT string_agg(datname, ',') FROM pg_database WHERE datname LIKE '"+w.pgDB+"%'")
	if err != nil || names != w.pgDB {
		t.Fatalf("live PostgreSQL databases of main = %q, %v; want only %s", names, err, w.pgDB)
	}
}

// TestDrillRestoresEveryServiceIntoScratchServers drills a five-service environment: every service comes back
// in private servers and directories, the smoke command sees the backed-up data there (not the live data,
// changed since), every file is verified, and nothing is left behind nor changed in the live environment.
func TestDrillRestoresEveryServiceIntoScratchServers(t *testing.T) {
	w := newDrillWorld(t)
	b := w.backup(t)
	// The live data moves on after the backup: the drill must restore the backup's, and leave this alone.
	w.pgExec(t, w.pg.URL(w.pgDB), `UPDATE items SET v = 'pg-v2'`)
	writeFile(t, filepath.Join(w.mount, "logo.txt"), "files-v2")

	out := t.TempDir()
	w.setSmoke(t, fmt.Sprintf(`set -e
		psql "$REWIND_DRILL_DB_URL" -tAc 'SELECT v FROM items' > %[1]s/pg
		mariadb -h "$REWIND_DRILL_SHOP_HOST" -P "$REWIND_DRILL_SHOP_PORT" -u root -N -e 'SELECT v FROM items' "$REWIND_DRILL_SHOP_DATABASE" > %[1]s/my
		redis-cli -u "$REWIND_DRILL_CACHE_URL" GET greeting > %[1]s/redis
		grep -c sqlite-v1 "$REWIND_DRILL_APP_PATH" > %[1]s/sqlite
		cat "$REWIND_DRILL_UPLOADS_PATH/logo.txt" > %[1]s/files
		env | grep '^REWIND_DRILL_' | sort > %[1]s/env`, out))

	a, d := w.drill(t)
	if a.State != db.ActivitySucceeded || a.Type != jobs.TypeDrill || a.BackupID != b.ID {
		t.Fatalf("drill activity = %s %s of %s, want a succeeded %s of %s\n%s", a.State, a.Type, a.BackupID,
			jobs.TypeDrill, b.ID, a.Log)
	}
	t.Logf("drill log:\n%s", a.Log)
	if d.State != db.DrillPassed || d.BackupID != b.ID || d.Restore <= 0 || d.Files < 5 || d.SizeBytes <= 0 {
		t.Fatalf("drill row = %+v, want passed, of %s, with a restore time, 5+ files and a size", d, b.ID)
	}
	for file, want := range map[string]string{"pg": "pg-v1", "my": "my-v1", "redis": "redis-v1", "sqlite": "1",
		"files": "files-v1"} {
		if got := strings.TrimSpace(readFile(t, filepath.Join(out, file))); got != want {
			t.Errorf("the smoke command read %q from the restored %s, want %q", got, file, want)
		}
	}
	env := readFile(t, filepath.Join(out, "env"))
	for _, v := range []string{"REWIND_DRILL_DB_URL=postgres://postgres@127.0.0.1:", "REWIND_DRILL_APP_PATH=" + w.scratch,
		"REWIND_DRILL_CACHE_URL=redis://127.0.0.1:"} {
		if !strings.Contains(env, v) {
			t.Errorf("smoke environment lacks %s:\n%s", v, env)
		}
	}
	if strings.Contains(env, fmt.Sprint(w.pg.Port)) || strings.Contains(env, w.mount) {
		t.Errorf("the smoke environment points at the live services:\n%s", env)
	}
	// The live environment is as the app left it.
	if got, err := pgQuery(w.pg.URL(w.pgDB), "SELECT v FROM items"); err != nil || got != "pg-v2" {
		t.Fatalf("live PostgreSQL after the drill = %q, %v; want pg-v2", got, err)
	}
	if got := readFile(t, filepath.Join(w.mount, "logo.txt")); got != "files-v2" {
		t.Fatalf("live mount after the drill = %q, want files-v2", got)
	}
	st, err := w.ops.DrillStatus(context.Background(), "main")
	if err != nil || st.Verified == nil || st.Verified.ID != d.ID || st.RTO <= 0 || st.Basis == "" {
		t.Fatalf("DrillStatus = %+v, %v; want drill %d as the last verified restore and a predicted RTO", st, err, d.ID)
	}
	w.checkLeftNothing(t)
}

// TestDrillFailsOnASmokeCommandThatExits1 fails the drill whose smoke command exits 1, saying so, and leaves
// nothing behind.
func TestDrillFailsOnASmokeCommandThatExits1(t *testing.T) {
	w := newDrillWorld(t)
	w.backup(t)
	w.setSmoke(t, `echo "orders table is empty" >&2; exit 1`)
	a, d := w.drill(t)
	if a.State != db.ActivityFailed || !strings.Contains(a.Log, "smoke") || !strings.Contains(a.Log, "orders table is empty") {
		t.Fatalf("drill with a failing smoke command: %s\n%s", a.State, a.Log)
	}
	if d.State != db.DrillFailed || !strings.Contains(d.Error, "exit code 1") || d.Restore <= 0 {
		t.Fatalf("drill row = %+v, want failed with the exit code, and the restore measured", d)
	}
	w.checkLeftNothing(t)
}

// TestDrillFailsOnACorruptedBlob corrupts a data blob of the repository after the backup: the drill fails as
// damaged data, and leaves nothing behind.
func TestDrillFailsOnACorruptedBlob(t *testing.T) {
	ctx := context.Background()
	w := newDrillWorld(t)
	w.backup(t)
	repoDir := filepath.Join(w.dir, "repo")
	var packs []string
	filepath.Walk(repoDir, func(p string, fi os.FileInfo, err error) error {
		if rel, _ := filepath.Rel(repoDir, p); err == nil && !fi.IsDir() && strings.HasPrefix(rel, "p") {
			packs = append(packs, p)
		}
		return nil
	})
	if len(packs) == 0 {
		t.Fatal("no pack blobs in the repository")
	}
	sort.Slice(packs, func(i, j int) bool { return size(packs[i]) > size(packs[j]) })
	b, err := os.ReadFile(packs[0]) // the largest pack: the services' data
	if err != nil {
		t.Fatal(err)
	}
	for i := len(b) / 3; i < len(b); i += 97 {
		b[i] ^= 0x5a
	}
	if err := os.WriteFile(packs[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
	// A fresh connection to the repository: no cached contents hide the damage.
	repo, err := backup.OpenRepository(ctx, backup.RepositoryOptions{Storage: backup.FileStorage(repoDir),
		Password: "test password", ConfigDir: filepath.Join(w.dir, "kopia-fresh")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { repo.Close(context.Background()) })
	w.ops.Engine = &backup.Engine{Repo: repo, Drivers: w.ops.Engine.Drivers}

	a, d := w.drill(t)
	if a.State != db.ActivityFailed || !strings.Contains(a.Log, "could not be restored") {
		t.Fatalf("drill of a damaged backup: %s\n%s", a.State, a.Log)
	}
	if d.State != db.DrillFailed || !strings.Contains(d.Error, backup.ErrDamaged.Error()) {
		t.Fatalf("drill row = %+v, want failed as damaged", d)
	}
	w.checkLeftNothing(t)
}

// TestDrillRefusedWithoutABackup refuses a drill of an environment that has no complete backup, and fails a
// scheduled one; once there is a backup, a scheduled drill restores it.
func TestDrillRefusedWithoutABackup(t *testing.T) {
	w := newWorld(t)
	w.addEnvironment(t, "main")
	_, err := w.ops.StartDrill(context.Background(), jobs.DrillRequest{Environment: "main"})
	if !errors.Is(err, jobs.ErrRefused) || !strings.Contains(err.Error(), "take a backup first") {
		t.Fatalf("drill without a backup = %v, want a refusal", err)
	}
	// A scheduled drill picks its backup when it runs: without one it fails, and its row says why.
	a, err := w.ops.StartDrill(context.Background(), jobs.DrillRequest{Environment: "main", Latest: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := waitDone(t, w.catalog, a.ID); got.State != db.ActivityFailed || !strings.Contains(got.Log, "take a backup first") {
		t.Fatalf("scheduled drill without a backup: %s\n%s", got.State, got.Log)
	}
	env := "main"
	drills, err := w.catalog.FindDrills(context.Background(), db.DrillFilter{Environment: &env})
	if err != nil || len(drills) != 1 || drills[0].State != db.DrillFailed || !strings.Contains(drills[0].Error, "take a backup first") {
		t.Fatalf("drills = %+v, %v; want one failed for want of a backup", drills, err)
	}
	// With a backup, the scheduled drill restores the latest one and names it.
	ba, b, err := w.ops.StartBackup(context.Background(), jobs.BackupRequest{Environment: "main"})
	if err != nil {
		t.Fatal(err)
	}
	waitDone(t, w.catalog, ba.ID)
	if a, err = w.ops.StartDrill(context.Background(), jobs.DrillRequest{Environment: "main", Latest: true}); err != nil {
		t.Fatal(err)
	}
	if got := waitDone(t, w.catalog, a.ID); got.State != db.ActivitySucceeded || got.BackupID != b.ID {
		t.Fatalf("scheduled drill with a backup: %s of %q, want succeeded of %s\n%s", got.State, got.BackupID, b.ID, got.Log)
	}
}

func size(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// TestSchedulerQueuesDueDrills sets main's drills weekly and stage's daily: each day's slot queues the drills
// that are due behind the slot's backups, weekly ones a week after the last drill, and none for an
// environment whose drills are off.
func TestSchedulerQueuesDueDrills(t *testing.T) {
	ctx := context.Background()
	w := newSchedWorld(t, db.ScheduleBasic, "Europe/Berlin", time.Time{})
	for name, schedule := range map[string]string{"main": db.DrillWeekly, "stage": db.DrillDaily} {
		env, err := w.catalog.FindEnvironmentByName(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		env.Drill.Schedule = schedule
		if err := w.catalog.UpdateEnvironment(ctx, env); err != nil {
			t.Fatal(err)
		}
	}
	w.at(t, "2028-05-01 12:00")
	w.tick(t) // a new catalog's first tick only records the slot
	steps := []struct {
		at     string
		drills string // environments whose drill was queued
	}{
		{"2028-05-02 04:00", "main,stage"},
		{"2028-05-02 16:00", ""},
		{"2028-05-03 04:00", "stage"},
		{"2028-05-08 04:00", "stage"},
		{"2028-05-09 04:00", "main,stage"},
	}
	for _, s := range steps {
		w.at(t, s.at)
		res := w.tick(t)
		var got []string
		for _, a := range res.Drills {
			if a.Type != jobs.TypeDrill || a.Actor != jobs.ActorSchedule || a.BackupID != "" {
				t.Fatalf("%s: queued %+v, want a drill by the schedule of the latest backup at its run", s.at, a)
			}
			got = append(got, a.Environment)
			// The drill job records its row when it runs; this world's jobs do nothing, so record it here.
			if err := w.catalog.CreateDrill(ctx, &db.Drill{Environment: a.Environment, ActivityID: a.ID}); err != nil {
				t.Fatal(err)
			}
		}
		sort.Strings(got)
		if strings.Join(got, ",") != s.drills {
			t.Fatalf("%s: drills queued for [%s], want [%s]", s.at, strings.Join(got, ","), s.drills)
		}
	}
}

// TestPredictRTO predicts from measured restores: a line through two sizes, the one size scaled, nothing from
// nothing.
func TestPredictRTO(t *testing.T) {
	for _, tc := range []struct {
		name    string
		samples []jobs.RestoreSample
		size    int64
		want    time.Duration
		ok      bool
	}{
		{"none", nil, 1 << 30, 0, false},
		{"one size, larger backup", []jobs.RestoreSample{{Bytes: 100 << 20, Took: 10 * time.Second}}, 200 << 20, 20 * time.Second, true},
		{"one size, smaller backup", []jobs.RestoreSample{{Bytes: 100 << 20, Took: 10 * time.Second}}, 1 << 20, 10 * time.Second, true},
		{"line", []jobs.RestoreSample{{Bytes: 100 << 20, Took: 12 * time.Second}, {Bytes: 300 << 20, Took: 32 * time.Second}},
			500 << 20, 52 * time.Second, true},
		{"no slower when bigger", []jobs.RestoreSample{{Bytes: 1 << 20, Took: 4 * time.Second}, {Bytes: 2 << 20, Took: 2 * time.Second}},
			1 << 30, 3 * time.Second, true},
	} {
		got, ok := jobs.PredictRTO(tc.samples, tc.size)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s: PredictRTO = %s, %v; want %s, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

// TestDrillCancelledLeavesNothing cancels a drill while its smoke command runs: the activity is cancelled, the
// drill failed as cancelled, and the scratch servers and directory are gone.
func TestDrillCancelledLeavesNothing(t *testing.T) {
	ctx := context.Background()
	w := newDrillWorld(t)
	w.backup(t)
	w.setSmoke(t, "sleep 60")
	a, err := w.ops.StartDrill(ctx, jobs.DrillRequest{Environment: "main", Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		got, err := w.catalog.FindActivityByID(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(got.Log, "running the smoke command") {
			break
		}
		if got.Done() || time.Now().After(deadline) {
			t.Fatalf("the drill never reached its smoke command: %s\n%s", got.State, got.Log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if ents, _ := os.ReadDir(w.scratch); len(ents) != 1 {
		t.Fatalf("while the drill runs the scratch directory holds %d entries, want its drill's", len(ents))
	}
	if err := w.ops.Runner.Cancel(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	got := waitDone(t, w.catalog, a.ID)
	env := "main"
	drills, err := w.catalog.FindDrills(ctx, db.DrillFilter{Environment: &env, Limit: 1})
	if got.State != db.ActivityCancelled || err != nil || len(drills) != 1 || drills[0].State != db.DrillFailed ||
		drills[0].Error != "cancelled" {
		t.Fatalf("cancelled drill: activity %s, drill %+v, %v", got.State, drills, err)
	}
	w.checkLeftNothing(t)
}

// TestDrillInterruptedByAStopIsSwept plays what a crash leaves of a drill — its activity running, its drill row
// running, a scratch server still up in its directory — and starts a runner on the catalog again: the drill is
// failed saying it was interrupted, its server is killed and its directory removed.
func TestDrillInterruptedByAStopIsSwept(t *testing.T) {
	ctx := context.Background()
	w := newDrillWorld(t)
	b := w.backup(t)
	const token = "0123456789abcdef0123"
	a := &db.Activity{Type: jobs.TypeDrill, Environment: "main", Actor: "test", State: db.ActivityRunning,
		BackupID: b.ID, Params: `{"scratch":"` + token + `"}`, Summary: "drill"}
	if err := w.catalog.CreateActivity(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := w.catalog.CreateDrill(ctx, &db.Drill{Environment: "main", BackupID: b.ID, ActivityID: a.ID}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(w.scratch, "rewind-drill-"+backup.ScratchID(backup.WithScratch(ctx, "drill "+token)))
	if _, err := scratch.StartRedis(filepath.Join(dir, "redis"), scratch.RedisOptions{}); err != nil {
		t.Fatal(err)
	}
	runner := jobs.NewRunner(w.catalog, w.ops.Build, 1, nil)
	runner.Interrupted = w.ops.Interrupted
	if err := runner.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(runner.Close)
	got, err := w.catalog.FindActivityByID(ctx, a.ID)
	if err != nil || got.State != db.ActivityFailed || !strings.Contains(got.Log, "interrupted") {
		t.Fatalf("interrupted drill after restart: %+v, %v", got, err)
	}
	env := "main"
	drills, err := w.catalog.FindDrills(ctx, db.DrillFilter{Environment: &env, Limit: 1})
	if err != nil || len(drills) != 1 || drills[0].State != db.DrillFailed || !strings.Contains(drills[0].Error, "interrupted") {
		t.Fatalf("drill row after restart = %+v, %v", drills, err)
	}
	w.checkLeftNothing(t)
}

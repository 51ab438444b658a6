package jobs_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/files"
	"github.com/rewind/rewind/backup/mysql"
	"github.com/rewind/rewind/backup/postgres"
	"github.com/rewind/rewind/backup/redis"
	"github.com/rewind/rewind/backup/sqlite"
	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/jobs"
)

// world is a catalog, a repository, a runner and the operations over them, with one environment whose SQLite
// database and files mount live in a temporary directory.
type world struct {
	catalog *db.DB
	ops     *jobs.Operations
	dir     string
}

func newWorld(t testing.TB) *world {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	catalog := openCatalog(t)
	repo, err := backup.OpenRepository(ctx, backup.RepositoryOptions{
		Storage: backup.FileStorage(filepath.Join(dir, "repo")), Password: "test password",
		ConfigDir: filepath.Join(dir, "kopia"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { repo.Close(context.Background()) })
	engine := &backup.Engine{Repo: repo, Drivers: map[string]backup.Driver{
		backup.TypePostgreSQL: postgres.New,
		backup.TypeMySQL:      mysql.New,
		backup.TypeRedis:      redis.New,
		backup.TypeSQLite:     sqlite.Driver,
		backup.TypeFiles: func(s backup.ServiceSpec) (backup.Source, error) {
			return files.New(s.Path, s.Exclude)
		},
	}}
	ops := &jobs.Operations{Catalog: catalog, Engine: engine}
	ops.Runner = jobs.NewRunner(catalog, ops.Build, 2, nil)
	if err := ops.Runner.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ops.Runner.Close)
	return &world{catalog: catalog, ops: ops, dir: dir}
}

// addEnvironment creates an environment with a SQLite database holding one row and a files mount.
func (w *world) addEnvironment(t *testing.T, name string) (dbPath, mount string) {
	t.Helper()
	dbPath = filepath.Join(w.dir, name, "app.db")
	mount = filepath.Join(w.dir, name, "uploads")
	if err := os.MkdirAll(mount, 0o755); err != nil {
		t.Fatal(err)
	}
	exec(t, dbPath, `PRAGMA journal_mode=WAL; CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)`)
	env := &db.Environment{Name: name, Type: db.EnvProduction, Status: db.StatusActive, Services: []db.Service{
		{Name: "app", Type: db.ServiceSQLite, Path: dbPath},
		{Name: "uploads", Type: db.ServiceFiles, Path: mount},
	}}
	if err := w.catalog.CreateEnvironment(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	return dbPath, mount
}

func exec(t *testing.T, path, query string) {
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

func notes(t *testing.T, path string) string {
	t.Helper()
	conn, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rows, err := conn.Query(`SELECT body FROM notes ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		rows.Scan(&s)
		out = append(out, s)
	}
	return strings.Join(out, ",")
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(b)
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestBackupRestoreUndo(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	dbPath, mount := w.addEnvironment(t, "main")
	exec(t, dbPath, `INSERT INTO notes (body) VALUES ('before')`)
	writeFile(t, filepath.Join(mount, "logo.txt"), "old logo")

	a, b, err := w.ops.StartBackup(ctx, jobs.BackupRequest{Environment: "main", Actor: "ops@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if got := waitDone(t, w.catalog, a.ID); got.State != db.ActivitySucceeded {
		t.Fatalf("backup: %s\n%s", got.State, got.Log)
	}
	b, err = w.catalog.FindBackupByID(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !b.Restorable() || b.Progress != 100 || len(b.Services) != 2 || b.SizeBytes == 0 {
		t.Fatalf("backup row after completion = %+v", b)
	}
	// The row has what the backup added to the repository; rewind.json has it less the few KB written after it.
	if m, err := w.ops.Engine.FindBackup(ctx, b.ID); err != nil || b.NewBytes <= 0 || m.StoredBytes <= 0 ||
		m.StoredBytes > b.NewBytes || b.NewBytes-m.StoredBytes > 16<<10 {
		t.Fatalf("new bytes = %d, rewind.json stored_bytes = %v (%v), want both > 0 and within 16 KiB", b.NewBytes, m, err)
	}

	// The app changes its data after the backup.
	exec(t, dbPath, `INSERT INTO notes (body) VALUES ('after')`)
	writeFile(t, filepath.Join(mount, "logo.txt"), "new logo")

	// A confirmation that does not name the target changes nothing.
	var ve *db.ValidationError
	if _, _, err := w.ops.StartRestore(ctx, jobs.RestoreRequest{BackupID: b.ID, Confirm: "mian"}); !errors.As(err, &ve) || ve.For("confirm") == "" {
		t.Fatalf("restore with a wrong confirmation = %v, want a confirm field error", err)
	}
	ra, plan, err := w.ops.StartRestore(ctx, jobs.RestoreRequest{BackupID: b.ID, Confirm: "main", Actor: "ops@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(plan.Mapping), 2; got != want {
		t.Fatalf("plan maps %d services, want %d", got, want)
	}
	if got := waitDone(t, w.catalog, ra.ID); got.State != db.ActivitySucceeded {
		t.Fatalf("restore: %s\n%s", got.State, got.Log)
	}
	if got, want := notes(t, dbPath), "before"; got != want {
		t.Fatalf("notes after restore = %q, want %q", got, want)
	}
	if got, want := readFile(t, filepath.Join(mount, "logo.txt")), "old logo"; got != want {
		t.Fatalf("logo after restore = %q, want %q", got, want)
	}

	// The replaced state became the pre-restore backup; restoring it undoes the restore.
	ra, _ = w.catalog.FindActivityByID(ctx, ra.ID)
	undoID := jobs.PreRestoreBackupID(ra)
	pre, err := w.catalog.FindBackupByID(ctx, undoID)
	if err != nil {
		t.Fatal(err)
	}
	if pre.Kind != db.BackupPreRestore || !pre.Restorable() || pre.RestoredFrom != b.ID || pre.NewBytes <= 0 {
		t.Fatalf("pre-restore backup = %+v", pre)
	}
	ua, _, err := w.ops.StartRestore(ctx, jobs.RestoreRequest{BackupID: undoID, Confirm: "main", Actor: "ops@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if got := waitDone(t, w.catalog, ua.ID); got.State != db.ActivitySucceeded {
		t.Fatalf("undo: %s\n%s", got.State, got.Log)
	}
	if got, want := notes(t, dbPath), "before,after"; got != want {
		t.Fatalf("notes after undo = %q, want %q", got, want)
	}
	if got, want := readFile(t, filepath.Join(mount, "logo.txt")), "new logo"; got != want {
		t.Fatalf("logo after undo = %q, want %q", got, want)
	}
}

func TestBackupRefusals(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	w.addEnvironment(t, "main")
	if _, err := w.catalog.SetEnvironmentStatus(ctx, "main", db.StatusInactive); err != nil {
		t.Fatal(err)
	}
	_, _, err := w.ops.StartBackup(ctx, jobs.BackupRequest{Environment: "main"})
	if !errors.Is(err, jobs.ErrRefused) || !strings.Contains(err.Error(), "inactive") {
		t.Fatalf("backup of an inactive environment = %v, want a refusal", err)
	}
	if _, _, err := w.ops.StartBackup(ctx, jobs.BackupRequest{Environment: "nope"}); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("backup of a missing environment = %v, want ErrNotFound", err)
	}
}

func TestFailedBackupIsNotRestorable(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	dbPath, _ := w.addEnvironment(t, "main")
	if err := os.Remove(dbPath); err != nil {
		t.Fatal(err)
	}
	a, b, err := w.ops.StartBackup(ctx, jobs.BackupRequest{Environment: "main"})
	if err != nil {
		t.Fatal(err)
	}
	got := waitDone(t, w.catalog, a.ID)
	if got.State != db.ActivityFailed || !strings.Contains(got.Log, `"app"`) {
		t.Fatalf("backup of a missing database: %s, log %q: want failed naming the service", got.State, got.Log)
	}
	b, _ = w.catalog.FindBackupByID(ctx, b.ID)
	if b.Status != db.BackupFailed || b.Restorable() || b.Error == "" {
		t.Fatalf("failed backup row = %+v", b)
	}
	if _, err := w.ops.PlanRestore(ctx, jobs.RestoreRequest{BackupID: b.ID}); !errors.Is(err, jobs.ErrRefused) {
		t.Fatalf("restore of a failed backup = %v, want a refusal", err)
	}
}

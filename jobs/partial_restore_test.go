package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/testserver"
	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/jobs"
)

// partialEnv is an environment "main" with a PostgreSQL database (service db, on the private server) and a
// files mount (service uploads, excluding *.tmp).
type partialEnv struct {
	pg    *testserver.Postgres
	pgDB  string
	mount string
}

func newPartialEnv(t *testing.T, w *world) *partialEnv {
	t.Helper()
	e := &partialEnv{pg: testserver.StartPostgres(t), mount: filepath.Join(w.dir, "main", "uploads")}
	e.pgDB = e.pg.CreateDatabase(t, "")
	e.pg.Exec(t, e.pgDB, `CREATE TABLE items (v text); INSERT INTO items VALUES ('before')`)
	env := &db.Environment{Name: "main", Type: db.EnvProduction, Status: db.StatusActive, Services: []db.Service{
		{Name: "db", Type: db.ServicePostgreSQL, URL: e.pg.URL(e.pgDB)},
		{Name: "uploads", Type: db.ServiceFiles, Path: e.mount, Exclude: []string{"*.tmp"}},
	}}
	e.write(t, map[string]string{"logo.txt": "old logo"})
	if err := w.catalog.CreateEnvironment(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	return e
}

// write writes files below the mount (paths relative to it), creating their directories.
func (e *partialEnv) write(t *testing.T, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(e.mount, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, full, content)
	}
}

// tree is every file below the mount as "path=content", sorted, Rewind's scratch entries included (none may
// be left).
func (e *partialEnv) tree(t *testing.T) string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(e.mount, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(e.mount, p)
		if strings.HasPrefix(d.Name(), ".rewind-") {
			out = append(out, rel+"=<scratch>")
			return filepath.SkipDir
		}
		if !d.IsDir() {
			out = append(out, rel+"="+readFile(t, p))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func (e *partialEnv) items(t *testing.T) string {
	t.Helper()
	got, err := pgQuery(e.pg.URL(e.pgDB), "SELECT string_agg(v, ',' ORDER BY v) FROM items")
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// databases lists the PostgreSQL databases whose name starts with the service's (a restore prepares and
// keeps its own beside it).
func (e *partialEnv) databases(t *testing.T) string {
	t.Helper()
	got, err := pgQuery(e.pg.URL(e.pgDB), "SELECT string_agg(datname, ',') FROM pg_database WHERE datname LIKE '"+e.pgDB+"%'")
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// restore runs a restore of req into main and returns its activity once it succeeded.
func restore(t *testing.T, w *world, req jobs.RestoreRequest) *db.Activity {
	t.Helper()
	req.Confirm, req.Actor = "main", "ops@example.com"
	a, _, err := w.ops.StartRestore(context.Background(), req)
	if err != nil {
		t.Fatalf("restore %+v: %v", req, err)
	}
	done := waitDone(t, w.catalog, a.ID)
	if done.State != db.ActivitySucceeded {
		t.Fatalf("restore %+v: %s\n%s", req, done.State, done.Log)
	}
	return done
}

// TestPartialRestoreOfOneService restores only the files service of a PostgreSQL + files backup: PostgreSQL
// (a real private server) is not touched, neither by the restore nor by its undo.
func TestPartialRestoreOfOneService(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	e := newPartialEnv(t, w)
	b := backupEnv(t, w, "main")

	e.pg.Exec(t, e.pgDB, `UPDATE items SET v = 'after'`)
	e.write(t, map[string]string{"logo.txt": "new logo"})

	plan, err := w.ops.PlanRestore(ctx, jobs.RestoreRequest{BackupID: b.ID, Services: []string{"uploads"}, Preview: true})
	if err != nil || plan.Problem != nil {
		t.Fatalf("plan: %v, problem %v", err, plan.Problem)
	}
	if len(plan.Mapping) != 1 || plan.Mapping[0].Name != "uploads" || len(plan.Preview.Services) != 1 ||
		plan.Preview.Services[0].Name != "uploads" {
		t.Fatalf("plan maps %+v, previews %+v; want uploads alone", plan.Mapping, plan.Preview.Services)
	}
	if got, want := paths(plan.Preview.Services[0].Files.Changed), "logo.txt 8"; got != want {
		t.Fatalf("preview changes %q, want %q", got, want)
	}

	a := restore(t, w, jobs.RestoreRequest{BackupID: b.ID, Services: []string{"uploads"}})
	if want := fmt.Sprintf("Restore of backup %s (service uploads) into main", b.ID); a.Summary != want {
		t.Fatalf("summary = %q, want %q", a.Summary, want)
	}
	if got, want := e.tree(t), "logo.txt=old logo"; got != want {
		t.Fatalf("files after the restore: %q, want %q", got, want)
	}
	if got, want := e.items(t), "after"; got != want {
		t.Fatalf("PostgreSQL after restoring only the files: %q, want %q (untouched)", got, want)
	}
	if got, want := e.databases(t), e.pgDB; got != want {
		t.Fatalf("PostgreSQL databases after restoring only the files: %q, want %q alone (nothing prepared)", got, want)
	}

	pre, err := w.catalog.FindBackupByID(ctx, jobs.PreRestoreBackupID(a))
	if err != nil {
		t.Fatal(err)
	}
	if len(pre.Services) != 1 || pre.Services[0].Name != "uploads" || pre.Services[0].Path != "" {
		t.Fatalf("pre-restore backup services = %+v, want the whole uploads alone", pre.Services)
	}
	// It undoes the restore, but the environment's recovery point (RPO, drills) stays its last whole backup.
	hist, err := w.catalog.FindBackupHistory(ctx, pre.Environment, 10)
	if err != nil {
		t.Fatal(err)
	}
	if !pre.Partial || len(hist) == 0 || hist[0].ID == pre.ID {
		t.Fatalf("pre-restore backup partial = %v, newest of the history = %+v: want it partial and left out", pre.Partial, hist)
	}
	e.pg.Exec(t, e.pgDB, `INSERT INTO items VALUES ('later')`)
	restore(t, w, jobs.RestoreRequest{BackupID: pre.ID})
	if got, want := e.tree(t), "logo.txt=new logo"; got != want {
		t.Fatalf("files after the undo: %q, want %q", got, want)
	}
	if got, want := e.items(t), "after,later"; got != want {
		t.Fatalf("PostgreSQL after the undo: %q, want %q (untouched)", got, want)
	}
}

// TestPartialRestoreOfASubPath restores one directory of a files mount: the rest of the mount, including files
// written after the backup, stays as it is, the excluded files inside the directory are kept, and the undo puts
// back that directory only.
func TestPartialRestoreOfASubPath(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	e := newPartialEnv(t, w)
	e.write(t, map[string]string{"images/2026/a.jpg": "a1", "images/2026/sub/b.jpg": "b1", "images/2025/c.jpg": "c1",
		"docs/d.txt": "d1"})
	b := backupEnv(t, w, "main")

	// After the backup: inside images/2026 one file changes, one goes, one comes, an excluded one appears;
	// outside it, files change and appear.
	e.write(t, map[string]string{"images/2026/a.jpg": "a2", "images/2026/new.jpg": "n2", "images/2026/scratch.tmp": "t2",
		"images/2025/c.jpg": "c2", "docs/late.txt": "late", "logo.txt": "new logo"})
	if err := os.Remove(filepath.Join(e.mount, "images/2026/sub/b.jpg")); err != nil {
		t.Fatal(err)
	}
	e.pg.Exec(t, e.pgDB, `UPDATE items SET v = 'after'`)
	damaged := e.tree(t)

	// Wrong scopes are refused before anything is touched, saying what to pass.
	for _, tc := range []struct {
		req   jobs.RestoreRequest
		field string
		says  string
	}{
		{jobs.RestoreRequest{Services: []string{"uploads"}, Path: "images/2099"}, "path", `no "/images/2099"`},
		{jobs.RestoreRequest{Services: []string{"uploads"}, Path: "../etc"}, "path", "name a path inside it"},
		{jobs.RestoreRequest{Services: []string{"uploads"}, Path: "images/2026/a.jpg/x"}, "path", "is a file"},
		{jobs.RestoreRequest{Services: []string{"nope"}}, "services", "pass one of db, uploads"},
		{jobs.RestoreRequest{Path: "images/2026"}, "path", "pass exactly one service with it, one of uploads"},
		{jobs.RestoreRequest{Services: []string{"db", "uploads"}, Path: "images/2026"}, "path", "exactly one service"},
		{jobs.RestoreRequest{Services: []string{"db"}, Path: "images/2026"}, "path", "exactly one service"},
	} {
		tc.req.BackupID, tc.req.Confirm = b.ID, "main"
		_, _, err := w.ops.StartRestore(ctx, tc.req)
		var ve *db.ValidationError
		if !errors.As(err, &ve) || !strings.Contains(ve.For(tc.field), tc.says) {
			t.Errorf("restore %+v = %v, want a %s error saying %q", tc.req, err, tc.field, tc.says)
		}
	}
	if got := e.tree(t); got != damaged {
		t.Fatalf("refused restores changed the mount:\n%s\nwant\n%s", got, damaged)
	}

	req := jobs.RestoreRequest{BackupID: b.ID, Services: []string{"uploads"}, Path: "/images/2026/"}
	plan, err := w.ops.PlanRestore(ctx, jobs.RestoreRequest{BackupID: b.ID, Services: req.Services, Path: req.Path, Preview: true})
	if err != nil || plan.Problem != nil {
		t.Fatalf("plan: %v, problem %v", err, plan.Problem)
	}
	if got, want := plan.Mapping[0].Target, e.mount+"/images/2026"; len(plan.Mapping) != 1 || got != want {
		t.Fatalf("plan maps %+v, want uploads into %s", plan.Mapping, want)
	}
	fc := plan.Preview.Services[0].Files
	if got, want := fmt.Sprintf("added [%s] removed [%s] changed [%s] same %d", paths(fc.Added), paths(fc.Removed),
		paths(fc.Changed), fc.Same), "added [images/2026/sub/b.jpg 2] removed [images/2026/new.jpg 2] changed [images/2026/a.jpg 2] same 0"; got != want {
		t.Fatalf("preview of the sub-path:\n%s\nwant\n%s", got, want)
	}

	a := restore(t, w, req)
	if want := fmt.Sprintf("Restore of backup %s (service uploads, path images/2026) into main", b.ID); a.Summary != want {
		t.Fatalf("summary = %q, want %q", a.Summary, want)
	}
	want := "docs/d.txt=d1 docs/late.txt=late images/2025/c.jpg=c2 images/2026/a.jpg=a1 images/2026/scratch.tmp=t2 " +
		"images/2026/sub/b.jpg=b1 logo.txt=new logo"
	if got := e.tree(t); got != want {
		t.Fatalf("mount after restoring images/2026:\n%s\nwant\n%s", got, want)
	}
	if got, want := e.items(t), "after"; got != want {
		t.Fatalf("PostgreSQL after restoring a sub-path: %q, want %q", got, want)
	}

	// The pre-restore backup holds images/2026 as it was replaced; restoring it (the undo) puts back that
	// directory only, keeping what was written elsewhere since.
	pre, err := w.catalog.FindBackupByID(ctx, jobs.PreRestoreBackupID(a))
	if err != nil {
		t.Fatal(err)
	}
	if len(pre.Services) != 1 || pre.Services[0].Path != "images/2026" {
		t.Fatalf("pre-restore backup services = %+v, want uploads with path images/2026", pre.Services)
	}
	l, err := w.ops.Browse(ctx, pre.ID, "uploads", "")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(l), "sub/ a.jpg new.jpg"; got != want {
		t.Fatalf("pre-restore backup's root lists %q, want %q (images/2026 as replaced, its excluded file left out)", got, want)
	}
	e.write(t, map[string]string{"docs/later.txt": "later", "images/2025/c.jpg": "c3"})
	u := restore(t, w, jobs.RestoreRequest{BackupID: pre.ID})
	if !strings.Contains(u.Summary, "Restore of backup "+pre.ID+" into main") {
		t.Fatalf("undo summary = %q", u.Summary)
	}
	want = "docs/d.txt=d1 docs/late.txt=late docs/later.txt=later images/2025/c.jpg=c3 images/2026/a.jpg=a2 " +
		"images/2026/new.jpg=n2 images/2026/scratch.tmp=t2 logo.txt=new logo"
	if got := e.tree(t); got != want {
		t.Fatalf("mount after the undo:\n%s\nwant\n%s", got, want)
	}
}

// TestPartialRestoreOfAFile restores single files of a mount: a changed one, and one deleted since the backup;
// their neighbours stay as they are, and each undo puts back that file alone (removing the one that was gone).
func TestPartialRestoreOfAFile(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	e := newPartialEnv(t, w)
	e.write(t, map[string]string{"images/2026/a.jpg": "a1", "images/2026/b.jpg": "b1", "gone.txt": "g1"})
	b := backupEnv(t, w, "main")
	e.write(t, map[string]string{"images/2026/a.jpg": "a2", "images/2026/b.jpg": "b2", "new.txt": "n2"})
	if err := os.Remove(filepath.Join(e.mount, "gone.txt")); err != nil {
		t.Fatal(err)
	}

	plan, err := w.ops.PlanRestore(ctx, jobs.RestoreRequest{BackupID: b.ID, Services: []string{"uploads"},
		Path: "images/2026/a.jpg", Preview: true})
	if err != nil || plan.Problem != nil {
		t.Fatalf("plan: %v, problem %v", err, plan.Problem)
	}
	fc := plan.Preview.Services[0].Files
	if got, want := fmt.Sprintf("added [%s] removed [%s] changed [%s] same %d", paths(fc.Added), paths(fc.Removed),
		paths(fc.Changed), fc.Same), "added [] removed [] changed [images/2026/a.jpg 2] same 0"; got != want {
		t.Fatalf("preview of one file:\n%s\nwant\n%s", got, want)
	}
	a := restore(t, w, jobs.RestoreRequest{BackupID: b.ID, Services: []string{"uploads"}, Path: "images/2026/a.jpg"})
	want := "images/2026/a.jpg=a1 images/2026/b.jpg=b2 logo.txt=old logo new.txt=n2"
	if got := e.tree(t); got != want {
		t.Fatalf("mount after restoring images/2026/a.jpg:\n%s\nwant\n%s", got, want)
	}
	g := restore(t, w, jobs.RestoreRequest{BackupID: b.ID, Services: []string{"uploads"}, Path: "gone.txt"})
	want = "gone.txt=g1 images/2026/a.jpg=a1 images/2026/b.jpg=b2 logo.txt=old logo new.txt=n2"
	if got := e.tree(t); got != want {
		t.Fatalf("mount after restoring the deleted gone.txt:\n%s\nwant\n%s", got, want)
	}

	pre, err := w.catalog.FindBackupByID(ctx, jobs.PreRestoreBackupID(a))
	if err != nil {
		t.Fatal(err)
	}
	if len(pre.Services) != 1 || pre.Services[0].Path != "images/2026/a.jpg" || !pre.Services[0].Entry {
		t.Fatalf("pre-restore backup services = %+v, want uploads holding the entry images/2026/a.jpg", pre.Services)
	}
	if _, _, err := w.ops.StartRestore(ctx, jobs.RestoreRequest{BackupID: pre.ID, Confirm: "main", Services: []string{"uploads"},
		Path: "x"}); err == nil || !strings.Contains(err.Error(), "holds the single file") {
		t.Fatalf("a path into a single-file backup = %v, want a refusal", err)
	}
	e.write(t, map[string]string{"images/2026/b.jpg": "b3"})
	restore(t, w, jobs.RestoreRequest{BackupID: pre.ID})
	want = "gone.txt=g1 images/2026/a.jpg=a2 images/2026/b.jpg=b3 logo.txt=old logo new.txt=n2"
	if got := e.tree(t); got != want {
		t.Fatalf("mount after undoing the restore of a.jpg:\n%s\nwant\n%s", got, want)
	}
	restore(t, w, jobs.RestoreRequest{BackupID: jobs.PreRestoreBackupID(g)})
	want = "images/2026/a.jpg=a2 images/2026/b.jpg=b3 logo.txt=old logo new.txt=n2"
	if got := e.tree(t); got != want {
		t.Fatalf("mount after undoing the restore of gone.txt (it was gone):\n%s\nwant\n%s", got, want)
	}
}

// names renders a listing as its names, directories with a trailing slash.
func names(l *jobs.Listing) string {
	var out []string
	for _, e := range l.Entries {
		n := e.Name
		if e.Type == backup.EntryDir {
			n += "/"
		}
		out = append(out, n)
	}
	return strings.Join(out, " ")
}

// TestBrowse lists a backup's directories (directories first, capped with a count of the rest) and its database
// service's tables, and refuses bad paths and names.
func TestBrowse(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	e := newPartialEnv(t, w)
	many := map[string]string{"images/2026/a.jpg": "a1", "images/x.txt": "xx", "docs/d.txt": "d1", "skip.tmp": "t"}
	for i := range backup.BrowseLimit + 5 {
		many[fmt.Sprintf("many/f%04d", i)] = "m"
	}
	e.write(t, many)
	if err := os.Symlink("images/x.txt", filepath.Join(e.mount, "link")); err != nil {
		t.Fatal(err)
	}
	b := backupEnv(t, w, "main")

	l, err := w.ops.Browse(ctx, b.ID, "uploads", "")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(l), "docs/ images/ many/ link logo.txt"; got != want {
		t.Fatalf("root lists %q, want %q", got, want)
	}
	if l.Entries[1].Size != 4 || l.Entries[3].Type != backup.EntrySymlink || l.Entries[4].Size != 8 ||
		l.Entries[4].Mode != 0o644 || l.Entries[4].ModTime.IsZero() {
		t.Fatalf("entries = %+v", l.Entries)
	}
	l, err = w.ops.Browse(ctx, b.ID, "uploads", "/images/")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(l), "2026/ x.txt"; got != want || l.Path != "images" || l.Entries[0].Path != "images/2026" {
		t.Fatalf("images lists %q at %q (%+v), want %q", got, l.Path, l.Entries, want)
	}
	l, err = w.ops.Browse(ctx, b.ID, "uploads", "many")
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Entries) != backup.BrowseLimit || l.More != 5 || l.Entries[0].Name != "f0000" {
		t.Fatalf("many lists %d entries and %d more, want %d and 5", len(l.Entries), l.More, backup.BrowseLimit)
	}
	l, err = w.ops.Browse(ctx, b.ID, "db", "")
	if err != nil {
		t.Fatal(err)
	}
	if l.Summary == nil || len(l.Summary.Tables) != 1 || l.Summary.Tables[0].Name != "public.items" || l.Summary.Tables[0].Rows != 1 {
		t.Fatalf("db summary = %+v", l.Summary)
	}
	for _, tc := range []struct {
		service, path string
		want          error
	}{
		{"uploads", "../..", backup.ErrBadPath},
		{"uploads", "images/../../x", backup.ErrBadPath},
		{"uploads", "logo.txt", backup.ErrBadPath},
		{"uploads", "nothing/here", backup.ErrNotInBackup},
		{"uploads", "logo.txt/x", backup.ErrNotInBackup},
		{"nope", "", backup.ErrNotInBackup},
		{"db", "public", backup.ErrBadPath},
	} {
		if _, err := w.ops.Browse(ctx, b.ID, tc.service, tc.path); !errors.Is(err, tc.want) {
			t.Errorf("Browse(%q, %q) = %v, want %v", tc.service, tc.path, err, tc.want)
		}
	}
}

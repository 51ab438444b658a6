package web_test

import (
	"database/sql"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/handlers"
)

// previewEnv creates an environment with a SQLite database (table notes, 3 rows) and a files mount (a.txt),
// backs it up, then changes both: 2 more rows and a new table, a.txt removed and b.txt added.
func previewEnv(t *testing.T, app *backupApp) *db.Backup {
	t.Helper()
	dbPath := filepath.Join(app.dir, "shop.db")
	mount := filepath.Join(app.dir, "shop-uploads")
	if err := os.MkdirAll(mount, 0o755); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(mount, "a.txt"), "backed up")
	sqliteExec(t, dbPath, `PRAGMA journal_mode=WAL; CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);
		INSERT INTO notes (body) VALUES ('a'), ('b'), ('c')`)
	app.env("shop", db.EnvProduction, db.Service{Name: "app", Type: db.ServiceSQLite, Path: dbPath},
		db.Service{Name: "uploads", Type: db.ServiceFiles, Path: mount})
	b := app.backup("shop")
	sqliteExec(t, dbPath, `INSERT INTO notes (body) VALUES ('d'), ('e'); CREATE TABLE later (id int)`)
	if err := os.Remove(filepath.Join(mount, "a.txt")); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(mount, "b.txt"), "written after")
	return b
}

func sqliteExec(t *testing.T, path, q string) {
	t.Helper()
	d, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Exec(q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func cells(s *goquery.Selection) string {
	var out []string
	s.Find("td").Each(func(_ int, td *goquery.Selection) { out = append(out, strings.TrimSpace(td.Text())) })
	return strings.Join(out, " | ")
}

// TestRestoreDialogShowsThePreview: the restore dialog lists, per service, what the restore changes.
func TestRestoreDialogShowsThePreview(t *testing.T) {
	app := newBackupApp(t)
	app.user("admin@example.com", db.RoleAdmin, nil)
	b := previewEnv(t, app)
	admin := app.client()
	admin.login("admin@example.com")

	doc := admin.get("/backups/" + b.ID + "/restore").doc(t)
	if got := doc.Find(testid("preview-age")).Text(); !strings.Contains(got, "old") {
		t.Errorf("preview age = %q", got)
	}
	var rows []string
	doc.Find(testid("preview-app") + " " + testid("preview-table")).Each(func(_ int, tr *goquery.Selection) {
		rows = append(rows, cells(tr))
	})
	if got, want := strings.Join(rows, "\n"), "later | 0 | 0 | dropped (not in the backup)\nnotes | 5 | 3 | rows change"; got != want {
		t.Errorf("app's tables:\n%s\nwant:\n%s", got, want)
	}
	files := doc.Find(testid("preview-uploads"))
	for kind, want := range map[string]string{"added": "a.txt", "removed": "b.txt"} {
		g := files.Find(testid("preview-files-" + kind))
		if got := strings.TrimSpace(g.Find(testid("preview-file")).Text()); !strings.HasPrefix(got, want) {
			t.Errorf("files %s = %q, want %s", kind, got, want)
		}
		if n, _ := g.Attr("data-count"); n != "1" {
			t.Errorf("files %s count = %s, want 1", kind, n)
		}
	}
	if files.Find(testid("preview-files-changed")).Length() != 0 || files.Find(testid("preview-files-none")).Length() != 0 {
		t.Error("files: a group of no change, or 'no file changes' beside two")
	}
	if got := files.Find(testid("preview-files-same")).Text(); !strings.Contains(got, "0 files unchanged") {
		t.Errorf("unchanged = %q", got)
	}
	// The restore is still offered.
	if doc.Find(testid("restore-submit")).Length() != 1 {
		t.Error("no restore button below the preview")
	}
}

// TestRestorePlanAPIPreview: GET /api/v1/backups/{id}/restore returns the preview as JSON.
func TestRestorePlanAPIPreview(t *testing.T) {
	app := newBackupApp(t)
	token := app.token(app.user("admin@example.com", db.RoleAdmin, nil))
	b := previewEnv(t, app)

	r := app.api(http.MethodGet, "/api/v1/backups/"+b.ID+"/restore", token, "")
	if r.StatusCode != http.StatusOK {
		t.Fatalf("plan: %d %s", r.StatusCode, excerpt(r.body))
	}
	var plan struct {
		Plan handlers.RestorePlanJSON `json:"plan"`
	}
	r.json(t, &plan)
	pv := plan.Plan.Preview
	if pv == nil || pv.Unavailable != "" || len(pv.Services) != 2 {
		t.Fatalf("preview = %+v", pv)
	}
	if pv.AgeSeconds < 0 || pv.AgeSeconds > 60 || pv.BackupTime.After(pv.Now) {
		t.Errorf("age %d s, backup time %s, now %s", pv.AgeSeconds, pv.BackupTime, pv.Now)
	}
	app0, up := pv.Services[0], pv.Services[1]
	if app0.Name != "app" || len(app0.Tables) != 2 {
		t.Fatalf("app = %+v", app0)
	}
	for i, want := range []struct {
		name        string
		now, backup int64
		change      string
	}{{"later", 0, 0, "removed"}, {"notes", 5, 3, "changed"}} {
		got := app0.Tables[i]
		if got.Name != want.name || got.RowsNow != want.now || got.RowsBackup != want.backup || got.Change != want.change || got.Estimated {
			t.Errorf("table %d = %+v, want %+v", i, got, want)
		}
	}
	f := up.Files
	if up.Name != "uploads" || f == nil {
		t.Fatalf("uploads = %+v", up)
	}
	if f.Added.Count != 1 || f.Added.Bytes != 9 || f.Added.Files[0].Path != "a.txt" ||
		f.Removed.Count != 1 || f.Removed.Bytes != 13 || f.Removed.Files[0].Path != "b.txt" ||
		f.Changed.Count != 0 || len(f.Changed.Files) != 0 || f.Same != 0 {
		t.Errorf("files = %+v", *f)
	}
	// The raw JSON names what the CLI and scripts read.
	for _, key := range []string{`"preview":`, `"age_seconds":`, `"rows_now":5`, `"rows_backup":3`, `"change":"removed"`,
		`"added":{"count":1,"bytes":9,"files":[{"path":"a.txt","bytes":9}]}`} {
		if !strings.Contains(r.body, key) {
			t.Errorf("plan JSON lacks %s: %s", key, excerpt(r.body))
		}
	}
}

// TestRestorePreviewOnlyForThoseWhoMayRestore: a viewer gets the plan without the target's tables and files.
func TestRestorePreviewOnlyForThoseWhoMayRestore(t *testing.T) {
	app := newBackupApp(t)
	token := app.token(app.user("viewer@example.com", db.RoleViewer, nil))
	b := previewEnv(t, app)
	r := app.api(http.MethodGet, "/api/v1/backups/"+b.ID+"/restore", token, "")
	var plan struct {
		Plan handlers.RestorePlanJSON `json:"plan"`
	}
	r.json(t, &plan)
	if pv := plan.Plan.Preview; pv == nil || len(pv.Services) != 0 || !strings.HasPrefix(pv.Unavailable, "preview unavailable: it is shown to those who may run this restore: ") {
		t.Fatalf("viewer's preview = %+v", pv)
	}
	viewer := app.client()
	viewer.login("viewer@example.com")
	doc := viewer.get("/backups/" + b.ID + "/restore").doc(t)
	if doc.Find(testid("restore-preview-card")).Length() != 0 || doc.Find(testid("restore-mapping")).Length() != 1 {
		t.Fatal("viewer: want the plan without the preview")
	}
}

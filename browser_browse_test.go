package main

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/jobs"
)

// TestBrowserBrowseAndPartialRestore drives a backup's page in headless chromium: the Contents card lists the
// services, opens a files service and one of its directories in place (HTMX, no reload), shows a SQLite
// database's tables with their rows, and "Restore this directory…" opens the restore dialog scoped to it; typing
// the environment's name restores that directory alone: the rest of the mount and the database keep what was
// written after the backup.
func TestBrowserBrowseAndPartialRestore(t *testing.T) {
	ctx := context.Background()
	m := startDashboard(t, false)
	dir := t.TempDir()
	mount, dbPath := filepath.Join(dir, "uploads"), filepath.Join(dir, "app.db")
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(mount, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	read := func(rel string) string {
		b, err := os.ReadFile(filepath.Join(mount, rel))
		if err != nil {
			return "<" + err.Error() + ">"
		}
		return string(b)
	}
	sqlite := func(q string) int {
		t.Helper()
		d, err := sql.Open("sqlite", dbPath)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if _, err := d.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		var n int
		if err := d.QueryRow(`SELECT count(*) FROM notes`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	write("images/2026/a.jpg", "photo v1")
	write("images/2025/b.jpg", "old photo")
	write("docs/d.txt", "d1")
	sqlite(`CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('one'), ('two'), ('three')`)
	if err := m.Catalog.CreateEnvironment(ctx, &db.Environment{Name: "site", Type: db.EnvProduction, Status: db.StatusActive,
		Services: []db.Service{{Name: "app", Type: db.ServiceSQLite, Path: dbPath}, {Name: "uploads", Type: db.ServiceFiles, Path: mount}}}); err != nil {
		t.Fatal(err)
	}
	a, bk, err := m.Ops.StartBackup(ctx, jobs.BackupRequest{Environment: "site", Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if got := waitDone(t, m.Catalog, a.ID); got.State != db.ActivitySucceeded {
		t.Fatalf("backup: %s\n%s", got.State, got.Log)
	}
	// After the backup, inside images/2026 and outside it.
	write("images/2026/a.jpg", "photo v2")
	write("images/2026/new.jpg", "new photo")
	write("docs/d.txt", "d2")
	if n := sqlite(`INSERT INTO notes VALUES ('four')`); n != 4 {
		t.Fatalf("notes = %d, want 4", n)
	}

	b := startBrowser(t, "browser-browse")
	shot, run := b.shot, b.run
	entry := func(name string) string { return `[data-testid="contents-entry"][data-name="` + name + `"]` }
	marked := func() int {
		t.Helper()
		n, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](`window.__rewindMark || 0`))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	b.signIn(m.URL()+"/backups/"+bk.ID, `[data-testid="contents-service"][data-name="uploads"]`)
	run("look at the backup's contents",
		shot("01-contents"),
		chromedp.Evaluate[chromedp.Void](`window.__rewindMark = 1`),
	)
	run("open the files service and a directory in place",
		chromedp.Click(css(`[data-testid="contents-service"][data-name="uploads"] [data-testid="contents-link"]`)),
		chromedp.WaitVisible(css(entry("images"))),
		chromedp.Click(css(entry("images")+` [data-testid="contents-link"]`)),
		chromedp.WaitVisible(css(entry("2026"))),
		shot("02-contents-images"),
	)
	if got := b.read(`[data-testid="contents-entries"] tbody`); !strings.Contains(got, "2025/") || !strings.Contains(got, "2026/") || strings.Contains(got, "d.txt") {
		t.Fatalf("images lists %q, want 2025/ and 2026/ only", got)
	}
	if marked() != 1 {
		t.Fatal("browsing reloaded the page: the Contents card should be swapped in place")
	}
	run("the database's tables",
		chromedp.Click(css(`[data-testid="contents-crumbs"] [data-testid="contents-link"]`)), // All services
		chromedp.WaitVisible(css(`[data-testid="contents-service"][data-name="app"]`)),
		chromedp.Click(css(`[data-testid="contents-service"][data-name="app"] [data-testid="contents-link"]`)),
		chromedp.WaitVisible(css(`[data-testid="contents-table"]`)),
	)
	if got := strings.Join(strings.Fields(b.read(`[data-testid="contents-table"]`)), " "); got != "notes 3" {
		t.Fatalf("app's tables = %q, want notes 3 (as backed up)", got)
	}
	run("restore images/2026 alone",
		chromedp.Click(css(`[data-testid="contents-crumbs"] [data-testid="contents-link"]`)), // All services
		chromedp.WaitVisible(css(`[data-testid="contents-service"][data-name="uploads"]`)),
		chromedp.Click(css(`[data-testid="contents-service"][data-name="uploads"] [data-testid="contents-link"]`)),
		chromedp.WaitVisible(css(entry("images"))),
		chromedp.Click(css(entry("images")+` [data-testid="contents-link"]`)),
		chromedp.WaitVisible(css(entry("2026"))),
		chromedp.Click(css(entry("2026")+` [data-testid="restore-this"]`)),
		chromedp.WaitVisible(css(`[data-testid="restore-scope"]`)),
		shot("03-scoped-restore-dialog"),
	)
	if got := b.read(`[data-testid="restore-scope"]`); !strings.Contains(got, "service uploads, path images/2026") {
		t.Fatalf("dialog scope = %q", got)
	}
	if got := b.read(`[data-testid="restore-preview-card"]`); !strings.Contains(got, "images/2026/a.jpg") ||
		!strings.Contains(got, "images/2026/new.jpg") || strings.Contains(got, "docs/d.txt") || strings.Contains(got, "notes") {
		t.Fatalf("scoped preview = %q, want the changes of images/2026 alone", got)
	}
	run("type the name and restore",
		chromedp.SendKeys(css(`[data-testid="restore-confirm"]`), "site"),
		chromedp.Click(css(`[data-testid="restore-submit"]`)),
		chromedp.WaitVisible(css(`[data-testid="feed"]`)),
		shot("04-restore-started"),
	)
	restore, _, err := m.Catalog.FindActivities(ctx, db.ActivityFilter{Environment: ptr("site"), Type: ptr(jobs.TypeRestore), Limit: 1})
	if err != nil || len(restore) != 1 {
		t.Fatalf("restore activity: %v %v", restore, err)
	}
	if got := waitDone(t, m.Catalog, restore[0].ID); got.State != db.ActivitySucceeded ||
		!strings.Contains(got.Summary, "(service uploads, path images/2026)") {
		t.Fatalf("restore: %s %q\n%s", got.State, got.Summary, got.Log)
	}
	for rel, want := range map[string]string{"images/2026/a.jpg": "photo v1", "images/2025/b.jpg": "old photo", "docs/d.txt": "d2"} {
		if got := read(rel); got != want {
			t.Errorf("%s after restoring images/2026 = %q, want %q", rel, got, want)
		}
	}
	if _, err := os.Stat(filepath.Join(mount, "images/2026/new.jpg")); !os.IsNotExist(err) {
		t.Errorf("images/2026/new.jpg after the restore: %v, want it gone", err)
	}
	if n := sqlite(`SELECT 1`); n != 4 {
		t.Errorf("notes after restoring images/2026 = %d, want 4 (untouched)", n)
	}
	b.checkProblems()
}

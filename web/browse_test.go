package web_test

import (
	"net/http"

	"github.com/PuerkitoBio/goquery"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/handlers"
	"github.com/rewind/rewind/jobs"
)

// TestBrowseAndPartialRestoreThroughThePages browses a backup's Contents card (whole pages and HTMX
// fragments), refuses bad paths with 4xx, scopes the restore dialog to one directory and restores it alone.
func TestBrowseAndPartialRestoreThroughThePages(t *testing.T) {
	app := newBackupApp(t)
	app.user("admin@example.com", db.RoleAdmin, nil)
	app.user("viewer@example.com", db.RoleViewer, nil)
	e := app.filesEnv("shop", db.EnvProduction, "v1")
	mount := e.Services[0].Path
	for _, d := range []string{"images/2026", "docs"} {
		if err := os.MkdirAll(filepath.Join(mount, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeTestFile(t, filepath.Join(mount, "images/2026/a.jpg"), "a1")
	writeTestFile(t, filepath.Join(mount, "docs/d.txt"), "d1")
	id := app.backup("shop").ID
	admin, viewer := app.client(), app.client()
	viewerToken := app.token(app.user("api-viewer@example.com", db.RoleViewer, nil))
	admin.login("admin@example.com")
	viewer.login("viewer@example.com")

	// The backup's page lists its services in the Contents card.
	doc := admin.get("/backups/" + id).doc(t)
	if got := doc.Find(testid("contents-service")).Length(); got != 1 {
		t.Fatalf("Contents card lists %d services, want 1", got)
	}
	if href, _ := doc.Find(testid("contents-service") + " " + testid("restore-this")).Attr("href"); href != "/backups/"+id+"/restore?service=uploads" {
		t.Fatalf("Restore this service links to %q", href)
	}

	// A directory: a whole page without HTMX, the card alone with it.
	doc = admin.get("/backups/" + id + "/browse?service=uploads&path=images").doc(t)
	if got, want := names(doc.Find(testid("contents-entry"))), "2026"; got != want {
		t.Fatalf("images lists %q, want %q", got, want)
	}
	if doc.Find(testid("backup-summary")).Length() != 1 {
		t.Fatal("browse without HTMX is not the whole backup page")
	}
	frag := admin.get("/backups/"+id+"/browse?service=uploads", "HX-Request", "true", "HX-Target", "backup-contents")
	if frag.StatusCode != http.StatusOK || strings.Contains(frag.body, "<html") || !strings.Contains(frag.body, `id="backup-contents"`) {
		t.Fatalf("HTMX browse: %d, want the card alone: %s", frag.StatusCode, excerpt(frag.body))
	}
	fdoc := frag.doc(t)
	if got, want := names(fdoc.Find(testid("contents-entry"))), "docs images a.txt"; got != want {
		t.Fatalf("root lists %q, want %q (directories first)", got, want)
	}
	if href, _ := fdoc.Find(`[data-name="images"] ` + testid("restore-this")).Attr("href"); href != "/backups/"+id+"/restore?path=images&service=uploads" {
		t.Fatalf("Restore this directory links to %q", href)
	}
	if link := fdoc.Find(`[data-name="a.txt"] ` + testid("restore-this")); link.AttrOr("href", "") != "/backups/"+id+"/restore?path=a.txt&service=uploads" ||
		strings.TrimSpace(link.Text()) != "Restore this file…" {
		t.Fatalf("Restore this file = %q linking to %q", link.Text(), link.AttrOr("href", ""))
	}

	// Bad input is a 4xx with a message, never a 500, on the pages and the API.
	for _, tc := range []struct {
		query  string
		status int
		says   string
	}{
		{"service=uploads&path=../../etc", http.StatusBadRequest, "leaves the service"},
		{"service=uploads&path=a.txt", http.StatusBadRequest, "is a file"},
		{"service=uploads&path=nothing", http.StatusNotFound, "has no"},
		{"service=nope", http.StatusNotFound, "its services: uploads"},
	} {
		if r := admin.get("/backups/" + id + "/browse?" + tc.query); r.StatusCode != tc.status || !strings.Contains(r.body, tc.says) {
			t.Errorf("browse ?%s = %d, want %d saying %q: %s", tc.query, r.StatusCode, tc.status, tc.says, excerpt(r.body))
		}
		r := app.api(http.MethodGet, "/api/v1/backups/"+id+"/browse?"+tc.query, viewerToken, "")
		if r.StatusCode != tc.status || !strings.Contains(r.body, tc.says) {
			t.Errorf("API browse ?%s = %d, want %d saying %q: %s", tc.query, r.StatusCode, tc.status, tc.says, excerpt(r.body))
		}
	}

	// A viewer browses too, with the restore buttons disabled and the reason.
	vdoc := viewer.get("/backups/" + id + "/browse?service=uploads").doc(t)
	if _, disabled := vdoc.Find(`[data-name="images"] ` + testid("restore-this")).Attr("disabled"); !disabled {
		t.Fatal("a viewer's Restore this directory button is not disabled")
	}
	if _, ok := vdoc.Find(`[data-name="images"] ` + testid("restore-this")).Attr("title"); !ok {
		t.Fatal("a viewer's disabled button gives no reason")
	}

	// The scoped dialog previews that directory alone; its confirmation restores it alone.
	writeTestFile(t, filepath.Join(mount, "images/2026/a.jpg"), "a2")
	writeTestFile(t, filepath.Join(mount, "docs/d.txt"), "d2")
	writeTestFile(t, filepath.Join(mount, "a.txt"), "v2")
	doc = admin.get("/backups/" + id + "/restore?service=uploads&path=images/2026").doc(t)
	if got := doc.Find(testid("restore-scope")).Text(); !strings.Contains(got, "service uploads, path images/2026") {
		t.Fatalf("dialog scope = %q", got)
	}
	if got := doc.Find(testid("preview-file")).Map(func(_ int, s *goquery.Selection) string { return s.Text() }); strings.Join(got, ",") != "images/2026/a.jpg (2 B)" {
		t.Fatalf("scoped preview lists %q, want images/2026/a.jpg alone", got)
	}
	if v, _ := doc.Find(testid("restore-form") + ` input[name="path"]`).Attr("value"); v != "images/2026" {
		t.Fatalf("the confirmation form carries path %q", v)
	}
	r := admin.post("/backups/"+id+"/restore", url.Values{"target": {"shop"}, "confirm": {"shop"}, "service": {"uploads"}, "path": {"images/2026"}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("scoped restore: %d %s", r.StatusCode, excerpt(r.body))
	}
	act := lastActivity(t, app.cat, "shop", jobs.TypeRestore)
	if got := app.waitActivity(act.ID); got.State != db.ActivitySucceeded || !strings.Contains(got.Summary, "(service uploads, path images/2026)") {
		t.Fatalf("restore: %s %q\n%s", got.State, got.Summary, got.Log)
	}
	for p, want := range map[string]string{"images/2026/a.jpg": "a1", "docs/d.txt": "d2", "a.txt": "v2"} {
		if got := readTestFile(t, filepath.Join(mount, p)); got != want {
			t.Errorf("%s after restoring images/2026 = %q, want %q", p, got, want)
		}
	}

	// A scope the backup does not have is refused in the dialog, nothing touched.
	r = admin.post("/backups/"+id+"/restore", url.Values{"target": {"shop"}, "confirm": {"shop"}, "service": {"uploads"}, "path": {"images/2099"}})
	if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(r.body, "/images/2099") {
		t.Fatalf("restore of a missing path: %d %s", r.StatusCode, excerpt(r.body))
	}
}

// TestBrowseAndPartialRestoreAPI lists a directory through the API and plans and starts a scoped restore.
func TestBrowseAndPartialRestoreAPI(t *testing.T) {
	app := newBackupApp(t)
	tok := app.token(app.user("admin@example.com", db.RoleAdmin, nil))
	e := app.filesEnv("shop", db.EnvProduction, "v1")
	mount := e.Services[0].Path
	if err := os.MkdirAll(filepath.Join(mount, "images"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(mount, "images/a.jpg"), "a1")
	id := app.backup("shop").ID

	r := app.api(http.MethodGet, "/api/v1/backups/"+id+"/browse?service=uploads&path=/images", tok, "")
	var out struct{ Listing handlers.BrowseJSON }
	r.json(t, &out)
	if r.StatusCode != http.StatusOK || out.Listing.Path != "images" || len(out.Listing.Entries) != 1 ||
		out.Listing.Entries[0].Name != "a.jpg" || out.Listing.Entries[0].Mode != "0644" || out.Listing.Entries[0].Size != 2 {
		t.Fatalf("API browse: %d %+v", r.StatusCode, out.Listing)
	}
	if r := app.api(http.MethodGet, "/api/v1/backups/"+id+"/browse", tok, ""); r.StatusCode != http.StatusBadRequest {
		t.Fatalf("API browse without a service: %d, want 400", r.StatusCode)
	}

	writeTestFile(t, filepath.Join(mount, "images/a.jpg"), "a2")
	writeTestFile(t, filepath.Join(mount, "a.txt"), "v2")
	r = app.api(http.MethodGet, "/api/v1/backups/"+id+"/restore?service=uploads&path=images", tok, "")
	var plan struct{ Plan handlers.RestorePlanJSON }
	r.json(t, &plan)
	if r.StatusCode != http.StatusOK || plan.Plan.Scope != "service uploads, path images" || len(plan.Plan.Mapping) != 1 ||
		plan.Plan.Mapping[0].Path != "images" || plan.Plan.Preview == nil || len(plan.Plan.Preview.Services) != 1 {
		t.Fatalf("API plan: %d %+v", r.StatusCode, plan.Plan)
	}
	r = app.api(http.MethodPost, "/api/v1/backups/"+id+"/restore", tok, `{"confirm":"shop","services":["uploads"],"path":"nope"}`)
	if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(r.body, `"field":"path"`) {
		t.Fatalf("API restore of a missing path: %d %s", r.StatusCode, r.body)
	}
	r = app.api(http.MethodPost, "/api/v1/backups/"+id+"/restore", tok, `{"confirm":"shop","services":["uploads"],"path":"images"}`)
	var started struct{ Activity db.Activity }
	r.json(t, &started)
	if r.StatusCode != http.StatusAccepted {
		t.Fatalf("API scoped restore: %d %s", r.StatusCode, r.body)
	}
	if got := app.waitActivity(started.Activity.ID); got.State != db.ActivitySucceeded {
		t.Fatalf("restore: %s\n%s", got.State, got.Log)
	}
	if a, b := readTestFile(t, filepath.Join(mount, "images/a.jpg")), readTestFile(t, filepath.Join(mount, "a.txt")); a != "a1" || b != "v2" {
		t.Fatalf("after restoring images: images/a.jpg %q (want a1), a.txt %q (want v2, untouched)", a, b)
	}
}

// names is the data-name of every selected element, space-separated.
func names(sel *goquery.Selection) string {
	return strings.Join(sel.Map(func(_ int, s *goquery.Selection) string { n, _ := s.Attr("data-name"); return n }), " ")
}

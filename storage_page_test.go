package main

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"github.com/rewind/rewind/backup/storagetest"
	"github.com/rewind/rewind/db"
)

// getDoc GETs a page and parses it.
func getDoc(t *testing.T, c *http.Client, u string) (*goquery.Document, int) {
	t.Helper()
	res, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	doc, err := goquery.NewDocumentFromReader(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return doc, res.StatusCode
}

// testConnection clicks "Test connection" the way HTMX does and returns the result fragment.
func testConnection(t *testing.T, c *http.Client, base string) *goquery.Document {
	t.Helper()
	doc, _ := getDoc(t, c, base+"/settings/storage")
	token, _ := doc.Find(`[data-testid="storage-card"] input[name="_csrf"]`).Attr("value")
	req, _ := http.NewRequest(http.MethodPost, base+"/settings/storage/test", strings.NewReader(url.Values{"_csrf": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("HX-Request", "true")
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("POST /settings/storage/test = %d", res.StatusCode)
	}
	out, err := goquery.NewDocumentFromReader(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestStoragePageLocal(t *testing.T) {
	m := bootMainOn(t, t.TempDir(), "", map[string]string{
		"REWIND_REPO_PASSWORD": "pw", "REWIND_ADMIN_EMAIL": "ana@example.com", "REWIND_ADMIN_PASSWORD": "a long admin password",
	})
	defer m.Close()
	if _, err := m.Catalog.CreateUser(context.Background(), "vic@example.com", "a long viewer password", db.RoleViewer); err != nil {
		t.Fatal(err)
	}
	base := m.URL()
	admin := signIn(t, base, "ana@example.com", "a long admin password")
	doc, status := getDoc(t, admin, base+"/settings/storage")
	if status != http.StatusOK {
		t.Fatalf("GET /settings/storage = %d", status)
	}
	if got := strings.TrimSpace(doc.Find(`[data-testid="storage-kind"]`).Text()); got != "Local disk" {
		t.Fatalf("storage kind = %q", got)
	}
	if got := doc.Find(`[data-testid="storage-location"]`).Text(); got != "file://"+filepath.Join(m.DataDir, "repo") {
		t.Fatalf("storage location = %q", got)
	}
	if got := strings.TrimSpace(doc.Find(`[data-testid="storage-used"]`).Text()); got == "" || got == "0 B" || got == "—" {
		t.Fatalf("used size = %q, want the repository's size", got)
	}
	if doc.Find(`[data-testid="nav-storage"]`).Length() != 1 {
		t.Fatal("no Storage link in the navigation")
	}
	if testConnection(t, admin, base).Find(`[data-testid="storage-test-ok"]`).Length() != 1 {
		t.Fatal("Test connection on a writable directory did not succeed")
	}
	if err := os.Chmod(filepath.Join(m.DataDir, "repo"), 0o500); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(filepath.Join(m.DataDir, "repo"), 0o700) //nolint:errcheck
	if os.Geteuid() != 0 {                                  // root writes anyway
		res := testConnection(t, admin, base).Find(`[data-testid="storage-test-error"]`)
		if !strings.Contains(res.Text(), "cannot write to the storage directory") {
			t.Fatalf("Test connection on a read-only directory = %q", res.Text())
		}
	}

	viewer := signIn(t, base, "vic@example.com", "a long viewer password")
	if _, status := getDoc(t, viewer, base+"/settings/storage"); status != http.StatusForbidden {
		t.Fatalf("viewer GET /settings/storage = %d, want 403", status)
	}
}

// TestStoragePageS3: the page shows the bucket without credentials; Test connection names wrong credentials
// and a missing bucket.
func TestStoragePageS3(t *testing.T) {
	srv := storagetest.StartS3(t)
	s3Env(t, srv)
	storage := srv.Bucket(t, "rewind/").URL()
	m := bootMainOn(t, t.TempDir(), storage, map[string]string{
		"REWIND_REPO_PASSWORD": "pw", "REWIND_ADMIN_EMAIL": "ana@example.com", "REWIND_ADMIN_PASSWORD": "a long admin password",
	})
	defer m.Close()
	base := m.URL()
	admin := signIn(t, base, "ana@example.com", "a long admin password")
	doc, _ := getDoc(t, admin, base+"/settings/storage")
	if got := strings.TrimSpace(doc.Find(`[data-testid="storage-kind"]`).Text()); got != "S3" {
		t.Fatalf("storage kind = %q", got)
	}
	html, _ := doc.Html()
	if strings.Contains(html, srv.SecretKey) || strings.Contains(html, srv.AccessKey) {
		t.Fatal("the storage page shows a credential")
	}
	if got := strings.TrimSpace(doc.Find(`[data-testid="storage-last-write"]`).Text()); got == "never" {
		t.Fatal("last write = never after the repository was created")
	}
	if testConnection(t, admin, base).Find(`[data-testid="storage-test-ok"]`).Length() != 1 {
		t.Fatal("Test connection failed on a good bucket")
	}

	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
	res := testConnection(t, admin, base).Find(`[data-testid="storage-test-error"]`)
	if p, _ := res.Attr("data-problem"); p != "credentials" || strings.Contains(res.Text(), "wrong-secret") {
		t.Fatalf("Test connection with a wrong secret = %s: %q", p, res.Text())
	}
}

package main

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rewind/rewind/backup/storage"
	"github.com/rewind/rewind/backup/storagetest"
	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/jobs"
)

// postForm posts a form of the storage page with the page's CSRF token and returns the response body.
func postStorageForm(t *testing.T, c *http.Client, base, path string, form url.Values) (int, string) {
	t.Helper()
	doc, _ := getDoc(t, c, base+"/settings/storage")
	token, _ := doc.Find(`input[name="_csrf"]`).First().Attr("value")
	form.Set("_csrf", token)
	res, err := c.PostForm(base+path, form)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(res.Body) //nolint:errcheck
	return res.StatusCode, b.String()
}

// TestCopyTargetAndPrimaryOutage: an admin adds a second S3 endpoint as the copy target on the storage page;
// a backup is copied there and listed as "stored in: primary, copy"; the primary S3 server then goes down for
// good, and the backup is restored from the copy alone (catalog rebuilt from it), identical.
func TestCopyTargetAndPrimaryOutage(t *testing.T) {
	primary := storagetest.StartS3(t)
	second := storagetest.StartS3(t)
	s3Env(t, primary)
	storage := primary.Bucket(t, "rewind/").URL()
	copyOpts := second.Bucket(t, "copy/")
	env := map[string]string{
		"REWIND_REPO_PASSWORD": "pw for two places", "REWIND_ADMIN_EMAIL": "ana@example.com", "REWIND_ADMIN_PASSWORD": "a long admin password",
	}
	ctx := context.Background()
	app := newAppData(t)
	m := bootMainOn(t, t.TempDir(), storage, env)
	base := m.URL()
	admin := signIn(t, base, "ana@example.com", "a long admin password")

	// A wrong secret is refused with the reason, and nothing is saved.
	status, body := postStorageForm(t, admin, base, "/settings/storage/copy", url.Values{
		"url": {copyOpts.URL()}, "access_key": {copyOpts.AccessKeyID}, "secret_key": {"wrong"}})
	if status != http.StatusUnprocessableEntity || !strings.Contains(body, "refused the credentials") {
		t.Fatalf("copy target with a wrong secret = %d\n%s", status, body)
	}
	status, body = postStorageForm(t, admin, base, "/settings/storage/copy", url.Values{
		"url": {copyOpts.URL()}, "access_key": {copyOpts.AccessKeyID}, "secret_key": {copyOpts.SecretAccessKey}})
	if status != http.StatusOK || !strings.Contains(body, "Copy target saved") {
		t.Fatalf("copy target = %d\n%s", status, body)
	}
	if strings.Contains(body, copyOpts.SecretAccessKey) {
		t.Fatal("the storage page shows the copy target's secret key")
	}

	if err := m.Catalog.CreateEnvironment(ctx, &db.Environment{Name: "main", Type: db.EnvProduction, Status: db.StatusActive,
		Services: []db.Service{{Name: "app", Type: db.ServiceSQLite, Path: app.dbPath}, {Name: "uploads", Type: db.ServiceFiles, Path: app.mount}}}); err != nil {
		t.Fatal(err)
	}
	a, b, err := m.Ops.StartBackup(ctx, jobs.BackupRequest{Environment: "main", Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	waitActivityDone(t, m.Catalog, a.ID)
	want := app.state(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		doc, _ := getDoc(t, admin, base+"/settings/storage")
		row := doc.Find(`[data-testid="stored-backup"][data-backup="` + b.ID + `"] [data-testid="stored-in"]`)
		if strings.TrimSpace(row.Text()) == "stored in: primary, copy" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("backup %s not shown in the copy: %q; copy error %q", b.ID, row.Text(), doc.Find(`[data-testid="copy-error"]`).Text())
		}
		time.Sleep(100 * time.Millisecond)
	}
	page, _ := getDoc(t, admin, base+"/backups/"+b.ID)
	if src, _ := page.Find(`[data-testid="backup-stored-in"]`).Attr("hx-get"); src != "/backups/"+b.ID+"/stored-in" {
		t.Fatalf("the backup page does not load where the backup is stored (hx-get %q)", src)
	}
	res, err := admin.Get(base + "/backups/" + b.ID + "/stored-in")
	if err != nil {
		t.Fatal(err)
	}
	var where bytes.Buffer
	where.ReadFrom(res.Body) //nolint:errcheck
	res.Body.Close()
	if got := strings.TrimSpace(where.String()); got != "primary, copy" {
		t.Fatalf("stored in = %q, want primary, copy", got)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	// The primary is gone; the app's data is damaged; a new server reads the copy.
	primary.Stop()
	app.damage(t)
	t.Setenv("AWS_ACCESS_KEY_ID", second.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", second.SecretKey)
	fresh := filepath.Join(t.TempDir(), "data")
	copyURL := copyOpts.URL()
	var out bytes.Buffer
	if err := jobs.RebuildCatalog(ctx, fresh, copyURL, func(k string) string { return env[k] }, &out); err != nil {
		t.Fatal(err)
	}
	m2 := bootMainOn(t, fresh, copyURL, map[string]string{})
	defer m2.Close()
	signIn(t, m2.URL(), "ana@example.com", "a long admin password")
	ra, _, err := m2.Ops.StartRestore(ctx, jobs.RestoreRequest{BackupID: b.ID, Confirm: "main", Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	waitActivityDone(t, m2.Catalog, ra.ID)
	if app.state(t) != want {
		t.Fatal("data restored from the copy differs from the backup")
	}
}

// TestRestoreReadsTheCopyWhenThePrimaryIsDown: the same server, restarted while its primary S3 server is down,
// starts and restores from the copy target (the restore's pre-restore backup cannot be written while the primary
// is down, and says so).
func TestRestoreReadsTheCopyWhenThePrimaryIsDown(t *testing.T) {
	primary := storagetest.StartS3(t)
	second := storagetest.StartS3(t)
	s3Env(t, primary)
	popts := primary.Bucket(t, "rewind/")
	popts.MaxAttempts = 2 // fail over at once in the test (the default tries each request 8 times)
	primaryURL := popts.URL()
	copyOpts := second.Bucket(t, "copy/")
	env := map[string]string{"REWIND_REPO_PASSWORD": "pw", "REWIND_ADMIN_EMAIL": "ana@example.com", "REWIND_ADMIN_PASSWORD": "a long admin password"}
	ctx := context.Background()
	app := newAppData(t)
	dataDir := t.TempDir()
	m := bootMainOn(t, dataDir, primaryURL, env)
	if err := jobs.SaveCopyTarget(ctx, m.Catalog, storage.Location{URL: copyOpts.URL(), AccessKey: copyOpts.AccessKeyID,
		SecretKey: copyOpts.SecretAccessKey}); err != nil {
		t.Fatal(err)
	}
	if err := m.Catalog.CreateEnvironment(ctx, &db.Environment{Name: "main", Type: db.EnvProduction, Status: db.StatusActive,
		Services: []db.Service{{Name: "app", Type: db.ServiceSQLite, Path: app.dbPath}, {Name: "uploads", Type: db.ServiceFiles, Path: app.mount}}}); err != nil {
		t.Fatal(err)
	}
	a, b, err := m.Ops.StartBackup(ctx, jobs.BackupRequest{Environment: "main", Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	waitActivityDone(t, m.Catalog, a.ID)
	want := app.state(t)
	done, _ := m.Catalog.FindBackupByID(ctx, b.ID)
	for deadline := time.Now().Add(30 * time.Second); !jobs.CopiedBefore(ctx, m.Catalog).After(*done.CompletedAt); {
		if time.Now().After(deadline) {
			t.Fatal("the backup was not copied")
		}
		m.Copier.Trigger()
		time.Sleep(50 * time.Millisecond)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	primary.Stop()
	app.damage(t)
	os.RemoveAll(filepath.Join(dataDir, "kopia", "cache")) //nolint:errcheck // nothing read from the local cache
	m2 := bootMainOn(t, dataDir, primaryURL, env)
	defer m2.Close()
	ra, _, err := m2.Ops.StartRestore(ctx, jobs.RestoreRequest{BackupID: b.ID, Confirm: "main", Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(60 * time.Second); ; {
		act, err := m2.Catalog.FindActivityByID(ctx, ra.ID)
		if err != nil {
			t.Fatal(err)
		}
		if act.Done() {
			if act.State != db.ActivitySucceeded && !strings.Contains(act.Log, "the restore switched") {
				t.Fatalf("restore with the primary down ended %s:\n%s", act.State, act.Log)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("restore did not finish")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if app.state(t) != want {
		t.Fatal("data restored from the copy differs from the backup")
	}
}

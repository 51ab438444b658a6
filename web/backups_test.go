package web_test

import (
	"archive/tar"
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/files"
	"github.com/rewind/rewind/backup/gate"
	"github.com/rewind/rewind/backup/pitr"
	"github.com/rewind/rewind/backup/pitr/pgwal"
	"github.com/rewind/rewind/backup/pitr/redisrepl"
	"github.com/rewind/rewind/backup/sqlite"
	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/jobs"
	"github.com/rewind/rewind/web"
)

// backupApp is the real router with real job operations: a kopia repository
// in a temp dir, the files source and the job runner.
type backupApp struct {
	*testApp
	ops *jobs.Operations
	dir string
}

func newBackupApp(t *testing.T) *backupApp {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	repo, err := backup.OpenRepository(ctx, backup.RepositoryOptions{
		Storage: backup.FileStorage(filepath.Join(dir, "repo")), Password: "test password",
		ConfigDir: filepath.Join(dir, "kopia"),
	})
	if err != nil {
		t.Fatal(err)
	}
	ops := &jobs.Operations{Engine: &backup.Engine{Repo: repo, Drivers: map[string]backup.Driver{
		backup.TypeFiles:  func(s backup.ServiceSpec) (backup.Source, error) { return files.New(s.Path, s.Exclude) },
		backup.TypeSQLite: sqlite.Driver,
	}}}
	app := newTestAppWith(t, func(cfg *web.Config) {
		ops.Catalog = cfg.Catalog
		ops.Runner = jobs.NewRunner(cfg.Catalog, ops.Build, 2, nil)
		if err := ops.Runner.Start(ctx); err != nil {
			t.Fatal(err)
		}
		cfg.Ops, cfg.Runner, cfg.Gates = ops, ops, gate.NewSet(gate.Config{}, nil)
		ops.PITR = &jobs.PITR{Catalog: cfg.Catalog, Repo: repo, Kinds: map[string]pitr.Kind{backup.TypePostgreSQL: pgwal.Kind{}, backup.TypeRedis: redisrepl.Kind{}}} // not started: plans and checks only
		cfg.PITR, cfg.PITRChecker = ops, ops.PITR
	})
	t.Cleanup(func() { // before the catalog closes
		ops.Runner.Close()
		repo.Close(context.Background())
	})
	return &backupApp{testApp: app, ops: ops, dir: dir}
}

// filesEnv creates an active environment with one files service holding a.txt = content.
func (a *backupApp) filesEnv(name, typ, content string) *db.Environment {
	a.t.Helper()
	mount := filepath.Join(a.dir, name)
	if err := os.MkdirAll(mount, 0o755); err != nil {
		a.t.Fatal(err)
	}
	writeTestFile(a.t, filepath.Join(mount, "a.txt"), content)
	return a.env(name, typ, db.Service{Name: "uploads", Type: db.ServiceFiles, Path: mount})
}

func writeTestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readTestFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// waitActivity waits for an activity to end and returns it.
func (a *backupApp) waitActivity(id int64) *db.Activity {
	a.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		act, err := a.cat.FindActivityByID(context.Background(), id)
		if err != nil {
			a.t.Fatal(err)
		}
		if act.Done() {
			return act
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("activity %d still %s", id, act.State)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// backup takes a complete backup of env and returns it.
func (a *backupApp) backup(env string) *db.Backup {
	a.t.Helper()
	act, b, err := a.ops.StartBackup(context.Background(), jobs.BackupRequest{Environment: env, Actor: "test"})
	if err != nil {
		a.t.Fatal(err)
	}
	if got := a.waitActivity(act.ID); got.State != db.ActivitySucceeded {
		a.t.Fatalf("backup of %s: %s\n%s", env, got.State, got.Log)
	}
	b, err = a.cat.FindBackupByID(context.Background(), b.ID)
	if err != nil {
		a.t.Fatal(err)
	}
	return b
}

func lastActivity(t *testing.T, cat *db.DB, env, typ string) *db.Activity {
	t.Helper()
	acts, _, err := cat.FindActivities(context.Background(), db.ActivityFilter{Environment: &env, Type: &typ, Limit: 1})
	if err != nil || len(acts) == 0 {
		t.Fatalf("no %s activity of %s: %v", typ, env, err)
	}
	return acts[0]
}

func TestBackupsTabAndRestoreThroughThePages(t *testing.T) {
	app := newBackupApp(t)
	app.user("admin@example.com", db.RoleAdmin, nil)
	app.user("viewer@example.com", db.RoleViewer, nil)
	e := app.filesEnv("shop", db.EnvProduction, "v1")
	admin := app.client()
	admin.login("admin@example.com")

	// Empty tab, then the Backup button.
	doc := admin.get("/environments/shop").doc(t)
	if doc.Find(testid("no-backups")).Length() != 1 || doc.Find(testid("backup")).Length() != 1 {
		t.Fatalf("Backups tab of a new environment: want the empty state and a Backup button")
	}
	r := admin.post("/environments/shop/backups", nil)
	if got, want := r.StatusCode, http.StatusSeeOther; got != want {
		t.Fatalf("POST backup = %d, want %d: %s", got, want, excerpt(r.body))
	}
	act := lastActivity(t, app.cat, "shop", jobs.TypeBackup)
	if got := app.waitActivity(act.ID); got.State != db.ActivitySucceeded {
		t.Fatalf("backup: %s\n%s", got.State, got.Log)
	}
	doc = admin.get("/environments/shop").doc(t)
	row := doc.Find(testid("backup-row"))
	if row.Length() != 1 {
		t.Fatalf("backup rows = %d, want 1", row.Length())
	}
	id, _ := row.Attr("data-id")
	checks := map[string]string{"backup-progress": "100%", "backup-status": "complete", "backup-restorable": "yes",
		"backup-kind": "manual", "backup-mode": "consistent"}
	for tid, want := range checks {
		if got := strings.TrimSpace(row.Find(testid(tid)).Text()); got != want {
			t.Errorf("%s = %q, want %q", tid, got, want)
		}
	}
	// What the backup added to the repository, as the engine measured it.
	if got := strings.TrimSpace(row.Find(testid("backup-new-bytes")).Text()); got == "" || got == "—" {
		t.Errorf("backup-new-bytes = %q, want a size", got)
	}
	if _, live := doc.Find("#backups").Attr("data-live"); live {
		t.Error("the list polls although nothing runs")
	}
	// The live refresh asks for the fragment only.
	frag := admin.get("/environments/shop", "HX-Request", "true", "HX-Target", "backups")
	if strings.Contains(frag.body, "<html") || !strings.Contains(frag.body, `id="backups"`) {
		t.Fatalf("fragment request got a whole page or no list: %s", excerpt(frag.body))
	}
	// The environment list shows the last backup.
	doc = admin.get("/environments").doc(t)
	if href, _ := doc.Find(`[data-env="shop"] ` + testid("last-backup") + " a").Attr("href"); href != "/backups/"+id {
		t.Fatalf("last backup link = %q, want /backups/%s", href, id)
	}

	// The backup page: services, log, Download and Restore.
	doc = admin.get("/backups/" + id).doc(t)
	if doc.Find(testid("backup-service")).Length() != 1 || !strings.Contains(doc.Find(testid("backup-log")).Text(), "complete") {
		t.Fatalf("backup page lacks its service or log")
	}
	if got := strings.TrimSpace(doc.Find(`dt:contains("New bytes stored") + dd`).Text()); got == "" || got == "—" {
		t.Errorf("backup page: new bytes stored = %q, want a size", got)
	}
	for _, tid := range []string{"download", "restore", "delete"} {
		if doc.Find(testid(tid)).Length() != 1 {
			t.Errorf("backup page has no %s for an admin", tid)
		}
	}

	// Change the data, restore from the feed's link by typing the name.
	writeTestFile(t, filepath.Join(e.Services[0].Path, "a.txt"), "v2")
	doc = admin.get("/environments/shop/activity").doc(t)
	link, _ := doc.Find(`[data-id="` + itoa(act.ID) + `"] ` + testid("activity-restore")).Attr("href")
	if link != "/backups/"+id+"/restore" {
		t.Fatalf("restore link in the feed = %q", link)
	}
	doc = admin.get(link).doc(t)
	if got := doc.Find(testid("restore-target-name")).First().Text(); got != "shop" {
		t.Fatalf("restore target = %q, want shop", got)
	}
	if !strings.Contains(doc.Find(testid("restore-mapping")).Text(), e.Services[0].Path) {
		t.Fatal("the dialog does not show where the service is restored")
	}
	r = admin.post(link, url.Values{"target": {"shop"}, "confirm": {"shp"}})
	if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(r.body, "type the target environment") {
		t.Fatalf("wrong confirmation: %d %s", r.StatusCode, excerpt(r.body))
	}
	if got := readTestFile(t, filepath.Join(e.Services[0].Path, "a.txt")); got != "v2" {
		t.Fatal("a refused restore touched the data")
	}
	r = admin.post(link, url.Values{"target": {"shop"}, "confirm": {"shop"}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("restore: %d %s", r.StatusCode, excerpt(r.body))
	}
	ract := app.waitActivity(lastActivity(t, app.cat, "shop", jobs.TypeRestore).ID)
	if ract.State != db.ActivitySucceeded {
		t.Fatalf("restore: %s\n%s", ract.State, ract.Log)
	}
	if got := readTestFile(t, filepath.Join(e.Services[0].Path, "a.txt")); got != "v1" {
		t.Fatalf("after restore a.txt = %q, want v1", got)
	}
	// Undo restore: the restore dialog of the pre-restore backup.
	doc = admin.get("/environments/shop/activity").doc(t)
	undo, _ := doc.Find(`[data-id="` + itoa(ract.ID) + `"] ` + testid("activity-undo")).Attr("href")
	if !strings.HasPrefix(undo, "/backups/"+jobs.PreRestoreBackupID(ract)+"/restore") {
		t.Fatalf("undo link = %q", undo)
	}
	r = admin.post(strings.SplitN(undo, "?", 2)[0], url.Values{"target": {"shop"}, "confirm": {"shop"}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("undo: %d %s", r.StatusCode, excerpt(r.body))
	}
	if got := app.waitActivity(lastActivity(t, app.cat, "shop", jobs.TypeRestore).ID); got.State != db.ActivitySucceeded {
		t.Fatalf("undo: %s\n%s", got.State, got.Log)
	}
	if got := readTestFile(t, filepath.Join(e.Services[0].Path, "a.txt")); got != "v2" {
		t.Fatalf("after undo a.txt = %q, want v2", got)
	}

	// A viewer sees the buttons disabled with the reason.
	viewer := app.client()
	viewer.login("viewer@example.com")
	doc = viewer.get("/environments/shop").doc(t)
	if doc.Find(testid("backup")).Length() != 0 || !strings.Contains(doc.Find(testid("denied-reason")).Text(), "Only admins can back up") {
		t.Fatal("viewer: want the Backup button disabled with the reason")
	}
	doc = viewer.get("/backups/" + id + "/restore").doc(t)
	if _, disabled := doc.Find(testid("restore-submit")).Attr("disabled"); !disabled {
		t.Fatal("viewer: the restore button is enabled")
	}
	if r := viewer.post("/backups/"+id+"/restore", url.Values{"target": {"shop"}, "confirm": {"shop"}}); r.StatusCode != http.StatusForbidden {
		t.Fatalf("viewer restore = %d, want 403", r.StatusCode)
	}

	// Delete from the backup page.
	r = admin.post("/backups/"+id+"/delete", nil)
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("delete: %d %s", r.StatusCode, excerpt(r.body))
	}
	if r := admin.get("/backups/" + id); r.StatusCode != http.StatusNotFound {
		t.Fatalf("deleted backup page = %d, want 404", r.StatusCode)
	}

	// An inactive environment: the button is disabled and the server refuses with the reason.
	if _, err := app.cat.SetEnvironmentStatus(context.Background(), "shop", db.StatusInactive); err != nil {
		t.Fatal(err)
	}
	doc = admin.get("/environments/shop").doc(t)
	if !strings.Contains(doc.Find(testid("denied-reason")).Text(), "inactive") {
		t.Fatal("inactive environment: want the Backup button disabled with the reason")
	}
	r = admin.post("/environments/shop/backups", nil)
	if r.StatusCode != http.StatusConflict || !strings.Contains(r.body, "is inactive") {
		t.Fatalf("backup of an inactive environment: %d %s", r.StatusCode, excerpt(r.body))
	}
}

func TestBackupsAPI(t *testing.T) {
	app := newBackupApp(t)
	token := app.token(app.user("admin@example.com", db.RoleAdmin, nil))
	viewerToken := app.token(app.user("viewer@example.com", db.RoleViewer, nil))
	e := app.filesEnv("shop", db.EnvProduction, "v1")
	app.filesEnv("closed", db.EnvStaging, "x")
	if _, err := app.cat.SetEnvironmentStatus(context.Background(), "closed", db.StatusInactive); err != nil {
		t.Fatal(err)
	}

	r := app.api(http.MethodPost, "/api/v1/environments/shop/backups", token, `{"live":true}`)
	var started struct {
		Activity db.Activity `json:"activity"`
		Backup   db.Backup   `json:"backup"`
	}
	r.json(t, &started)
	if r.StatusCode != http.StatusAccepted || !started.Backup.Live || started.Activity.ID == 0 {
		t.Fatalf("POST backups = %d %s", r.StatusCode, r.body)
	}
	app.waitActivity(started.Activity.ID)
	var list struct {
		Backups []db.Backup `json:"backups"`
		Total   int         `json:"total"`
	}
	app.api(http.MethodGet, "/api/v1/environments/shop/backups", viewerToken, "").json(t, &list)
	if list.Total != 1 || list.Backups[0].Status != db.BackupComplete || list.Backups[0].NewBytes <= 0 {
		t.Fatalf("list = %+v", list)
	}
	id := started.Backup.ID
	var got struct {
		Backup   db.Backup    `json:"backup"`
		Activity *db.Activity `json:"activity"`
	}
	app.api(http.MethodGet, "/api/v1/backups/"+id, viewerToken, "").json(t, &got)
	if got.Backup.ID != id || got.Activity == nil || got.Activity.State != db.ActivitySucceeded {
		t.Fatalf("GET backup = %+v", got)
	}

	// Refusals: an inactive environment (409 refused), an unknown backup (404), a wrong confirmation (422).
	r = app.api(http.MethodPost, "/api/v1/environments/closed/backups", token, `{}`)
	if r.StatusCode != http.StatusConflict || !strings.Contains(r.body, `"code":"refused"`) || strings.Contains(r.body, ": refused") {
		t.Fatalf("backup of an inactive environment = %d %s", r.StatusCode, r.body)
	}
	if r := app.api(http.MethodGet, "/api/v1/backups/00000000000000000000", token, ""); r.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown backup = %d", r.StatusCode)
	}
	r = app.api(http.MethodPost, "/api/v1/backups/"+id+"/restore", token, `{"confirm":"nope"}`)
	if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(r.body, `"field":"confirm"`) {
		t.Fatalf("restore with a wrong confirmation = %d %s", r.StatusCode, r.body)
	}
	r = app.api(http.MethodPost, "/api/v1/backups/"+id+"/restore", token, `{"target":"closed","confirm":"closed"}`)
	if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(r.body, "inactive") {
		t.Fatalf("restore into an inactive environment = %d %s", r.StatusCode, r.body)
	}
	r = app.api(http.MethodPost, "/api/v1/backups/"+id+"/restore", viewerToken, `{"confirm":"shop"}`)
	if r.StatusCode != http.StatusForbidden {
		t.Fatalf("restore by a viewer = %d", r.StatusCode)
	}

	// Plan, restore, download.
	var plan struct {
		Plan struct {
			Target  string `json:"target"`
			Mapping []struct{ Name, Target string }
		} `json:"plan"`
	}
	app.api(http.MethodGet, "/api/v1/backups/"+id+"/restore", token, "").json(t, &plan)
	if plan.Plan.Target != "shop" || len(plan.Plan.Mapping) != 1 || plan.Plan.Mapping[0].Target != e.Services[0].Path {
		t.Fatalf("plan = %+v", plan)
	}
	writeTestFile(t, filepath.Join(e.Services[0].Path, "a.txt"), "v2")
	r = app.api(http.MethodPost, "/api/v1/backups/"+id+"/restore", token, `{"confirm":"shop"}`)
	r.json(t, &started)
	if r.StatusCode != http.StatusAccepted {
		t.Fatalf("restore = %d %s", r.StatusCode, r.body)
	}
	if a := app.waitActivity(started.Activity.ID); a.State != db.ActivitySucceeded {
		t.Fatalf("restore: %s\n%s", a.State, a.Log)
	}
	if got := readTestFile(t, filepath.Join(e.Services[0].Path, "a.txt")); got != "v1" {
		t.Fatalf("a.txt = %q after restore", got)
	}
	req, _ := http.NewRequest(http.MethodGet, app.srv.URL+"/api/v1/backups/"+id+"/download", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if cd := res.Header.Get("Content-Disposition"); res.StatusCode != http.StatusOK || !strings.Contains(cd, "rewind-shop-"+id+".tar") {
		t.Fatalf("download = %d, Content-Disposition %q", res.StatusCode, cd)
	}
	names := map[string]string{}
	tr := tar.NewReader(res.Body)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("tar: %v", err)
		}
		b, _ := io.ReadAll(tr)
		names[h.Name] = string(b)
	}
	if names["uploads/a.txt"] != "v1" || names["rewind.json"] == "" {
		t.Fatalf("tar entries: %v", names)
	}

	// Cancel a backup queued behind another of the same environment: cancelled, its backup failed at once.
	var first, second struct {
		Activity db.Activity `json:"activity"`
		Backup   db.Backup   `json:"backup"`
	}
	app.api(http.MethodPost, "/api/v1/environments/shop/backups", token, `{"live":true,"replace_oldest":true}`).json(t, &first)
	app.api(http.MethodPost, "/api/v1/environments/shop/backups", token, `{"live":true,"replace_oldest":true}`).json(t, &second)
	r = app.api(http.MethodPost, "/api/v1/activities/"+itoa(second.Activity.ID)+"/cancel", viewerToken, "")
	if r.StatusCode != http.StatusForbidden {
		t.Fatalf("cancel by a viewer = %d", r.StatusCode)
	}
	r = app.api(http.MethodPost, "/api/v1/activities/"+itoa(second.Activity.ID)+"/cancel", token, "")
	if r.StatusCode != http.StatusAccepted {
		t.Fatalf("cancel = %d %s", r.StatusCode, r.body)
	}
	if a := app.waitActivity(second.Activity.ID); a.State != db.ActivityCancelled {
		t.Fatalf("cancelled activity is %s", a.State)
	}
	if b, _ := app.cat.FindBackupByID(context.Background(), second.Backup.ID); b.Status != db.BackupFailed || b.Restorable() {
		t.Fatalf("backup of a cancelled activity: %s", b.Status)
	}
	app.waitActivity(first.Activity.ID)

	// Cancel an activity that is not running: refused.
	r = app.api(http.MethodPost, "/api/v1/activities/"+itoa(started.Activity.ID)+"/cancel", token, "")
	if r.StatusCode != http.StatusConflict || !strings.Contains(r.body, "only queued or running") {
		t.Fatalf("cancel a finished activity = %d %s", r.StatusCode, r.body)
	}

	// Metrics: tokens only.
	if r := app.api(http.MethodGet, "/metrics", "", ""); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("metrics without a token = %d", r.StatusCode)
	}
	r = app.api(http.MethodGet, "/metrics", viewerToken, "")
	for _, want := range []string{`rewind_backups{environment="shop",status="failed"} 1`, "rewind_backup_last_pause_seconds{environment=\"shop\"}", "# TYPE rewind_gate_holds_total counter"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("metrics lack %q:\n%s", want, r.body)
		}
	}

	// Delete.
	r = app.api(http.MethodDelete, "/api/v1/backups/"+id, token, "")
	if r.StatusCode != http.StatusOK {
		t.Fatalf("delete = %d %s", r.StatusCode, r.body)
	}
	if r := app.api(http.MethodGet, "/api/v1/backups/"+id, token, ""); r.StatusCode != http.StatusNotFound {
		t.Fatalf("deleted backup = %d", r.StatusCode)
	}
}

func TestRestoreDialogTargets(t *testing.T) {
	app := newBackupApp(t)
	app.user("admin@example.com", db.RoleAdmin, nil)
	app.filesEnv("shop", db.EnvProduction, "v1")
	stage := app.filesEnv("stage", db.EnvStaging, "old stage")
	app.env("odd", db.EnvStaging, db.Service{Name: "uploads", Type: db.ServiceSQLite, Path: filepath.Join(app.dir, "odd.db")})
	b := app.backup("shop")
	admin := app.client()
	admin.login("admin@example.com")

	// Another environment whose service has another type: refused before anything, no confirmation offered.
	doc := admin.get("/backups/" + b.ID + "/restore?target=odd").doc(t)
	if !strings.Contains(doc.Find(testid("restore-problems")).Text(), "cannot change a service's type") ||
		doc.Find(testid("restore-form")).Length() != 0 {
		t.Fatal("a type mismatch is not shown as a problem, or the dialog still offers to restore")
	}
	// Another environment that fits: its service is the target.
	doc = admin.get("/backups/" + b.ID + "/restore?target=stage").doc(t)
	if !strings.Contains(doc.Find(testid("restore-mapping")).Text(), stage.Services[0].Path) {
		t.Fatal("mapping does not name stage's mount")
	}
	r := admin.post("/backups/"+b.ID+"/restore", url.Values{"target": {"stage"}, "confirm": {"stage"}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/environments/stage/activity" {
		t.Fatalf("restore into stage: %d %s", r.StatusCode, excerpt(r.body))
	}
	app.waitActivity(lastActivity(t, app.cat, "stage", jobs.TypeRestore).ID)
	if got := readTestFile(t, filepath.Join(stage.Services[0].Path, "a.txt")); got != "v1" {
		t.Fatalf("stage a.txt = %q, want v1", got)
	}

	// A new environment branched from shop.
	name := "restore-" + b.ID[:8]
	doc = admin.get("/backups/" + b.ID + "/restore?branch_from=shop").doc(t)
	if got := doc.Find(testid("restore-target-name")).First().Text(); got != name ||
		!strings.Contains(doc.Find(testid("restore-plan")).Text(), "child of shop") {
		t.Fatalf("branch plan target = %q: %s", got, doc.Find(testid("restore-plan")).Text())
	}
	r = admin.post("/backups/"+b.ID+"/restore", url.Values{"target": {name}, "branch_from": {"shop"}, "confirm": {name}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("branch restore: %d %s", r.StatusCode, excerpt(r.body))
	}
	if a := app.waitActivity(lastActivity(t, app.cat, name, jobs.TypeRestore).ID); a.State != db.ActivitySucceeded {
		t.Fatalf("branch restore: %s\n%s", a.State, a.Log)
	}
	branch, err := app.cat.FindEnvironmentByName(context.Background(), name)
	if err != nil || branch.Parent != "shop" {
		t.Fatalf("branch = %+v, %v", branch, err)
	}
	if got := readTestFile(t, filepath.Join(branch.Services[0].Path, "a.txt")); got != "v1" {
		t.Fatalf("branch a.txt = %q", got)
	}
}

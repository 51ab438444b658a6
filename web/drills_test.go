package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/jobs"
)

// TestDrillButtonRolesAndBadge drives restore drills through the pages and the API of the real router: a viewer
// and an admin whose role for production is viewer see "Run drill now" disabled with the reason and are refused
// (403) by page and API; an admin runs a drill, and the Backups tab then shows the last verified restore and a
// predicted RTO; a failed drill shows its reason with a link to its activity; the schedule is set through PUT.
func TestDrillButtonRolesAndBadge(t *testing.T) {
	ctx := context.Background()
	a := newBackupApp(t)
	a.user("admin@example.com", db.RoleAdmin, nil)
	a.user("viewer@example.com", db.RoleViewer, nil)
	stagingAdmin := a.user("stage@example.com", db.RoleAdmin, map[string]string{db.EnvProduction: db.RoleViewer})
	a.filesEnv("main", db.EnvProduction, "v1")

	admin := a.client()
	admin.login("admin@example.com")
	if r := admin.get("/environments/main"); r.doc(t).Find(testid("last-verified")).Text() == "" ||
		!strings.Contains(r.doc(t).Find(testid("last-verified")).Text(), "never verified") {
		t.Fatalf("before any drill the card says %q, want never verified", r.doc(t).Find(testid("last-verified")).Text())
	}
	// No backup yet: the drill is refused (409), saying what to do.
	adminToken := a.token(a.userByEmail("admin@example.com"))
	if r := a.api(http.MethodPost, "/api/v1/environments/main/drills", adminToken, ""); r.StatusCode != http.StatusConflict ||
		!strings.Contains(r.body, "take a backup first") {
		t.Fatalf("drill without a backup: %d %s, want 409 saying to take a backup", r.StatusCode, r.body)
	}
	a.backup("main")

	for _, who := range []string{"viewer@example.com", stagingAdmin.Email} {
		c := a.client()
		c.login(who)
		doc := c.get("/environments/main").doc(t)
		if doc.Find(testid("run-drill")).Length() != 0 {
			t.Fatalf("%s sees an enabled Run drill now button", who)
		}
		reason := doc.Find(testid("drills") + " " + testid("denied-reason")).Text()
		if !strings.Contains(reason, "Only admins can run restore drills of production environments") {
			t.Fatalf("%s sees the reason %q", who, reason)
		}
		if r := c.post("/environments/main/drills", nil); r.StatusCode != http.StatusForbidden {
			t.Fatalf("%s POST /environments/main/drills = %d, want 403", who, r.StatusCode)
		}
		u := a.userByEmail(who)
		if r := a.api(http.MethodPost, "/api/v1/environments/main/drills", a.token(u), ""); r.StatusCode != http.StatusForbidden {
			t.Fatalf("%s API drill = %d, want 403", who, r.StatusCode)
		}
	}
	// A session without the CSRF token is refused too.
	if r := admin.postRaw("/environments/main/drills", url.Values{}); r.StatusCode != http.StatusForbidden {
		t.Fatalf("drill without CSRF = %d, want 403", r.StatusCode)
	}

	// The admin runs one from the page.
	if !admin.get("/environments/main").doc(t).Find(testid("run-drill")).Is("button") {
		t.Fatal("the admin sees no Run drill now button")
	}
	if r := admin.post("/environments/main/drills", nil); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("admin drill = %d %s, want 303", r.StatusCode, r.body)
	}
	act := lastActivity(t, a.cat, "main", jobs.TypeDrill)
	if got := a.waitActivity(act.ID); got.State != db.ActivitySucceeded {
		t.Fatalf("drill: %s\n%s", got.State, got.Log)
	}
	doc := admin.get("/environments/main").doc(t)
	verified := doc.Find(testid("last-verified")).Text()
	if !strings.Contains(verified, "Last verified restore:") || !strings.Contains(verified, "just now,") ||
		!strings.Contains(verified, " s") {
		t.Fatalf("after the drill the card says %q, want the last verified restore with its time", verified)
	}
	if rto := doc.Find(testid("predicted-rto")).Text(); !strings.Contains(rto, "Predicted RTO:") || !strings.Contains(rto, "from 1 measured") {
		t.Fatalf("predicted RTO = %q", rto)
	}

	// Through the API: 202 with the activity, then the list with the last verified restore.
	r := a.api(http.MethodPost, "/api/v1/environments/main/drills", adminToken, "")
	var started struct{ Activity db.Activity }
	r.json(t, &started)
	if r.StatusCode != http.StatusAccepted || started.Activity.Type != jobs.TypeDrill || started.Activity.ID == 0 {
		t.Fatalf("API drill = %d %s, want 202 with a %s activity", r.StatusCode, r.body, jobs.TypeDrill)
	}
	a.waitActivity(started.Activity.ID)
	r = a.api(http.MethodGet, "/api/v1/environments/main/drills", adminToken, "")
	var list struct {
		Drills         []db.Drill
		LastVerified   *db.Drill `json:"last_verified"`
		PredictedRTOMS int64     `json:"predicted_rto_ms"`
	}
	r.json(t, &list)
	if r.StatusCode != http.StatusOK || len(list.Drills) != 2 || list.Drills[0].ActivityID != started.Activity.ID ||
		list.LastVerified == nil || list.LastVerified.State != db.DrillPassed || list.PredictedRTOMS <= 0 {
		t.Fatalf("GET drills = %d %s", r.StatusCode, r.body)
	}

	if r := a.api(http.MethodGet, "/metrics", adminToken, ""); !strings.Contains(r.body, `rewind_drill_last_failed{environment="main"} 0`) ||
		!strings.Contains(r.body, `rewind_drill_last_success_timestamp_seconds{environment="main"} `) ||
		!strings.Contains(r.body, `rewind_drill_last_restore_seconds{environment="main"} `) {
		t.Fatalf("metrics after a passed drill:\n%s", r.body)
	}

	// A smoke command that fails fails the drill; the card names the reason and links to the activity.
	r = a.api(http.MethodPut, "/api/v1/environments/main", adminToken, fmt.Sprintf(
		`{"type":"production","drill":{"schedule":"weekly","smoke":"echo no orders >&2; exit 1"},"services":[{"name":"uploads","type":"files","path":%q}]}`,
		a.dir+"/main"))
	if r.StatusCode != http.StatusOK {
		t.Fatalf("PUT the drill settings = %d %s", r.StatusCode, r.body)
	}
	if env, _ := a.cat.FindEnvironmentByName(ctx, "main"); env.Drill.Schedule != db.DrillWeekly {
		t.Fatalf("drill settings after PUT = %+v", env.Drill)
	}
	if r := a.api(http.MethodPut, "/api/v1/environments/main", adminToken, `{"type":"production","drill":{"schedule":"hourly"}}`); r.StatusCode != http.StatusUnprocessableEntity ||
		!strings.Contains(r.body, "drill.schedule") {
		t.Fatalf("PUT an unknown drill schedule = %d %s, want 422 naming drill.schedule", r.StatusCode, r.body)
	}
	if r := admin.post("/environments/main/drills", nil); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("admin drill = %d", r.StatusCode)
	}
	act = lastActivity(t, a.cat, "main", jobs.TypeDrill)
	if got := a.waitActivity(act.ID); got.State != db.ActivityFailed {
		t.Fatalf("drill with a failing smoke command: %s", got.State)
	}
	doc = admin.get("/environments/main").doc(t)
	failed := doc.Find(testid("drill-failed"))
	if !strings.Contains(failed.Text(), "smoke") || !strings.Contains(failed.Text(), "exit code 1") {
		t.Fatalf("failed drill shows %q", failed.Text())
	}
	if href, _ := failed.Find(testid("drill-activity")).Attr("href"); !strings.Contains(href, "/environments/main/activity?type=backup.drill") {
		t.Fatalf("failed drill links to %q", href)
	}
	if !strings.Contains(doc.Find(testid("last-verified")).Text(), "just now") {
		t.Fatalf("a failed drill hides the last verified restore: %q", doc.Find(testid("last-verified")).Text())
	}
	if r := a.api(http.MethodGet, "/metrics", adminToken, ""); !strings.Contains(r.body, `rewind_drill_last_failed{environment="main"} 1`) {
		t.Fatalf("metrics after a failed drill:\n%s", r.body)
	}
	if sched := doc.Find(testid("drill-schedule")).Text(); !strings.Contains(sched, "weekly") {
		t.Fatalf("drill schedule line = %q", sched)
	}
	// The Settings tab shows the schedule in the form.
	sel, _ := admin.get("/environments/main/settings").doc(t).Find(`select[name="drill.schedule"] option[selected]`).Attr("value")
	if sel != db.DrillWeekly {
		t.Fatalf("settings form drill schedule = %q, want weekly", sel)
	}
}

func (a *testApp) userByEmail(email string) *db.User {
	a.t.Helper()
	u, err := a.cat.FindUserByEmail(context.Background(), email)
	if err != nil {
		a.t.Fatal(err)
	}
	return u
}

// TestQuotaQuestionKeepsTheDrillCard: the Backups tab rendered again to ask whether to replace the oldest manual
// backup (a staging environment keeps 2) still shows the restore drill card.
func TestQuotaQuestionKeepsTheDrillCard(t *testing.T) {
	a := newBackupApp(t)
	a.user("admin@example.com", db.RoleAdmin, nil)
	a.filesEnv("stage", db.EnvStaging, "v1")
	a.backup("stage")
	a.backup("stage")
	admin := a.client()
	admin.login("admin@example.com")
	r := admin.post("/environments/stage/backups", nil)
	if r.StatusCode != http.StatusConflict || r.doc(t).Find(testid("quota-confirm")).Length() != 1 {
		t.Fatalf("a third manual backup = %d, want 409 with the quota question:\n%s", r.StatusCode, r.body)
	}
	if got := r.doc(t).Find(testid("last-verified")).Text(); !strings.Contains(got, "never verified") {
		t.Fatalf("the quota question's Backups tab shows the drill card %q, want never verified", got)
	}
}

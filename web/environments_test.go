package web_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"github.com/rewind/rewind/db"
)

// serviceForm is the service editor's repeated fields, one row per service.
func serviceForm(base url.Values, rows ...[4]string) url.Values {
	for _, r := range rows { // name, type, url, path
		base.Add("svc_name", r[0])
		base.Add("svc_type", r[1])
		base.Add("svc_url", r[2])
		base.Add("svc_path", r[3])
		base.Add("svc_exclude", "")
	}
	return base
}

func TestCreateEnvironmentWithServices(t *testing.T) {
	app := newTestApp(t)
	app.user("ada@example.com", db.RoleAdmin, nil)
	app.env("main", db.EnvProduction)
	c := app.client()
	c.login("ada@example.com")

	doc := c.get("/environments/new").doc(t)
	if got := doc.Find(testid("service")).Length(); got != 1 {
		t.Fatalf("new form has %d service rows, want 1 blank one", got)
	}
	form := serviceForm(url.Values{"name": {"staging"}, "title": {"Staging"}, "type": {"staging"}, "parent": {"main"}},
		[4]string{"db", "postgresql", "postgres://app:pw@127.0.0.1:5432/app", "/ignored"},
		[4]string{"uploads", "files", "", "/srv/uploads"},
		[4]string{"", "postgresql", "", ""}, // a blank row is ignored
	)
	form.Set("svc_exclude", "")
	form["svc_exclude"] = []string{"", "cache/\n*.tmp\n", ""}
	r := c.post("/environments", form)
	if got, want := r.StatusCode, http.StatusSeeOther; got != want {
		t.Fatalf("create: %d, want %d\n%s", got, want, excerpt(r.body))
	}
	if got, want := r.Header.Get("Location"), "/environments/staging"; got != want {
		t.Fatalf("redirect = %q, want %q", got, want)
	}
	e, err := app.cat.FindEnvironmentByName(context.Background(), "staging")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(e.Services), 2; got != want {
		t.Fatalf("saved %d services, want %d", got, want)
	}
	if got, want := strings.Join(e.Services[1].Exclude, ","), "cache/,*.tmp"; got != want {
		t.Fatalf("excludes = %q, want %q", got, want)
	}
	if e.Services[0].Path != "" {
		t.Fatalf("a postgresql service kept the hidden path field: %+v", e.Services[0])
	}

	doc = c.get("/environments/staging").doc(t)
	if got := doc.Find(testid("flash")).Text(); !strings.Contains(got, "created") {
		t.Fatalf("flash = %q", got)
	}
	if got := doc.Find(testid("service-row")).Length(); got != 2 {
		t.Fatalf("environment page lists %d services, want 2", got)
	}
	if got := doc.Find(testid("no-backups")).Text(); !strings.Contains(got, "No backups yet") {
		t.Fatalf("backups tab = %q", got)
	}

	doc = c.get("/environments").doc(t)
	row := doc.Find(`[data-testid="environment-row"][data-env="staging"]`)
	if row.Length() != 1 {
		t.Fatal("staging not in the environment list")
	}
	if got, want := row.Find(testid("environment-type")).Text(), "staging"; got != want {
		t.Fatalf("type badge = %q, want %q", got, want)
	}
	if got, want := row.Find(testid("last-backup")).Text(), "no backups yet"; got != want {
		t.Fatalf("last backup = %q, want %q", got, want)
	}
	if row.Find(".tree-1").Length() != 1 {
		t.Fatal("staging is not indented under its parent")
	}

	doc = c.get("/activities").doc(t)
	first := doc.Find(testid("activity")).First()
	if got, want := first.AttrOr("data-type", ""), "environment.create"; got != want {
		t.Fatalf("newest activity type = %q, want %q", got, want)
	}
	if got := first.Find(testid("activity-actor")).Text(); !strings.Contains(got, "ada@example.com") {
		t.Fatalf("actor = %q", got)
	}
}

func TestEnvironmentValidationErrorsBesideFields(t *testing.T) {
	app := newTestApp(t)
	app.user("ada@example.com", db.RoleAdmin, nil)
	c := app.client()
	c.login("ada@example.com")

	form := serviceForm(url.Values{"name": {"Bad Name!"}, "type": {"staging"}},
		[4]string{"db", "postgresql", "postgres://app:typed-secret@", ""},
		[4]string{"db", "sqlite", "", "relative/app.db"},
		[4]string{"files", "files", "", ""},
		[4]string{"x", "oracle", "oracle://h/x", ""},
	)
	r := c.post("/environments", form)
	if got, want := r.StatusCode, http.StatusUnprocessableEntity; got != want {
		t.Fatalf("invalid create: %d, want %d", got, want)
	}
	doc := r.doc(t)
	for _, field := range []string{"name", "services[0].url", "services[1].name", "services[1].path", "services[2].path", "services[3].type"} {
		if got := doc.Find(testid("error-" + field)).Text(); strings.TrimSpace(got) == "" {
			t.Errorf("no error shown beside %s", field)
		}
	}
	if got := doc.Find(testid("error-services[1].name")).Text(); !strings.Contains(got, "duplicate") {
		t.Errorf("duplicate name error = %q", got)
	}
	// The user's input is kept.
	if got, _ := doc.Find(`input[name="name"]`).Attr("value"); got != "Bad Name!" {
		t.Errorf("name kept = %q", got)
	}
	if got := doc.Find(testid("service")).Length(); got != 4 {
		t.Errorf("%d service rows kept, want 4", got)
	}
	if got := doc.Find(`[data-testid="svc-type"]`).Eq(3).Find("option[selected]").AttrOr("value", ""); got != "oracle" {
		t.Errorf("unknown type kept as %q", got)
	}
	envs, err := app.cat.FindEnvironments(context.Background(), db.EnvironmentFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(envs) != 0 {
		t.Fatalf("an invalid form saved %d environments", len(envs))
	}
	_, total, _ := app.cat.FindActivities(context.Background(), db.ActivityFilter{})
	if total != 0 {
		t.Fatalf("an invalid form wrote %d activities", total)
	}

	// Names that would hide a dashboard page are refused.
	r = c.post("/environments", url.Values{"name": {"new"}, "type": {"staging"}})
	if got := r.doc(t).Find(testid("error-name")).Text(); r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(got, "reserved") {
		t.Fatalf("environment named new: %d %q", r.StatusCode, got)
	}

	// A duplicate environment name is also shown beside the field.
	app.env("taken", db.EnvStaging)
	r = c.post("/environments", url.Values{"name": {"taken"}, "type": {"staging"}})
	if got, want := r.StatusCode, http.StatusUnprocessableEntity; got != want {
		t.Fatalf("duplicate environment: %d, want %d", got, want)
	}
	if got := r.doc(t).Find(testid("error-name")).Text(); !strings.Contains(got, "already exists") {
		t.Fatalf("duplicate environment error = %q", got)
	}
}

func TestEnvironmentAPIValidation(t *testing.T) {
	app := newTestApp(t)
	tok := app.token(app.user("ada@example.com", db.RoleAdmin, nil))
	r := app.api(http.MethodPut, "/api/v1/environments/main", tok,
		`{"type":"production","services":[{"name":"db","type":"postgresql","url":"http://nope"},{"name":"f","type":"files"}]}`)
	if got, want := r.StatusCode, http.StatusUnprocessableEntity; got != want {
		t.Fatalf("invalid PUT: %d, want %d: %s", got, want, r.body)
	}
	var body struct {
		Error struct {
			Code   string
			Fields []struct{ Field, Message string }
		}
	}
	r.json(t, &body)
	if got, want := body.Error.Code, "invalid"; got != want {
		t.Fatalf("code = %q, want %q", got, want)
	}
	fields := map[string]bool{}
	for _, f := range body.Error.Fields {
		fields[f.Field] = true
	}
	if !fields["services[0].url"] || !fields["services[1].path"] {
		t.Fatalf("fields = %v", body.Error.Fields)
	}
	if _, err := app.cat.FindEnvironmentByName(context.Background(), "main"); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("invalid PUT saved something: %v", err)
	}

	r = app.api(http.MethodPut, "/api/v1/environments/main", tok, `{"type":"production","bogus":1}`)
	if got, want := r.StatusCode, http.StatusBadRequest; got != want {
		t.Fatalf("unknown field: %d, want %d", got, want)
	}
	r = app.api(http.MethodPut, "/api/v1/environments/main", tok, `{"name":"other","type":"production"}`)
	if got, want := r.StatusCode, http.StatusUnprocessableEntity; got != want {
		t.Fatalf("name mismatch: %d, want %d", got, want)
	}

	r = app.api(http.MethodPut, "/api/v1/environments/main", tok, `{"type":"production","services":[{"name":"db","type":"sqlite","path":"/srv/app.db"}]}`)
	if got, want := r.StatusCode, http.StatusCreated; got != want {
		t.Fatalf("create: %d, want %d: %s", got, want, r.body)
	}
	r = app.api(http.MethodPut, "/api/v1/environments/main", tok, `{"type":"production","services":[{"name":"db","type":"sqlite","path":"/srv/app.db"}]}`)
	if got, want := r.StatusCode, http.StatusOK; got != want {
		t.Fatalf("same again: %d, want %d", got, want)
	}
	if !strings.Contains(r.body, `"change":"unchanged"`) {
		t.Fatalf("same again: %s", r.body)
	}
	r = app.api(http.MethodGet, "/api/v1/activities?environment=main", tok, "")
	var acts struct {
		Activities []db.Activity
		Total      int
	}
	r.json(t, &acts)
	if got, want := acts.Total, 1; got != want {
		t.Fatalf("%d activities for main, want %d (create; the unchanged PUT writes none)", got, want)
	}
	if a := acts.Activities[0]; a.Type != "environment.create" || !strings.Contains(a.Actor, "ada@example.com") {
		t.Fatalf("activity = %+v", a)
	}
	r = app.api(http.MethodGet, "/api/v1/activities/"+strconv.FormatInt(acts.Activities[0].ID, 10), tok, "")
	var one struct{ Activity db.Activity }
	r.json(t, &one)
	if r.StatusCode != http.StatusOK || one.Activity.ID != acts.Activities[0].ID {
		t.Fatalf("GET one activity: %d %s", r.StatusCode, r.body)
	}
	if got, want := app.api(http.MethodGet, "/api/v1/activities/999999", tok, "").StatusCode, http.StatusNotFound; got != want {
		t.Fatalf("unknown activity: %d, want %d", got, want)
	}
	r = app.api(http.MethodGet, "/api/v1/environments/nope", tok, "")
	if got, want := r.StatusCode, http.StatusNotFound; got != want || !strings.Contains(r.body, `"code":"not_found"`) {
		t.Fatalf("unknown environment: %d %s", got, r.body)
	}
}

func TestSecretsMasked(t *testing.T) {
	const secret = "s3cr3t-pw-xyz"
	app := newTestApp(t)
	admin := app.user("ada@example.com", db.RoleAdmin, nil)
	tok := app.token(admin)
	c := app.client()
	c.login("ada@example.com")
	form := serviceForm(url.Values{"name": {"main"}, "type": {"production"}},
		[4]string{"db", "postgresql", "postgres://app:" + secret + "@127.0.0.1:5432/app", ""},
		[4]string{"cache", "redis", "redis://:" + secret + "@127.0.0.1:6379/0", ""},
	)
	if r := c.post("/environments", form); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("create: %d\n%s", r.StatusCode, excerpt(r.body))
	}
	pages := []*response{
		c.get("/environments"), c.get("/environments/main"), c.get("/environments/main/settings"),
		c.get("/environments/main/activity"), c.get("/activities"),
		app.api(http.MethodGet, "/api/v1/environments", tok, ""),
		app.api(http.MethodGet, "/api/v1/environments/main", tok, ""),
		app.api(http.MethodGet, "/api/v1/activities", tok, ""),
	}
	for _, r := range pages {
		if r.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", r.Request.URL, r.StatusCode)
		}
		if strings.Contains(r.body, secret) {
			t.Errorf("%s shows the secret", r.Request.URL)
		}
	}
	if !strings.Contains(pages[1].body, "postgres://app:****@127.0.0.1:5432/app") {
		t.Errorf("environment page does not show the masked URL")
	}
	if !strings.Contains(pages[5].body, "****") {
		t.Errorf("API does not show the masked URL: %s", pages[5].body)
	}

	// Saving the settings form with the masked URLs keeps the stored secret.
	doc := pages[2].doc(t)
	f := url.Values{"type": {"production"}, "title": {"Main shop"}}
	doc.Find(testid("service")).Each(func(_ int, s *goquery.Selection) {
		f.Add("svc_name", s.Find(`[name="svc_name"]`).AttrOr("value", ""))
		f.Add("svc_type", s.Find(`[name="svc_type"] option[selected]`).AttrOr("value", ""))
		f.Add("svc_url", s.Find(`[name="svc_url"]`).AttrOr("value", ""))
		f.Add("svc_path", s.Find(`[name="svc_path"]`).AttrOr("value", ""))
		f.Add("svc_exclude", s.Find(`[name="svc_exclude"]`).Text())
	})
	if r := c.post("/environments/main", f); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("save settings: %d\n%s", r.StatusCode, excerpt(r.body))
	}
	e, err := app.cat.FindEnvironmentByName(context.Background(), "main")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := e.Services[0].URL, "postgres://app:"+secret+"@127.0.0.1:5432/app"; got != want || e.Title != "Main shop" {
		t.Fatalf("after saving the masked form: url %q title %q, want %q", got, e.Title, want)
	}
}

func TestDeactivateAndViewerSeesReasons(t *testing.T) {
	app := newTestApp(t)
	app.user("ada@example.com", db.RoleAdmin, nil)
	app.user("vic@example.com", db.RoleViewer, nil)
	app.env("main", db.EnvProduction)
	admin, viewer := app.client(), app.client()
	admin.login("ada@example.com")
	viewer.login("vic@example.com")

	doc := viewer.get("/environments").doc(t)
	if doc.Find(testid("new-environment")).Length() != 0 || doc.Find(testid("denied-reason")).Length() == 0 {
		t.Fatal("viewer sees an enabled New environment button or no reason")
	}
	doc = viewer.get("/environments/main/settings").doc(t)
	if _, disabled := doc.Find("fieldset").First().Attr("disabled"); !disabled {
		t.Fatal("viewer's settings form is not disabled")
	}
	if got := doc.Find(testid("denied-reason")).First().Text(); !strings.Contains(got, "Only admins") {
		t.Fatalf("reason = %q", got)
	}

	if r := admin.post("/environments/main/deactivate", nil); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("deactivate: %d", r.StatusCode)
	}
	doc = admin.get("/environments/main").doc(t)
	if got, want := doc.Find(testid("environment-status")).First().Text(), "inactive"; got != want {
		t.Fatalf("status = %q, want %q", got, want)
	}
	if doc.Find(testid("activate")).Length() != 1 {
		t.Fatal("no Activate button on an inactive environment")
	}
	doc = admin.get("/environments/main/activity").doc(t)
	if got, want := doc.Find(testid("activity")).First().AttrOr("data-type", ""), "environment.deactivate"; got != want {
		t.Fatalf("environment activity tab: newest %q, want %q", got, want)
	}
}

func TestErrorPages(t *testing.T) {
	app := newTestApp(t)
	app.user("ada@example.com", db.RoleAdmin, nil)
	c := app.client()
	c.login("ada@example.com")
	r := c.get("/environments/nope")
	if got, want := r.StatusCode, http.StatusNotFound; got != want {
		t.Fatalf("unknown environment: %d, want %d", got, want)
	}
	if !strings.Contains(r.Header.Get("Content-Type"), "text/html") || r.doc(t).Find(testid("error")).Length() != 1 {
		t.Fatalf("browser does not get the error page: %s", excerpt(r.body))
	}
	r = c.get("/no/such/page")
	if got, want := r.StatusCode, http.StatusNotFound; got != want {
		t.Fatalf("unknown page: %d, want %d", got, want)
	}
	r = app.api(http.MethodGet, "/api/v1/environments", "rwd_not-a-token", "")
	if got, want := r.StatusCode, http.StatusUnauthorized; got != want || !strings.Contains(r.body, `"code":"unauthorized"`) {
		t.Fatalf("bad token: %d %s", r.StatusCode, r.body)
	}
	if r.Header.Get("WWW-Authenticate") == "" {
		t.Error("401 without WWW-Authenticate")
	}
}

package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/jobs"
)

// The whole authorization matrix: every mutating route of the pages and the
// API × anonymous, admin, contributor, viewer, a viewer who is admin of
// staging environments (per-type override) and an admin who is only a
// viewer of production environments; API routes also with a token of each.
func TestAuthorizationMatrix(t *testing.T) {
	bapp := newBackupApp(t)
	app := bapp.testApp
	ctx := context.Background()
	principals := map[string]*db.User{
		"admin":        app.user("admin@example.com", db.RoleAdmin, nil),
		"contributor":  app.user("contributor@example.com", db.RoleContributor, nil),
		"viewer":       app.user("viewer@example.com", db.RoleViewer, nil),
		"stagingAdmin": app.user("staging-admin@example.com", db.RoleViewer, map[string]string{db.EnvStaging: db.RoleAdmin}),
		"prodViewer":   app.user("prod-viewer@example.com", db.RoleAdmin, map[string]string{db.EnvProduction: db.RoleViewer}),
	}
	target := app.user("target@example.com", db.RoleViewer, nil)
	app.env("prod", db.EnvProduction)
	app.env("stage", db.EnvStaging)
	// Backups and restores: environments with a service, one real backup of each, and fresh complete rows to
	// delete.
	bapp.filesEnv("bprod", db.EnvProduction, "p")
	bapp.filesEnv("bstage", db.EnvStaging, "s")
	prodBackup, stageBackup := bapp.backup("bprod").ID, bapp.backup("bstage").ID
	freshBackup := func(env string) func() string {
		return func() string {
			b := &db.Backup{ID: backup.NewID(), Environment: env, Kind: db.BackupManual}
			complete := db.BackupComplete
			if err := app.cat.CreateBackup(ctx, b); err != nil {
				t.Fatal(err)
			}
			if _, err := app.cat.UpdateBackup(ctx, b.ID, db.BackupUpdate{Status: &complete}); err != nil {
				t.Fatal(err)
			}
			return b.ID
		}
	}
	// A finished activity: the cancel route checks the role first, then refuses (409) what is not running.
	doneActivity := func(env string) func() string {
		return func() string {
			a := &db.Activity{Type: jobs.TypeBackup, Environment: env, Actor: "test", Summary: "done"}
			if err := app.cat.CreateActivity(ctx, a); err != nil {
				t.Fatal(err)
			}
			return strconv.FormatInt(a.ID, 10)
		}
	}

	const (
		ok        = "ok"        // 303 to the resource (pages) or 2xx (API)
		forbidden = "forbidden" // 403
		login     = "login"     // 303 to /login (pages, anonymous)
		unauth    = "unauth"    // 401 (API without a valid token)
		refused   = "status 409"
	)
	// expect lists the outcome for anonymous, admin, contributor, viewer,
	// stagingAdmin, prodViewer, in that order.
	order := []string{"anonymous", "admin", "contributor", "viewer", "stagingAdmin", "prodViewer"}
	n := 0
	unique := func() string { n++; return "e" + strconv.Itoa(n) }

	pageRoutes := []struct {
		name   string
		path   func() string
		form   func() url.Values
		expect []string
	}{
		{"create staging environment", static("/environments"), func() url.Values { return url.Values{"name": {unique()}, "type": {"staging"}} },
			[]string{login, ok, forbidden, forbidden, ok, ok}},
		{"create production environment", static("/environments"), func() url.Values { return url.Values{"name": {unique()}, "type": {"production"}} },
			[]string{login, ok, forbidden, forbidden, forbidden, forbidden}},
		{"update staging environment", static("/environments/stage"), func() url.Values { return url.Values{"type": {"staging"}, "title": {unique()}} },
			[]string{login, ok, forbidden, forbidden, ok, ok}},
		{"update production environment", static("/environments/prod"), func() url.Values { return url.Values{"type": {"production"}, "title": {unique()}} },
			[]string{login, ok, forbidden, forbidden, forbidden, forbidden}},
		{"move staging environment to production", func() string { return "/environments/" + app.env(unique(), db.EnvStaging).Name },
			func() url.Values { return url.Values{"type": {"production"}} },
			[]string{login, ok, forbidden, forbidden, forbidden, forbidden}},
		{"deactivate staging environment", static("/environments/stage/deactivate"), none,
			[]string{login, ok, forbidden, forbidden, ok, ok}},
		{"activate staging environment", static("/environments/stage/activate"), none,
			[]string{login, ok, forbidden, forbidden, ok, ok}},
		{"deactivate production environment", static("/environments/prod/deactivate"), none,
			[]string{login, ok, forbidden, forbidden, forbidden, forbidden}},
		{"activate production environment", static("/environments/prod/activate"), none,
			[]string{login, ok, forbidden, forbidden, forbidden, forbidden}},
		{"add user", static("/users"), func() url.Values {
			return url.Values{"email": {unique() + "@example.com"}, "password": {testPassword}, "role": {"viewer"}}
		}, []string{login, ok, forbidden, forbidden, forbidden, ok}},
		{"update user", static(fmt.Sprintf("/users/%d", target.ID)), func() url.Values { return url.Values{"role": {"viewer"}, "override_staging": {"contributor"}} },
			[]string{login, ok, forbidden, forbidden, forbidden, ok}},
		{"create own API token", static("/tokens"), func() url.Values { return url.Values{"name": {unique()}} },
			[]string{login, ok, ok, ok, ok, ok}},
		{"revoke another user's token", func() string {
			_, tok, err := app.cat.CreateToken(ctx, target.ID, "victim")
			if err != nil {
				t.Fatal(err)
			}
			return fmt.Sprintf("/tokens/%d/revoke", tok.ID)
		}, none, []string{login, ok, forbidden, forbidden, forbidden, ok}},
		{"save project settings", static("/settings"), func() url.Values { return url.Values{"name": {unique()}, "timezone": {"UTC"}} },
			[]string{login, ok, forbidden, forbidden, forbidden, ok}},
		{"change the plan", static("/settings/plan"), func() url.Values { return url.Values{"tier": {"professional"}, "schedule": {"advanced"}} },
			[]string{login, ok, forbidden, forbidden, forbidden, ok}},
		{"back up staging environment", static("/environments/bstage/backups"), func() url.Values { return url.Values{"replace_oldest": {"true"}} },
			[]string{login, ok, forbidden, forbidden, ok, ok}},
		{"back up production environment", static("/environments/bprod/backups"), func() url.Values { return url.Values{"live": {"true"}, "replace_oldest": {"true"}} },
			[]string{login, ok, forbidden, forbidden, forbidden, forbidden}},
		{"restore staging backup", static("/backups/" + stageBackup + "/restore"), func() url.Values { return url.Values{"target": {"bstage"}, "confirm": {"bstage"}} },
			[]string{login, ok, forbidden, forbidden, ok, ok}},
		{"restore production backup", static("/backups/" + prodBackup + "/restore"), func() url.Values { return url.Values{"target": {"bprod"}, "confirm": {"bprod"}} },
			[]string{login, ok, forbidden, forbidden, forbidden, forbidden}},
		{"restore production backup into staging", static("/backups/" + prodBackup + "/restore"), func() url.Values { return url.Values{"target": {"bstage"}, "confirm": {"bstage"}} },
			[]string{login, ok, forbidden, forbidden, forbidden, forbidden}},
		{"restore one service of staging backup", static("/backups/" + stageBackup + "/restore"), func() url.Values {
			return url.Values{"target": {"bstage"}, "confirm": {"bstage"}, "service": {"uploads"}}
		}, []string{login, ok, forbidden, forbidden, ok, ok}},
		{"restore one service of production backup", static("/backups/" + prodBackup + "/restore"), func() url.Values {
			return url.Values{"target": {"bprod"}, "confirm": {"bprod"}, "service": {"uploads"}}
		}, []string{login, ok, forbidden, forbidden, forbidden, forbidden}},
		{"restore a path of production backup", static("/backups/" + prodBackup + "/restore"), func() url.Values {
			return url.Values{"target": {"bprod"}, "confirm": {"bprod"}, "service": {"uploads"}, "path": {"/"}}
		}, []string{login, ok, forbidden, forbidden, forbidden, forbidden}},
		{"delete staging backup", func() string { return "/backups/" + freshBackup("bstage")() + "/delete" }, none,
			[]string{login, ok, forbidden, forbidden, ok, ok}},
		{"delete production backup", func() string { return "/backups/" + freshBackup("bprod")() + "/delete" }, none,
			[]string{login, ok, forbidden, forbidden, forbidden, forbidden}},
		{"cancel staging activity", func() string { return "/activities/" + doneActivity("bstage")() + "/cancel" }, none,
			[]string{login, refused, forbidden, forbidden, refused, refused}},
		{"cancel production activity", func() string { return "/activities/" + doneActivity("bprod")() + "/cancel" }, none,
			[]string{login, refused, forbidden, forbidden, forbidden, forbidden}},
		{"test point-in-time prerequisites of staging", static("/environments/bstage/pitr/test"), none,
			[]string{login, ok, forbidden, forbidden, ok, ok}},
		{"test point-in-time prerequisites of production", static("/environments/bprod/pitr/test"), none,
			[]string{login, ok, forbidden, forbidden, forbidden, forbidden}},
		{"restore staging to a moment", static("/environments/bstage/restore-at"), func() url.Values {
			return url.Values{"at": {"2026-01-01T00:00:00"}, "confirm": {"bstage"}}
		}, []string{login, ok, forbidden, forbidden, ok, ok}},
		{"restore production to a moment", static("/environments/bprod/restore-at"), func() url.Values {
			return url.Values{"at": {"2026-01-01T00:00:00"}, "confirm": {"bprod"}}
		}, []string{login, ok, forbidden, forbidden, forbidden, forbidden}},
	}

	clients := map[string]*client{"anonymous": app.client()}
	for _, who := range order[1:] {
		clients[who] = app.client()
		clients[who].login(principals[who].Email)
	}
	for _, rt := range pageRoutes {
		for i, who := range order {
			t.Run(rt.name+"/"+who, func(t *testing.T) {
				path := rt.path()
				r := clients[who].post(path, rt.form())
				got := outcome(r)
				if want := rt.expect[i]; got != want {
					t.Fatalf("POST %s as %s: %s (status %d, Location %q), want %s\n%s", path, who, got, r.StatusCode, r.Header.Get("Location"), want, excerpt(r.body))
				}
			})
		}
	}

	// The same rules through the API, with a token of each principal; the
	// session cookie of a signed-in admin is never accepted there.
	tokens := map[string]string{"anonymous": ""}
	for _, who := range order[1:] {
		tokens[who] = app.token(principals[who])
	}
	apiRoutes := []struct {
		name   string
		method string
		path   func() string
		body   func() string
		expect []string
	}{
		{"list environments", http.MethodGet, static("/api/v1/environments"), noBody, []string{unauth, ok, ok, ok, ok, ok}},
		{"list activities", http.MethodGet, static("/api/v1/activities"), noBody, []string{unauth, ok, ok, ok, ok, ok}},
		{"get the plan", http.MethodGet, static("/api/v1/plan"), noBody, []string{unauth, ok, forbidden, forbidden, forbidden, ok}},
		{"change the plan", http.MethodPut, static("/api/v1/plan"), func() string { return `{"name":"` + unique() + `"}` },
			[]string{unauth, ok, forbidden, forbidden, forbidden, ok}},
		{"create staging environment", http.MethodPut, func() string { return "/api/v1/environments/" + unique() },
			jsonBody(`{"type":"staging"}`), []string{unauth, ok, forbidden, forbidden, ok, ok}},
		{"create production environment", http.MethodPut, func() string { return "/api/v1/environments/" + unique() },
			jsonBody(`{"type":"production"}`), []string{unauth, ok, forbidden, forbidden, forbidden, forbidden}},
		{"update staging environment", http.MethodPut, static("/api/v1/environments/stage"),
			func() string { return `{"type":"staging","title":"` + unique() + `"}` }, []string{unauth, ok, forbidden, forbidden, ok, ok}},
		{"update production environment", http.MethodPut, static("/api/v1/environments/prod"),
			func() string { return `{"type":"production","title":"` + unique() + `"}` }, []string{unauth, ok, forbidden, forbidden, forbidden, forbidden}},
		{"move staging environment to production", http.MethodPut, func() string { return "/api/v1/environments/" + app.env(unique(), db.EnvStaging).Name },
			jsonBody(`{"type":"production"}`), []string{unauth, ok, forbidden, forbidden, forbidden, forbidden}},
		{"list backups", http.MethodGet, static("/api/v1/environments/bprod/backups"), noBody, []string{unauth, ok, ok, ok, ok, ok}},
		{"get backup", http.MethodGet, static("/api/v1/backups/" + prodBackup), noBody, []string{unauth, ok, ok, ok, ok, ok}},
		{"back up staging environment", http.MethodPost, static("/api/v1/environments/bstage/backups"), jsonBody(`{"live":true,"replace_oldest":true}`),
			[]string{unauth, ok, forbidden, forbidden, ok, ok}},
		{"back up production environment", http.MethodPost, static("/api/v1/environments/bprod/backups"), jsonBody(`{"live":false,"replace_oldest":true}`),
			[]string{unauth, ok, forbidden, forbidden, forbidden, forbidden}},
		{"restore staging backup", http.MethodPost, static("/api/v1/backups/" + stageBackup + "/restore"), jsonBody(`{"confirm":"bstage"}`),
			[]string{unauth, ok, forbidden, forbidden, ok, ok}},
		{"restore production backup", http.MethodPost, static("/api/v1/backups/" + prodBackup + "/restore"), jsonBody(`{"confirm":"bprod"}`),
			[]string{unauth, ok, forbidden, forbidden, forbidden, forbidden}},
		{"restore production backup into staging", http.MethodPost, static("/api/v1/backups/" + prodBackup + "/restore"),
			jsonBody(`{"target":"bstage","confirm":"bstage"}`), []string{unauth, ok, forbidden, forbidden, forbidden, forbidden}},
		{"restore one service of staging backup", http.MethodPost, static("/api/v1/backups/" + stageBackup + "/restore"),
			jsonBody(`{"confirm":"bstage","services":["uploads"]}`), []string{unauth, ok, forbidden, forbidden, ok, ok}},
		{"restore one service of production backup", http.MethodPost, static("/api/v1/backups/" + prodBackup + "/restore"),
			jsonBody(`{"confirm":"bprod","services":["uploads"]}`), []string{unauth, ok, forbidden, forbidden, forbidden, forbidden}},
		{"restore a path of production backup into staging", http.MethodPost, static("/api/v1/backups/" + prodBackup + "/restore"),
			jsonBody(`{"target":"bstage","confirm":"bstage","services":["uploads"],"path":"/"}`), []string{unauth, ok, forbidden, forbidden, forbidden, forbidden}},
		{"browse production backup", http.MethodGet, static("/api/v1/backups/" + prodBackup + "/browse?service=uploads"), noBody,
			[]string{unauth, ok, ok, ok, ok, ok}},
		{"download staging backup", http.MethodGet, static("/api/v1/backups/" + stageBackup + "/download"), noBody,
			[]string{unauth, ok, forbidden, forbidden, ok, ok}},
		{"download production backup", http.MethodGet, static("/api/v1/backups/" + prodBackup + "/download"), noBody,
			[]string{unauth, ok, forbidden, forbidden, forbidden, forbidden}},
		{"delete staging backup", http.MethodDelete, func() string { return "/api/v1/backups/" + freshBackup("bstage")() }, noBody,
			[]string{unauth, ok, forbidden, forbidden, ok, ok}},
		{"delete production backup", http.MethodDelete, func() string { return "/api/v1/backups/" + freshBackup("bprod")() }, noBody,
			[]string{unauth, ok, forbidden, forbidden, forbidden, forbidden}},
		{"cancel staging activity", http.MethodPost, func() string { return "/api/v1/activities/" + doneActivity("bstage")() + "/cancel" }, noBody,
			[]string{unauth, refused, forbidden, forbidden, refused, refused}},
		{"cancel production activity", http.MethodPost, func() string { return "/api/v1/activities/" + doneActivity("bprod")() + "/cancel" }, noBody,
			[]string{unauth, refused, forbidden, forbidden, forbidden, forbidden}},
		// Restores to a moment: the role is checked first, then these environments (files only) are refused.
		{"plan a restore of production to a moment", http.MethodGet, static("/api/v1/environments/bprod/restore?at=2026-01-01T00:00:00Z"), noBody,
			[]string{unauth, refused, refused, refused, refused, refused}},
		{"restore staging to a moment", http.MethodPost, static("/api/v1/environments/bstage/restore"),
			jsonBody(`{"at":"2026-01-01T00:00:00Z","confirm":"bstage"}`), []string{unauth, refused, forbidden, forbidden, refused, refused}},
		{"restore production to a moment", http.MethodPost, static("/api/v1/environments/bprod/restore"),
			jsonBody(`{"at":"2026-01-01T00:00:00Z","confirm":"bprod"}`), []string{unauth, refused, forbidden, forbidden, forbidden, forbidden}},
		{"restore production to a moment into staging", http.MethodPost, static("/api/v1/environments/bprod/restore"),
			jsonBody(`{"at":"2026-01-01T00:00:00Z","target":"bstage","confirm":"bstage"}`), []string{unauth, refused, forbidden, forbidden, forbidden, forbidden}},
		{"metrics", http.MethodGet, static("/metrics"), noBody, []string{unauth, ok, ok, ok, ok, ok}},
	}
	for _, rt := range apiRoutes {
		for i, who := range order {
			t.Run("api "+rt.name+"/"+who, func(t *testing.T) {
				path := rt.path()
				r := app.api(rt.method, path, tokens[who], rt.body())
				if got, want := outcome(r), rt.expect[i]; got != want {
					t.Fatalf("%s %s with %s's token: %s (status %d), want %s\n%s", rt.method, path, who, got, r.StatusCode, want, excerpt(r.body))
				}
				if r.StatusCode >= 400 && !strings.Contains(r.body, `"error":{"code":`) {
					t.Fatalf("API error is not the JSON error shape: %s", r.body)
				}
			})
		}
	}

	t.Run("api ignores session cookies", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPut, app.srv.URL+"/api/v1/environments/cookie", strings.NewReader(`{"type":"staging"}`))
		req.Header.Set("X-CSRF-Token", clients["admin"].csrf)
		r := clients["admin"].do(req)
		if got, want := r.StatusCode, http.StatusUnauthorized; got != want {
			t.Fatalf("API request with the admin's session cookie and no token: %d, want %d", got, want)
		}
	})
}

func static(p string) func() string { return func() string { return p } }
func none() url.Values              { return url.Values{} }
func noBody() string                { return "" }
func jsonBody(s string) func() string {
	return func() string { return s }
}

func outcome(r *response) string {
	switch {
	case r.StatusCode == http.StatusSeeOther && strings.HasPrefix(r.Header.Get("Location"), "/login"):
		return "login"
	case r.StatusCode == http.StatusSeeOther, r.StatusCode >= 200 && r.StatusCode < 300:
		return "ok"
	case r.StatusCode == http.StatusForbidden:
		return "forbidden"
	case r.StatusCode == http.StatusUnauthorized:
		return "unauth"
	}
	return fmt.Sprintf("status %d", r.StatusCode)
}

func excerpt(s string) string {
	if len(s) > 600 {
		return s[:600] + "…"
	}
	return s
}

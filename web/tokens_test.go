package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/rewind/rewind/db"
)

func TestTokenLifecycle(t *testing.T) {
	app := newTestApp(t)
	app.user("vic@example.com", db.RoleViewer, nil)
	c := app.client()
	c.login("vic@example.com")

	r := c.post("/tokens", url.Values{"name": {"laptop"}})
	if got, want := r.StatusCode, http.StatusCreated; got != want {
		t.Fatalf("create token: %d, want %d", got, want)
	}
	secret := strings.TrimSpace(r.doc(t).Find(testid("token-secret")).Text())
	if !strings.HasPrefix(secret, db.TokenPrefix) {
		t.Fatalf("token secret %q", secret)
	}
	if r.Header.Get("Cache-Control") != "no-store" {
		t.Error("the page showing a secret may be cached")
	}

	list := c.get("/tokens")
	if strings.Contains(list.body, secret) {
		t.Fatal("the token is shown again")
	}
	if got, want := strings.TrimSpace(list.doc(t).Find(testid("token-last-used")).Text()), "never"; got != want {
		t.Fatalf("last used = %q, want %q", got, want)
	}

	// A viewer's token reads, and is refused changes like the viewer is.
	if got, want := app.api(http.MethodGet, "/api/v1/environments", secret, "").StatusCode, http.StatusOK; got != want {
		t.Fatalf("GET with the token: %d, want %d", got, want)
	}
	if got, want := app.api(http.MethodPut, "/api/v1/environments/x", secret, `{"type":"development"}`).StatusCode, http.StatusForbidden; got != want {
		t.Fatalf("viewer token PUT: %d, want %d", got, want)
	}
	if got := strings.TrimSpace(c.get("/tokens").doc(t).Find(testid("token-last-used")).Text()); got == "never" {
		t.Fatal("last used not recorded")
	}

	revoke, ok := c.get("/tokens").doc(t).Find(testid("revoke-token")).Closest("form").Attr("action")
	if !ok {
		t.Fatal("no revoke form")
	}
	if r := c.post(revoke, nil); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoke: %d", r.StatusCode)
	}
	r = app.api(http.MethodGet, "/api/v1/environments", secret, "")
	if got, want := r.StatusCode, http.StatusUnauthorized; got != want {
		t.Fatalf("revoked token: %d, want %d", got, want)
	}
	if !strings.Contains(r.body, `"code":"unauthorized"`) {
		t.Fatalf("revoked token body: %s", r.body)
	}
	acts, _, err := app.cat.FindActivities(context.Background(), db.ActivityFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, a := range acts {
		types = append(types, a.Type)
	}
	if got, want := strings.Join(types, ","), "token.revoke,token.create"; got != want {
		t.Fatalf("activities = %s, want %s", got, want)
	}
}

func TestUsersPage(t *testing.T) {
	app := newTestApp(t)
	me := app.user("ada@example.com", db.RoleAdmin, nil)
	c := app.client()
	c.login("ada@example.com")

	r := c.post("/users", url.Values{"email": {"nope"}, "password": {"short"}, "role": {"viewer"}})
	if got, want := r.StatusCode, http.StatusUnprocessableEntity; got != want {
		t.Fatalf("invalid user: %d, want %d", got, want)
	}
	doc := r.doc(t)
	if doc.Find(testid("error-email")).Length() != 1 || doc.Find(testid("error-password")).Length() != 1 {
		t.Fatalf("errors not beside the fields: %s", excerpt(r.body))
	}
	if got, _ := doc.Find(`form[data-testid="add-user-form"] input[name="email"]`).Attr("value"); got != "nope" {
		t.Fatalf("email kept = %q", got)
	}

	if r := c.post("/users", url.Values{"email": {"bob@example.com"}, "password": {testPassword}, "role": {"contributor"}}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("add user: %d\n%s", r.StatusCode, excerpt(r.body))
	}
	bob, err := app.cat.FindUserByEmail(context.Background(), "bob@example.com")
	if err != nil {
		t.Fatal(err)
	}
	r = c.post("/users/"+itoa(bob.ID), url.Values{"role": {"viewer"}, "override_staging": {"admin"}, "disabled": {"on"}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("update user: %d\n%s", r.StatusCode, excerpt(r.body))
	}
	bob, _ = app.cat.FindUserByID(context.Background(), bob.ID)
	if bob.Role != "viewer" || bob.RoleOverrides["staging"] != "admin" || !bob.Disabled {
		t.Fatalf("bob = %+v", bob)
	}

	// An admin cannot lock themselves out.
	r = c.post("/users/"+itoa(me.ID), url.Values{"role": {"viewer"}})
	if got, want := r.StatusCode, http.StatusUnprocessableEntity; got != want {
		t.Fatalf("self-demotion: %d, want %d", got, want)
	}
	if got := r.doc(t).Find(testid("user-error")).Text(); !strings.Contains(got, "your own admin role") {
		t.Fatalf("self-demotion error = %q", got)
	}
}

func itoa(i int64) string { return strconv.FormatInt(i, 10) }

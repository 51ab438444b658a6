package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/web"
)

func TestHealthz(t *testing.T) {
	app := newTestApp(t)
	r := app.client().get("/healthz")
	if got, want := r.StatusCode, http.StatusOK; got != want {
		t.Fatalf("GET /healthz = %d, want %d", got, want)
	}
	if !strings.Contains(r.body, `"ok"`) {
		t.Fatalf("GET /healthz body = %q", r.body)
	}
}

func TestLoginLogout(t *testing.T) {
	app := newTestApp(t)
	app.user("ada@example.com", db.RoleAdmin, nil)
	c := app.client()

	r := c.get("/environments")
	if got, want := r.StatusCode, http.StatusSeeOther; got != want {
		t.Fatalf("anonymous GET /environments = %d, want %d", got, want)
	}
	if got, want := r.Header.Get("Location"), "/login?next=%2Fenvironments"; got != want {
		t.Fatalf("redirect = %q, want %q", got, want)
	}

	r = c.post("/login", url.Values{"email": {"ada@example.com"}, "password": {"wrong password"}})
	if got, want := r.StatusCode, http.StatusUnauthorized; got != want {
		t.Fatalf("wrong password: status %d, want %d", got, want)
	}
	doc := r.doc(t)
	if got := doc.Find(testid("login-error")).Text(); !strings.Contains(got, "Wrong email or password") {
		t.Fatalf("login error = %q", got)
	}
	if got, _ := doc.Find(`input[name="email"]`).Attr("value"); got != "ada@example.com" {
		t.Fatalf("email kept = %q", got)
	}

	r = c.post("/login", url.Values{"email": {"ada@example.com"}, "password": {testPassword}, "next": {"/activities"}})
	if got, want := r.StatusCode, http.StatusSeeOther; got != want {
		t.Fatalf("login: status %d, want %d: %s", got, want, r.body)
	}
	if got, want := r.Header.Get("Location"), "/activities"; got != want {
		t.Fatalf("login redirect = %q, want %q", got, want)
	}
	cookie := r.Header.Get("Set-Cookie")
	for _, attr := range []string{"HttpOnly", "SameSite=Lax"} {
		if !strings.Contains(cookie, attr) {
			t.Errorf("session cookie %q lacks %s", cookie, attr)
		}
	}
	if strings.Contains(cookie, "Secure") {
		t.Errorf("session cookie %q is Secure over plain HTTP without --secure-cookies", cookie)
	}

	r = c.get("/environments")
	if got, want := r.StatusCode, http.StatusOK; got != want {
		t.Fatalf("GET /environments = %d, want %d", got, want)
	}
	if got, want := r.doc(t).Find(testid("current-user")).Text(), "ada@example.com"; got != want {
		t.Fatalf("current user = %q, want %q", got, want)
	}

	r = c.post("/logout", nil)
	if got, want := r.StatusCode, http.StatusSeeOther; got != want {
		t.Fatalf("logout: status %d, want %d", got, want)
	}
	r = c.get("/environments")
	if got, want := r.StatusCode, http.StatusSeeOther; got != want {
		t.Fatalf("GET /environments after logout = %d, want %d", got, want)
	}
}

func TestOpenRedirectRefused(t *testing.T) {
	app := newTestApp(t)
	app.user("ada@example.com", db.RoleAdmin, nil)
	c := app.client()
	r := c.post("/login", url.Values{"email": {"ada@example.com"}, "password": {testPassword}, "next": {"//evil.example/x"}})
	if got, want := r.Header.Get("Location"), "/environments"; got != want {
		t.Fatalf("redirect after login with next=//evil = %q, want %q", got, want)
	}
}

func TestSecureCookies(t *testing.T) {
	app := newTestApp(t)
	app.user("ada@example.com", db.RoleAdmin, nil)
	_ = app
	cat := app.cat
	s, err := web.NewServer(web.Config{Catalog: cat, SessionKey: []byte("k"), SecureCookies: true})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, "/login", nil)
	w := &recorder{header: http.Header{}}
	s.ServeHTTP(w, req)
	if c := w.header.Get("Set-Cookie"); !strings.Contains(c, "Secure") {
		t.Fatalf("with SecureCookies the cookie %q is not Secure", c)
	}
}

type recorder struct {
	header http.Header
	status int
	body   strings.Builder
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(s int)           { r.status = s }

func TestDisabledUserIsSignedOut(t *testing.T) {
	app := newTestApp(t)
	u := app.user("bob@example.com", db.RoleViewer, nil)
	c := app.client()
	c.login("bob@example.com")
	disabled := true
	if _, err := app.cat.UpdateUser(context.Background(), u.ID, db.UserUpdate{Disabled: &disabled}); err != nil {
		t.Fatal(err)
	}
	if got, want := c.get("/environments").StatusCode, http.StatusSeeOther; got != want {
		t.Fatalf("disabled user's GET /environments = %d, want %d (to sign in)", got, want)
	}
	r := c.post("/login", url.Values{"email": {"bob@example.com"}, "password": {testPassword}})
	if got, want := r.StatusCode, http.StatusUnauthorized; got != want {
		t.Fatalf("disabled user's login = %d, want %d", got, want)
	}
}

func TestLoginRateLimitPerAccount(t *testing.T) {
	app := newTestApp(t)
	app.user("ada@example.com", db.RoleAdmin, nil)
	c := app.client()
	limit := web.DefaultLoginLimits().AccountBurst
	for i := range limit {
		r := c.post("/login", url.Values{"email": {"ada@example.com"}, "password": {"guess"}})
		if got, want := r.StatusCode, http.StatusUnauthorized; got != want {
			t.Fatalf("attempt %d: status %d, want %d", i+1, got, want)
		}
	}
	// Even the right password is refused now, and another client address
	// cannot help (the account's bucket is empty).
	r := c.post("/login", url.Values{"email": {"ADA@example.com"}, "password": {testPassword}})
	if got, want := r.StatusCode, http.StatusTooManyRequests; got != want {
		t.Fatalf("attempt %d: status %d, want %d", limit+1, got, want)
	}
	if r.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	if !strings.Contains(r.body, "Too many sign-in attempts") {
		t.Errorf("429 page does not say why: %s", r.body)
	}
	// Other accounts are not locked out by it.
	app.user("bob@example.com", db.RoleViewer, nil)
	c.login("bob@example.com")
}

func TestLoginRateLimitPerIP(t *testing.T) {
	app := newTestApp(t, web.LoginLimits{PerIP: rate.Every(time.Minute), IPBurst: 3, PerAccount: rate.Every(time.Second), AccountBurst: 100, MaxKeys: 10})
	c := app.client()
	for i := range 3 {
		r := c.post("/login", url.Values{"email": {"user" + string(rune('a'+i)) + "@example.com"}, "password": {"x"}})
		if got, want := r.StatusCode, http.StatusUnauthorized; got != want {
			t.Fatalf("attempt %d: status %d, want %d", i+1, got, want)
		}
	}
	r := c.post("/login", url.Values{"email": {"new@example.com"}, "password": {"x"}})
	if got, want := r.StatusCode, http.StatusTooManyRequests; got != want {
		t.Fatalf("attempt 4 from the same address: status %d, want %d", got, want)
	}
}

func TestCSRF(t *testing.T) {
	app := newTestApp(t)
	app.user("ada@example.com", db.RoleAdmin, nil)
	c := app.client()

	// The login form itself is protected.
	c.get("/login")
	r := c.postRaw("/login", url.Values{"email": {"ada@example.com"}, "password": {testPassword}})
	if got, want := r.StatusCode, http.StatusForbidden; got != want {
		t.Fatalf("login without CSRF token: %d, want %d", got, want)
	}
	c.login("ada@example.com")

	form := url.Values{"name": {"csrf"}, "type": {"staging"}}
	r = c.postRaw("/environments", form)
	if got, want := r.StatusCode, http.StatusForbidden; got != want {
		t.Fatalf("POST without CSRF token: %d, want %d", got, want)
	}
	if !strings.Contains(r.body, "expired") {
		t.Fatalf("403 page does not explain: %s", r.body)
	}
	form.Set("_csrf", "not-the-token")
	if got, want := c.postRaw("/environments", form).StatusCode, http.StatusForbidden; got != want {
		t.Fatalf("POST with a wrong CSRF token: %d, want %d", got, want)
	}
	if _, err := app.cat.FindEnvironmentByName(context.Background(), "csrf"); err == nil {
		t.Fatal("environment saved despite the CSRF failure")
	}

	// HTMX sends the token in a header (hx-headers on <body>).
	doc := c.get("/environments").doc(t)
	hx, _ := doc.Find("body").Attr("hx-headers")
	if !strings.Contains(hx, c.csrf) {
		t.Fatalf("body hx-headers %q lacks the CSRF token", hx)
	}
	req, _ := http.NewRequest(http.MethodPost, app.srv.URL+"/environments", strings.NewReader(url.Values{"name": {"csrf"}, "type": {"staging"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-CSRF-Token", c.csrf)
	req.Header.Set("HX-Request", "true")
	r = c.do(req)
	if got, want := r.StatusCode, http.StatusNoContent; got != want {
		t.Fatalf("HTMX POST with X-CSRF-Token: %d, want %d: %s", got, want, r.body)
	}
	if got, want := r.Header.Get("HX-Redirect"), "/environments/csrf"; got != want {
		t.Fatalf("HX-Redirect = %q, want %q", got, want)
	}

	// Logout needs the token too, so another site cannot sign users out.
	if got, want := c.postRaw("/logout", nil).StatusCode, http.StatusForbidden; got != want {
		t.Fatalf("logout without CSRF token: %d, want %d", got, want)
	}
}

func TestSetupLink(t *testing.T) {
	app := newTestApp(t)
	ctx := context.Background()
	secret, err := app.cat.CreateSetupToken(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c := app.client()
	if got, want := c.get("/setup?token=rws_wrong").StatusCode, http.StatusNotFound; got != want {
		t.Fatalf("setup with a wrong token: %d, want %d", got, want)
	}
	r := c.get("/setup?token=" + url.QueryEscape(secret))
	if got, want := r.StatusCode, http.StatusOK; got != want {
		t.Fatalf("GET setup: %d, want %d", got, want)
	}
	r = c.post("/setup", url.Values{"token": {secret}, "email": {"not-an-email"}, "password": {"x"}})
	if got, want := r.StatusCode, http.StatusUnprocessableEntity; got != want {
		t.Fatalf("setup with bad input: %d, want %d", got, want)
	}
	doc := r.doc(t)
	if doc.Find(testid("error-email")).Length() == 0 || doc.Find(testid("error-password")).Length() == 0 {
		t.Fatalf("setup errors not beside the fields: %s", r.body)
	}
	r = c.post("/setup", url.Values{"token": {secret}, "email": {"root@example.com"}, "password": {testPassword}})
	if got, want := r.StatusCode, http.StatusSeeOther; got != want {
		t.Fatalf("setup: %d, want %d: %s", got, want, r.body)
	}
	r = c.get("/users")
	if got, want := r.StatusCode, http.StatusOK; got != want {
		t.Fatalf("the new admin's GET /users: %d, want %d", got, want)
	}
	if got, want := c.get("/setup?token="+url.QueryEscape(secret)).StatusCode, http.StatusNotFound; got != want {
		t.Fatalf("second use of the setup link: %d, want %d", got, want)
	}
}

package web_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/web"
)

const testPassword = "correct horse battery"

// testApp is the real router over a real SQLite catalog in a temp dir.
type testApp struct {
	t   *testing.T
	cat *db.DB
	srv *httptest.Server
}

func newTestApp(t *testing.T, limits ...web.LoginLimits) *testApp {
	t.Helper()
	return newTestAppWith(t, func(cfg *web.Config) {
		if len(limits) > 0 {
			cfg.LoginLimits = limits[0]
		}
	})
}

// newTestAppWith is newTestApp with a hook to complete the server's config
// (the catalog is already in it).
func newTestAppWith(t *testing.T, configure func(cfg *web.Config)) *testApp {
	t.Helper()
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i + 1)
	}
	cat, err := db.Open(context.Background(), filepath.Join(t.TempDir(), "rewind.db"), key)
	if err != nil {
		t.Fatal(err)
	}
	cfg := web.Config{Catalog: cat, SessionKey: []byte("0123456789abcdef0123456789abcdef"), Logger: slog.New(slog.DiscardHandler)}
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	}
	configure(&cfg)
	s, err := web.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(func() {
		srv.Close()
		cat.Close()
	})
	return &testApp{t: t, cat: cat, srv: srv}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// user creates a user with the role and per-type overrides.
func (a *testApp) user(email, role string, overrides map[string]string) *db.User {
	a.t.Helper()
	ctx := context.Background()
	u, err := a.cat.CreateUser(ctx, email, testPassword, role)
	if err != nil {
		a.t.Fatalf("create user %s: %v", email, err)
	}
	if overrides != nil {
		if u, err = a.cat.UpdateUser(ctx, u.ID, db.UserUpdate{RoleOverrides: &overrides}); err != nil {
			a.t.Fatal(err)
		}
	}
	return u
}

func (a *testApp) env(name, typ string, services ...db.Service) *db.Environment {
	a.t.Helper()
	e := &db.Environment{Name: name, Type: typ, Services: services}
	if err := a.cat.CreateEnvironment(context.Background(), e); err != nil {
		a.t.Fatalf("create environment %s: %v", name, err)
	}
	return e
}

func (a *testApp) token(u *db.User) string {
	a.t.Helper()
	secret, _, err := a.cat.CreateToken(context.Background(), u.ID, "test")
	if err != nil {
		a.t.Fatal(err)
	}
	return secret
}

// client is a browser: a cookie jar, no automatic redirects, and the CSRF
// token read from the last form it saw.
type client struct {
	t    *testing.T
	app  *testApp
	http *http.Client
	csrf string
}

func (a *testApp) client() *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: a.t, app: a, http: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

type response struct {
	*http.Response
	body string
}

func (r *response) doc(t *testing.T) *goquery.Document {
	t.Helper()
	d, err := goquery.NewDocumentFromReader(strings.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (r *response) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(r.body), v); err != nil {
		t.Fatalf("decode %q: %v", r.body, err)
	}
}

func (c *client) do(req *http.Request) *response {
	c.t.Helper()
	res, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	r := &response{Response: res, body: string(b)}
	if strings.Contains(res.Header.Get("Content-Type"), "text/html") {
		if tok, ok := r.doc(c.t).Find(`input[name="_csrf"]`).First().Attr("value"); ok {
			c.csrf = tok
		}
	}
	return r
}

func (c *client) get(path string, header ...string) *response {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.app.srv.URL+path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return c.do(req)
}

// post sends a form with the CSRF token of the last page (fetching one first).
func (c *client) post(path string, form url.Values) *response {
	c.t.Helper()
	if c.csrf == "" {
		c.refreshCSRF()
	}
	f := url.Values{}
	for k, v := range form {
		f[k] = v
	}
	if _, ok := f["_csrf"]; !ok {
		f.Set("_csrf", c.csrf)
	}
	return c.postRaw(path, f)
}

func (c *client) postRaw(path string, form url.Values) *response {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.app.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.do(req)
}

func (c *client) refreshCSRF() {
	c.t.Helper()
	r := c.get("/login")
	if r.StatusCode == http.StatusSeeOther { // signed in
		c.get("/tokens")
	}
	if c.csrf == "" {
		c.t.Fatal("no CSRF token found in the pages")
	}
}

// login signs in through the form and fails the test unless it works.
func (c *client) login(email string) {
	c.t.Helper()
	r := c.post("/login", url.Values{"email": {email}, "password": {testPassword}})
	if r.StatusCode != http.StatusSeeOther {
		c.t.Fatalf("login %s: status %d: %s", email, r.StatusCode, r.body)
	}
	c.csrf = ""
	c.refreshCSRF()
}

// api sends a JSON API request with an optional bearer token.
func (a *testApp) api(method, path, token, body string) *response {
	a.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, a.srv.URL+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	c := a.client()
	return c.do(req)
}

func testid(id string) string { return `[data-testid="` + id + `"]` }

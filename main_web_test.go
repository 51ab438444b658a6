package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"github.com/rewind/rewind/db"
)

// bootMain runs a Main on 127.0.0.1:0 in a temp data directory.
func bootMain(t *testing.T, env map[string]string) (*Main, *bytes.Buffer) {
	t.Helper()
	var console bytes.Buffer
	m := NewMain()
	m.DataDir, m.Addr = t.TempDir(), "127.0.0.1:0"
	m.Console, m.Logger = &console, slog.New(slog.DiscardHandler)
	m.Getenv = func(k string) string { return env[k] }
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	return m, &console
}

// runCommand runs the command line's verb in-process with args and stdin and returns what it printed on
// stdout and stderr.
func runCommand(t *testing.T, verb, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := newRootCommand()
	cmd.SetArgs(append([]string{verb}, args...))
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err = cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

// openTestCatalog opens the catalog of dataDir as rewind serve does; the test closes it.
func openTestCatalog(t *testing.T, dataDir string) *db.DB {
	t.Helper()
	c, _, err := db.OpenDataDir(context.Background(), dataDir)
	if err != nil {
		t.Fatalf("OpenDataDir() = %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// signIn posts the sign-in form with the CSRF token read from it.
func signIn(t *testing.T, base, email, password string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	res, err := c.Get(base + "/login")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := goquery.NewDocumentFromReader(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	token, _ := doc.Find(`input[name="_csrf"]`).Attr("value")
	res, err = c.PostForm(base+"/login", url.Values{"_csrf": {token}, "email": {email}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Request.URL.Path != "/environments" {
		t.Fatalf("sign in as %s: %d at %s\n%s", email, res.StatusCode, res.Request.URL, body)
	}
	return c
}

func TestMainAdminFromEnvironment(t *testing.T) {
	m, console := bootMain(t, map[string]string{"REWIND_ADMIN_EMAIL": "ops@example.com", "REWIND_ADMIN_PASSWORD": "long enough password"})
	res, err := http.Get(m.URL() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if got, want := res.StatusCode, http.StatusOK; got != want {
		t.Fatalf("healthz = %d, want %d", got, want)
	}
	if strings.Contains(console.String(), "/setup?token=") {
		t.Fatal("a setup link was printed although the admin came from the environment")
	}
	signIn(t, m.URL(), "ops@example.com", "long enough password")
}

func TestMainSetupLink(t *testing.T) {
	m, console := bootMain(t, nil)
	link := regexp.MustCompile(`http://\S+/setup\?token=\S+`).FindString(console.String())
	if link == "" {
		t.Fatalf("no setup link on the console:\n%s", console)
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	res, err := c.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := goquery.NewDocumentFromReader(res.Body)
	res.Body.Close()
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", link, res.StatusCode, err)
	}
	csrf, _ := doc.Find(`input[name="_csrf"]`).Attr("value")
	token, _ := doc.Find(`input[name="token"]`).Attr("value")
	res, err = c.PostForm(m.URL()+"/setup", url.Values{"_csrf": {csrf}, "token": {token}, "email": {"first@example.com"}, "password": {"first admin password"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Request.URL.Path != "/environments" {
		t.Fatalf("setup: %d at %s", res.StatusCode, res.Request.URL)
	}
}

func TestMainDemo(t *testing.T) {
	var console bytes.Buffer
	m := NewMain()
	m.DataDir, m.Addr, m.Demo = t.TempDir(), "127.0.0.1:0", true
	m.Console, m.Logger, m.Getenv = &console, slog.New(slog.DiscardHandler), func(string) string { return "" }
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	creds := regexp.MustCompile(`sign in as (\S+) with password (\S+)`).FindStringSubmatch(console.String())
	if creds == nil {
		t.Fatalf("no demo credentials on the console:\n%s", console.String())
	}
	c := signIn(t, m.URL(), creds[1], creds[2])
	res, err := c.Get(m.URL() + "/environments")
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := goquery.NewDocumentFromReader(res.Body)
	res.Body.Close()
	var envs []string
	doc.Find(`[data-testid="environment-row"]`).Each(func(_ int, s *goquery.Selection) { envs = append(envs, s.AttrOr("data-env", "")) })
	if got, want := strings.Join(envs, ","), "main,staging"; got != want {
		t.Fatalf("demo environments = %s, want %s", got, want)
	}
}

package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/handlers"
)

// designExample is rewind.yaml as DESIGN.md shows it, with the staging
// services filled in.
const designExample = `environments:
  - name: main
    type: production
    git_dir: /srv/app
    gate: {listen: "127.0.0.1:8081", upstream: "http://127.0.0.1:3000"}
    hooks: {pre_pause: "", post_pause: "", post_restore: ""}
    services:
      - {name: db, type: postgresql, url: "postgres://app:secret@127.0.0.1:5432/app"}
      - {name: shop, type: mysql, url: "mysql://root:@127.0.0.1:3306/shop"}
      - {name: cache, type: redis, url: "redis://127.0.0.1:6379/0"}
      - {name: local, type: sqlite, path: /srv/app/data/app.db}
      - {name: uploads, type: files, path: /srv/app/uploads, exclude: ["cache/", "*.tmp"]}
  - {name: staging, type: staging, parent: main, services: [{name: local, type: sqlite, path: /srv/staging/app.db}]}
`

func TestParseConfig_DesignExample(t *testing.T) {
	cfg, err := parseConfig("rewind.yaml", []byte(designExample))
	if err != nil {
		t.Fatalf("parseConfig() = %v", err)
	}
	if got, want := len(cfg.Environments), 2; got != want {
		t.Fatalf("len(Environments) = %d, want %d", got, want)
	}
	main := cfg.Environments[0]
	if main.Gate.Listen != "127.0.0.1:8081" || main.GitDir != "/srv/app" || len(main.Services) != 5 {
		t.Fatalf("main = %+v", main)
	}
	if got, want := strings.Join(main.Services[4].Exclude, ","), "cache/,*.tmp"; got != want {
		t.Fatalf("exclude = %q, want %q", got, want)
	}
	if got := cfg.Environments[1].Parent; got != "main" {
		t.Fatalf("staging parent = %q, want main", got)
	}
	if err := validateConfig(cfg, nil); err != nil {
		t.Fatalf("validateConfig() = %v", err)
	}
	// As printed in DESIGN.md, with "[...]" for staging's services: an error, located.
	raw := strings.Replace(designExample, "[{name: local, type: sqlite, path: /srv/staging/app.db}]", "[...]", 1)
	_, err = parseConfig("rewind.yaml", []byte(raw))
	if err == nil || !strings.Contains(err.Error(), "rewind.yaml:13:") || !strings.Contains(err.Error(), "environments[1].services[0]") {
		t.Fatalf("parseConfig([...]) = %v, want an error at line 13 naming environments[1].services[0]", err)
	}
}

func TestParseConfig_Drill(t *testing.T) {
	cfg, err := parseConfig("rewind.yaml", []byte("environments:\n  - name: main\n    type: production\n    drill: {schedule: weekly, smoke: \"curl -fs $REWIND_DRILL_DB_URL\"}\n"))
	if err != nil {
		t.Fatalf("parseConfig() = %v", err)
	}
	if got, want := cfg.Environments[0].Drill, (db.DrillSettings{Schedule: "weekly", Smoke: "curl -fs $REWIND_DRILL_DB_URL"}); got != want {
		t.Fatalf("drill = %+v, want %+v", got, want)
	}
}

func TestParseConfig_PITR(t *testing.T) {
	cfg, err := parseConfig("rewind.yaml", []byte("environments:\n  - name: main\n    type: production\n    pitr: {enabled: true, window_days: 14}\n"))
	if err != nil {
		t.Fatalf("parseConfig() = %v", err)
	}
	if got := cfg.Environments[0].PITR; got == nil || *got != (db.PITR{Enabled: true, WindowDays: 14}) {
		t.Fatalf("pitr = %+v, want enabled for 14 days", got)
	}
	if cfg, err = parseConfig("rewind.yaml", []byte("environments:\n  - name: main\n    type: production\n")); err != nil || cfg.Environments[0].PITR != nil {
		t.Fatalf("without pitr: %+v, %v, want it left out (the stored setting is kept)", cfg.Environments[0].PITR, err)
	}
	if _, err := parseConfig("rewind.yaml", []byte("environments:\n  - name: main\n    type: production\n    pitr: {enabled: true, window: 14}\n")); err == nil ||
		!strings.Contains(err.Error(), "environments[0].pitr.window: unknown field") {
		t.Fatalf("pitr.window = %v, want an unknown field error", err)
	}
}

func TestParseConfig_Errors(t *testing.T) {
	for _, tt := range []struct {
		name, yaml string
		want       []string
	}{
		{"syntax", "environments:\n  - name: main\n   type: production\n", []string{"rewind.yaml:3: "}},
		{"tab indentation", "environments:\n\t- name: main\n", []string{"rewind.yaml:2: ", "tab"}},
		{"empty", "", []string{"rewind.yaml: file is empty"}},
		{"comment only", "# nothing\n", []string{"file is empty"}},
		{"no environments", "environments: []\n", []string{"rewind.yaml:1:15: environments: no environments"}},
		{"top-level list", "- name: main\n", []string{"rewind.yaml:1:1: the file must be a mapping of environments"}},
		{"unknown top-level", "environment:\n  - name: main\n", []string{"rewind.yaml:1:1: environment: unknown field \"environment\" (did you mean \"environments\"?)"}},
		{"unknown env field", "environments:\n  - name: main\n    typ: production\n", []string{"rewind.yaml:3:5: environments[0].typ: unknown field \"typ\" (did you mean \"type\"?)", "known fields: name, title"}},
		{"unknown service field", "environments:\n  - name: main\n    type: production\n    services:\n      - {name: db, type: postgresql, ulr: \"postgres://h/d\"}\n", []string{"rewind.yaml:5:38: environments[0].services[0].ulr: unknown field \"ulr\" (did you mean \"url\"?)"}},
		{"unknown gate field", "environments:\n  - name: main\n    type: production\n    gate: {listen: \"127.0.0.1:1\", upstrem: \"http://x\"}\n", []string{"rewind.yaml:4:35: environments[0].gate.upstrem: unknown field"}},
		{"unknown drill field", "environments:\n  - name: main\n    type: production\n    drill: {schedule: weekly, smok: \"true\"}\n", []string{"rewind.yaml:4:31: environments[0].drill.smok: unknown field \"smok\" (did you mean \"smoke\"?)"}},
		{"services not a list", "environments:\n  - name: main\n    type: production\n    services: db\n", []string{"rewind.yaml:4:15: environments[0].services: must be a list"}},
		{"name is a list", "environments:\n  - name: [a, b]\n    type: production\n", []string{"rewind.yaml:2:11: environments[0].name: must be a single value, not a list"}},
		{"exclude not a list", "environments:\n  - name: m\n    type: production\n    services:\n      - {name: f, type: files, path: /x, exclude: \"*.tmp\"}\n", []string{"environments[0].services[0].exclude: must be a list"}},
		{"repeated key", "environments:\n  - name: main\n    type: production\n    name: other\n", []string{"rewind.yaml:4:5: environments[0].name: field \"name\" is given twice (first on line 2)"}},
		{"two documents", "environments:\n  - {name: a, type: staging}\n---\nenvironments:\n  - {name: b, type: staging}\n", []string{"rewind.yaml:4: a second YAML document"}},
		{"two problems", "environments:\n  - nme: main\n  - name: b\n    tpye: staging\n", []string{"rewind.yaml:2:5: environments[0].nme", "rewind.yaml:4:5: environments[1].tpye"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig("rewind.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatal("parseConfig() = nil, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("parseConfig() = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestParseConfig_TrailingDocumentMarker(t *testing.T) {
	if _, err := parseConfig("rewind.yaml", []byte("---\nenvironments:\n  - {name: a, type: staging}\n---\n")); err != nil {
		t.Fatalf("parseConfig(trailing ---) = %v", err)
	}
}

func TestParseConfig_Aliases(t *testing.T) {
	y := `environments:
  - &main
    name: main
    type: production
    services: &svc
      - {name: local, type: sqlite, path: /srv/app.db}
  - name: staging
    type: staging
    parent: main
    services: *svc
`
	cfg, err := parseConfig("rewind.yaml", []byte(y))
	if err != nil {
		t.Fatalf("parseConfig() = %v", err)
	}
	if got := cfg.Environments[1].Services[0].Path; got != "/srv/app.db" {
		t.Fatalf("aliased service path = %q", got)
	}
}

func TestParseConfig_AliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("x: &x [")
	for i := range 100 {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(`"*.tmp"`)
	}
	b.WriteString("]\ns: &s [")
	for i := range 100 {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "{name: s%d, type: files, path: /x, exclude: *x}", i)
	}
	b.WriteString("]\ne: &e {name: e, type: staging, services: *s}\nenvironments: [")
	for i := range 1000 {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("*e")
	}
	b.WriteString("]\n")
	start := time.Now()
	_, err := parseConfig("rewind.yaml", []byte(b.String()))
	if err == nil {
		t.Fatal("parseConfig(alias bomb) = nil, want an error")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("parseConfig(alias bomb) took %v", d)
	}
}

func TestValidateConfig(t *testing.T) {
	server := []db.Environment{{Name: "prod", Type: db.EnvProduction, Gate: db.Gate{Listen: "127.0.0.1:7000", Upstream: "http://127.0.0.1:3000"}},
		{Name: "qa", Type: db.EnvStaging, Parent: "prod"}}
	for _, tt := range []struct {
		name, yaml string
		want       []string
	}{
		{"bad url", `environments:
  - name: main
    type: production
    services:
      - {name: db, type: postgresql, url: "http://127.0.0.1:5432/app"}
`, []string{`rewind.yaml:5:43: environments[0].services[0].url: url scheme "http" does not fit a postgresql service`}},
		{"relative path", `environments:
  - name: main
    type: production
    services:
      - name: files
        type: files
        path: uploads
`, []string{`rewind.yaml:7:15: environments[0].services[0].path: path "uploads" is relative`}},
		{"missing type is located at the entry", `environments:
  - name: main
`, []string{`rewind.yaml:2:5: environments[0].type: type is required`}},
		{"duplicate service", `environments:
  - name: main
    type: production
    services:
      - {name: db, type: sqlite, path: /a.db}
      - {name: db, type: sqlite, path: /b.db}
`, []string{`rewind.yaml:6:16: environments[0].services[1].name: duplicate service name "db"`}},
		{"duplicate environment", `environments:
  - {name: main, type: production}
  - {name: main, type: staging}
`, []string{`rewind.yaml:3:12: environments[1].name: environment "main" is also defined at environments[0]`}},
		{"unknown parent", `environments:
  - {name: dev, type: development, parent: nowhere}
`, []string{`rewind.yaml:2:44: environments[0].parent: unknown parent "nowhere": it is neither in this file nor on the server`}},
		{"cycle in file", `environments:
  - {name: a, type: staging, parent: b}
  - {name: b, type: staging, parent: a}
`, []string{`environments[0].parent: parent "b" makes a cycle (a -> b -> a)`, `environments[1].parent: parent "a" makes a cycle (b -> a -> b)`}},
		{"cycle through the server", `environments:
  - {name: prod, type: production, parent: qa}
`, []string{`parent "qa" makes a cycle (prod -> qa -> prod)`}},
		{"gate used twice in the file", `environments:
  - {name: a, type: staging, gate: {listen: "127.0.0.1:9000", upstream: "http://127.0.0.1:3000"}}
  - {name: b, type: staging, gate: {listen: "127.0.0.1:9000", upstream: "http://127.0.0.1:3001"}}
`, []string{`rewind.yaml:3:45: environments[1].gate.listen: 127.0.0.1:9000 is already the gate of environment "a"`}},
		{"gate used on the server", `environments:
  - {name: a, type: staging, gate: {listen: "127.0.0.1:7000", upstream: "http://127.0.0.1:3000"}}
`, []string{`environments[0].gate.listen: 127.0.0.1:7000 is already the gate of environment "prod"`}},
		{"gate listen", `environments:
  - name: main
    type: production
    gate: {listen: "8081", upstream: "http://127.0.0.1:3000"}
`, []string{`rewind.yaml:4:20: environments[0].gate.listen: "8081" is not host:port`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseConfig("rewind.yaml", []byte(tt.yaml))
			if err != nil {
				t.Fatalf("parseConfig() = %v", err)
			}
			err = validateConfig(cfg, server)
			if err == nil {
				t.Fatal("validateConfig() = nil, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("validateConfig() = %q, want it to contain %q", err, w)
				}
			}
		})
	}
	typo := "environments:\n  - {name: dev, type: development, parent: prd}\n"
	cfg, _ := parseConfig("rewind.yaml", []byte(typo))
	if err := validateConfig(cfg, server); err == nil || !strings.Contains(err.Error(), `unknown parent "prd" (did you mean "prod"?)`) {
		t.Fatalf("validateConfig(typo) = %v, want a suggestion", err)
	}
	ok := "environments:\n  - {name: dev, type: development, parent: qa}\n"
	cfg, _ = parseConfig("rewind.yaml", []byte(ok))
	if err := validateConfig(cfg, server); err != nil {
		t.Fatalf("validateConfig(parent on the server) = %v", err)
	}
}

func TestExpandEnv(t *testing.T) {
	y := "environments:\n  - name: main\n    type: production\n    services:\n      - {name: db, type: postgresql, url: \"postgres://app:${DB_PW}@h/app\"}\n"
	cfg, err := parseConfig("rewind.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.expandEnv(func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "rewind.yaml:5:43: environments[0].services[0].url: environment variable DB_PW is not set") {
		t.Fatalf("expandEnv(unset) = %v", err)
	}
	cfg, _ = parseConfig("rewind.yaml", []byte(y))
	if err := cfg.expandEnv(envMap{"DB_PW": "s3cret"}.get); err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.Environments[0].Services[0].URL, "postgres://app:s3cret@h/app"; got != want {
		t.Fatalf("URL = %q, want %q", got, want)
	}
}

type envMap map[string]string

func (m envMap) get(k string) string { return m[k] }

// fakeAPI records requests and answers like the real API.
type fakeAPI struct {
	mu       sync.Mutex
	requests []string
	envs     map[string]db.Environment
	token    string
}

func newFakeAPI(t *testing.T, existing ...db.Environment) (*fakeAPI, *httptest.Server) {
	f := &fakeAPI{envs: map[string]db.Environment{}, token: "rwd_test"}
	for _, e := range existing {
		e.UpdatedAt = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		f.envs[e.Name] = e
	}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r.Method+" "+r.URL.RequestURI())
	w.Header().Set("Content-Type", "application/json")
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":{"code":"unauthorized","message":"invalid or revoked token"}}`)
		return
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/api/v1/environments":
		var list []db.Environment
		for _, e := range f.envs {
			list = append(list, e)
		}
		json.NewEncoder(w).Encode(map[string]any{"environments": list})
	case r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/api/v1/environments/"):
		var e db.Environment
		if err := json.NewDecoder(r.Body).Decode(&e); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if e.Type == "development" && e.Title == "reject" {
			w.WriteHeader(http.StatusUnprocessableEntity)
			io.WriteString(w, `{"error":{"code":"invalid","message":"invalid environment","fields":[{"field":"services[0].url","message":"server says no"}]}}`)
			return
		}
		old, existed := f.envs[e.Name]
		change, status := db.Created, http.StatusCreated
		if existed {
			change, status = db.Updated, http.StatusOK
			if old.Title == e.Title && old.Type == e.Type {
				change = db.Unchanged
			}
		}
		f.envs[e.Name] = e
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]any{"environment": e, "change": change})
	case r.Method == http.MethodGet && r.URL.Path == "/api/v1/activities":
		json.NewEncoder(w).Encode(map[string]any{"activities": []db.Activity{{ID: 7, Type: "environment.create", Environment: r.URL.Query().Get("environment"),
			Actor: "ana@example.com", State: db.ActivitySucceeded, Progress: 100, Summary: "Created main"}}, "total": 3})
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func (f *fakeAPI) sent() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

func TestRunApply(t *testing.T) {
	fake, srv := newFakeAPI(t, db.Environment{Name: "main", Title: "main", Type: db.EnvProduction})
	c, err := newAPIClient(srv.URL, "rwd_test")
	if err != nil {
		t.Fatal(err)
	}
	// Children first in the file; applied parents first.
	y := `environments:
  - {name: feature, type: development, parent: staging}
  - {name: staging, type: staging, parent: main}
  - {name: main, title: main, type: production}
`
	var out strings.Builder
	if err := runApply(context.Background(), &out, c, []byte(y), applyOptions{file: "rewind.yaml", getenv: envMap{}.get}); err != nil {
		t.Fatalf("runApply() = %v", err)
	}
	if got, want := out.String(), "main: unchanged\nstaging: created\nfeature: created\n"; got != want {
		t.Fatalf("output = %q, want %q", got, want)
	}
	if got, want := strings.Join(fake.sent(), "\n"), "GET /api/v1/environments\nPUT /api/v1/environments/main\nPUT /api/v1/environments/staging\nPUT /api/v1/environments/feature"; got != want {
		t.Fatalf("requests =\n%s\nwant\n%s", got, want)
	}
}

func TestRunApply_InvalidSendsNothing(t *testing.T) {
	for _, tt := range []struct{ name, yaml, want string }{
		{"bad yaml", "environments:\n  - name: [\n", "rewind.yaml:"},
		{"unknown field", "environments:\n  - {name: main, type: production, colour: red}\n", "rewind.yaml:2:36: environments[0].colour: unknown field"},
		{"one invalid entry of two", "environments:\n  - {name: good, type: production}\n  - {name: bad, type: production, services: [{name: db, type: redis, url: \"redis://h:6379/x\"}]}\n", "environments[1].services[0].url"},
		{"unknown parent", "environments:\n  - {name: good, type: production, parent: ghost}\n", `unknown parent "ghost"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fake, srv := newFakeAPI(t)
			c, _ := newAPIClient(srv.URL, "rwd_test")
			var out strings.Builder
			err := runApply(context.Background(), &out, c, []byte(tt.yaml), applyOptions{file: "rewind.yaml", getenv: envMap{}.get})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("runApply() = %v, want an error containing %q", err, tt.want)
			}
			for _, r := range fake.sent() {
				if !strings.HasPrefix(r, "GET ") {
					t.Fatalf("runApply() sent %q for an invalid file", r)
				}
			}
			if out.Len() != 0 {
				t.Fatalf("output = %q, want none", out.String())
			}
		})
	}
}

func TestRunApply_DryRunAndServerErrors(t *testing.T) {
	fake, srv := newFakeAPI(t, db.Environment{Name: "main", Type: db.EnvProduction})
	c, _ := newAPIClient(srv.URL, "rwd_test")
	y := "environments:\n  - {name: main, type: production}\n  - {name: dev, title: reject, type: development, services: [{name: db, type: redis, url: \"redis://h\"}]}\n"
	var out strings.Builder
	if err := runApply(context.Background(), &out, c, []byte(y), applyOptions{file: "rewind.yaml", dryRun: true, getenv: envMap{}.get}); err != nil {
		t.Fatalf("runApply(dry run) = %v", err)
	}
	if got, want := out.String(), "main: valid (would update)\ndev: valid (would create)\n"; got != want {
		t.Fatalf("dry-run output = %q, want %q", got, want)
	}
	if got := len(fake.sent()); got != 1 {
		t.Fatalf("dry run sent %d requests, want 1 GET", got)
	}
	out.Reset()
	err := runApply(context.Background(), &out, c, []byte(y), applyOptions{file: "rewind.yaml", getenv: envMap{}.get})
	if err == nil || !strings.Contains(err.Error(), "rewind.yaml:3:") || !strings.Contains(err.Error(), "environments[1].services[0].url: server says no") ||
		!strings.Contains(err.Error(), "already applied: main") {
		t.Fatalf("runApply(server refuses) = %v, want the server's field error located in the file", err)
	}
}

func TestClientErrors(t *testing.T) {
	_, srv := newFakeAPI(t)
	c, _ := newAPIClient(srv.URL, "rwd_wrong")
	_, err := c.do(context.Background(), http.MethodGet, "/api/v1/environments", nil, nil)
	if err == nil || !strings.Contains(err.Error(), "token rejected") || !strings.Contains(err.Error(), "rewind tokens:create") {
		t.Fatalf("401: %v, want a token-rejected hint", err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, _ = newAPIClient("http://"+addr, "rwd_x")
	_, err = c.do(context.Background(), http.MethodGet, "/api/v1/environments", nil, nil)
	if err == nil || !strings.Contains(err.Error(), "is `rewind serve` running at http://"+addr) {
		t.Fatalf("connection refused: %v, want a hint to rewind serve", err)
	}

	if _, err := newAPIClient("ftp://x", "rwd_x"); err == nil || !strings.Contains(err.Error(), "REWIND_URL") {
		t.Fatalf("newAPIClient(ftp) = %v", err)
	}
	if _, err := newAPIClient("http://x", ""); err == nil || !strings.Contains(err.Error(), "REWIND_TOKEN") {
		t.Fatalf("newAPIClient(no token) = %v", err)
	}
	var ae *apiError
	c, _ = newAPIClient(srv.URL, "rwd_test")
	_, err = c.do(context.Background(), http.MethodGet, "/api/v1/nope", nil, nil)
	if !errors.As(err, &ae) || ae.Status != http.StatusNotFound {
		t.Fatalf("404: %v", err)
	}
}

func TestEnvironmentsAndActivitiesCommands(t *testing.T) {
	fake, srv := newFakeAPI(t,
		db.Environment{Name: "main", Type: db.EnvProduction, Status: db.StatusActive, Services: []db.Service{{Name: "db", Type: db.ServicePostgreSQL}}},
	)
	t.Setenv("REWIND_URL", srv.URL)
	t.Setenv("REWIND_TOKEN", "rwd_test")
	out, _, err := runCommand(t, newEnvironmentsCommand(), "")
	if err != nil {
		t.Fatalf("environments = %v", err)
	}
	if !strings.Contains(out, "NAME") || !strings.Contains(out, "main") || !strings.Contains(out, "db (postgresql)") {
		t.Fatalf("environments output = %q", out)
	}
	out, _, err = runCommand(t, newEnvironmentsCommand(), "", "--json")
	var resp environmentsResponse
	if err != nil || json.Unmarshal([]byte(out), &resp) != nil || len(resp.Environments) != 1 {
		t.Fatalf("environments --json = %q, %v", out, err)
	}
	out, _, err = runCommand(t, newActivitiesCommand(), "", "-e", "main")
	if err != nil {
		t.Fatalf("activities = %v", err)
	}
	if !strings.Contains(out, "environment.create") || !strings.Contains(out, "Created main") || !strings.Contains(out, "Showing 1 of 3") {
		t.Fatalf("activities output = %q", out)
	}
	if _, _, err := runCommand(t, newActivitiesCommand(), "", "--state", "done"); err == nil || !strings.Contains(err.Error(), `unknown state "done"`) {
		t.Fatalf("activities --state done = %v, want an unknown-state error", err)
	}
	if _, _, err := runCommand(t, newActivitiesCommand(), "", "--type", "backup.", "--state", "failed", "--limit", "5"); err != nil {
		t.Fatal(err)
	}
	if got, want := fake.sent()[len(fake.sent())-1], "GET /api/v1/activities?limit=5&state=failed&type=backup."; got != want {
		t.Fatalf("request = %q, want %q", got, want)
	}
	out, _, _ = runCommand(t, newActivitiesCommand(), "", "--json")
	var acts activitiesResponse
	if json.Unmarshal([]byte(out), &acts) != nil || acts.Total != 3 {
		t.Fatalf("activities --json = %q", out)
	}
}

func TestPrintEnvironments_Tree(t *testing.T) {
	var out strings.Builder
	printEnvironments(&out, []db.Environment{
		{Name: "main", Type: db.EnvProduction, Status: db.StatusActive},
		{Name: "staging", Type: db.EnvStaging, Parent: "main", Status: db.StatusActive},
	}, nil)
	if !strings.Contains(out.String(), "\n  staging ") {
		t.Fatalf("output = %q, want staging indented under main", out.String())
	}
}

// FuzzParseConfig checks that no input makes the parser or the validator
// panic, and that every error names the file.
func FuzzParseConfig(f *testing.F) {
	f.Add(designExample)
	f.Add(strings.Replace(designExample, "[{name: local, type: sqlite, path: /srv/staging/app.db}]", "[...]", 1))
	f.Add("environments:\n  - &a {name: x, type: staging, parent: x}\n  - *a\n")
	f.Add("environments: [{name: a, type: staging, services: [{name: b, type: files, path: /x, exclude: [\"[\"]}]}]\n")
	f.Add("environments:\n  - name: main\n   type: production\n")
	f.Add("a: &a [*a]\n")
	f.Add("environments:\n  - {name: m, type: production, gate: {listen: \":\", upstream: \"http://\"}}\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, input string) {
		cfg, err := parseConfig("rewind.yaml", []byte(input))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "rewind.yaml") {
				t.Fatalf("error %q does not start with the file name", err)
			}
			return
		}
		if err := validateConfig(cfg, nil); err != nil {
			if !strings.HasPrefix(err.Error(), "rewind.yaml") {
				t.Fatalf("validation error %q does not start with the file name", err)
			}
			return
		}
		order := parentsFirst(cfg.Environments)
		if len(order) != len(cfg.Environments) {
			t.Fatalf("parentsFirst() = %d entries, want %d", len(order), len(cfg.Environments))
		}
	})
}

// The table shows each environment's RPO against the plan's promise and its predicted RTO as the server
// reports them, and "-" for an environment the server said nothing about.
func TestPrintEnvironments_Recovery(t *testing.T) {
	var out strings.Builder
	rpo, rto := int64(30*3600), 41.2
	printEnvironments(&out, []db.Environment{
		{Name: "main", Type: db.EnvProduction, Status: db.StatusActive},
		{Name: "staging", Type: db.EnvStaging, Status: db.StatusActive},
		{Name: "old", Type: db.EnvStaging, Status: db.StatusActive},
	}, map[string]handlers.RecoveryJSON{
		"main": {RPOSeconds: &rpo, RPOBasis: "backup", PromisedRPOSecs: 24 * 3600, RTOPredictedSecs: &rto,
			RTOBasis: "2 drills"},
		"staging": {RTOBasis: "no restore measured yet: run a drill"},
	})
	for _, want := range []string{"30 h (ABOVE the plan's 24 h)", "41.2s", "nothing restorable", "not measured: run a drill"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if line := out.String()[strings.Index(out.String(), "old"):]; !strings.Contains(line, "-  ") {
		t.Errorf("an environment without figures should show -:\n%s", out.String())
	}
}

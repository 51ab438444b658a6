package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rewind/rewind/db"
)

// startRewind runs the real server (Main) on 127.0.0.1:0 and returns it with
// an admin API token.
func startRewind(t *testing.T, role string) (*Main, string) {
	t.Helper()
	m := NewMain()
	m.DataDir, m.Addr = t.TempDir(), "127.0.0.1:0"
	m.Console, m.Logger = io.Discard, slog.New(slog.DiscardHandler)
	m.Getenv = func(string) string { return "" }
	if err := m.Run(context.Background()); err != nil {
		t.Fatalf("Main.Run() = %v", err)
	}
	t.Cleanup(func() { m.Close() })
	u, err := m.Catalog.CreateUser(context.Background(), "ops@example.com", "ops password", role)
	if err != nil {
		t.Fatal(err)
	}
	secret, _, err := m.Catalog.CreateToken(context.Background(), u.ID, "e2e")
	if err != nil {
		t.Fatal(err)
	}
	return m, secret
}

func TestApplyEndToEnd(t *testing.T) {
	m, token := startRewind(t, db.RoleAdmin)
	t.Setenv("REWIND_URL", m.URL())
	t.Setenv("REWIND_TOKEN", token)
	t.Setenv("E2E_DB_PASSWORD", "pg-s3cret")
	file := filepath.Join(t.TempDir(), "rewind.yaml")
	write := func(s string) {
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`environments:
  - name: staging
    type: staging
    parent: main
    services:
      - {name: local, type: sqlite, path: /srv/staging/app.db}
  - name: main
    type: production
    gate: {listen: "127.0.0.1:18081", upstream: "http://127.0.0.1:3000"}
    services:
      - {name: db, type: postgresql, url: "postgres://app:${E2E_DB_PASSWORD}@127.0.0.1:5432/app"}
      - {name: uploads, type: files, path: /srv/app/uploads, exclude: ["*.tmp"]}
`)
	out, _, err := runCommand(t, "apply", "", "-f", file)
	if err != nil {
		t.Fatalf("apply = %v", err)
	}
	if got, want := out, "main: created\nstaging: created\n"; got != want {
		t.Fatalf("apply output = %q, want %q", got, want)
	}
	ctx := context.Background()
	main, err := m.Catalog.FindEnvironmentByName(ctx, "main")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := main.Service("db").URL, "postgres://app:pg-s3cret@127.0.0.1:5432/app"; got != want {
		t.Fatalf("stored URL = %q, want %q", got, want)
	}
	if staging, _ := m.Catalog.FindEnvironmentByName(ctx, "staging"); staging.Parent != "main" {
		t.Fatalf("staging parent = %q, want main", staging.Parent)
	}

	// Applying the same file again changes nothing.
	out, _, err = runCommand(t, "apply", "", "-f", file)
	if err != nil || out != "main: unchanged\nstaging: unchanged\n" {
		t.Fatalf("second apply = %q, %v, want both unchanged", out, err)
	}

	// One invalid entry: nothing changes, the error says where.
	write(`environments:
  - {name: main, type: production, title: Renamed}
  - name: staging
    type: staging
    parent: main
    services:
      - {name: local, type: sqlite, path: relative/app.db}
`)
	_, _, err = runCommand(t, "apply", "", "-f", file)
	if err == nil || !strings.Contains(err.Error(), file+":7:") || !strings.Contains(err.Error(), "environments[1].services[0].path") {
		t.Fatalf("invalid apply = %v, want an error at line 7 naming environments[1].services[0].path", err)
	}
	if e, _ := m.Catalog.FindEnvironmentByName(ctx, "main"); e.Title != "main" {
		t.Fatalf("main title = %q after a refused apply, want unchanged", e.Title)
	}

	// The list shows both, with masked secrets in --json.
	out, _, err = runCommand(t, "environments", "")
	if err != nil || !strings.Contains(out, "main") || !strings.Contains(out, "  staging") {
		t.Fatalf("environments = %q, %v", out, err)
	}
	out, _, err = runCommand(t, "environments", "", "--json")
	if err != nil || strings.Contains(out, "pg-s3cret") || !strings.Contains(out, "app:****@") {
		t.Fatalf("environments --json = %q, %v; want the password masked", out, err)
	}
	out, _, err = runCommand(t, "activities", "", "-e", "main")
	if err != nil || !strings.Contains(out, "environment.create") {
		t.Fatalf("activities -e main = %q, %v", out, err)
	}
}

func TestApplyEndToEnd_ViewerRefused(t *testing.T) {
	m, token := startRewind(t, db.RoleViewer)
	t.Setenv("REWIND_URL", m.URL())
	t.Setenv("REWIND_TOKEN", token)
	_, _, err := runCommand(t, "apply", "environments:\n  - {name: main, type: production}\n", "-f", "-")
	if err == nil || !strings.Contains(err.Error(), "not allowed") {
		t.Fatalf("apply as viewer = %v, want not allowed", err)
	}
	if envs, _ := m.Catalog.FindEnvironments(context.Background(), db.EnvironmentFilter{}); len(envs) != 0 {
		t.Fatalf("viewer created %d environments", len(envs))
	}
	t.Setenv("REWIND_TOKEN", "rwd_revoked-or-wrong")
	_, _, err = runCommand(t, "environments", "")
	if err == nil || !strings.Contains(err.Error(), "token rejected") {
		t.Fatalf("environments with a wrong token = %v", err)
	}
}

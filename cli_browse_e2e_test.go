package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/handlers"
)

// TestBrowseAndPartialRestoreEndToEnd drives backup:browse and backup:restore --service/--path against the real
// server (Main) with PostgreSQL and MariaDB on the private test servers, a SQLite file and a files mount: list
// the services, a directory and a database's tables; restore one directory alone (dry run first), then one
// service alone, each leaving everything else as it is.
func TestBrowseAndPartialRestoreEndToEnd(t *testing.T) {
	m, token := startRewind(t, db.RoleAdmin)
	t.Setenv("REWIND_URL", m.URL())
	t.Setenv("REWIND_TOKEN", token)
	ctx := context.Background()
	main := newStack(t, "main", "production", false)
	cfg := filepath.Join(t.TempDir(), "rewind.yaml")
	if err := os.WriteFile(cfg, []byte("environments:\n"+main.yaml()), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCommand(t, "apply", "", "-f", cfg); err != nil {
		t.Fatalf("apply: %v", err)
	}
	env, err := m.Catalog.FindEnvironmentByName(ctx, "main")
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(main.filesPath, "images", "2026")
	if err := os.MkdirAll(img, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile := func(p, v string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	readFile := func(p string) string {
		t.Helper()
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	writeFile(filepath.Join(img, "a.jpg"), "photo v1")
	out, errOut, err := runCommand(t, "backup:create", "", "-e", "main")
	if err != nil {
		t.Fatalf("backup:create: %v\n%s", err, errOut)
	}
	id := strings.TrimSpace(out)

	// Browse: the services, a directory like ls -l, a database's tables; bad input is refused with a message.
	out, _, err = runCommand(t, "backup:browse", "", id)
	if err != nil || !hasFields(out, "uploads files 10 B all of it") || !strings.HasPrefix(lineWith(out, "postgresql"), "db ") {
		t.Fatalf("backup:browse = %q, %v", out, err)
	}
	out, _, err = runCommand(t, "backup:browse", "", id, "--service", "uploads")
	if err != nil || !strings.Contains(out, "uploads:/\n") || !strings.HasPrefix(lineWith(out, "images/"), "drwxr-xr-x") ||
		!strings.HasPrefix(lineWith(out, "a.txt"), "-rw-r--r--  2 ") {
		t.Fatalf("backup:browse --service uploads = %q, %v", out, err)
	}
	if strings.Index(out, "images/") > strings.Index(out, "a.txt") {
		t.Fatalf("directories are not listed first:\n%s", out)
	}
	out, _, err = runCommand(t, "backup:browse", "", id, "--service", "uploads", "--path", "images/2026", "--json")
	var l struct {
		Listing handlers.BrowseJSON `json:"listing"`
	}
	if err != nil || json.Unmarshal([]byte(out), &l) != nil || len(l.Listing.Entries) != 1 ||
		l.Listing.Entries[0].Path != "images/2026/a.jpg" || l.Listing.Entries[0].Size != 8 {
		t.Fatalf("backup:browse --path images/2026 --json = %q, %v", out, err)
	}
	out, _, err = runCommand(t, "backup:browse", "", id, "--service", "db")
	if err != nil || !hasFields(out, "public.items 1") {
		t.Fatalf("backup:browse --service db = %q, %v", out, err)
	}
	if _, _, err := runCommand(t, "backup:browse", "", id, "--service", "uploads", "--path", "../.."); err == nil ||
		!strings.Contains(err.Error(), "leaves the service") {
		t.Fatalf("backup:browse --path ../.. = %v, want a refusal", err)
	}

	// Every service changes; restoring images/2026 alone puts back that directory only.
	main.set("v2")
	writeFile(filepath.Join(img, "a.jpg"), "photo v2")
	writeFile(filepath.Join(img, "new.jpg"), "new")
	out, _, err = runCommand(t, "backup:restore", "", id, "--service", "uploads", "--path", "images/2026", "--dry-run")
	if err != nil || !strings.Contains(out, "Only service uploads, path images/2026 of main is replaced") ||
		!strings.Contains(out, "images/2026/a.jpg") || !strings.Contains(out, "images/2026/new.jpg") || strings.Contains(out, "a.txt") {
		t.Fatalf("scoped --dry-run = %q, %v", out, err)
	}
	if _, _, err := runCommand(t, "backup:restore", "", id, "--service", "uploads", "--path", "images/2099", "--yes"); err == nil ||
		!strings.Contains(err.Error(), "/images/2099") {
		t.Fatalf("restore of a path not in the backup = %v, want a refusal naming it", err)
	}
	if _, _, err := runCommand(t, "backup:restore", "", id, "--path", "images/2026", "--yes"); err == nil ||
		!strings.Contains(err.Error(), "exactly one service") {
		t.Fatalf("restore of a path without --service = %v, want a refusal", err)
	}
	out, errOut, err = runCommand(t, "backup:restore", "", id, "--service", "uploads", "--path", "images/2026", "--yes")
	if err != nil {
		t.Fatalf("scoped restore: %v\n%s", err, errOut)
	}
	if !strings.Contains(out, id+" (service uploads, path images/2026) restored into main") {
		t.Fatalf("scoped restore stdout = %q", out)
	}
	if got := readFile(filepath.Join(img, "a.jpg")); got != "photo v1" {
		t.Fatalf("images/2026/a.jpg after restoring it = %q, want photo v1", got)
	}
	if _, err := os.Stat(filepath.Join(img, "new.jpg")); !os.IsNotExist(err) {
		t.Fatalf("images/2026/new.jpg after restoring the directory: %v, want it gone", err)
	}
	if got, want := main.values(env), main.want(env, "v2"); got != want {
		t.Fatalf("restoring images/2026 changed the rest: %s, want %s", got, want)
	}

	// One service alone: PostgreSQL goes back, the others keep v2.
	if _, errOut, err := runCommand(t, "backup:restore", "", id, "--service", "db", "--yes"); err != nil {
		t.Fatalf("restore of db: %v\n%s", err, errOut)
	}
	if got, want := main.values(env), "db=v1 shop=v2 local=v2 uploads=v2"; got != want {
		t.Fatalf("after restoring db alone: %s, want %s", got, want)
	}
}

// lineWith is the first line of out that holds s, with its columns' spaces as printed.
func lineWith(out, s string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

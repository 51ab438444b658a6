package demo

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/rewind/rewind/db"
)

func TestSeedDemo(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := openTestCatalog(t, dir)
	email, pw, err := Seed(ctx, c, dir)
	if err != nil {
		t.Fatalf("Seed() = %v", err)
	}
	if email != demoEmail || len(pw) != demoPasswordLength {
		t.Fatalf("Seed() = %q, %d-character password", email, len(pw))
	}
	u, err := c.Authenticate(ctx, email, pw)
	if err != nil || u.Role != db.RoleAdmin {
		t.Fatalf("Authenticate(demo) = %+v, %v, want an admin", u, err)
	}
	envs, err := c.FindEnvironments(ctx, db.EnvironmentFilter{})
	if err != nil || len(envs) != 2 {
		t.Fatalf("FindEnvironments() = %d, %v, want main and staging", len(envs), err)
	}
	if envs[0].Name != "main" || envs[0].Type != db.EnvProduction || envs[1].Name != "staging" || envs[1].Parent != "main" {
		t.Fatalf("environments = %+v / %+v", envs[0], envs[1])
	}
	for _, e := range envs {
		if err := e.Validate(); err != nil {
			t.Fatalf("%s: Validate() = %v", e.Name, err)
		}
		dbPath := filepath.Join(dir, "demo", e.Name, "app.db")
		if s := e.Service("app-db"); s == nil || s.Type != db.ServiceSQLite || !filepath.IsAbs(s.Path) || s.Path != mustAbs(t, dbPath) {
			t.Fatalf("%s app-db service = %+v, want sqlite at %s", e.Name, s, dbPath)
		}
		if s := e.Service("uploads"); s == nil || s.Type != db.ServiceFiles {
			t.Fatalf("%s uploads service = %+v", e.Name, s)
		}
		conn, err := sql.Open("sqlite", dbPath)
		if err != nil {
			t.Fatal(err)
		}
		var products, orders int
		var mode string
		conn.QueryRow(`SELECT COUNT(*) FROM products`).Scan(&products)
		conn.QueryRow(`SELECT COUNT(*) FROM orders`).Scan(&orders)
		conn.QueryRow(`PRAGMA journal_mode`).Scan(&mode)
		conn.Close()
		if products == 0 || orders == 0 || mode != "wal" {
			t.Fatalf("%s app.db: %d products, %d orders, journal %q; want data in WAL mode", e.Name, products, orders, mode)
		}
		for _, f := range []string{"README.txt", "products/mug.svg", "invoices/2026-01.csv"} {
			if _, err := os.Stat(filepath.Join(dir, "demo", e.Name, "uploads", f)); err != nil {
				t.Fatalf("%s uploads: %v", e.Name, err)
			}
		}
	}

	// Idempotent: same password, nothing duplicated, user changes kept.
	readme := filepath.Join(dir, "demo", "main", "uploads", "README.txt")
	os.WriteFile(readme, []byte("changed\n"), 0o644)
	main, _ := c.FindEnvironmentByName(ctx, "main")
	main.Title = "My main"
	if err := c.UpdateEnvironment(ctx, main); err != nil {
		t.Fatal(err)
	}
	_, acts1, _ := c.FindActivities(ctx, db.ActivityFilter{})
	email2, pw2, err := Seed(ctx, c, dir)
	if err != nil || email2 != email || pw2 != pw {
		t.Fatalf("second Seed() = %q, %v; want the same credentials", email2, err)
	}
	if got, _ := os.ReadFile(readme); string(got) != "changed\n" {
		t.Fatalf("README.txt = %q after reseed, want the user's change kept", got)
	}
	if e, _ := c.FindEnvironmentByName(ctx, "main"); e.Title != "My main" {
		t.Fatalf("main title = %q after reseed, want the user's change kept", e.Title)
	}
	if n, _ := c.CountUsers(ctx); n != 1 {
		t.Fatalf("CountUsers() = %d, want 1", n)
	}
	if _, acts2, _ := c.FindActivities(ctx, db.ActivityFilter{}); acts2 != acts1 {
		t.Fatalf("activities %d → %d after reseed, want no new ones", acts1, acts2)
	}

	// A changed demo password is put back, so the printed one works.
	other := "something else"
	if _, err := c.UpdateUser(ctx, u.ID, db.UserUpdate{Password: &other}); err != nil {
		t.Fatal(err)
	}
	if _, pw3, err := Seed(ctx, c, dir); err != nil || pw3 != pw {
		t.Fatalf("Seed() after a password change = %v", err)
	}
	if _, err := c.Authenticate(ctx, email, pw); err != nil {
		t.Fatalf("Authenticate(printed password) = %v", err)
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// openTestCatalog opens the catalog of dataDir as rewind serve does.
func openTestCatalog(t *testing.T, dataDir string) *db.DB {
	t.Helper()
	c, _, err := db.OpenDataDir(context.Background(), dataDir)
	if err != nil {
		t.Fatalf("OpenDataDir() = %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

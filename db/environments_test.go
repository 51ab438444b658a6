package db_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rewind/rewind/db"
)

func mainEnv() *db.Environment {
	return &db.Environment{
		Name: "main", Type: db.EnvProduction, GitDir: "/srv/app",
		Gate:  db.Gate{Listen: "127.0.0.1:8081", Upstream: "http://127.0.0.1:3000"},
		Hooks: db.Hooks{PrePause: "systemctl stop worker", PostPause: "systemctl start worker"},
		Services: []db.Service{
			{Name: "db", Type: db.ServicePostgreSQL, URL: "postgres://app:s3cr3t-pw@127.0.0.1:5432/app"},
			{Name: "cache", Type: db.ServiceRedis, URL: "redis://127.0.0.1:6379/0"},
			{Name: "uploads", Type: db.ServiceFiles, Path: "/srv/app/uploads", Exclude: []string{"cache/", "*.tmp"}},
		},
	}
}

func mustCreateEnv(tb testing.TB, c *db.DB, e *db.Environment) *db.Environment {
	tb.Helper()
	if err := c.CreateEnvironment(context.Background(), e); err != nil {
		tb.Fatalf("CreateEnvironment(%q) = %v", e.Name, err)
	}
	return e
}

func TestEnvironments_CreateFind(t *testing.T) {
	ctx := context.Background()
	c := MustOpenDB(t)
	e := mustCreateEnv(t, c, mainEnv())
	if e.ID == 0 || e.CreatedAt.IsZero() || e.Status != db.StatusActive || e.Title != "main" {
		t.Fatalf("CreateEnvironment() left %+v, want ID, CreatedAt, default status and title", e)
	}
	got, err := c.FindEnvironmentByName(ctx, "main")
	if err != nil {
		t.Fatalf("FindEnvironmentByName() = %v", err)
	}
	if got.GitDir != "/srv/app" || got.Gate != e.Gate || got.Hooks != e.Hooks || !got.CreatedAt.Equal(e.CreatedAt) {
		t.Fatalf("FindEnvironmentByName() = %+v, want %+v", got, e)
	}
	if got, want := len(got.Services), 3; got != want {
		t.Fatalf("len(Services) = %d, want %d", got, want)
	}
	if got, want := got.Services[0].URL, "postgres://app:s3cr3t-pw@127.0.0.1:5432/app"; got != want {
		t.Fatalf("Services[0].URL = %q, want %q (decrypted)", got, want)
	}
	if got, want := strings.Join(got.Services[2].Exclude, ","), "cache/,*.tmp"; got != want {
		t.Fatalf("Exclude = %q, want %q", got, want)
	}
	if byID, err := c.FindEnvironmentByID(ctx, e.ID); err != nil || byID.Name != "main" {
		t.Fatalf("FindEnvironmentByID() = %v, %v", byID, err)
	}
	if _, err := c.FindEnvironmentByName(ctx, "nope"); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("FindEnvironmentByName(nope) = %v, want ErrNotFound", err)
	}
	if err := c.CreateEnvironment(ctx, mainEnv()); !errors.Is(err, db.ErrConflict) {
		t.Fatalf("CreateEnvironment(duplicate) = %v, want ErrConflict", err)
	}
}

func TestEnvironments_OrderFilter(t *testing.T) {
	ctx := context.Background()
	c := MustOpenDB(t)
	mustCreateEnv(t, c, &db.Environment{Name: "zeta", Type: db.EnvProduction})
	mustCreateEnv(t, c, &db.Environment{Name: "alpha", Type: db.EnvProduction})
	mustCreateEnv(t, c, &db.Environment{Name: "a-child", Type: db.EnvStaging, Parent: "zeta"})
	mustCreateEnv(t, c, &db.Environment{Name: "grandchild", Type: db.EnvDevelopment, Parent: "a-child", Status: db.StatusInactive})
	envs, err := c.FindEnvironments(ctx, db.EnvironmentFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range envs {
		names = append(names, e.Name)
	}
	if got, want := strings.Join(names, " "), "alpha zeta a-child grandchild"; got != want {
		t.Fatalf("FindEnvironments() order = %q, want %q", got, want)
	}
	active, typ := db.StatusActive, db.EnvStaging
	envs, _ = c.FindEnvironments(ctx, db.EnvironmentFilter{Status: &active, Type: &typ})
	if len(envs) != 1 || envs[0].Name != "a-child" || envs[0].Parent != "zeta" {
		t.Fatalf("FindEnvironments(active staging) = %v, want [a-child]", envs)
	}
}

func TestEnvironments_Update(t *testing.T) {
	ctx := context.Background()
	c := MustOpenDB(t)
	orig := mustCreateEnv(t, c, mainEnv())
	mustCreateEnv(t, c, &db.Environment{Name: "other", Type: db.EnvDevelopment})

	// Sending back what the API shows (masked URLs) changes nothing.
	masked := orig.Masked()
	if strings.Contains(masked.Services[0].URL, "s3cr3t") {
		t.Fatalf("Masked() URL = %q, want the password hidden", masked.Services[0].URL)
	}
	ch, err := c.PutEnvironmentChange(ctx, masked)
	if err != nil {
		t.Fatalf("PutEnvironmentChange(masked) = %v", err)
	}
	if ch != db.Unchanged {
		t.Fatalf("PutEnvironmentChange(masked) = %q, want unchanged", ch)
	}
	got, _ := c.FindEnvironmentByName(ctx, "main")
	if got.Services[0].URL != orig.Services[0].URL || !got.UpdatedAt.Equal(orig.UpdatedAt) {
		t.Fatalf("after unchanged put: URL %q, UpdatedAt %v; want the stored secret and %v", got.Services[0].URL, got.UpdatedAt, orig.UpdatedAt)
	}

	// Replace services by name: drop cache, change db's host (masked
	// password kept), add sqlite; change title, parent and status.
	upd := got.Masked()
	upd.ID = 0
	upd.Title = "Main shop"
	upd.Parent = "other"
	upd.Status = db.StatusInactive
	upd.Services = []db.Service{
		{Name: "local", Type: db.ServiceSQLite, Path: "/srv/app/data/app.db"},
		{Name: "db", Type: db.ServicePostgreSQL, URL: strings.Replace(upd.Services[0].URL, "127.0.0.1", "db.internal", 1)},
		upd.Services[2],
	}
	if err := c.UpdateEnvironment(ctx, upd); err != nil {
		t.Fatalf("UpdateEnvironment() = %v", err)
	}
	if !upd.UpdatedAt.After(orig.UpdatedAt) {
		t.Fatalf("UpdatedAt = %v, want after %v", upd.UpdatedAt, orig.UpdatedAt)
	}
	got, _ = c.FindEnvironmentByName(ctx, "main")
	if got.Title != "Main shop" || got.Parent != "other" || got.Status != db.StatusInactive {
		t.Fatalf("after update: %+v", got)
	}
	var names []string
	for _, s := range got.Services {
		names = append(names, s.Name)
	}
	if got, want := strings.Join(names, ","), "local,db,uploads"; got != want {
		t.Fatalf("services = %q, want %q", got, want)
	}
	// A changed host with a masked password keeps the stored password.
	if got, want := got.Services[1].URL, "postgres://app:s3cr3t-pw@db.internal:5432/app"; got != want {
		t.Fatalf("db URL = %q, want %q", got, want)
	}

	// By ID, renaming is refused.
	rename := got
	rename.Name = "renamed"
	var ve *db.ValidationError
	if err := c.UpdateEnvironment(ctx, rename); !errors.As(err, &ve) || !strings.Contains(ve.For("name"), "cannot be renamed") {
		t.Fatalf("UpdateEnvironment(rename) = %v, want a name error", err)
	}
	// By ID without a name: the stored name is kept.
	byID := &db.Environment{ID: got.ID, Type: db.EnvProduction, Parent: "other", Services: got.Masked().Services}
	if err := c.UpdateEnvironment(ctx, byID); err != nil || byID.Name != "main" {
		t.Fatalf("UpdateEnvironment(by ID, no name) = %v, name %q", err, byID.Name)
	}
	if err := c.UpdateEnvironment(ctx, &db.Environment{Name: "ghost", Type: db.EnvStaging}); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("UpdateEnvironment(unknown) = %v, want ErrNotFound", err)
	}

	created, err := c.PutEnvironment(ctx, &db.Environment{Name: "fresh", Type: db.EnvDevelopment, Parent: "main"})
	if err != nil || !created {
		t.Fatalf("PutEnvironment(new) = %v, %v, want created", created, err)
	}
	created, err = c.PutEnvironment(ctx, &db.Environment{Name: "fresh", Type: db.EnvStaging, Parent: "main"})
	if err != nil || created {
		t.Fatalf("PutEnvironment(existing) = %v, %v, want updated", created, err)
	}
	if e, _ := c.FindEnvironmentByName(ctx, "fresh"); e.Type != db.EnvStaging {
		t.Fatalf("Type = %q after put, want staging", e.Type)
	}
	// A put without status keeps a deactivated environment deactivated.
	if _, err := c.SetEnvironmentStatus(ctx, "fresh", db.StatusInactive); err != nil {
		t.Fatal(err)
	}
	ch, err = c.PutEnvironmentChange(ctx, &db.Environment{Name: "fresh", Type: db.EnvStaging, Parent: "main"})
	if err != nil || ch != db.Unchanged {
		t.Fatalf("PutEnvironmentChange(no status) = %q, %v, want unchanged", ch, err)
	}
	if e, _ := c.FindEnvironmentByName(ctx, "fresh"); e.Status != db.StatusInactive {
		t.Fatalf("Status = %q after a put without status, want inactive", e.Status)
	}
}

func TestEnvironments_ParentChecks(t *testing.T) {
	ctx := context.Background()
	c := MustOpenDB(t)
	mustCreateEnv(t, c, &db.Environment{Name: "a", Type: db.EnvProduction})
	mustCreateEnv(t, c, &db.Environment{Name: "b", Type: db.EnvStaging, Parent: "a"})
	mustCreateEnv(t, c, &db.Environment{Name: "c", Type: db.EnvStaging, Parent: "b"})

	var ve *db.ValidationError
	err := c.CreateEnvironment(ctx, &db.Environment{Name: "d", Type: db.EnvStaging, Parent: "nope"})
	if !errors.As(err, &ve) || !strings.Contains(ve.For("parent"), `unknown parent "nope"`) {
		t.Fatalf("CreateEnvironment(unknown parent) = %v, want a parent error", err)
	}
	err = c.UpdateEnvironment(ctx, &db.Environment{Name: "a", Type: db.EnvProduction, Parent: "c"})
	if !errors.As(err, &ve) || !strings.Contains(ve.For("parent"), "cycle") || !strings.Contains(ve.For("parent"), "a -> c -> b -> a") {
		t.Fatalf("UpdateEnvironment(cycle) = %v, want a cycle error naming a -> c -> b -> a", err)
	}
	err = c.UpdateEnvironment(ctx, &db.Environment{Name: "a", Type: db.EnvProduction, Parent: "a"})
	if !errors.As(err, &ve) || !strings.Contains(ve.For("parent"), "own parent") {
		t.Fatalf("UpdateEnvironment(self parent) = %v, want an own-parent error", err)
	}
	if e, _ := c.FindEnvironmentByName(ctx, "a"); e.Parent != "" {
		t.Fatalf("a.Parent = %q after refused updates, want none", e.Parent)
	}

	if err := c.DeleteEnvironment(ctx, "b"); !errors.Is(err, db.ErrConflict) || !strings.Contains(err.Error(), "(c)") {
		t.Fatalf("DeleteEnvironment(b) = %v, want ErrConflict naming c", err)
	}
	if err := c.DeleteEnvironment(ctx, "c"); err != nil {
		t.Fatalf("DeleteEnvironment(c) = %v", err)
	}
	withServices := mainEnv()
	mustCreateEnv(t, c, withServices)
	if err := c.DeleteEnvironment(ctx, "main"); err != nil {
		t.Fatalf("DeleteEnvironment(main) = %v", err)
	}
	var services int
	rawDB(t, c).QueryRow(`SELECT COUNT(*) FROM services`).Scan(&services)
	if services != 0 {
		t.Fatalf("%d services left after deleting their environment, want 0 (cascade)", services)
	}
	if err := c.DeleteEnvironment(ctx, "c"); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("DeleteEnvironment(c) again = %v, want ErrNotFound", err)
	}
	e, err := c.SetEnvironmentStatus(ctx, "b", db.StatusInactive)
	if err != nil || e.Status != db.StatusInactive {
		t.Fatalf("SetEnvironmentStatus() = %v, %v", e, err)
	}
	if _, err := c.SetEnvironmentStatus(ctx, "b", "paused"); !errors.As(err, &ve) {
		t.Fatalf("SetEnvironmentStatus(paused) = %v, want *ValidationError", err)
	}
}

func TestEnvironments_GateListenUnique(t *testing.T) {
	ctx := context.Background()
	c := MustOpenDB(t)
	mustCreateEnv(t, c, mainEnv())
	other := &db.Environment{Name: "staging", Type: db.EnvStaging, Gate: db.Gate{Listen: "127.0.0.1:8081", Upstream: "http://127.0.0.1:3001"}}
	var ve *db.ValidationError
	if err := c.CreateEnvironment(ctx, other); !errors.As(err, &ve) || !strings.Contains(ve.For("gate.listen"), `already the gate of environment "main"`) {
		t.Fatalf("CreateEnvironment(same gate) = %v, want a gate.listen error naming main", err)
	}
	other.Gate.Listen = "127.0.0.1:8082"
	mustCreateEnv(t, c, other)
	other.Gate.Listen = "127.0.0.1:8081"
	if err := c.UpdateEnvironment(ctx, other); !errors.As(err, &ve) || ve.For("gate.listen") == "" {
		t.Fatalf("UpdateEnvironment(same gate) = %v, want a gate.listen error", err)
	}
	// Its own address is not a clash.
	if _, err := c.PutEnvironmentChange(ctx, mainEnv()); err != nil {
		t.Fatalf("PutEnvironmentChange(main unchanged) = %v", err)
	}
}

func TestEnvironments_InvalidSavesNothing(t *testing.T) {
	ctx := context.Background()
	c := MustOpenDB(t)
	e := mainEnv()
	e.Services = append(e.Services, db.Service{Name: "db", Type: db.ServiceMySQL, URL: "http://x/y"})
	var ve *db.ValidationError
	if err := c.CreateEnvironment(ctx, e); !errors.As(err, &ve) {
		t.Fatalf("CreateEnvironment(invalid) = %v, want *ValidationError", err)
	}
	if ve.For("services[3].name") == "" || ve.For("services[3].url") == "" {
		t.Fatalf("errors = %v, want services[3].name and services[3].url", ve)
	}
	if envs, _ := c.FindEnvironments(ctx, db.EnvironmentFilter{}); len(envs) != 0 {
		t.Fatalf("FindEnvironments() = %d environments after invalid create, want 0", len(envs))
	}
	var n int
	rawDB(t, c).QueryRow(`SELECT COUNT(*) FROM services`).Scan(&n)
	if n != 0 {
		t.Fatalf("services rows = %d after invalid create, want 0", n)
	}

	mustCreateEnv(t, c, mainEnv())
	bad := mainEnv()
	bad.Title = "changed"
	bad.Services[1].URL = "redis://127.0.0.1:99999/0"
	if err := c.UpdateEnvironment(ctx, bad); !errors.As(err, &ve) || ve.For("services[1].url") == "" {
		t.Fatalf("UpdateEnvironment(invalid) = %v, want a services[1].url error", err)
	}
	if got, _ := c.FindEnvironmentByName(ctx, "main"); got.Title != "main" {
		t.Fatalf("Title = %q after invalid update, want unchanged", got.Title)
	}
}

func TestEnvironments_URLEncryptedAtRest(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "rewind.db")
	c := mustOpenAt(t, path)
	mustCreateEnv(t, c, mainEnv())
	var enc []byte
	if err := rawDB(t, c).QueryRow(`SELECT url_enc FROM services WHERE name = 'db'`).Scan(&enc); err != nil {
		t.Fatal(err)
	}
	if len(enc) == 0 || bytes.Contains(enc, []byte("s3cr3t-pw")) || bytes.Contains(enc, []byte("postgres")) {
		t.Fatalf("url_enc = %q, want ciphertext", enc)
	}
	// Nothing in the file holds the password in clear (WAL included).
	for _, f := range []string{path, path + "-wal"} {
		data, _ := readFile(f)
		if bytes.Contains(data, []byte("s3cr3t-pw")) {
			t.Fatalf("%s contains the clear password", filepath.Base(f))
		}
	}
	// Two encryptions of one URL differ (random nonce).
	e2 := mainEnv()
	e2.Name, e2.Gate = "copy", db.Gate{}
	mustCreateEnv(t, c, e2)
	var enc2 []byte
	rawDB(t, c).QueryRow(`SELECT url_enc FROM services s JOIN environments e ON e.id = s.environment_id WHERE e.name = 'copy' AND s.name = 'db'`).Scan(&enc2)
	if bytes.Equal(enc, enc2) {
		t.Fatal("two ciphertexts of one URL are equal: want a fresh nonce each time")
	}

	// Another key cannot read them, and says so.
	other, err := db.Open(ctx, path, bytes.Repeat([]byte{9}, db.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.FindEnvironmentByName(ctx, "main"); !errors.Is(err, db.ErrDecrypt) {
		t.Fatalf("FindEnvironmentByName(other key) = %v, want ErrDecrypt", err)
	}
}

func TestFindEnvironmentChildren(t *testing.T) {
	ctx := context.Background()
	c := MustOpenDB(t)
	mustCreateEnv(t, c, &db.Environment{Name: "main", Type: db.EnvProduction})
	mustCreateEnv(t, c, &db.Environment{Name: "other", Type: db.EnvProduction})
	mustCreateEnv(t, c, &db.Environment{Name: "b-child", Type: db.EnvStaging, Parent: "main"})
	mustCreateEnv(t, c, &db.Environment{Name: "a-child", Type: db.EnvStaging, Parent: "main"})
	mustCreateEnv(t, c, &db.Environment{Name: "grandchild", Type: db.EnvDevelopment, Parent: "a-child"})
	for name, want := range map[string]string{"main": "a-child b-child", "a-child": "grandchild", "other": "", "unknown": ""} {
		got, err := c.FindEnvironmentChildren(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(got, " "); got != want {
			t.Errorf("FindEnvironmentChildren(%q) = %q, want %q", name, got, want)
		}
	}
}

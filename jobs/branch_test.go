package jobs

import (
	"strings"
	"testing"

	"github.com/rewind/rewind/db"
)

func TestBranchEnvironmentDerivesEveryServiceBySuffix(t *testing.T) {
	parent := &db.Environment{Name: "main", Type: db.EnvProduction, Services: []db.Service{
		{Name: "db", Type: db.ServicePostgreSQL, URL: "postgres://app:secret@127.0.0.1:5432/app?sslmode=disable"},
		{Name: "shop", Type: db.ServiceMySQL, URL: "mysql://root:@127.0.0.1:3306/shop"},
		{Name: "local", Type: db.ServiceSQLite, Path: "/srv/app/data/app.db"},
		{Name: "uploads", Type: db.ServiceFiles, Path: "/srv/app/uploads/", Exclude: []string{"*.tmp"}},
	}}
	env, err := branchEnvironment(parent, "restore-0123abcd")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"db":      "postgres://app:secret@127.0.0.1:5432/app_restore_0123abcd?sslmode=disable",
		"shop":    "mysql://root:@127.0.0.1:3306/shop_restore_0123abcd",
		"local":   "/srv/app/data/app-restore_0123abcd.db",
		"uploads": "/srv/app/uploads-restore_0123abcd",
	}
	for _, s := range env.Services {
		got := s.URL + s.Path
		if got != want[s.Name] {
			t.Errorf("service %s = %q, want %q", s.Name, got, want[s.Name])
		}
	}
	if got, want := env.Parent, "main"; got != want {
		t.Fatalf("parent = %q, want %q", got, want)
	}
	if err := env.Validate(); err != nil {
		t.Fatalf("branched environment is invalid: %v", err)
	}
	env.Services[3].Exclude[0] = "changed"
	if parent.Services[3].Exclude[0] != "*.tmp" {
		t.Fatal("branch shares its excludes with the parent")
	}

	parent.Services = append(parent.Services, db.Service{Name: "cache", Type: db.ServiceRedis, URL: "redis://127.0.0.1:6379/0"})
	if _, err := branchEnvironment(parent, "feature"); err == nil || !strings.Contains(err.Error(), "--target feature") {
		t.Fatalf("branching a Redis service = %v, want a refusal saying what to do", err)
	}
}

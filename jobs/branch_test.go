package jobs

import (
	"errors"
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
	noRedis := func(db.Service) (string, error) { t.Fatal("asked for a Redis database"); return "", nil }
	env, err := branchEnvironment(parent, "restore-0123abcd", noRedis)
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

	// Redis databases are numbered: the picker chooses the branch's, and its refusal refuses the branch.
	parent.Services = append(parent.Services, db.Service{Name: "cache", Type: db.ServiceRedis, URL: "redis://127.0.0.1:6379/0"})
	env, err = branchEnvironment(parent, "feature", func(s db.Service) (string, error) {
		return strings.TrimSuffix(s.URL, "/0") + "/7", nil
	})
	if err != nil || env.Services[4].URL != "redis://127.0.0.1:6379/7" {
		t.Fatalf("branched Redis service = %+v, %v; want database 7", env.Services, err)
	}
	_, err = branchEnvironment(parent, "feature", func(db.Service) (string, error) { return "", errors.New("all 16 in use") })
	if err == nil || !strings.Contains(err.Error(), `service "cache" of "main": all 16 in use`) {
		t.Fatalf("branch when no Redis database is free = %v, want the picker's refusal naming the service", err)
	}
}

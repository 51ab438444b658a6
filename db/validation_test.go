package db_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/rewind/rewind/db"
)

func TestEnvironmentValidate(t *testing.T) {
	valid := func() *db.Environment { return mainEnv() }
	if err := valid().Validate(); err != nil {
		t.Fatalf("Validate(valid) = %v", err)
	}
	for _, tt := range []struct {
		name   string
		change func(e *db.Environment)
		field  string
		want   string
	}{
		{"missing name", func(e *db.Environment) { e.Name = "" }, "name", "name is required"},
		{"bad slug", func(e *db.Environment) { e.Name = "Main_Env" }, "name", "not a valid environment name"},
		{"uppercase hint", func(e *db.Environment) { e.Name = "Main" }, "name", `try "main"`},
		{"trailing hyphen", func(e *db.Environment) { e.Name = "main-" }, "name", "lowercase letters"},
		{"too long", func(e *db.Environment) { e.Name = strings.Repeat("a", 64) }, "name", "1-63"},
		{"missing type", func(e *db.Environment) { e.Type = "" }, "type", "type is required"},
		{"unknown type", func(e *db.Environment) { e.Type = "prod" }, "type", `unknown environment type "prod"`},
		{"bad status", func(e *db.Environment) { e.Status = "paused" }, "status", "active or inactive"},
		{"bad parent slug", func(e *db.Environment) { e.Parent = "Not Valid" }, "parent", "not a valid parent"},
		{"own parent", func(e *db.Environment) { e.Parent = "main" }, "parent", "own parent"},
		{"relative git_dir", func(e *db.Environment) { e.GitDir = "srv/app" }, "git_dir", "relative"},
		{"gate listen not host:port", func(e *db.Environment) { e.Gate.Listen = "8081" }, "gate.listen", "not host:port"},
		{"gate listen bad port", func(e *db.Environment) { e.Gate.Listen = "127.0.0.1:http" }, "gate.listen", "not a port number"},
		{"gate listen port range", func(e *db.Environment) { e.Gate.Listen = "127.0.0.1:70000" }, "gate.listen", "1-65535"},
		{"gate without listen", func(e *db.Environment) { e.Gate.Listen = "" }, "gate.listen", "needs a listen address"},
		{"gate without upstream", func(e *db.Environment) { e.Gate.Upstream = "" }, "gate.upstream", "needs the upstream"},
		{"gate upstream scheme", func(e *db.Environment) { e.Gate.Upstream = "tcp://127.0.0.1:3000" }, "gate.upstream", "http:// or https://"},
		{"gate upstream host", func(e *db.Environment) { e.Gate.Upstream = "http://:3000" }, "gate.upstream", "no host"},
		{"gate proxies to itself", func(e *db.Environment) { e.Gate.Upstream = "http://" + e.Gate.Listen }, "gate.upstream", "own listen address"},
		{"hook with NUL", func(e *db.Environment) { e.Hooks.PostRestore = "a\x00b" }, "hooks.post_restore", "NUL"},
		{"service name", func(e *db.Environment) { e.Services[0].Name = "DB" }, "services[0].name", "not a valid service name"},
		{"service missing name", func(e *db.Environment) { e.Services[1].Name = "" }, "services[1].name", "service name is required"},
		{"duplicate service", func(e *db.Environment) { e.Services[2].Name = "db" }, "services[2].name", `duplicate service name "db" (also services[0])`},
		{"unknown service type", func(e *db.Environment) { e.Services[0].Type = "mongodb" }, "services[0].type", `unknown service type "mongodb"`},
		{"missing service type", func(e *db.Environment) { e.Services[0].Type = "" }, "services[0].type", "service type is required"},
		{"postgres scheme", func(e *db.Environment) { e.Services[0].URL = "mysql://app:pw@h:3306/app" }, "services[0].url", `scheme "mysql" does not fit a postgresql service: use postgres:// or postgresql://`},
		{"postgres no host", func(e *db.Environment) { e.Services[0].URL = "postgres:///app" }, "services[0].url", "no host"},
		{"postgres no database", func(e *db.Environment) { e.Services[0].URL = "postgres://app@127.0.0.1:5432" }, "services[0].url", "names no database"},
		{"postgres missing url", func(e *db.Environment) { e.Services[0].URL = "" }, "services[0].url", "url is required for a postgresql service"},
		{"url with space", func(e *db.Environment) { e.Services[0].URL = "postgres://app:my pw@h/app" }, "services[0].url", "spaces"},
		{"url without scheme", func(e *db.Environment) { e.Services[0].URL = "127.0.0.1:5432/app" }, "services[0].url", "postgres://"},
		{"url bad port", func(e *db.Environment) { e.Services[0].URL = "postgres://h:0/app" }, "services[0].url", "not a port number"},
		{"url fragment", func(e *db.Environment) { e.Services[0].URL = "postgres://app:pa#ss@h/app" }, "services[0].url", "%23"},
		{"redis path", func(e *db.Environment) { e.Services[1].URL = "redis://127.0.0.1:6379/cache" }, "services[1].url", "redis database number"},
		{"redis scheme", func(e *db.Environment) { e.Services[1].URL = "http://127.0.0.1:6379" }, "services[1].url", "redis:// or rediss://"},
		{"url service with path", func(e *db.Environment) { e.Services[1].Path = "/x" }, "services[1].path", "not path"},
		{"files missing path", func(e *db.Environment) { e.Services[2].Path = "" }, "services[2].path", "path is required"},
		{"files relative path", func(e *db.Environment) { e.Services[2].Path = "uploads" }, "services[2].path", `"uploads" is relative`},
		{"files with url", func(e *db.Environment) { e.Services[2].URL = "file:///x" }, "services[2].url", "take a path, not a url"},
		{"bad exclude", func(e *db.Environment) { e.Services[2].Exclude = []string{"ok/", "[a-"} }, "services[2].exclude[1]", "not a valid glob"},
		{"empty exclude", func(e *db.Environment) { e.Services[2].Exclude = []string{" "} }, "services[2].exclude[0]", "empty"},
		{"exclude on sqlite", func(e *db.Environment) {
			e.Services[2] = db.Service{Name: "s", Type: db.ServiceSQLite, Path: "/a.db", Exclude: []string{"x"}}
		}, "services[2].exclude", "files services only"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := valid()
			tt.change(e)
			err := e.Validate()
			var ve *db.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate() = %v, want *ValidationError", err)
			}
			if got := ve.For(tt.field); !strings.Contains(got, tt.want) {
				t.Fatalf("For(%q) = %q, want it to contain %q (all: %v)", tt.field, got, tt.want, ve)
			}
			if got, want := len(ve.Errors), 1; got != want {
				t.Fatalf("len(Errors) = %d, want %d: %v", got, want, ve)
			}
		})
	}
}

func TestValidationError_ListsAllInOrder(t *testing.T) {
	e := &db.Environment{Name: "Bad Name", Type: "x", Services: []db.Service{{Name: "a", Type: "nope"}, {Name: "b", Type: db.ServiceFiles}}}
	var ve *db.ValidationError
	if !errors.As(e.Validate(), &ve) {
		t.Fatal("Validate() = nil")
	}
	var fields []string
	for _, fe := range ve.Errors {
		fields = append(fields, fe.Field)
	}
	if got, want := strings.Join(fields, " "), "name type services[0].type services[1].path"; got != want {
		t.Fatalf("fields = %q, want %q", got, want)
	}
	if got := ve.Prefix("environments[2]").Errors[2].Field; got != "environments[2].services[0].type" {
		t.Fatalf("Prefix() field = %q", got)
	}
	if !strings.Contains(ve.Error(), "name: ") || ve.For("nothing") != "" {
		t.Fatalf("Error() = %q", ve.Error())
	}
}

func TestValidServiceURLs(t *testing.T) {
	for _, tt := range []struct{ typ, url string }{
		{db.ServicePostgreSQL, "postgres://app:secret@127.0.0.1:5432/app"},
		{db.ServicePostgreSQL, "postgresql://app@db.internal/app?sslmode=disable"},
		{db.ServicePostgreSQL, "postgres://app:p%40ss@[::1]:5432/app"},
		{db.ServiceMySQL, "mysql://root:@127.0.0.1:3306/shop"},
		{db.ServiceMySQL, "mariadb://root@localhost/shop"},
		{db.ServiceRedis, "redis://127.0.0.1:6379/0"},
		{db.ServiceRedis, "rediss://:secret@cache:6380"},
		{db.ServiceRedis, "redis://cache"},
	} {
		if msg := db.ValidateServiceURL(tt.typ, tt.url); msg != "" {
			t.Errorf("ValidateServiceURL(%s, %q) = %q, want valid", tt.typ, tt.url, msg)
		}
	}
	if msg := db.ValidateServiceURL(db.ServiceSQLite, "x"); msg == "" {
		t.Error("ValidateServiceURL(sqlite) accepted a url")
	}
}

func TestMaskURL(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"postgres://app:s3cret@127.0.0.1:5432/app", "postgres://app:****@127.0.0.1:5432/app"},
		{"mysql://root:@127.0.0.1:3306/shop", "mysql://root:@127.0.0.1:3306/shop"},
		{"redis://:hunter2@cache:6379/0", "redis://:****@cache:6379/0"},
		{"redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"},
		{"postgres://app@h/app?sslmode=require&password=x1", "postgres://app@h/app?password=****&sslmode=require"},
		{"postgres://app:p%40ss@h/app", "postgres://app:****@h/app"},
		{"", ""},
		{"::not a url", "****"},
	} {
		if got := (db.Service{URL: tt.in}).MaskedURL(); got != tt.want {
			t.Errorf("MaskedURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

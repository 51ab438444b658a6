package views

import (
	"strings"
	"testing"

	"github.com/rewind/rewind/db"
)

func TestEnvTree(t *testing.T) {
	envs := []*db.Environment{
		{Name: "main"}, {Name: "dev", Parent: "staging"}, {Name: "staging", Parent: "main"},
		{Name: "orphan", Parent: "gone"}, {Name: "other"},
	}
	var got []string
	for _, r := range EnvTree(envs) {
		got = append(got, strings.Repeat(">", r.Depth)+r.Env.Name)
	}
	if got, want := strings.Join(got, " "), "main >staging >>dev orphan other"; got != want {
		t.Fatalf("EnvTree = %q, want %q", got, want)
	}
}

func TestErrFor(t *testing.T) {
	errs := Errors{"services[0].exclude[1]": "bad pattern", "services[1].url": "bad url"}
	for _, tc := range []struct{ field, want string }{
		{"services[0].exclude", "bad pattern"},
		{"services[1].url", "bad url"},
		{"services", ""},
		{"services[0].url", ""},
	} {
		if got := errFor(errs, tc.field); got != tc.want {
			t.Errorf("errFor(%q) = %q, want %q", tc.field, got, tc.want)
		}
	}
}

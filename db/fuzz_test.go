package db_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/rewind/rewind/db"
)

// FuzzValidateServiceURL checks that validation never panics, that every
// accepted URL parses with a scheme of its type and a host, and that masking
// an accepted URL hides its password.
func FuzzValidateServiceURL(f *testing.F) {
	for _, seed := range []struct{ typ, url string }{
		{db.ServicePostgreSQL, "postgres://app:secret@127.0.0.1:5432/app"},
		{db.ServicePostgreSQL, "postgresql://app@[::1]/app?sslmode=disable&password=pw"},
		{db.ServiceMySQL, "mysql://root:@127.0.0.1:3306/shop"},
		{db.ServiceMySQL, "mariadb://u:p%40ss@db:3306/shop"},
		{db.ServiceRedis, "redis://127.0.0.1:6379/0"},
		{db.ServiceRedis, "rediss://:secret@cache:6380/1"},
		{db.ServiceRedis, "redis://:@:0/x"},
		{db.ServicePostgreSQL, "http://x"},
		{db.ServicePostgreSQL, "postgres://a b@c/d"},
		{db.ServicePostgreSQL, "postgres://u:p#w@h/d"},
		{db.ServicePostgreSQL, "postgres://%zz@h/d"},
		{db.ServiceSQLite, "/srv/app.db"},
		{"mongodb", "mongodb://h/d"},
		{db.ServiceMySQL, ""},
	} {
		f.Add(seed.typ, seed.url)
	}
	f.Fuzz(func(t *testing.T, typ, raw string) {
		msg := db.ValidateServiceURL(typ, raw)
		if msg != "" {
			return
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("accepted %q, which does not parse: %v", raw, err)
		}
		schemes := map[string][]string{
			db.ServicePostgreSQL: {"postgres", "postgresql"},
			db.ServiceMySQL:      {"mysql", "mariadb"},
			db.ServiceRedis:      {"redis", "rediss"},
		}[typ]
		ok := false
		for _, s := range schemes {
			ok = ok || u.Scheme == s
		}
		if !ok {
			t.Fatalf("accepted %q for type %q with scheme %q", raw, typ, u.Scheme)
		}
		if u.Hostname() == "" {
			t.Fatalf("accepted %q without a host", raw)
		}
		if strings.ContainsAny(raw, " \n\r\t\x00") {
			t.Fatalf("accepted %q with whitespace or NUL", raw)
		}
		masked := db.MaskURL(raw)
		mu, err := url.Parse(masked)
		if err != nil {
			t.Fatalf("MaskURL(%q) = %q, which does not parse: %v", raw, masked, err)
		}
		if pw, set := u.User.Password(); set && pw != "" {
			if got, _ := mu.User.Password(); got != db.MaskedPassword {
				t.Fatalf("MaskURL(%q) = %q: password %q, want %q", raw, masked, got, db.MaskedPassword)
			}
		}
		for k, vs := range mu.Query() {
			if strings.EqualFold(k, "password") {
				for _, v := range vs {
					if v != db.MaskedPassword {
						t.Fatalf("MaskURL(%q) = %q: query password %q not masked", raw, masked, v)
					}
				}
			}
		}
	})
}

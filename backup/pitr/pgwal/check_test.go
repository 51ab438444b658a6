package pgwal_test

import (
	"context"
	"strings"
	"testing"

	"github.com/rewind/rewind/backup/pitr"
	"github.com/rewind/rewind/backup/pitr/pgwal"
	"github.com/rewind/rewind/backup/testserver"
)

// TestCheck runs the prerequisites check against a real server: a role without REPLICATION is told exactly what
// to run; with REPLICATION (and no superuser) every check passes.
func TestCheck(t *testing.T) {
	srv := testserver.StartPostgres(t)
	dbName := srv.CreateDatabase(t, "")
	results := func(url string) map[string]pitr.CheckResult {
		out := map[string]pitr.CheckResult{}
		for _, r := range pgwal.Check(context.Background(), url, "main", "db", "") {
			out[r.Name] = r
		}
		return out
	}

	plain := srv.CreateRole(t, "pw", "")
	got := results(srv.RoleURL(plain, "pw", dbName))
	if r := got["replication role"]; r.Status != pitr.CheckFailed || !strings.Contains(r.Message, "ALTER ROLE \""+plain+"\" REPLICATION") {
		t.Errorf("replication role for %s = %+v, want failed saying ALTER ROLE … REPLICATION", plain, r)
	}
	if r := got["replication connection"]; r.Status != pitr.CheckFailed {
		t.Errorf("replication connection without REPLICATION = %+v, want failed", r)
	}
	if r := got["wal_level"]; r.Status != pitr.CheckOK {
		t.Errorf("wal_level = %+v, want ok (replica is the default)", r)
	}

	repl := srv.CreateRole(t, "pw", "REPLICATION")
	for name, r := range results(srv.RoleURL(repl, "pw", dbName)) {
		if r.Status == pitr.CheckFailed {
			t.Errorf("%s with REPLICATION: %s", name, r.Message)
		}
	}

	if got := results("postgres://nobody@127.0.0.1:1/x"); got["connection"].Status != pitr.CheckFailed {
		t.Errorf("unreachable server: %+v, want the connection check failed", got["connection"])
	}
}

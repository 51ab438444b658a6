package redisrepl_test

import (
	"context"
	"strings"
	"testing"

	"github.com/rewind/rewind/backup/pitr"
	"github.com/rewind/rewind/backup/pitr/redisrepl"
)

// TestCheck runs the prerequisites check against a real server: the default user passes with a warning about
// the default 1 MB backlog; a user without +psync is told the ACL command to run; a wrong password fails the
// connection without echoing it; a big backlog passes.
func TestCheck(t *testing.T) {
	srv, c := startServer(t)
	ctx := context.Background()
	results := func(url string) map[string]pitr.CheckResult {
		out := map[string]pitr.CheckResult{}
		for _, r := range redisrepl.Check(ctx, url, "cache") {
			out[r.Name] = r
		}
		return out
	}
	url := srv.URL(0)
	got := results(url)
	for _, name := range []string{"connection", "server version", "replication"} {
		if got[name].Status != pitr.CheckOK {
			t.Errorf("%s for the default user = %+v, want ok", name, got[name])
		}
	}
	if r := got["repl-backlog-size"]; r.Status != pitr.CheckWarning || !strings.Contains(r.Message, "repl-backlog-size 64mb") {
		t.Errorf("repl-backlog-size at the default 1 MB = %+v, want a warning saying what to set", r)
	}

	if err := c.Do(ctx, "ACL", "SETUSER", "app", "on", ">s3cret", "~*", "+@all", "-psync").Err(); err != nil {
		t.Fatal(err)
	}
	appURL := strings.Replace(url, "redis://", "redis://app:s3cret@", 1)
	if r := results(appURL)["replication"]; r.Status != pitr.CheckFailed || !strings.Contains(r.Message, "ACL SETUSER app +psync +replconf") {
		t.Errorf("replication for a user without +psync = %+v, want failed naming the ACL command", r)
	}
	badURL := strings.Replace(url, "redis://", "redis://app:wrongpw@", 1)
	if r := results(badURL)["connection"]; r.Status != pitr.CheckFailed || strings.Contains(r.Message, "wrongpw") {
		t.Errorf("connection with a wrong password = %+v, want failed, without the password", r)
	}

	configSet(t, c, "repl-backlog-size", "64mb")
	if r := results(url)["repl-backlog-size"]; r.Status != pitr.CheckOK {
		t.Errorf("repl-backlog-size 64mb = %+v, want ok", r)
	}
}

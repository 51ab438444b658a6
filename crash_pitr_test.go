package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rewind/rewind/backup/pitr/pgwal"
	"github.com/rewind/rewind/backup/pitr/pitrtest"
	"github.com/rewind/rewind/backup/testserver"
	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/handlers"
)

// TestPITRCrash kills `rewind serve` (SIGKILL) while it follows a PostgreSQL server that keeps committing, starts
// it again, and shows that the stream has no gap: every moment from the base to the last marker, the downtime
// included, is restorable, and a restore to a moment inside the downtime brings exactly the markers committed by
// then.
func TestPITRCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills rewind serve")
	}
	dir := t.TempDir()
	s := &crashServer{t: t, data: filepath.Join(dir, "data"), addr: freeAddr(t), repoSecret: "pitr crash password"}
	add := rewindCommand("users:add", "ops@example.com", "--role", "admin", "--password-stdin", "--data", s.data)
	add.Stdin = strings.NewReader("pitr crash admin password\n")
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("users:add: %v\n%s", err, out)
	}
	out, err := rewindCommand("tokens:create", "--user", "ops@example.com", "--data", s.data).Output()
	if err != nil {
		t.Fatalf("tokens:create: %v", err)
	}
	s.token = strings.TrimSpace(string(out))
	srv := testserver.StartPostgres(t)
	dbName := srv.CreateDatabase(t, "")
	pgURL := srv.URL(dbName)
	t.Cleanup(func() { pgwal.DropSlot(context.Background(), pgURL, "app", "db") }) //nolint:errcheck

	stop := make(chan struct{})
	markers := pitrtest.Writer(t, pgURL, stop)
	s.start()
	defer func() { s.stop() }()
	s.api(http.MethodPut, "/api/v1/environments/app", map[string]any{"type": "production",
		"services": []map[string]any{{"name": "db", "type": "postgresql", "url": pgURL}},
		"pitr":     map[string]any{"enabled": true}}, nil)
	cat := openTestCatalog(t, s.data)
	ctx := context.Background()
	var base time.Time
	wait := func(what string, cond func(*db.PITRStream) bool) {
		t.Helper()
		for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			if st, err := cat.FindPITRStream(ctx, "app", "db"); err == nil && cond(st) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s\n%s", what, s.log)
			}
		}
	}
	wait("a base", func(st *db.PITRStream) bool {
		bases, _ := cat.FindPITRBases(ctx, st.ID)
		if len(bases) > 0 {
			base = bases[0].FinishedAt
		}
		return len(bases) > 0 && st.CoveredUntil != nil && st.CoveredUntil.After(base)
	})
	time.Sleep(time.Second)
	s.kill()
	downFrom := time.Now()
	time.Sleep(2 * time.Second)
	s.start()
	downTo := time.Now()
	time.Sleep(time.Second)
	close(stop)
	ms := markers()
	last := ms[len(ms)-1].After
	wait("the last marker shipped", func(st *db.PITRStream) bool {
		return st.CoveredUntil != nil && st.CoveredUntil.After(last.Add(200*time.Millisecond))
	})

	// No gap: every moment from the base to the last marker can be planned.
	plan := func(at time.Time) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://"+s.addr+"/api/v1/environments/app/restore?at="+
			url.QueryEscape(at.Format(time.RFC3339Nano)), nil)
		req.Header.Set("Authorization", "Bearer "+s.token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	for at := base.Add(10 * time.Millisecond); at.Before(last); at = at.Add(250 * time.Millisecond) {
		if code := plan(at); code != http.StatusOK {
			t.Fatalf("planning a restore to %s (downtime %s–%s): %d, want 200", at, downFrom, downTo, code)
		}
	}

	at := pitrtest.Clear(ms, downFrom.Add(downTo.Sub(downFrom)/2))
	want := pitrtest.UpTo(ms, at)
	var started struct {
		Activity db.Activity
		Plan     handlers.RestoreAtPlanJSON
	}
	s.api(http.MethodPost, "/api/v1/environments/app/restore", map[string]string{"at": at.Format(time.RFC3339Nano),
		"confirm": "app"}, &started)
	if a := s.waitActivity(started.Activity.ID); a.State != db.ActivitySucceeded {
		t.Fatalf("restore to %s: %s\n%s", at, a.State, a.Log)
	}
	if got := pitrtest.Count(t, pgURL); got != want {
		t.Fatalf("after the restore to %s, inside the downtime: %d markers, want %d", at, got, want)
	}
	if rt := started.Plan.Services[0].RestoredTo; rt == nil || rt.After(at) || rt.Before(ms[want-1].Before) {
		t.Fatalf("planned moment %v, want the commit of marker %d", rt, want)
	}
	t.Logf("downtime %s; %s", downTo.Sub(downFrom).Round(time.Millisecond), fmt.Sprint(len(ms), " markers"))
}

package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rewind/rewind/backup/scratch"
	"github.com/rewind/rewind/backup/testserver"
	"github.com/rewind/rewind/db"
)

// TestDrillCrash kills `rewind serve` (SIGKILL) while a restore drill's private Redis runs and its smoke command
// waits: the server dies with Rewind at once, and the restart fails the drill as interrupted and removes the
// directory it left.
func TestDrillCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills rewind serve")
	}
	rd := testserver.StartRedis(t)
	rdDB := rd.CreateDatabase(t)
	dir := t.TempDir()
	tmp := filepath.Join(dir, "tmp") // the served Rewind's temporary directory: where its drills run
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", tmp)
	s := newCrashServer(t, filepath.Join(dir, "data"))
	s.start()
	defer func() { s.stop() }()
	s.api(http.MethodPut, "/api/v1/environments/app", map[string]any{"type": "production",
		"drill":    map[string]string{"smoke": "sleep 5"},
		"services": []map[string]any{{"name": "cache", "type": "redis", "url": rd.URL(rdDB)}}}, nil)
	var started struct{ Activity db.Activity }
	s.api(http.MethodPost, "/api/v1/environments/app/backups", map[string]any{}, &started)
	if a := s.waitActivity(started.Activity.ID); a.State != db.ActivitySucceeded {
		t.Fatalf("backup: %s\n%s", a.State, a.Log)
	}
	s.api(http.MethodPost, "/api/v1/environments/app/drills", nil, &started)
	deadline := time.Now().Add(time.Minute)
	for { // until the drill's log, saved about once a second, reaches the smoke command
		var got struct{ Activity db.Activity }
		s.api(http.MethodGet, fmt.Sprintf("/api/v1/activities/%d", started.Activity.ID), nil, &got)
		if strings.Contains(got.Activity.Log, "running the smoke command") {
			break
		}
		if got.Activity.Done() || time.Now().After(deadline) {
			t.Fatalf("the drill never reached its smoke command: %s\n%s", got.Activity.State, got.Activity.Log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	left, _ := filepath.Glob(filepath.Join(tmp, "rewind-drill-*"))
	if len(left) != 1 || len(serversFrom(tmp)) != 1 {
		t.Fatalf("while the drill runs: directories %v, servers %v; want one of each", left, serversFrom(tmp))
	}
	s.kill()
	for deadline := time.Now().Add(10 * time.Second); len(serversFrom(tmp)) > 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the drill's server outlived the killed Rewind: %v", serversFrom(tmp))
		}
	}
	s.start()
	a := s.waitActivity(started.Activity.ID)
	if a.State != db.ActivityFailed || !strings.Contains(a.Log, "interrupted") {
		t.Fatalf("the drill after the restart: %s\n%s", a.State, a.Log)
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "rewind-drill-*")); len(left) != 0 {
		t.Fatalf("the restart left the drill's directory: %v", left)
	}
	var list struct{ Drills []db.Drill }
	s.api(http.MethodGet, "/api/v1/environments/app/drills", nil, &list)
	if len(list.Drills) != 1 || list.Drills[0].State != db.DrillFailed || !strings.Contains(list.Drills[0].Error, "interrupted") {
		t.Fatalf("drills after the restart = %+v", list.Drills)
	}
}

// serversFrom lists the processes that run from dir (see scratch.RunsFrom).
func serversFrom(dir string) []int {
	var out []int
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		pid, err := strconv.Atoi(filepath.Base(p))
		if err == nil && scratch.RunsFrom(pid, dir) {
			out = append(out, pid)
		}
	}
	return out
}

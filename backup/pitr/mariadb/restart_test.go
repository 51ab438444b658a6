package mariadb

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/pitr"
	"github.com/rewind/rewind/backup/pitr/pitrtest"
	"github.com/rewind/rewind/backup/scratch"
	"github.com/rewind/rewind/backup/testserver"
)

// TestFollow_SpoolLost: a follower whose spool is gone cannot know where the stream stopped: it records a gap
// and starts a new stream from a new base. A rebuild whose replay fails leaves no server running and no
// directory behind.
func TestFollow_SpoolLost(t *testing.T) {
	srv := testserver.StartMariaDBBinlog(t)
	dbName := srv.CreateDatabase(t)
	svc := backup.ServiceSpec{Name: testserver.UniqueName("db"), Type: backup.TypeMySQL, URL: srv.URL(dbName)}
	k := &Kind{}
	rep := pitrtest.OpenRepo(t)
	rec := &pitrtest.Record{}
	spec := pitr.FollowSpec{Environment: "main", Service: svc, Repo: rep, Spool: t.TempDir(), Record: rec,
		ShipEvery: 100 * time.Millisecond}
	db := srv.Open(t, dbName)
	if _, err := db.Exec("CREATE TABLE marker (n int PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	for round := 1; round <= 2; round++ {
		stop := pitrtest.Follow(t, func(ctx context.Context) error { return k.Follow(ctx, spec) })
		pitrtest.WaitFor(t, "a base", func() bool { n, _ := rec.Counts(); return n == round })
		if _, err := db.Exec("INSERT INTO marker VALUES (?)", round); err != nil {
			t.Fatal(err)
		}
		at := time.Now()
		pitrtest.WaitFor(t, "the marker shipped", func() bool { _, c := rec.Counts(); return c.After(at) })
		stop()
		spec.Spool = filepath.Join(t.TempDir(), "spool") // the spool is lost (Follow creates the new one)
	}
	if len(rec.Gaps()) != 1 || !strings.Contains(rec.Gaps()[0], "spool") {
		t.Fatalf("gaps = %q, want one saying the spool lost the stream's position", rec.Gaps())
	}

	st := rec.Stream(k.NextSegment)
	choice, err := st.Choose(time.Time{}, st.CoveredUntil)
	if err != nil {
		t.Fatal(err)
	}
	// A position inside an event: mariadb-binlog fails the replay after the scratch server started.
	pos, err := parsePosition(choice.Base.StartLSN)
	if err != nil {
		t.Fatal(err)
	}
	choice.Base.StartLSN = position{File: pos.File, Pos: pos.Pos + 1}.String()
	dir := scratchDir(t)
	_, err = k.Rebuild(context.Background(), pitr.RebuildSpec{Repo: rep, Service: svc, Choice: choice,
		Target: time.Now(), Dir: dir})
	if err == nil {
		t.Fatal("Rebuild from inside an event succeeded, want the replay to fail")
	}
	t.Logf("Rebuild: %v", err)
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after a failed Rebuild %s is still there (%v)", dir, err)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		if pid, err := strconv.Atoi(filepath.Base(p)); err == nil && scratch.RunsFrom(pid, dir) {
			t.Errorf("after a failed Rebuild process %d still runs from %s", pid, dir)
		}
	}
}

// TestFollow_ServerRestart: the server restarts (its binlog file ends with a stop event, no rotate, and the next
// start begins the next file); the follower's stream breaks, and the next Follow, as the job runner starts it,
// resumes into the new file without a gap or a new base.
func TestFollow_ServerRestart(t *testing.T) {
	srv := testserver.StartMariaDBBinlog(t)
	dbName := srv.CreateDatabase(t)
	svc := backup.ServiceSpec{Name: testserver.UniqueName("db"), Type: backup.TypeMySQL, URL: srv.URL(dbName)}
	k := &Kind{}
	rep := pitrtest.OpenRepo(t)
	rec := &pitrtest.Record{}
	spec := pitr.FollowSpec{Environment: "main", Service: svc, Repo: rep, Spool: t.TempDir(), Record: rec,
		ShipEvery: 100 * time.Millisecond}
	db := srv.Open(t, dbName)
	if _, err := db.Exec("CREATE TABLE marker (n int PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	insert := func(n int) time.Time {
		t.Helper()
		if _, err := db.Exec("INSERT INTO marker VALUES (?)", n); err != nil {
			t.Fatal(err)
		}
		return time.Now()
	}

	// Follow again after each failure, as the job runner does (with a short backoff).
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var fails []string
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if err := k.Follow(ctx, spec); err != nil {
				fails = append(fails, err.Error())
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)

	pitrtest.WaitFor(t, "a base", func() bool { n, _ := rec.Counts(); return n == 1 })
	one := insert(1)
	pitrtest.WaitFor(t, "marker 1 shipped", func() bool { _, c := rec.Counts(); return c.After(one) })
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	// Marker 2 after the stream is back: one written while it is down is dated to the server's second.
	pitrtest.WaitFor(t, "the stream back", func() bool {
		var n int
		err := db.QueryRow("SELECT count(*) FROM information_schema.processlist WHERE command LIKE 'Binlog Dump%'").Scan(&n)
		return err == nil && n == 1
	})
	two := insert(2)
	pitrtest.WaitFor(t, "marker 2 shipped", func() bool { _, c := rec.Counts(); return c.After(two.Add(10 * time.Millisecond)) })
	stop()
	t.Logf("follow failures: %q", fails)

	st := rec.Stream(k.NextSegment)
	if len(st.Bases) != 1 || len(rec.Gaps()) != 0 {
		t.Fatalf("bases = %d, gaps %q; want 1 base and no gap", len(st.Bases), rec.Gaps())
	}
	if len(st.Ranges(time.Time{})) != 1 {
		t.Fatalf("ranges = %+v, want one", st.Ranges(time.Time{}))
	}
	at := two.Add(10 * time.Millisecond)
	choice, err := st.Choose(time.Time{}, at)
	if err != nil {
		t.Fatal(err)
	}
	if len(choice.Segments) < 2 {
		t.Errorf("replay reads %d segments, want the file the restart ended and the next", len(choice.Segments))
	}
	r, err := k.Rebuild(context.Background(), pitr.RebuildSpec{Repo: rep, Service: svc, Choice: choice, Target: at,
		Dir: scratchDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got := count(t, r.Spec(svc).URL, svc.Name); got != 2 {
		t.Errorf("rebuilt after the restart: %d markers, want 2", got)
	}
}

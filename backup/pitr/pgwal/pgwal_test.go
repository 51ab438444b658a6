package pgwal_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/rewind/rewind/backup/pitr"
	"github.com/rewind/rewind/backup/pitr/pgwal"
	"github.com/rewind/rewind/backup/pitr/pitrtest"
	"github.com/rewind/rewind/backup/testserver"
)

func TestMain(m *testing.M) { testserver.Main(m) }

// TestFollowAndRebuild follows a real PostgreSQL server while a marker is committed every 50 ms, stops the
// follower for a while in the middle, and rebuilds the cluster at random moments: each rebuild holds exactly the
// markers committed at or before its moment.
func TestFollowAndRebuild(t *testing.T) {
	srv := testserver.StartPostgres(t)
	dbName := srv.CreateDatabase(t, "")
	url := srv.URL(dbName)
	rep := pitrtest.OpenRepo(t)
	rec := &pitrtest.Record{}
	env, svc := "main", testserver.UniqueName("db")
	spool := t.TempDir()
	newFollower := func() *pgwal.Follower {
		return &pgwal.Follower{Environment: env, Service: svc, URL: url, Repo: rep, Spool: spool, Record: rec,
			ShipEvery: 200 * time.Millisecond}
	}
	t.Cleanup(func() {
		if err := pgwal.DropSlot(context.Background(), url, env, svc); err != nil {
			t.Errorf("DropSlot: %v", err)
		}
	})

	for _, r := range pgwal.Check(context.Background(), url, env, svc, "") {
		if r.Status == pitr.CheckFailed {
			t.Fatalf("Check: %s: %s", r.Name, r.Message)
		}
	}

	stopWrites := make(chan struct{})
	markers := pitrtest.Writer(t, url, stopWrites)
	stop := pitrtest.Follow(t, newFollower().Run)
	pitrtest.WaitFor(t, "a base", func() bool { b, _, _ := rec.State(); return len(b) == 1 })
	time.Sleep(1500 * time.Millisecond)
	stop() // the follower is down while markers keep coming
	downFrom := time.Now()
	time.Sleep(time.Second)
	downTo := time.Now()
	stop = pitrtest.Follow(t, newFollower().Run)
	time.Sleep(1500 * time.Millisecond)
	close(stopWrites)
	ms := markers()
	last := ms[len(ms)-1].After
	pitrtest.WaitFor(t, "the last marker shipped", func() bool { _, _, c := rec.State(); return c.After(last.Add(300 * time.Millisecond)) })
	stop()

	bases, segs, covered := rec.State()
	if len(bases) != 1 {
		t.Fatalf("bases = %d, want 1 (a restart resumes from the slot, without a new base)", len(bases))
	}
	st := pitr.Stream{Bases: bases, Segments: segs, CoveredUntil: covered, Next: pgwal.NextWAL}
	rs := st.Ranges(time.Time{})
	if len(rs) != 1 || rs[0].From.After(downFrom) || rs[0].To.Before(last) {
		t.Fatalf("ranges = %+v, want one range from the base over the downtime %s–%s to past the last marker %s",
			rs, downFrom, downTo, last)
	}

	// Random moments between the base and the last marker (one inside the downtime, one after every marker),
	// each away from any commit's uncertainty interval.
	from := bases[0].FinishedAt
	var ts []time.Time
	ts = append(ts, downFrom.Add(downTo.Sub(downFrom)/2), last.Add(100*time.Millisecond))
	for len(ts) < 22 { // 20 random ones
		t0 := from.Add(time.Duration(rand.Int64N(int64(last.Sub(from)))))
		if !pitrtest.Ambiguous(ms, t0) {
			ts = append(ts, t0)
		}
	}
	for _, at := range ts {
		if pitrtest.Ambiguous(ms, at) {
			continue
		}
		want := pitrtest.UpTo(ms, at)
		choice, err := st.Choose(time.Time{}, at)
		if err != nil {
			t.Fatalf("Choose(%s) = %v", at, err)
		}
		if err := choice.Exact(context.Background(), rep); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		s, err := pgwal.Rebuild(context.Background(), pgwal.RebuildRequest{Repo: rep, Choice: choice, Target: at,
			Dir: scratchDir(t), User: "postgres"})
		if err != nil {
			t.Fatalf("Rebuild(%s) = %v", at, err)
		}
		took := time.Since(t0)
		got := pitrtest.Count(t, s.URL(dbName))
		t.Logf("at %s: rebuilt in %s, %d markers (reached %v)", at.Format(time.RFC3339Nano), took.Round(time.Millisecond), got, s.Reached())
		s.Close()
		if got != want {
			t.Errorf("rebuilt at %s: markers 1..%d, want exactly 1..%d", at.Format(time.RFC3339Nano), got, want)
		}
		if choice.Reached == nil || choice.Reached.After(at) || (s.Reached() != nil && !s.Reached().Equal(*choice.Reached)) {
			t.Errorf("at %s: planned moment %v, recovery reached %v; want the same newest commit at or before T",
				at, choice.Reached, s.Reached())
		}
	}

	// Refused: before the base, and after what was shipped.
	var ge *pitr.GapError
	if _, err := st.Choose(time.Time{}, from.Add(-time.Minute)); !errors.As(err, &ge) || ge.After == nil {
		t.Errorf("Choose(before the base) = %v, want a GapError naming the oldest moment", err)
	}
	if _, err := st.Choose(time.Time{}, time.Now().Add(time.Hour)); !errors.As(err, &ge) || ge.Before == nil {
		t.Errorf("Choose(an hour ahead) = %v, want a GapError naming the newest moment", err)
	}
}

func scratchDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "rewind-pitr-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir // the scratch server's user must reach it: Rebuild hands it over, so no private parent
}

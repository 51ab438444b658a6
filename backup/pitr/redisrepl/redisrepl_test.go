package redisrepl_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/pitr"
	"github.com/rewind/rewind/backup/pitr/pitrtest"
	"github.com/rewind/rewind/backup/pitr/redisrepl"
	"github.com/rewind/rewind/backup/scratch"
	"github.com/rewind/rewind/backup/testserver"
)

func TestMain(m *testing.M) { testserver.Main(m) }

// lateBy is how long after the client's acknowledgement the follower may stamp a command (it stamps the time
// the command arrived): moments that close after a marker are not asserted.
const lateBy = 25 * time.Millisecond

// startServer starts a private Redis for one test (its replication settings are changed by the tests).
func startServer(t testing.TB) (*scratch.Redis, *redis.Client) {
	t.Helper()
	srv, err := scratch.StartRedis(filepath.Join(t.TempDir(), "redis"), scratch.RedisOptions{})
	if errors.Is(err, scratch.ErrNotInstalled) {
		t.Skip("redis-server is not installed")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { c.Close() })
	return srv, c
}

func configSet(t testing.TB, c *redis.Client, kv ...string) {
	t.Helper()
	for i := 0; i < len(kv); i += 2 {
		if err := c.ConfigSet(context.Background(), kv[i], kv[i+1]).Err(); err != nil {
			t.Fatalf("CONFIG SET %s %s: %v", kv[i], kv[i+1], err)
		}
	}
}

func scratchDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "rewind-redis-pitr-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// rebuildAndCount rebuilds the stream at at and returns the markers of database db in it, checking that the
// rebuild reached the moment the plan named.
func rebuildAndCount(t *testing.T, rep *backup.Repository, st pitr.Stream, at time.Time, db string) int {
	t.Helper()
	choice, err := st.Choose(time.Time{}, at)
	if err != nil {
		t.Fatalf("Choose(%s) = %v", at.Format(time.RFC3339Nano), err)
	}
	if err := choice.Exact(context.Background(), rep); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	r, err := redisrepl.Kind{}.Rebuild(context.Background(), pitr.RebuildSpec{Repo: rep, Choice: choice, Target: at,
		Dir: scratchDir(t), Service: backup.ServiceSpec{Name: "cache", Type: backup.TypeRedis, URL: "redis://x:1/" + db}})
	if err != nil {
		t.Fatalf("Rebuild(%s) = %v", at.Format(time.RFC3339Nano), err)
	}
	defer r.Close()
	took := time.Since(t0)
	spec := r.Spec(backup.ServiceSpec{Name: "cache", Type: backup.TypeRedis, URL: "redis://x:1/" + db})
	got := pitrtest.RedisCount(t, spec.URL)
	t.Logf("at %s: rebuilt in %s, %d markers", at.Format(time.RFC3339Nano), took.Round(time.Millisecond), got)
	if (choice.Reached == nil) != (r.Reached() == nil) || (r.Reached() != nil && !r.Reached().Equal(*choice.Reached)) ||
		(r.Reached() != nil && r.Reached().After(at)) {
		t.Errorf("at %s: planned %v, replay reached %v; want the same newest command at or before T", at,
			choice.Reached, r.Reached())
	}
	return got
}

// TestFollowAndRebuild follows a real Redis server (the RDB sent from disk) while a marker is appended every 50
// ms, stops the follower for a while in the middle (the next run resumes with PSYNC, without a gap or a new
// base), and rebuilds the server at 20 random moments: each rebuild holds exactly the markers acknowledged at or
// before its moment.
func TestFollowAndRebuild(t *testing.T) {
	srv, c := startServer(t)
	configSet(t, c, "repl-diskless-sync", "no")
	url := srv.URL(3)
	rep := pitrtest.OpenRepo(t)
	rec := &pitrtest.Record{}
	spool := t.TempDir()
	newFollower := func() *redisrepl.Follower {
		return &redisrepl.Follower{Environment: "main", Service: "cache", URL: url, Repo: rep, Spool: spool, Record: rec,
			ShipEvery: 200 * time.Millisecond, SegmentBytes: 2 << 10}
	}
	for _, r := range redisrepl.Check(context.Background(), url, "cache") {
		if r.Status == pitr.CheckFailed {
			t.Fatalf("Check: %s: %s", r.Name, r.Message)
		}
	}

	stopWrites := make(chan struct{})
	markers := pitrtest.RedisWriter(t, url, stopWrites)
	time.Sleep(300 * time.Millisecond) // some markers are in the base
	stop := pitrtest.Follow(t, newFollower().Run)
	pitrtest.WaitFor(t, "a base", func() bool { b, _, _ := rec.State(); return len(b) == 1 })
	time.Sleep(1500 * time.Millisecond)
	stopAt := time.Now()
	stop()
	downFrom := time.Now()
	time.Sleep(time.Second)
	downTo := time.Now()
	stop = pitrtest.Follow(t, newFollower().Run)
	time.Sleep(1500 * time.Millisecond)
	close(stopWrites)
	ms := markers()
	last := ms[len(ms)-1].After
	pitrtest.WaitFor(t, "the last marker shipped", func() bool { _, _, cv := rec.State(); return cv.After(last.Add(300 * time.Millisecond)) })
	stop()

	bases, segs, _ := rec.State()
	if len(bases) != 1 || len(rec.Gaps()) != 0 {
		t.Fatalf("bases = %d, gaps %q; want 1 base and no gap (a restart resumes with PSYNC)", len(bases), rec.Gaps())
	}
	if len(segs) < 3 {
		t.Errorf("%d segments, want several (2 KB segments are rotated)", len(segs))
	}
	st := rec.Stream(redisrepl.Kind{}.NextSegment)
	rs := st.Ranges(time.Time{})
	if len(rs) != 1 || rs[0].From.After(downFrom) || rs[0].To.Before(last) {
		t.Fatalf("ranges = %+v, want one range from the base over the downtime %s–%s to past the last marker %s",
			rs, downFrom, downTo, last)
	}

	// A change's time is when the follower received it: what the server wrote while the follower was down
	// arrives (from the backlog) when it resumes, so a moment of the downtime gets the state at the disconnection,
	// which lies between stopAt and downFrom.
	atDown := downFrom.Add(downTo.Sub(downFrom) / 2)
	lo, hi := pitrtest.UpTo(ms, stopAt.Add(-lateBy)), 0
	for _, m := range ms {
		if m.Before.Before(downFrom) {
			hi = m.N
		}
	}
	if got := rebuildAndCount(t, rep, st, atDown, "3"); got < lo || got > hi {
		t.Errorf("rebuilt in the downtime at %s: markers 1..%d, want those received before the disconnection "+
			"(1..%d to 1..%d)", atDown.Format(time.RFC3339Nano), got, lo, hi)
	}
	// Random moments away from the base's transfer, the downtime and the burst after it, and each marker's
	// window from its write to its receipt.
	from := bases[0].FinishedAt.Add(300 * time.Millisecond)
	unclear := func(at time.Time) bool {
		return pitrtest.AmbiguousBy(ms, at, lateBy) || (!at.Before(stopAt.Add(-lateBy)) && !at.After(downTo.Add(300*time.Millisecond)))
	}
	ts := []time.Time{last.Add(100 * time.Millisecond)}
	for len(ts) < 20 {
		t0 := from.Add(time.Duration(rand.Int64N(int64(last.Sub(from)))))
		if !unclear(t0) {
			ts = append(ts, t0)
		}
	}
	for _, at := range ts {
		if unclear(at) {
			continue
		}
		if got, want := rebuildAndCount(t, rep, st, at, "3"), pitrtest.UpTo(ms, at); got != want {
			t.Errorf("rebuilt at %s: markers 1..%d, want exactly 1..%d", at.Format(time.RFC3339Nano), got, want)
		}
	}

	var ge *pitr.GapError
	if _, err := st.Choose(time.Time{}, from.Add(-time.Minute)); !errors.As(err, &ge) || ge.After == nil {
		t.Errorf("Choose(before the base) = %v, want a GapError naming the oldest moment", err)
	}
	if _, err := st.Choose(time.Time{}, time.Now().Add(time.Hour)); !errors.As(err, &ge) || ge.Before == nil {
		t.Errorf("Choose(an hour ahead) = %v, want a GapError naming the newest moment", err)
	}
	if _, err := st.Choose(time.Now().Add(-time.Second), from); !errors.As(err, &ge) ||
		!strings.Contains(err.Error(), "before the point-in-time window") {
		t.Errorf("Choose(before the window) = %v, want a GapError naming the window", err)
	}
}

// TestFullResyncIsAGap: while the follower is down the server writes more than its backlog holds, so the next run
// gets a full resynchronization (diskless this time: the RDB with an end mark): the stream records a gap and a
// new base, moments in the gap are refused naming the moments around it, and moments after it rebuild exactly.
func TestFullResyncIsAGap(t *testing.T) {
	srv, c := startServer(t)
	// A delay: the master sends newlines before +FULLRESYNC while it waits to start the transfer.
	configSet(t, c, "repl-diskless-sync", "yes", "repl-diskless-sync-delay", "1")
	url := srv.URL(0)
	rep := pitrtest.OpenRepo(t)
	rec := &pitrtest.Record{}
	spool := t.TempDir()
	newFollower := func() *redisrepl.Follower {
		return &redisrepl.Follower{Environment: "main", Service: "cache", URL: url, Repo: rep, Spool: spool, Record: rec,
			ShipEvery: 200 * time.Millisecond}
	}
	ctx := context.Background()
	stop := pitrtest.Follow(t, newFollower().Run)
	pitrtest.WaitFor(t, "a base", func() bool { b, _, _ := rec.State(); return len(b) == 1 })
	if err := c.Set(ctx, "before", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	stop()
	gapFrom := time.Now()
	configSet(t, c, "repl-backlog-size", "16384")
	big := strings.Repeat("x", 1024)
	for i := 0; i < 200; i++ { // 200 KB: far past the backlog
		if err := c.Set(ctx, "filler", big, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Del(ctx, "filler").Err(); err != nil {
		t.Fatal(err)
	}
	gapTo := time.Now()
	stop = pitrtest.Follow(t, newFollower().Run)
	pitrtest.WaitFor(t, "a second base", func() bool { b, _, _ := rec.State(); return len(b) == 2 })
	stopWrites := make(chan struct{})
	markers := pitrtest.RedisWriter(t, url, stopWrites)
	time.Sleep(1200 * time.Millisecond)
	close(stopWrites)
	ms := markers()
	last := ms[len(ms)-1].After
	pitrtest.WaitFor(t, "the last marker shipped", func() bool { _, _, cv := rec.State(); return cv.After(last.Add(300 * time.Millisecond)) })
	stop()

	if gaps := rec.Gaps(); len(gaps) != 1 || !strings.Contains(gaps[0], "repl-backlog-size") {
		t.Fatalf("gaps = %q, want one naming repl-backlog-size", gaps)
	}
	bases, _, _ := rec.State()
	if bases[0].SystemID != bases[1].SystemID {
		t.Errorf("replication ids %s and %s: the server kept its history, the ids should be equal", bases[0].SystemID, bases[1].SystemID)
	}
	st := rec.Stream(redisrepl.Kind{}.NextSegment)
	rs := st.Ranges(time.Time{})
	if len(rs) != 2 || rs[0].To.After(gapFrom) || rs[1].From.Before(gapTo) {
		t.Fatalf("ranges = %+v, want two around the gap %s–%s", rs, gapFrom, gapTo)
	}
	var ge *pitr.GapError
	if _, err := st.Choose(time.Time{}, gapFrom.Add(gapTo.Sub(gapFrom)/2)); !errors.As(err, &ge) || ge.Before == nil ||
		ge.After == nil || !strings.Contains(err.Error(), "in a gap") {
		t.Fatalf("Choose(in the gap) = %v, want a GapError naming the moments before and after", err)
	}
	// (from 300 ms after the new base: a diskless master starts the stream a moment after the RDB, at the
	// follower's next acknowledgement)
	for i := 0; i < 5; i++ {
		from := bases[1].FinishedAt.Add(300 * time.Millisecond)
		at := from.Add(time.Duration(rand.Int64N(int64(last.Sub(from)))))
		if pitrtest.AmbiguousBy(ms, at, lateBy) {
			continue
		}
		if got, want := rebuildAndCount(t, rep, st, at, "0"), pitrtest.UpTo(ms, at); got != want {
			t.Errorf("rebuilt at %s: markers 1..%d, want exactly 1..%d", at.Format(time.RFC3339Nano), got, want)
		}
	}
	// Before the gap: the key written then, and no filler.
	choice, err := st.Choose(time.Time{}, rs[0].To)
	if err != nil {
		t.Fatal(err)
	}
	r, err := redisrepl.Rebuild(ctx, pitr.RebuildSpec{Repo: rep, Choice: choice, Target: rs[0].To, Dir: scratchDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rc := redis.NewClient(&redis.Options{Addr: strings.TrimPrefix(strings.TrimSuffix(r.URL(0), "/0"), "redis://")})
	defer rc.Close()
	if v, err := rc.Get(ctx, "before").Result(); err != nil || v != "1" {
		t.Errorf("before the gap: key before = %q, %v; want 1", v, err)
	}
}

// TestNewBaseWhileFollowing: every BaseEvery a second connection takes a new base (a diskless full
// resynchronization) while the stream goes on: no gap, and moments after each base rebuild exactly from it (its
// replay starts inside the stream, after the base's offset, in the stream's selected database).
func TestNewBaseWhileFollowing(t *testing.T) {
	srv, c := startServer(t)
	configSet(t, c, "repl-diskless-sync", "yes", "repl-diskless-sync-delay", "0")
	url := srv.URL(5)
	rep := pitrtest.OpenRepo(t)
	rec := &pitrtest.Record{}
	f := &redisrepl.Follower{Environment: "main", Service: "cache", URL: url, Repo: rep, Spool: t.TempDir(),
		Record: rec, ShipEvery: 200 * time.Millisecond, BaseEvery: time.Second, SegmentBytes: 2 << 10}
	stopWrites := make(chan struct{})
	markers := pitrtest.RedisWriter(t, url, stopWrites)
	stop := pitrtest.Follow(t, f.Run)
	pitrtest.WaitFor(t, "three bases", func() bool { b, _, _ := rec.State(); return len(b) >= 3 })
	close(stopWrites)
	ms := markers()
	last := ms[len(ms)-1].After
	pitrtest.WaitFor(t, "the last marker shipped", func() bool { _, _, cv := rec.State(); return cv.After(last.Add(300 * time.Millisecond)) })
	stop()

	bases, _, _ := rec.State()
	if gaps := rec.Gaps(); len(gaps) != 0 {
		t.Fatalf("gaps %q, want none", gaps)
	}
	st := rec.Stream(redisrepl.Kind{}.NextSegment)
	if rs := st.Ranges(time.Time{}); len(rs) != 1 {
		t.Fatalf("ranges = %+v, want one", rs)
	}
	from := bases[0].FinishedAt.Add(300 * time.Millisecond)
	later := 0
	for i := 0; i < 12; i++ {
		at := from.Add(time.Duration(rand.Int64N(int64(last.Sub(from)))))
		if i == 0 {
			at = bases[len(bases)-1].FinishedAt.Add(50 * time.Millisecond)
		}
		if pitrtest.AmbiguousBy(ms, at, lateBy) {
			continue
		}
		choice, err := st.Choose(time.Time{}, at)
		if err != nil {
			t.Fatal(err)
		}
		if choice.Base.Snapshot != bases[0].Snapshot {
			later++
		}
		if got, want := rebuildAndCount(t, rep, st, at, "5"), pitrtest.UpTo(ms, at); got != want {
			t.Errorf("rebuilt at %s (base of %s): markers 1..%d, want exactly 1..%d", at.Format(time.RFC3339Nano),
				choice.Base.FinishedAt.Format(time.RFC3339Nano), got, want)
		}
	}
	if later == 0 {
		t.Errorf("no moment was rebuilt from a later base")
	}
}

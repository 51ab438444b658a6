package sqlite_test

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/backuptest"
	"github.com/rewind/rewind/backup/pitr"
	"github.com/rewind/rewind/backup/pitr/pitrtest"
	"github.com/rewind/rewind/backup/pitr/sqlite"
	bsqlite "github.com/rewind/rewind/backup/sqlite"
)

// state is what rec holds, as the planner reads it, and the time of every sync shipped, oldest first.
func state(rec *pitrtest.Record, k pitr.Kind) (pitr.Stream, []time.Time) {
	return rec.Stream(k.NextSegment), rec.Changes()
}

// openApp opens the database as an application would (WAL or another journal mode, a busy timeout) and
// creates the marker table.
func openApp(t testing.TB, path, mode string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode("+mode+")&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec("CREATE TABLE IF NOT EXISTS marker (n INTEGER PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	return db
}

// TestMain runs the test binary as the application when asked (appEnv): a process of its own, as an
// application followed by Rewind is, so Litestream's file descriptors and POSIX locks are not shared with it.
func TestMain(m *testing.M) {
	if spec := os.Getenv(appEnv); spec != "" {
		runApp(spec)
		return
	}
	os.Exit(m.Run())
}

const appEnv = "REWIND_TEST_SQLITE_APP"

// runApp inserts marker 1, 2, … into the database every interval ("path|interval"), one transaction each,
// printing "n before after" (Unix nanoseconds around each commit) until its stdin closes.
func runApp(spec string) {
	path, every, _ := strings.Cut(spec, "|")
	interval, err := time.ParseDuration(every)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(wal)&_pragma=busy_timeout(10000)")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	stop := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(stop) }() //nolint:errcheck
	for n := 1; ; n++ {
		select {
		case <-stop:
			db.Close()
			return
		case <-time.After(interval):
		}
		before := time.Now()
		if _, err := db.Exec("INSERT INTO marker VALUES (?)", n); err != nil {
			fmt.Fprintf(os.Stderr, "insert marker %d: %v\n", n, err)
			os.Exit(1)
		}
		fmt.Printf("%d %d %d\n", n, before.UnixNano(), time.Now().UnixNano())
	}
}

// writer runs the application on the database at path until stop is closed; the returned function waits for
// it and returns the markers it committed, with its bounds on each commit.
func writer(t *testing.T, path string, every time.Duration, stop <-chan struct{}) func() []pitrtest.Marker {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), appEnv+"="+path+"|"+every.String())
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var ms []pitrtest.Marker
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var n int
			var before, after int64
			if _, err := fmt.Sscan(sc.Text(), &n, &before, &after); err != nil {
				t.Errorf("the application said %q: %v", sc.Text(), err)
				continue
			}
			ms = append(ms, pitrtest.Marker{N: n, Before: time.Unix(0, before), After: time.Unix(0, after)})
		}
	}()
	var once sync.Once
	finish := func() {
		once.Do(func() {
			in.Close()
			<-read
			if err := cmd.Wait(); err != nil {
				t.Errorf("the application failed: %v", err)
			}
		})
	}
	t.Cleanup(finish)
	return func() []pitrtest.Marker {
		<-stop
		finish()
		return ms
	}
}

// count returns how many markers the database at path holds, failing t when they are not exactly 1..n.
func count(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n, maxN int
	if err := db.QueryRow("SELECT count(*), COALESCE(max(n), 0) FROM marker").Scan(&n, &maxN); err != nil {
		t.Fatalf("count markers in %s: %v", path, err)
	}
	if n != maxN {
		t.Fatalf("markers 1..%d hold %d rows: a hole", maxN, n)
	}
	return n
}

// lastSync is the newest sync at or before at (nil when none).
func lastSync(syncs []time.Time, at time.Time) *time.Time {
	var last *time.Time
	for i := range syncs {
		if !syncs[i].After(at) {
			last = &syncs[i]
		}
	}
	return last
}

// unsure reports whether a marker's commit falls so near the sync at s that the client cannot tell whether the
// sync read it: a sync reads the WAL just before it stamps its time (in whole milliseconds).
func unsure(ms []pitrtest.Marker, s time.Time) bool {
	for _, m := range ms {
		if !m.After.Before(s.Add(-10*time.Millisecond)) && !m.Before.After(s.Add(time.Millisecond)) {
			return true
		}
	}
	return false
}

// rebuildAt plans and rebuilds the stream at at and checks the rebuilt database holds exactly the markers
// committed before reached, the last sync at or before at.
func rebuildAt(t *testing.T, k *sqlite.Kind, rep *backup.Repository, svc backup.ServiceSpec, st pitr.Stream,
	ms []pitrtest.Marker, at, reached time.Time,
) {
	t.Helper()
	choice, err := st.Choose(time.Time{}, at)
	if err != nil {
		t.Fatalf("Choose(%s) = %v", at, err)
	}
	if err := choice.Exact(context.Background(), rep); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	rb, err := k.Rebuild(context.Background(), pitr.RebuildSpec{Repo: rep, Service: svc, Choice: choice,
		Target: at, Dir: filepath.Join(t.TempDir(), "rebuild")})
	if err != nil {
		t.Fatalf("Rebuild(%s) = %v", at, err)
	}
	took := time.Since(t0)
	rsvc := rb.Spec(svc)
	got, want := count(t, rsvc.Path), pitrtest.UpTo(ms, reached)
	t.Logf("at %s: rebuilt in %s from %d segments, %d markers (last sync %s, %s earlier; %d markers committed "+
		"by then)", at.Format(time.RFC3339Nano), took.Round(time.Millisecond), len(choice.Segments), got,
		reached.Format(time.RFC3339Nano), at.Sub(reached).Round(time.Millisecond), pitrtest.UpTo(ms, at))
	if got != want {
		t.Errorf("rebuilt at %s: markers 1..%d, want exactly 1..%d (those before the sync at %s)", at, got, want,
			reached)
	}
	if r := rb.Reached(); r == nil || !r.Equal(reached) || choice.Reached == nil || !choice.Reached.Equal(reached) {
		t.Errorf("at %s: rebuild reached %v, plan %v; want the last sync at or before T, %s", at, r,
			choice.Reached, reached)
	}
	if rsvc.Name != svc.Name || rsvc.Type != svc.Type || rsvc.Path == svc.Path {
		t.Errorf("Spec = %+v, want the service with the rebuilt file's path", rsvc)
	}
	if err := rb.Close(); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(rsvc.Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after Close, %s is still there", rsvc.Path)
	}
}

// TestFollowAndRebuild follows a real SQLite database in WAL mode while an application commits a marker every
// 50 ms, stops the follower for a while in the middle, and rebuilds the database at 20 random moments: each
// rebuild holds exactly the markers committed before the last sync at or before its moment.
func TestFollowAndRebuild(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	openApp(t, path, "wal").Close()
	k := sqlite.New(filepath.Join(dir, "rewind.db"))
	svc := backup.ServiceSpec{Name: "app", Type: backup.TypeSQLite, Path: path}
	for _, r := range k.Check(context.Background(), "main", svc) {
		if r.Status != pitr.CheckOK {
			t.Fatalf("Check: %s: %s: %s", r.Name, r.Status, r.Message)
		}
	}
	rep := pitrtest.OpenRepo(t)
	rec := &pitrtest.Record{}
	spec := pitr.FollowSpec{Environment: "main", Service: svc, Repo: rep, Spool: filepath.Join(dir, "spool"),
		Record: rec}

	stopWrites := make(chan struct{})
	markers := writer(t, path, 50*time.Millisecond, stopWrites)
	stop := pitrtest.Follow(t, func(ctx context.Context) error { return k.Follow(ctx, spec) })
	pitrtest.WaitFor(t, "a base", func() bool { st, _ := state(rec, k); return len(st.Bases) == 1 })
	time.Sleep(3 * time.Second)
	stop() // the follower is down while markers keep coming
	downFrom := time.Now()
	time.Sleep(1500 * time.Millisecond)
	downTo := time.Now()
	stop = pitrtest.Follow(t, func(ctx context.Context) error { return k.Follow(ctx, spec) })
	time.Sleep(3 * time.Second)
	close(stopWrites)
	ms := markers()
	last := ms[len(ms)-1].After
	pitrtest.WaitFor(t, "the last marker shipped", func() bool { st, _ := state(rec, k); return st.CoveredUntil.After(last) })
	t.Logf("the last marker was restorable %s after its commit (polled every 50 ms)", time.Since(last).Round(time.Millisecond))
	pitrtest.WaitFor(t, "a moment after the last marker shipped", func() bool {
		st, _ := state(rec, k)
		return st.CoveredUntil.After(last.Add(300 * time.Millisecond))
	})
	stop()
	if _, err := os.Stat(filepath.Join(dir, ".app.db-litestream")); err == nil {
		t.Errorf("Litestream's metadata is beside the database, want it in the follower's spool")
	}

	st, syncs := state(rec, k)
	if len(st.Bases) != 1 || len(rec.Gaps()) != 0 {
		t.Fatalf("bases = %d, gaps = %q; want 1 base and no gap (a restart resumes the stream)", len(st.Bases), rec.Gaps())
	}
	rs := st.Ranges(time.Time{})
	if len(rs) != 1 || rs[0].From.After(downFrom) || rs[0].To.Before(last) {
		t.Fatalf("ranges = %+v, want one range from the base over the downtime %s–%s to past the last marker %s",
			rs, downFrom, downTo, last)
	}
	from := st.Bases[0].FinishedAt

	// Random moments between the base and the last marker, one inside the downtime and one after every marker;
	// moments whose last sync may or may not hold a marker are skipped.
	fixed := []time.Time{downFrom.Add(downTo.Sub(downFrom) / 2), last.Add(100 * time.Millisecond)}
	tested, tries, worst := 0, 0, time.Duration(0)
	for ; tested < 20 && tries < 2000; tries++ {
		at := from.Add(time.Duration(rand.Int64N(int64(last.Sub(from)))))
		if tries < len(fixed) {
			at = fixed[tries]
		}
		reached := lastSync(syncs, at)
		if reached == nil {
			t.Fatalf("no sync at or before %s, after the base at %s", at, from)
		}
		if unsure(ms, *reached) {
			continue
		}
		rebuildAt(t, k, rep, svc, st, ms, at, *reached)
		if at.Before(downFrom) || at.After(downTo.Add(time.Second)) {
			worst = max(worst, at.Sub(*reached))
		}
		tested++
	}
	t.Logf("%d moments rebuilt (%d drawn); outside the downtime a rebuild was at most %s before its moment", tested, tries, worst)
	if tested < 20 {
		t.Fatalf("only %d of %d moments were away from a sync's uncertainty", tested, tries)
	}

	// Refused: before the base, and after the newest sync shipped.
	var ge *pitr.GapError
	if _, err := st.Choose(time.Time{}, from.Add(-time.Second)); !errors.As(err, &ge) || ge.After == nil {
		t.Errorf("Choose(before the base) = %v, want a GapError naming the oldest moment", err)
	}
	if _, err := st.Choose(time.Time{}, time.Now().Add(time.Hour)); !errors.As(err, &ge) || ge.Before == nil {
		t.Errorf("Choose(an hour ahead) = %v, want a GapError naming the newest moment", err)
	}
}

// TestCheck refuses what cannot be followed, each with what to do: a rollback-journal database (Follow refuses
// it too, rather than let Litestream switch its journal mode), Rewind's own catalog, a database another
// Litestream replicates, and a missing file.
func TestCheck(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	openApp(t, path, "delete").Close()
	k := sqlite.New(filepath.Join(dir, "rewind.db"))
	svc := backup.ServiceSpec{Name: "app", Type: backup.TypeSQLite, Path: path}
	failed := func(k *sqlite.Kind, svc backup.ServiceSpec, name string) string {
		t.Helper()
		for _, r := range k.Check(context.Background(), "main", svc) {
			if r.Name == name && r.Status == pitr.CheckFailed {
				return r.Message
			}
		}
		t.Fatalf("Check(%s) did not fail %q", svc.Path, name)
		return ""
	}
	if msg := failed(k, svc, "journal mode"); !strings.Contains(msg, "PRAGMA journal_mode=WAL") {
		t.Errorf("journal mode: %q, want it to say to run PRAGMA journal_mode=WAL", msg)
	}
	err := k.Follow(context.Background(), pitr.FollowSpec{Environment: "main", Service: svc, Repo: pitrtest.OpenRepo(t),
		Spool: filepath.Join(dir, "spool"), Record: &pitrtest.Record{}})
	if err == nil || !strings.Contains(err.Error(), "journal_mode=WAL") {
		t.Errorf("Follow(rollback journal) = %v, want it refused with what to do", err)
	}
	var mode string
	if err := openApp(t, path, "delete").QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "delete" {
		t.Errorf("journal mode after the refused Follow = %q (%v), want it unchanged", mode, err)
	}

	openApp(t, path, "wal").Close()
	if msg := failed(sqlite.New(path), svc, "catalog"); !strings.Contains(msg, "catalog") {
		t.Errorf("catalog: %q", msg)
	}
	if err := os.Mkdir(filepath.Join(dir, ".app.db-litestream"), 0o700); err != nil {
		t.Fatal(err)
	}
	if msg := failed(k, svc, "other litestream"); !strings.Contains(msg, "another Litestream") {
		t.Errorf("other litestream: %q", msg)
	}
	missing := svc
	missing.Path = filepath.Join(dir, "nope.db")
	if msg := failed(k, missing, "path"); !strings.Contains(msg, "does not exist on this host") {
		t.Errorf("path: %q", msg)
	}
}

// TestNextSegment steps through the names of one generation, 60 transaction ids at a time, and refuses
// other names.
func TestNextSegment(t *testing.T) {
	k := sqlite.New("")
	got, err := k.NextSegment("0187a3b2c4d5e6f7-0000000000000001")
	if want := "0187a3b2c4d5e6f7-000000000000003d"; err != nil || got != want {
		t.Fatalf("NextSegment = %q, %v; want %q", got, err, want)
	}
	for _, bad := range []string{"", "000000010000000000000003", "0187a3b2c4d5e6f7-0000000000000002", "x-y"} {
		if _, err := k.NextSegment(bad); err == nil {
			t.Errorf("NextSegment(%q) accepted it", bad)
		}
	}
}

// TestSegmentsAndLostSpool syncs every 20 ms so segments fill up: complete segments are shipped as such and
// leave the spool, and the stream stays restorable across them. Then the follower's spool is lost: the next
// Follow records a gap and starts a new stream from a new base, and both streams restore exactly while the
// moments between them are refused.
func TestSegmentsAndLostSpool(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	openApp(t, path, "wal").Close()
	k := sqlite.New(filepath.Join(dir, "rewind.db"))
	svc := backup.ServiceSpec{Name: "app", Type: backup.TypeSQLite, Path: path}
	rep := pitrtest.OpenRepo(t)
	rec := &pitrtest.Record{}
	spool := filepath.Join(dir, "spool")
	spec := pitr.FollowSpec{Environment: "main", Service: svc, Repo: rep, Spool: spool, Record: rec,
		ShipEvery: 20 * time.Millisecond}

	stopWrites := make(chan struct{})
	markers := writer(t, path, 10*time.Millisecond, stopWrites)
	stop := pitrtest.Follow(t, func(ctx context.Context) error { return k.Follow(ctx, spec) })
	complete := func() int {
		n := 0
		for _, s := range rec.Segments() {
			if !s.Partial {
				n++
			}
		}
		return n
	}
	pitrtest.WaitFor(t, "two complete segments", func() bool { return complete() >= 2 })
	stop()
	// Complete segments, once shipped as such, left the spool's replica.
	for _, e := range mustReadDir(t, filepath.Join(spool, "replica", "ltx", "0")) {
		for name, s := range rec.Segments() {
			if !s.Partial && e[:16] >= name[17:] && e[:16] < nextFirst(t, k, name) {
				t.Errorf("the spool still holds %s of the complete segment %s", e, name)
			}
		}
	}
	// Litestream's own copies go once its replica holds them (Close's last sync may add one or two).
	if n := len(mustReadDir(t, filepath.Join(spool, "litestream", "ltx", "0"))); n > 4 {
		t.Errorf("Litestream's metadata keeps %d LTX files its replica already holds", n)
	}
	firstEnd := time.Now()

	if err := os.RemoveAll(spool); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	secondFrom := time.Now()
	stop = pitrtest.Follow(t, func(ctx context.Context) error { return k.Follow(ctx, spec) })
	pitrtest.WaitFor(t, "a second base", func() bool { st, _ := state(rec, k); return len(st.Bases) == 2 })
	time.Sleep(time.Second)
	close(stopWrites)
	ms := markers()
	last := ms[len(ms)-1].After
	pitrtest.WaitFor(t, "the last marker shipped", func() bool { st, _ := state(rec, k); return st.CoveredUntil.After(last.Add(100 * time.Millisecond)) })
	stop()

	st, syncs := state(rec, k)
	if len(rec.Gaps()) != 1 || st.Bases[0].SystemID == st.Bases[1].SystemID {
		t.Fatalf("gaps = %q, bases %+v; want one gap and a base of a new stream", rec.Gaps(), st.Bases)
	}
	rs := st.Ranges(time.Time{})
	if len(rs) != 2 || rs[0].To.After(firstEnd) || rs[1].From.Before(secondFrom) || rs[1].To.Before(last) {
		t.Fatalf("ranges = %+v, want one per stream, the first ending before %s, the second from after %s to "+
			"past %s", rs, firstEnd, secondFrom, last)
	}
	var ge *pitr.GapError
	if _, err := st.Choose(time.Time{}, rs[0].To.Add(rs[1].From.Sub(rs[0].To)/2)); !errors.As(err, &ge) ||
		ge.Before == nil || ge.After == nil {
		t.Errorf("Choose(between the streams) = %v, want a GapError naming both sides", err)
	}
	tested := 0
	for tries := 0; tested < 8 && tries < 2000; tries++ {
		r := rs[tries%2]
		at := r.From.Add(time.Duration(rand.Int64N(int64(r.To.Sub(r.From)))))
		reached := lastSync(syncs, at)
		if reached == nil || unsure(ms, *reached) {
			continue
		}
		rebuildAt(t, k, rep, svc, st, ms, at, *reached)
		tested++
	}
	if tested < 8 {
		t.Fatalf("only %d moments were away from a sync's uncertainty", tested)
	}
}

func mustReadDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// nextFirst is the first TXID (16 hex digits) of the segment after name.
func nextFirst(t *testing.T, k *sqlite.Kind, name string) string {
	t.Helper()
	next, err := k.NextSegment(name)
	if err != nil {
		t.Fatal(err)
	}
	return next[17:]
}

// TestRestoreIntoFollowed undoes changes the way Rewind does: the database rebuilt at T is captured by the
// engine's SQLite source and restored into the live database while the follower keeps following it. The
// follower carries on without a gap, and a rebuild after the restore holds exactly the restored markers.
func TestRestoreIntoFollowed(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	openApp(t, path, "wal").Close()
	k := sqlite.New(filepath.Join(dir, "rewind.db"))
	svc := backup.ServiceSpec{Name: "app", Type: backup.TypeSQLite, Path: path}
	rep := pitrtest.OpenRepo(t)
	rec := &pitrtest.Record{}
	spec := pitr.FollowSpec{Environment: "main", Service: svc, Repo: rep, Spool: filepath.Join(dir, "spool"),
		Record: rec, ShipEvery: 100 * time.Millisecond}
	stopWrites := make(chan struct{})
	markers := writer(t, path, 20*time.Millisecond, stopWrites)
	stop := pitrtest.Follow(t, func(ctx context.Context) error { return k.Follow(ctx, spec) })
	pitrtest.WaitFor(t, "a base", func() bool { st, _ := state(rec, k); return len(st.Bases) == 1 })
	time.Sleep(1500 * time.Millisecond)
	close(stopWrites)
	ms := markers()
	last := ms[len(ms)-1].After
	pitrtest.WaitFor(t, "the last marker shipped", func() bool { st, _ := state(rec, k); return st.CoveredUntil.After(last) })

	// Rebuild at a moment in the middle whose last sync is certain.
	st, syncs := state(rec, k)
	var at time.Time
	var reached *time.Time
	for tries := 0; ; tries++ {
		from := st.Bases[0].FinishedAt
		at = from.Add(time.Duration(rand.Int64N(int64(last.Sub(from)))))
		if reached = lastSync(syncs, at); reached != nil && !unsure(ms, *reached) && pitrtest.UpTo(ms, *reached) > 0 &&
			pitrtest.UpTo(ms, *reached) < len(ms) {
			break
		}
		if tries > 1000 {
			t.Fatal("no moment away from a sync's uncertainty")
		}
	}
	want := pitrtest.UpTo(ms, *reached)
	choice, err := st.Choose(time.Time{}, at)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := k.Rebuild(ctx, pitr.RebuildSpec{Repo: rep, Service: svc, Choice: choice, Target: at,
		Dir: filepath.Join(t.TempDir(), "rebuild")})
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()

	// The engine's way: capture the rebuilt file, restore it into the live database (still followed).
	src, err := bsqlite.Driver(rb.Spec(svc))
	if err != nil {
		t.Fatal(err)
	}
	c, err := src.Pin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	captured := backuptest.Stream(t, c, backup.NopProgress)
	c.Close()
	live, err := bsqlite.Driver(svc)
	if err != nil {
		t.Fatal(err)
	}
	prep, err := live.Prepare(ctx, backuptest.Dir(t, captured), backup.NopProgress)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	replaced, err := prep.Switch(ctx)
	if err != nil {
		t.Fatalf("Switch: %v", err)
	}
	defer replaced.Discard(ctx)
	restoredAt := time.Now()
	if got := count(t, path); got != want {
		t.Fatalf("live database after the restore: markers 1..%d, want 1..%d", got, want)
	}
	// Covered until a round's start: the sync of that round is only restorable once a later round covers it.
	pitrtest.WaitFor(t, "the restore shipped", func() bool {
		st, _ := state(rec, k)
		return st.CoveredUntil.After(restoredAt.Add(300 * time.Millisecond))
	})
	stop()

	st, syncs = state(rec, k)
	if len(st.Bases) != 1 || len(rec.Gaps()) != 0 {
		t.Fatalf("bases = %d, gaps = %q; want the stream to carry on over the restore", len(st.Bases), rec.Gaps())
	}
	// The newest state shipped is the restored one: fewer markers than were ever committed.
	if want >= len(ms) {
		t.Fatalf("restored %d of %d markers: nothing to undo", want, len(ms))
	}
	rebuildAt(t, k, rep, svc, st, []pitrtest.Marker{{N: want}}, st.CoveredUntil, *lastSync(syncs, st.CoveredUntil))
}

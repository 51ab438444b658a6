package mariadb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/pitr"
	"github.com/rewind/rewind/backup/pitr/pitrtest"
	"github.com/rewind/rewind/backup/testserver"
)

func TestMain(m *testing.M) { testserver.Main(m) }

// writer creates table marker in db and inserts marker 1, 2, … every 50 ms, one transaction each, until stop
// is closed; the returned function waits for it and returns the markers committed.
func writer(t *testing.T, db *sql.DB, stop <-chan struct{}) func() []pitrtest.Marker {
	t.Helper()
	if _, err := db.Exec("CREATE TABLE marker (n int PRIMARY KEY) ENGINE=InnoDB"); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var ms []pitrtest.Marker
	done := make(chan struct{})
	go func() {
		defer close(done)
		for n := 1; ; n++ {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			before := time.Now()
			if _, err := db.Exec("INSERT INTO marker VALUES (?)", n); err != nil {
				t.Errorf("insert marker %d: %v", n, err)
				return
			}
			mu.Lock()
			ms = append(ms, pitrtest.Marker{N: n, Before: before, After: time.Now()})
			mu.Unlock()
		}
	}()
	return func() []pitrtest.Marker {
		<-done
		mu.Lock()
		defer mu.Unlock()
		return append([]pitrtest.Marker(nil), ms...)
	}
}

// count returns how many markers the database at url holds, failing t when they are not exactly 1..n.
func count(t *testing.T, url, name string) int {
	t.Helper()
	cli, err := newClient(backup.ServiceSpec{Name: name, Type: backup.TypeMySQL, URL: url})
	if err != nil {
		t.Fatal(err)
	}
	db, err := cli.open()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n, maxN int
	if err := db.QueryRow("SELECT count(*), COALESCE(max(n), 0) FROM `"+cli.database+"`.marker").Scan(&n, &maxN); err != nil {
		t.Fatal(err)
	}
	if n != maxN {
		t.Fatalf("markers 1..%d hold %d rows: a hole", maxN, n)
	}
	return n
}

func scratchDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "rewind-pitr-my-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "rebuild") // Rebuild creates it
}

// TestFollowAndRebuild follows a real MariaDB server while a marker is committed every 50 ms, rotates its
// binlog, stops the follower for a while in the middle, and rebuilds the database at random moments: each
// rebuild holds exactly the markers committed at or before its moment.
func TestFollowAndRebuild(t *testing.T) {
	srv := testserver.StartMariaDBBinlog(t)
	dbName := srv.CreateDatabase(t)
	url := srv.URL(dbName)
	svc := backup.ServiceSpec{Name: testserver.UniqueName("db"), Type: backup.TypeMySQL, URL: url}
	k := &Kind{}
	rep := pitrtest.OpenRepo(t)
	rec := &pitrtest.Record{}
	spec := pitr.FollowSpec{Environment: "main", Service: svc, Repo: rep, Spool: t.TempDir(), Record: rec,
		ShipEvery: 200 * time.Millisecond}

	for _, r := range k.Check(context.Background(), "main", svc) {
		if r.Status == pitr.CheckFailed {
			t.Fatalf("Check: %s: %s", r.Name, r.Message)
		}
	}

	db := srv.Open(t, dbName)
	stopWrites := make(chan struct{})
	markers := writer(t, db, stopWrites)
	stop := pitrtest.Follow(t, func(ctx context.Context) error { return k.Follow(ctx, spec) })
	pitrtest.WaitFor(t, "a base", func() bool { n, _ := rec.Counts(); return n == 1 })
	time.Sleep(700 * time.Millisecond)
	if _, err := db.Exec("FLUSH BINARY LOGS"); err != nil { // a new binlog file: a new segment
		t.Fatal(err)
	}
	time.Sleep(700 * time.Millisecond)
	stop() // the follower is down while markers keep coming
	downFrom := time.Now()
	time.Sleep(time.Second)
	stop = pitrtest.Follow(t, func(ctx context.Context) error { return k.Follow(ctx, spec) })
	downTo := time.Now()
	time.Sleep(1500 * time.Millisecond)
	close(stopWrites)
	ms := markers()
	last := ms[len(ms)-1].After
	pitrtest.WaitFor(t, "the last marker shipped", func() bool { _, c := rec.Counts(); return c.After(last.Add(300 * time.Millisecond)) })
	stop()

	st := rec.Stream(k.NextSegment)
	if len(st.Bases) != 1 || len(rec.Gaps()) != 0 {
		t.Fatalf("bases = %d, gaps %q; want 1 base and no gap (a restart resumes where it stopped)", len(st.Bases), rec.Gaps())
	}
	if len(st.Segments) < 2 {
		t.Fatalf("segments = %d, want one per binlog file (at least 2 after FLUSH BINARY LOGS)", len(st.Segments))
	}
	rs := st.Ranges(time.Time{})
	if len(rs) != 1 || rs[0].From.After(downFrom) || rs[0].To.Before(last) {
		t.Fatalf("ranges = %+v, want one range from the base over the downtime %s–%s to past the last marker %s",
			rs, downFrom, downTo, last)
	}

	// Transactions committed while the follower was down are dated by the server's clock, to the second: a
	// moment in the downtime holds the markers up to a second before it, at most those up to it.
	from := st.Bases[0].FinishedAt
	inDown := downFrom.Add(downTo.Sub(downFrom) / 2)
	ts := []time.Time{last.Add(100 * time.Millisecond)}
	for len(ts) < 20 {
		t0 := from.Add(time.Duration(rand.Int64N(int64(last.Sub(from)))))
		if !pitrtest.Ambiguous(ms, t0) && (t0.Before(downFrom) || t0.After(downTo.Add(time.Second))) {
			ts = append(ts, t0)
		}
	}
	rebuild := func(at time.Time) (int, *pitr.Choice, *time.Time) {
		t.Helper()
		choice, err := st.Choose(time.Time{}, at)
		if err != nil {
			t.Fatalf("Choose(%s) = %v", at, err)
		}
		if err := choice.Exact(context.Background(), rep); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		r, err := k.Rebuild(context.Background(), pitr.RebuildSpec{Repo: rep, Service: svc, Choice: choice,
			Target: at, Dir: scratchDir(t)})
		if err != nil {
			t.Fatalf("Rebuild(%s) = %v", at, err)
		}
		took := time.Since(t0)
		got := count(t, r.Spec(svc).URL, svc.Name)
		t.Logf("at %s: rebuilt in %s, %d markers (reached %v)", at.Format(time.RFC3339Nano),
			took.Round(time.Millisecond), got, r.Reached())
		reached := r.Reached()
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		return got, choice, reached
	}
	var lagMin, lagMax time.Duration // receive time of the newest marker replayed - when its commit returned
	for i, at := range ts {
		want := pitrtest.UpTo(ms, at)
		got, choice, reached := rebuild(at)
		if want > 0 && reached != nil {
			lag := reached.Sub(ms[want-1].After)
			if i == 0 || lag < lagMin {
				lagMin = lag
			}
			lagMax = max(lagMax, lag)
		}
		if got != want {
			t.Errorf("rebuilt at %s: markers 1..%d, want exactly 1..%d", at.Format(time.RFC3339Nano), got, want)
		}
		// Reached is the receive time of the newest marker replayed (none: the base's state), which the client
		// saw between starting and finishing its commit; the plan agrees on it (its first segment also lists
		// commits the base holds, so without a replayed one the plan may name one of those).
		switch {
		case want == 0 && reached != nil && !reached.Before(ms[0].Before):
			t.Errorf("at %s: replay reached %v, want none since the base (marker 1 began at %s)", at, reached, ms[0].Before)
		case want > 0 && (reached == nil || reached.Before(ms[want-1].Before) || reached.After(at)):
			t.Errorf("at %s: replay reached %v, want marker %d's commit, begun at %s, received by T", at, reached,
				want, ms[want-1].Before)
		case reached != nil && (choice.Reached == nil || !reached.Equal(*choice.Reached)):
			t.Errorf("at %s: planned moment %v, replay reached %v; want the same newest commit", at, choice.Reached,
				reached)
		}
	}
	t.Logf("receive time - commit returned to the client: %s to %s", lagMin, lagMax)
	if got, lo, hi := func() (int, int, int) {
		got, _, _ := rebuild(inDown)
		return got, pitrtest.UpTo(ms, inDown.Add(-time.Second)), pitrtest.UpTo(ms, inDown)
	}(); got < lo || got > hi {
		t.Errorf("rebuilt at %s, in the downtime: markers 1..%d, want 1..%d to 1..%d", inDown, got, lo, hi)
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

// TestCheck_NoBinlog: a server without a binary log fails the check, saying what to configure.
func TestCheck_NoBinlog(t *testing.T) {
	srv := testserver.StartMariaDB(t) // started with --skip-log-bin
	name := srv.CreateDatabase(t)
	svc := backup.ServiceSpec{Name: "db", Type: backup.TypeMySQL, URL: srv.URL(name)}
	var got *pitr.CheckResult
	for _, r := range (&Kind{}).Check(context.Background(), "main", svc) {
		if r.Name == "log_bin" {
			got = &r
		}
	}
	if got == nil || got.Status != pitr.CheckFailed || !strings.Contains(got.Message, "log_bin = binlog") {
		t.Fatalf("Check's log_bin = %+v, want failed, saying to set log_bin = binlog", got)
	}
}

// TestFollow_PurgedBinlog: when the server purged the binlog the follower stopped in, the next Follow records
// a gap and starts a new stream (epoch) from a new base; the moments between are refused, and those after the
// new base are restorable.
func TestFollow_PurgedBinlog(t *testing.T) {
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

	stop := pitrtest.Follow(t, func(ctx context.Context) error { return k.Follow(ctx, spec) })
	pitrtest.WaitFor(t, "a base", func() bool { n, _ := rec.Counts(); return n == 1 })
	first := insert(1)
	pitrtest.WaitFor(t, "marker 1 shipped", func() bool { _, c := rec.Counts(); return c.After(first) })
	stop()
	var file string
	for range 2 {
		if _, err := db.Exec("FLUSH BINARY LOGS"); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.QueryRow("SHOW MASTER STATUS").Scan(&file, new(any), new(any), new(any)); err != nil {
		t.Fatal(err)
	}
	// The server purges no file a binlog client still reads: wait for the stopped stream's dump thread to go.
	pitrtest.WaitFor(t, "the dump thread to end", func() bool {
		var n int
		err := db.QueryRow("SELECT count(*) FROM information_schema.processlist WHERE command LIKE 'Binlog Dump%'").Scan(&n)
		return err == nil && n == 0
	})
	// ... nor one holding transactions InnoDB has not flushed yet (the binlog checkpoint): try until it does.
	pitrtest.WaitFor(t, "the purge", func() bool {
		if _, err := db.Exec("PURGE BINARY LOGS TO '" + file + "'"); err != nil {
			t.Fatal(err)
		}
		var n int
		rows, err := db.Query("SHOW BINARY LOGS")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			n++
		}
		return n == 1
	})
	lost := insert(2) // written while its binlog is purged unread: a gap
	time.Sleep(20 * time.Millisecond)

	stop = pitrtest.Follow(t, func(ctx context.Context) error { return k.Follow(ctx, spec) })
	pitrtest.WaitFor(t, "a new base", func() bool { n, _ := rec.Counts(); return n == 2 })
	third := insert(3)
	pitrtest.WaitFor(t, "marker 3 shipped", func() bool { _, c := rec.Counts(); return c.After(third.Add(10 * time.Millisecond)) })
	stop()

	st := rec.Stream(k.NextSegment)
	if len(rec.Gaps()) != 1 || !strings.Contains(rec.Gaps()[0], "purged") {
		t.Fatalf("gaps = %q, want one saying the binlog was purged", rec.Gaps())
	}
	e1, _, _ := splitSegment(st.Bases[0].StartWAL)
	e2, _, _ := splitSegment(st.Bases[1].StartWAL)
	if e1 >= e2 {
		t.Errorf("the new base starts stream %q, want one after %q", e2, e1)
	}
	var ge *pitr.GapError
	if _, err := st.Choose(time.Time{}, lost); !errors.As(err, &ge) {
		t.Errorf("Choose(in the gap) = %v, want a GapError", err)
	}
	choice, err := st.Choose(time.Time{}, third.Add(10*time.Millisecond))
	if err != nil {
		t.Fatalf("Choose(after the new base) = %v", err)
	}
	r, err := k.Rebuild(context.Background(), pitr.RebuildSpec{Repo: rep, Service: svc, Choice: choice,
		Target: third.Add(10 * time.Millisecond), Dir: scratchDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got := count(t, r.Spec(svc).URL, svc.Name); got != 3 {
		t.Errorf("rebuilt after the new base: %d markers, want 3", got)
	}
}

// TestCheck_Grants: a user that may read its database but not the binlog fails the privileges check with the
// GRANT statement to run; once granted, the check passes.
func TestCheck_Grants(t *testing.T) {
	srv := testserver.StartMariaDBBinlog(t)
	name := srv.CreateDatabase(t)
	root := srv.Open(t, "")
	user := testserver.UniqueName("u")
	for _, q := range []string{
		"CREATE USER '" + user + "'@'%' IDENTIFIED BY 'pw\"x'",
		"GRANT SELECT, SHOW VIEW, TRIGGER, EVENT, LOCK TABLES ON `" + name + "`.* TO '" + user + "'@'%'",
	} {
		if _, err := root.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() { root.Exec("DROP USER '" + user + "'@'%'") })
	svc := backup.ServiceSpec{Name: "db", Type: backup.TypeMySQL,
		URL: fmt.Sprintf("mysql://%s:%s@127.0.0.1:%d/%s", user, url.QueryEscape(`pw"x`), srv.Port, name)}
	privileges := func() pitr.CheckResult {
		t.Helper()
		for _, r := range (&Kind{}).Check(context.Background(), "main", svc) {
			if r.Name == "connection" && r.Status != pitr.CheckOK {
				t.Fatalf("Check: %s", r.Message)
			}
			if r.Name == "privileges" {
				return r
			}
		}
		t.Fatal("Check reported no privileges")
		return pitr.CheckResult{}
	}
	r := privileges()
	if r.Status != pitr.CheckFailed || !strings.Contains(r.Message, "lacks REPLICATION SLAVE, BINLOG MONITOR") ||
		!strings.Contains(r.Message, "GRANT SELECT, SHOW VIEW, TRIGGER, EVENT, LOCK TABLES, REPLICATION SLAVE, "+
			"BINLOG MONITOR ON *.* TO '"+user+"'@'%'") {
		t.Fatalf("privileges = %+v, want failed with the GRANT to run", r)
	}
	if _, err := root.Exec("GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO '" + user + "'@'%'"); err != nil {
		t.Fatal(err)
	}
	if r := privileges(); r.Status != pitr.CheckOK {
		t.Fatalf("privileges after the GRANT = %+v, want ok", r)
	}

	// These privileges are enough to follow (the base's dump takes its position without RELOAD), and the
	// password, with a quote in it, reaches the tools through their option file.
	if _, err := root.Exec("CREATE TABLE `" + name + "`.marker (n int PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	rec := &pitrtest.Record{}
	spec := pitr.FollowSpec{Environment: "main", Service: svc, Repo: pitrtest.OpenRepo(t), Spool: t.TempDir(),
		Record: rec, ShipEvery: 100 * time.Millisecond}
	stop := pitrtest.Follow(t, func(ctx context.Context) error { return (&Kind{}).Follow(ctx, spec) })
	pitrtest.WaitFor(t, "a base", func() bool { n, _ := rec.Counts(); return n == 1 })
	if _, err := root.Exec("INSERT INTO `" + name + "`.marker VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	inserted := time.Now()
	pitrtest.WaitFor(t, "the insert shipped", func() bool { _, c := rec.Counts(); return c.After(inserted) })
	stop()
}

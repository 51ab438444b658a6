package filesnap_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/pitr"
	"github.com/rewind/rewind/backup/pitr/filesnap"
	"github.com/rewind/rewind/backup/pitr/pitrtest"
)

// marker is one file the writer made appear (atomically, by a rename) between Before and After.
type marker struct {
	n             int
	before, after time.Time
}

// writeMarkers creates markers/<n> in root every 50 ms, and rewrites latest.txt with n, until stop closes.
func writeMarkers(t *testing.T, root string, stop <-chan struct{}) func() []marker {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(root, "markers"), 0o755); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var ms []marker
	done := make(chan struct{})
	go func() {
		defer close(done)
		for n := 1; ; n++ {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			tmp := filepath.Join(root, fmt.Sprintf(".tmp-%d", n))
			before := time.Now()
			if err := os.WriteFile(tmp, []byte(strconv.Itoa(n)), 0o644); err != nil {
				t.Error(err)
				return
			}
			if err := os.Rename(tmp, filepath.Join(root, "markers", strconv.Itoa(n))); err != nil {
				t.Error(err)
				return
			}
			after := time.Now()
			if err := os.WriteFile(filepath.Join(root, "latest.txt"), []byte(strconv.Itoa(n)), 0o644); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			ms = append(ms, marker{n: n, before: before, after: after})
			mu.Unlock()
		}
	}()
	return func() []marker {
		<-done
		mu.Lock()
		defer mu.Unlock()
		return append([]marker(nil), ms...)
	}
}

// restoredMarkers lists the markers in a rebuilt tree, failing t unless they are exactly 1..n.
func restoredMarkers(t *testing.T, tree string) int {
	t.Helper()
	names, err := os.ReadDir(filepath.Join(tree, "markers"))
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	var ns []int
	for _, e := range names {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			t.Fatalf("unexpected file %s in the rebuilt tree", e.Name())
		}
		ns = append(ns, n)
	}
	sort.Ints(ns)
	for i, n := range ns {
		if n != i+1 {
			t.Fatalf("rebuilt markers %v are not 1..%d", ns, len(ns))
		}
	}
	return len(ns)
}

// TestFollowAndRebuild follows a mount written every 50 ms, snapshotting it every 200 ms, stops the follower
// for a second and starts it again, then rebuilds it at random moments: each rebuilt tree is the newest one
// saved at or before T, holding every marker made before that tree's walk began and none made after it ended;
// a moment in the downtime, before the first tree and after the last coverage are refused. Once nothing
// changes, no more trees are saved while the coverage moves on.
func TestFollowAndRebuild(t *testing.T) {
	rep := pitrtest.OpenRepo(t)
	root := filepath.Join(t.TempDir(), "uploads")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	k := filesnap.Kind{Every: 200 * time.Millisecond}
	svc := backup.ServiceSpec{Name: "uploads", Type: "files", Path: root}
	if rs := k.Check(context.Background(), "main", svc); len(rs) != 1 || rs[0].Status != pitr.CheckOK {
		t.Fatalf("Check = %+v, want the mount ok", rs)
	}
	rec := &pitrtest.Record{}
	spec := pitr.FollowSpec{Environment: "main", Service: svc, Repo: rep, Spool: t.TempDir(), Record: rec}
	stopWrites := make(chan struct{})
	markers := writeMarkers(t, root, stopWrites)

	stop := pitrtest.Follow(t, func(ctx context.Context) error { return k.Follow(ctx, spec) })
	time.Sleep(2 * time.Second)
	stop()
	downFrom := time.Now()
	time.Sleep(time.Second)
	downTo := time.Now()
	stop = pitrtest.Follow(t, func(ctx context.Context) error { return k.Follow(ctx, spec) })
	time.Sleep(2 * time.Second)
	close(stopWrites)
	ms := markers()
	last := ms[len(ms)-1].after
	pitrtest.WaitFor(t, "the last marker covered", func() bool { return rec.Covered().After(last) })
	n := len(rec.Segments())
	pitrtest.WaitFor(t, "more coverage with nothing changing", func() bool { return rec.Covered().After(time.Now().Add(-50 * time.Millisecond)) })
	time.Sleep(600 * time.Millisecond)
	stop()
	if got := len(rec.Segments()); got != n {
		t.Errorf("segments = %d after the writes stopped, want still %d: an unchanged tree is not saved again", got, n)
	}

	st := rec.Stream(k.NextSegment)
	if len(st.Bases) != 2 {
		t.Fatalf("bases = %d, want 2 (one per run)", len(st.Bases))
	}
	// The walk window of each saved tree: from the coverage reported with it back to its end.
	began := map[time.Time]time.Time{}
	for _, r := range rec.Reports() {
		if !r.LastCommit.IsZero() {
			began[r.LastCommit] = r.CoveredUntil
		}
	}
	var ends []time.Time
	for _, s := range rec.Segments() {
		ends = append(ends, s.Commits[0])
	}
	sort.Slice(ends, func(i, j int) bool { return ends[i].Before(ends[j]) })

	from := st.Bases[0].FinishedAt
	var ats []time.Time
	for len(ats) < 20 {
		at := from.Add(time.Duration(rand.Int64N(int64(last.Sub(from)))))
		if at.Before(downFrom.Add(-2*k.Every)) || at.After(downTo.Add(time.Second)) { // the gap: the downtime and up to one interval before it
			ats = append(ats, at)
		}
	}
	ats = append(ats, last.Add(100*time.Millisecond))
	for _, at := range ats {
		c, err := st.Choose(time.Time{}, at)
		if err != nil {
			t.Fatalf("Choose(%s) = %v", at.Format(time.RFC3339Nano), err)
		}
		if err := c.Exact(context.Background(), rep); err != nil {
			t.Fatal(err)
		}
		r, err := k.Rebuild(context.Background(), pitr.RebuildSpec{Repo: rep, Service: svc, Choice: c, Target: at,
			Dir: filepath.Join(t.TempDir(), "scratch")})
		if err != nil {
			t.Fatalf("Rebuild(%s) = %v", at.Format(time.RFC3339Nano), err)
		}
		reached := r.Reached()
		got := restoredMarkers(t, r.Spec(svc).Path)
		r.Close()
		if reached == nil || reached.After(at) {
			t.Fatalf("at %s: reached %v, want a tree saved at or before T", at.Format(time.RFC3339Nano), reached)
		}
		var newest time.Time
		for _, e := range ends {
			if !e.After(at) {
				newest = e
			}
		}
		if !reached.Equal(newest) {
			t.Errorf("at %s: rebuilt the tree of %s, want the newest at or before T, %s", at.Format(time.RFC3339Nano),
				reached.Format(time.RFC3339Nano), newest.Format(time.RFC3339Nano))
		}
		// Every marker made before the walk began is there; none begun after it ended.
		var must, may int
		for _, m := range ms {
			if m.after.Before(began[*reached]) {
				must = m.n
			}
			if !m.before.After(*reached) {
				may = m.n
			}
		}
		if got < must || got > may {
			t.Errorf("at %s: markers 1..%d, want between 1..%d (made before the walk) and 1..%d (begun by its end)",
				at.Format(time.RFC3339Nano), got, must, may)
		}
	}

	var ge *pitr.GapError
	mid := downFrom.Add(downTo.Sub(downFrom) / 2)
	if _, err := st.Choose(time.Time{}, mid); !errors.As(err, &ge) || ge.Before == nil || ge.After == nil {
		t.Errorf("Choose(in the downtime) = %v, want a GapError naming the moments on both sides", err)
	}
	if _, err := st.Choose(time.Time{}, from.Add(-time.Second)); !errors.As(err, &ge) || ge.After == nil {
		t.Errorf("Choose(before the first tree) = %v, want a GapError naming the oldest moment", err)
	}
	if _, err := st.Choose(time.Time{}, time.Now().Add(time.Hour)); !errors.As(err, &ge) || ge.Before == nil {
		t.Errorf("Choose(an hour ahead) = %v, want a GapError naming the newest moment", err)
	}
}

func TestCheck(t *testing.T) {
	k := filesnap.Kind{}
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, svc := range []backup.ServiceSpec{
		{Name: "gone", Path: filepath.Join(t.TempDir(), "missing")},
		{Name: "file", Path: file},
		{Name: "bad", Path: t.TempDir(), Exclude: []string{"["}},
	} {
		rs := k.Check(context.Background(), "main", svc)
		if rs[len(rs)-1].Status != pitr.CheckFailed {
			t.Errorf("Check(%s) = %+v, want the last result failed", svc.Name, rs)
		}
	}
}

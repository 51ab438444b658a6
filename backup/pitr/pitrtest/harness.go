package pitrtest

import (
	"context"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/pitr"
)

// OpenRepo opens a new encrypted repository in a temp dir for t, closed when t ends.
func OpenRepo(t testing.TB) *backup.Repository {
	t.Helper()
	dir := t.TempDir()
	rep, err := backup.OpenRepository(context.Background(), backup.RepositoryOptions{
		Storage: backup.FileStorage(filepath.Join(dir, "repo")), Password: "pw", ConfigDir: filepath.Join(dir, "kopia"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rep.Close(context.Background()) })
	return rep
}

// Follow runs a follower (a Kind's Follow, or a follower's Run) until stop is called or t ends; an error it
// returns fails t at once, so a test waiting for it fails with the reason.
func Follow(t testing.TB, run func(ctx context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		err := run(ctx)
		if err != nil {
			t.Errorf("follower: %v", err)
		}
		done <- err
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop) // before the repository closes, when the test ends early
	return stop
}

// WaitFor polls cond until it holds, failing t after a minute or as soon as t failed (a follower's error).
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if t.Failed() {
			t.FailNow()
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// ShipWatch is a Record that tells when a shipped segment holds a change at or after a moment (the recovery
// point benchmarks).
type ShipWatch struct {
	Record
	mu     sync.Mutex
	newest time.Time
	// Wake gets a value (if it has room) each time a segment with changes is shipped.
	Wake chan struct{}
}

// NewShipWatch returns a ShipWatch whose Wake holds one value.
func NewShipWatch() *ShipWatch { return &ShipWatch{Wake: make(chan struct{}, 1)} }

// SegmentShipped records s and wakes a waiter.
func (w *ShipWatch) SegmentShipped(ctx context.Context, s pitr.Segment) (string, error) {
	old, err := w.Record.SegmentShipped(ctx, s)
	if n := len(s.Commits); n > 0 {
		w.mu.Lock()
		if s.Commits[n-1].After(w.newest) {
			w.newest = s.Commits[n-1]
		}
		w.mu.Unlock()
		select {
		case w.Wake <- struct{}{}:
		default:
		}
	}
	return old, err
}

// Shipped reports whether a change at or after t is in the repository.
func (w *ShipWatch) Shipped(t time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return !w.newest.Before(t)
}

// Changes are the times of every change of the shipped segments, oldest first.
func (r *Record) Changes() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []time.Time
	for _, s := range r.segs {
		out = append(out, s.Commits...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Before(out[j]) })
	return out
}

// Counts are how many bases were recorded and how far the stream is covered.
func (r *Record) Counts() (bases int, covered time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.bases), r.covered
}

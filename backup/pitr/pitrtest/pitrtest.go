// Package pitrtest is the workload of the point-in-time tests: a numbered marker committed every 50 ms into a
// real database, with the client's bounds on each commit's time, so a test can say exactly which
// markers a restore to T must bring back.
package pitrtest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Marker is one committed row: its commit happened between Before and After (the client's clock, which is the
// server's on one machine).
type Marker struct {
	N             int
	Before, After time.Time
}

// Writer creates table marker in the database at url and inserts marker 1, 2, … every 50 ms, one transaction
// each, until stop is closed; the returned function waits for the writer and returns the markers committed.
func Writer(t testing.TB, url string, stop <-chan struct{}) func() []Marker {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "CREATE TABLE marker (n int PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	return Markers(t, stop, func(n int) error {
		_, err := c.Exec(ctx, "INSERT INTO marker VALUES ($1)", n)
		return err
	}, func() { c.Close(ctx) })
}

// Markers writes marker 1, 2, … with write every 50 ms until stop is closed, then calls done; the returned
// function waits for the writer and returns the markers written, each between the moment write was called and
// the moment it returned (the server acknowledged it).
func Markers(t testing.TB, stop <-chan struct{}, write func(n int) error, done func()) func() []Marker {
	var mu sync.Mutex
	var ms []Marker
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		defer done()
		for n := 1; ; n++ {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			before := time.Now()
			if err := write(n); err != nil {
				t.Errorf("write marker %d: %v", n, err)
				return
			}
			mu.Lock()
			ms = append(ms, Marker{N: n, Before: before, After: time.Now()})
			mu.Unlock()
		}
	}()
	return func() []Marker {
		<-finished
		mu.Lock()
		defer mu.Unlock()
		return append([]Marker(nil), ms...)
	}
}

// Ambiguous reports whether at falls while a marker was being committed (5 ms either side): which side of at
// its commit is, the client cannot know.
func Ambiguous(ms []Marker, at time.Time) bool { return AmbiguousBy(ms, at, 5*time.Millisecond) }

// AmbiguousBy is Ambiguous with after instead of 5 ms after each acknowledgement: for a kind whose change times
// are when Rewind received them (Redis), which can follow the client's acknowledgement by a scheduling delay.
func AmbiguousBy(ms []Marker, at time.Time, after time.Duration) bool {
	for _, m := range ms {
		if !at.Before(m.Before.Add(-5*time.Millisecond)) && !at.After(m.After.Add(after)) {
			return true
		}
	}
	return false
}

// Clear returns the first moment from at on that is not Ambiguous.
func Clear(ms []Marker, at time.Time) time.Time {
	for Ambiguous(ms, at) {
		at = at.Add(3 * time.Millisecond)
	}
	return at
}

// UpTo is the number of the last marker committed at or before at (0 for none).
func UpTo(ms []Marker, at time.Time) int {
	n := 0
	for _, m := range ms {
		if !m.After.After(at) {
			n = m.N
		}
	}
	return n
}

// Count returns how many markers the database at url holds, failing t when they are not exactly 1..n.
func Count(t testing.TB, url string) int {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer c.Close(ctx)
	var n, maxN int
	if err := c.QueryRow(ctx, "SELECT count(*), COALESCE(max(n), 0) FROM marker").Scan(&n, &maxN); err != nil {
		t.Fatal(err)
	}
	if n != maxN {
		t.Fatalf("markers 1..%d hold %d rows: a hole", maxN, n)
	}
	return n
}

package redisrepl_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/rewind/rewind/backup/pitr"
	"github.com/rewind/rewind/backup/pitr/pitrtest"
	"github.com/rewind/rewind/backup/pitr/redisrepl"
)

// shipWatch is a pitrtest.Record that tells when a shipped segment holds a change at or after a moment.
type shipWatch struct {
	pitrtest.Record
	mu     sync.Mutex
	newest time.Time
	wake   chan struct{}
}

func (w *shipWatch) SegmentShipped(ctx context.Context, s pitr.Segment) (string, error) {
	old, err := w.Record.SegmentShipped(ctx, s)
	if n := len(s.Commits); n > 0 {
		w.mu.Lock()
		if s.Commits[n-1].After(w.newest) {
			w.newest = s.Commits[n-1]
		}
		w.mu.Unlock()
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	return old, err
}

func (w *shipWatch) shipped(t time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return !w.newest.Before(t)
}

// BenchmarkRPO measures the achieved recovery point of a Redis service: from a write returning to the client
// until the repository holds the segment with it (recorded in the catalog), for two shipping intervals.
// Run: go test ./backup/pitr/redisrepl/ -run '^$' -bench RPO -benchtime 20x
func BenchmarkRPO(b *testing.B) {
	for _, every := range []time.Duration{200 * time.Millisecond, time.Second} {
		b.Run(every.String(), func(b *testing.B) {
			srv, c := startServer(b)
			rec := &shipWatch{wake: make(chan struct{}, 1)}
			f := &redisrepl.Follower{Environment: "bench", Service: "cache", URL: srv.URL(0), Repo: openRepo(b),
				Spool: b.TempDir(), Record: rec, ShipEvery: every}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- f.Run(ctx) }()
			defer func() {
				cancel()
				<-done
			}()
			for {
				if bs, _, _ := rec.State(); len(bs) > 0 {
					break
				}
				select {
				case err := <-done:
					done <- err // for the deferred wait
					b.Fatalf("follower stopped: %v", err)
				case <-time.After(10 * time.Millisecond):
				}
			}
			var total, worst time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				before := time.Now()
				if err := c.RPush(context.Background(), "marker", i).Err(); err != nil {
					b.Fatal(err)
				}
				acked := time.Now()
				deadline := time.After(30 * time.Second)
				for !rec.shipped(before) {
					select {
					case <-rec.wake:
					case <-deadline:
						b.Fatalf("write %d not shipped after 30 s", i)
					case err := <-done:
						done <- err // for the deferred wait
						b.Fatalf("follower stopped: %v", err)
					}
				}
				lag := time.Since(acked)
				total += lag
				worst = max(worst, lag)
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms-rpo-avg")
			b.ReportMetric(float64(worst.Milliseconds()), "ms-rpo-max")
		})
	}
}

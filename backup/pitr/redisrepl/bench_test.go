package redisrepl_test

import (
	"context"
	"testing"
	"time"

	"github.com/rewind/rewind/backup/pitr/pitrtest"
	"github.com/rewind/rewind/backup/pitr/redisrepl"
)

// BenchmarkRPO measures the achieved recovery point of a Redis service: from a write returning to the client
// until the repository holds the segment with it (recorded in the catalog), for two shipping intervals.
// Run: go test ./backup/pitr/redisrepl/ -run '^$' -bench RPO -benchtime 20x
func BenchmarkRPO(b *testing.B) {
	for _, every := range []time.Duration{200 * time.Millisecond, time.Second} {
		b.Run(every.String(), func(b *testing.B) {
			srv, c := startServer(b)
			rec := pitrtest.NewShipWatch()
			f := &redisrepl.Follower{Environment: "bench", Service: "cache", URL: srv.URL(0), Repo: pitrtest.OpenRepo(b),
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
				for !rec.Shipped(before) {
					select {
					case <-rec.Wake:
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

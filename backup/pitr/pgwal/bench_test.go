package pgwal_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rewind/rewind/backup/pitr/pgwal"
	"github.com/rewind/rewind/backup/pitr/pitrtest"
	"github.com/rewind/rewind/backup/testserver"
)

// BenchmarkRPO measures the achieved recovery point: from a commit returning to the client until the repository
// holds the WAL with that commit (a shipped segment snapshot recorded in the catalog), for two shipping
// intervals. Run: go test ./backup/pitr/pgwal/ -run '^$' -bench RPO -benchtime 20x
func BenchmarkRPO(b *testing.B) {
	for _, every := range []time.Duration{200 * time.Millisecond, time.Second} {
		b.Run(every.String(), func(b *testing.B) {
			srv := testserver.StartPostgres(b)
			dbName := srv.CreateDatabase(b, "")
			url := srv.URL(dbName)
			env, svc := "bench", testserver.UniqueName("db")
			rec := pitrtest.NewShipWatch()
			f := &pgwal.Follower{Environment: env, Service: svc, URL: url, Repo: pitrtest.OpenRepo(b), Spool: b.TempDir(),
				Record: rec, ShipEvery: every}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- f.Run(ctx) }()
			defer func() {
				cancel()
				<-done
				pgwal.DropSlot(context.Background(), url, env, svc) //nolint:errcheck
			}()
			c, err := pgx.Connect(context.Background(), url)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close(context.Background())
			if _, err := c.Exec(context.Background(), "CREATE TABLE marker (n int PRIMARY KEY)"); err != nil {
				b.Fatal(err)
			}
			var total, worst time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				before := time.Now()
				if _, err := c.Exec(context.Background(), "INSERT INTO marker VALUES ($1)", i); err != nil {
					b.Fatal(err)
				}
				committed := time.Now()
				deadline := time.After(30 * time.Second)
				for !rec.Shipped(before) {
					select {
					case <-rec.Wake:
					case <-deadline:
						b.Fatalf("commit %d not shipped after 30 s", i)
					case err := <-done:
						b.Fatalf("follower stopped: %v", err)
					}
				}
				lag := time.Since(committed)
				total += lag
				worst = max(worst, lag)
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms-rpo-avg")
			b.ReportMetric(float64(worst.Milliseconds()), "ms-rpo-max")
		})
	}
}

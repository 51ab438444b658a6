package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/jobs"
)

// BenchmarkPause measures, for an environment with all five service types (small data) behind a gate, how long
// requests are held by a consistent backup (the pins) and by a restore (the switch). It reports the holds the
// gate recorded, median and worst, in milliseconds; it asserts nothing about them.
//
//	go test -run '^$' -bench Pause -benchtime 10x .
func BenchmarkPause(b *testing.B) {
	ctx := context.Background()
	m := NewMain()
	m.DataDir, m.Addr = b.TempDir(), "127.0.0.1:0"
	m.Console, m.Logger = io.Discard, slog.New(slog.DiscardHandler)
	m.Getenv = func(string) string { return "" }
	if err := m.Run(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })

	s := newStack(b, "bench", "production", true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })}
	go app.Serve(ln)
	b.Cleanup(func() { app.Close() })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	listen := l.Addr().String()
	l.Close()
	env := &db.Environment{Name: "bench", Type: db.EnvProduction, Status: db.StatusActive,
		Gate: db.Gate{Listen: listen, Upstream: "http://" + ln.Addr().String()},
		Services: []db.Service{
			{Name: "db", Type: db.ServicePostgreSQL, URL: s.pgURL},
			{Name: "shop", Type: db.ServiceMySQL, URL: s.myURL},
			{Name: "cache", Type: db.ServiceRedis, URL: s.rd.URL(s.rdDB)},
			{Name: "local", Type: db.ServiceSQLite, Path: s.sqlitePath},
			{Name: "uploads", Type: db.ServiceFiles, Path: s.filesPath},
		}}
	if err := m.Catalog.CreateEnvironment(ctx, env); err != nil {
		b.Fatal(err)
	}
	if err := m.SyncGates(ctx); err != nil {
		b.Fatal(err)
	}
	g := m.Gates.Gate("bench")
	if g == nil {
		b.Fatal("no gate")
	}
	for i := range 20 { // a little more than nothing in each service
		os.WriteFile(filepath.Join(s.filesPath, fmt.Sprintf("f%d.txt", i)), []byte(fmt.Sprint(i)), 0o644)
	}
	wait := func(id int64) {
		deadline := time.Now().Add(2 * time.Minute)
		for {
			a, err := m.Catalog.FindActivityByID(ctx, id)
			if err != nil {
				b.Fatal(err)
			}
			if a.Done() {
				if a.State != db.ActivitySucceeded {
					b.Fatalf("%s: %s\n%s", a.Type, a.State, a.Log)
				}
				return
			}
			if time.Now().After(deadline) {
				b.Fatalf("activity %d still %s", id, a.State)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	var backupHolds, restoreHolds []time.Duration
	b.ResetTimer()
	for range b.N {
		a, bk, err := m.Ops.StartBackup(ctx, jobs.BackupRequest{Environment: "bench", Actor: "bench", ReplaceOldest: true})
		if err != nil {
			b.Fatal(err)
		}
		wait(a.ID)
		backupHolds = append(backupHolds, g.Stats().LastHold)
		ra, _, err := m.Ops.StartRestore(ctx, jobs.RestoreRequest{BackupID: bk.ID, Confirm: "bench", Actor: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		wait(ra.ID)
		restoreHolds = append(restoreHolds, g.Stats().LastHold)
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	slices.Sort(backupHolds)
	slices.Sort(restoreHolds)
	b.ReportMetric(ms(backupHolds[len(backupHolds)/2]), "backup-pause-ms")
	b.ReportMetric(ms(backupHolds[len(backupHolds)-1]), "backup-pause-max-ms")
	b.ReportMetric(ms(restoreHolds[len(restoreHolds)/2]), "restore-pause-ms")
	b.ReportMetric(ms(restoreHolds[len(restoreHolds)-1]), "restore-pause-max-ms")
}

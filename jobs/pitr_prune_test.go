package jobs_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/jobs"
)

// TestPITRPrune keeps exactly what the window needs: the newest base finished before the window starts, the
// bases after it, and the WAL from that base on.
func TestPITRPrune(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	now := time.Date(2026, 12, 10, 12, 0, 0, 0, time.UTC)
	env := &db.Environment{Name: "main", Type: db.EnvProduction, PITR: &db.PITR{Enabled: true}, // basic: 7 days
		Services: []db.Service{{Name: "db", Type: db.ServicePostgreSQL, URL: "postgres://app@127.0.0.1:1/app"}}}
	if err := w.catalog.CreateEnvironment(ctx, env); err != nil {
		t.Fatal(err)
	}
	st, err := w.catalog.EnsurePITRStream(ctx, "main", "db", "rewind_main_db")
	if err != nil {
		t.Fatal(err)
	}
	seg := func(n int) string { return fmt.Sprintf("0000000100000000%08X", n) }
	for i, age := range []int{10, 5, 1} { // days old: bases starting at segments 1, 5, 9
		b := &db.PITRBase{StreamID: st.ID, Snapshot: fmt.Sprintf("base%d", i), SystemID: "1", Timeline: 1,
			StartLSN: "0/0", EndLSN: "0/0", StartWAL: seg(1 + 4*i), StartedAt: now.AddDate(0, 0, -age),
			FinishedAt: now.AddDate(0, 0, -age).Add(time.Minute)}
		if err := w.catalog.CreatePITRBase(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	for n := 1; n <= 12; n++ {
		if _, err := w.catalog.PutPITRSegment(ctx, &db.PITRSegment{StreamID: st.ID, Name: seg(n),
			Snapshot: fmt.Sprintf("seg%d", n), ReadAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	clock := now
	sup := &jobs.PITR{Catalog: w.catalog, Repo: w.ops.Engine.Repo, Now: func() time.Time { return clock }}
	check := func(wantBases []string, wantFirst string, wantSegs int) {
		t.Helper()
		if err := sup.Prune(ctx); err != nil {
			t.Fatal(err)
		}
		bases, _ := w.catalog.FindPITRBases(ctx, st.ID)
		var got []string
		for _, b := range bases {
			got = append(got, b.Snapshot)
		}
		segs, _ := w.catalog.FindPITRSegments(ctx, st.ID, "")
		if fmt.Sprint(got) != fmt.Sprint(wantBases) || len(segs) != wantSegs || segs[0].Name != wantFirst {
			t.Fatalf("at %s: bases %v, %d segments from %s; want %v, %d from %s", clock, got, len(segs),
				segs[0].Name, wantBases, wantSegs, wantFirst)
		}
	}
	// The window starts 7 days ago: the 10-day-old base is still needed for its first days.
	check([]string{"base0", "base1", "base2"}, seg(1), 12)
	// Three days later the window starts after the 5-day-old (now 8) base: the oldest base and its WAL go.
	clock = now.AddDate(0, 0, 3)
	check([]string{"base1", "base2"}, seg(5), 8)
}

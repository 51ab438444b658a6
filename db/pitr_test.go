package db_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rewind/rewind/db"
)

func TestPITR_SettingsBoundedByPlan(t *testing.T) {
	ctx := context.Background()
	c := MustOpenDB(t)
	e := mainEnv()
	e.PITR = &db.PITR{Enabled: true} // no window: the basic schedule's 7 days
	mustCreateEnv(t, c, e)
	got, err := c.FindEnvironmentByName(ctx, "main")
	if err != nil {
		t.Fatal(err)
	}
	if got.PITR == nil || !got.PITR.Enabled || got.PITR.WindowDays != 7 {
		t.Fatalf("PITR = %+v, want enabled with 7 days (basic)", got.PITR)
	}

	// Longer than basic allows: refused, naming the field and the limit.
	got.PITR = &db.PITR{Enabled: true, WindowDays: 14}
	err = c.UpdateEnvironment(ctx, got)
	var ve *db.ValidationError
	if !errors.As(err, &ve) || ve.For("pitr.window_days") == "" {
		t.Fatalf("UpdateEnvironment(14 days on basic) = %v, want a validation error on pitr.window_days", err)
	}
	if err := c.UpdatePlan(ctx, db.Plan{Name: "p", Timezone: "UTC", Tier: db.TierElite, Schedule: db.SchedulePremium}); err != nil {
		t.Fatal(err)
	}
	got.PITR = &db.PITR{Enabled: true, WindowDays: 30}
	if err := c.UpdateEnvironment(ctx, got); err != nil {
		t.Fatalf("UpdateEnvironment(30 days on premium) = %v", err)
	}
	// Not mentioned: kept.
	got.PITR = nil
	got.Title = "Main"
	if err := c.UpdateEnvironment(ctx, got); err != nil {
		t.Fatal(err)
	}
	again, _ := c.FindEnvironmentByName(ctx, "main")
	if again.PITR.WindowDays != 30 || !again.PITR.Enabled || again.Title != "Main" {
		t.Fatalf("after an update without pitr: %+v, title %q; want the stored 30 days kept", again.PITR, again.Title)
	}
	// A downgrade shortens the window in force without blocking unrelated edits.
	if err := c.UpdatePlan(ctx, db.Plan{Name: "p", Timezone: "UTC", Tier: db.TierProfessional, Schedule: db.ScheduleBasic}); err != nil {
		t.Fatal(err)
	}
	if got, want := again.PITR.Window(db.ScheduleBasic), 7*24*time.Hour; got != want {
		t.Fatalf("Window(basic) = %v, want %v", got, want)
	}
	again.Title = "Main again"
	if err := c.UpdateEnvironment(ctx, again); err != nil {
		t.Fatalf("unrelated edit after a downgrade = %v", err)
	}
	bad := mainEnv()
	bad.Name, bad.Gate = "other", db.Gate{}
	bad.PITR = &db.PITR{WindowDays: 31}
	if err := c.CreateEnvironment(ctx, bad); !errors.As(err, &ve) || ve.For("pitr.window_days") == "" {
		t.Fatalf("CreateEnvironment(31 days) = %v, want a validation error", err)
	}
}

func TestPITR_Streams(t *testing.T) {
	ctx := context.Background()
	c := MustOpenDB(t)
	s, err := c.EnsurePITRStream(ctx, "main", "db", "rewind_main_db")
	if err != nil {
		t.Fatal(err)
	}
	if s2, err := c.EnsurePITRStream(ctx, "main", "db", "other"); err != nil || s2.ID != s.ID || s2.Slot != "rewind_main_db" {
		t.Fatalf("EnsurePITRStream again = %+v, %v; want the same stream", s2, err)
	}
	now := time.Date(2026, 12, 1, 10, 0, 0, 123456000, time.UTC)
	running := db.PITRRunning
	if err := c.UpdatePITRStream(ctx, s.ID, db.PITRStreamUpdate{State: &running, LastCommitAt: &now}); err != nil {
		t.Fatal(err)
	}
	got, _ := c.FindPITRStream(ctx, "main", "db")
	if got.State != db.PITRRunning || got.LastCommitAt == nil || !got.LastCommitAt.Equal(now) {
		t.Fatalf("stream = %+v", got)
	}
	seg := &db.PITRSegment{StreamID: s.ID, Name: "000000010000000000000003", Snapshot: "k1", Partial: true, ReadAt: now}
	if old, err := c.PutPITRSegment(ctx, seg); err != nil || old != "" {
		t.Fatalf("PutPITRSegment(new) = %q, %v", old, err)
	}
	seg.Snapshot, seg.Partial, seg.Bytes = "k2", false, 5000
	if old, err := c.PutPITRSegment(ctx, seg); err != nil || old != "k1" {
		t.Fatalf("PutPITRSegment(replace) = %q, %v; want the replaced snapshot k1", old, err)
	}
	segs, err := c.FindPITRSegments(ctx, s.ID, "000000010000000000000002")
	if err != nil || len(segs) != 1 || segs[0].Snapshot != "k2" || segs[0].Partial || segs[0].Bytes != 5000 {
		t.Fatalf("FindPITRSegments = %+v, %v", segs, err)
	}
	if err := c.CreatePITRBase(ctx, &db.PITRBase{StreamID: s.ID, Snapshot: "b", SystemID: "1", Timeline: 1, StartLSN: "0/0",
		EndLSN: "0/0", StartWAL: seg.Name, StartedAt: now, FinishedAt: now, Bytes: 1000}); err != nil {
		t.Fatal(err)
	}
	if u, err := c.FindPITRUsage(ctx, s.ID); err != nil || u.Bases != 1 || u.Segments != 1 || u.Bytes() != 1000+5000 {
		t.Fatalf("FindPITRUsage = %+v, %v; want 1 base of 1000 bytes and 1 segment of 5000", u, err)
	}
	if err := c.DeletePITRStream(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.FindPITRStream(ctx, "main", "db"); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("after delete: %v, want ErrNotFound", err)
	}
}

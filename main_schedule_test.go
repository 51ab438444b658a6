package main

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/rewind/rewind/db"
)

// TestMainSchedulesBackups boots `rewind serve --demo` on a clock: the scheduler wired into Main takes the 04:00
// backup of the production environment only (live, by "schedule"), and after three days down the missed slot runs
// once at start-up; retention keeps basic's 2.
func TestMainSchedulesBackups(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	now := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	set := func(t time.Time) { mu.Lock(); now = t; mu.Unlock() }
	boot := func() *Main {
		t.Helper()
		var console bytes.Buffer
		m := NewMain()
		m.DataDir, m.Addr, m.Demo, m.Now = dir, "127.0.0.1:0", true, clock
		m.Console, m.Logger = &console, slog.New(slog.DiscardHandler)
		m.Getenv = func(k string) string {
			if k == "REWIND_REPO_PASSWORD" {
				return "test password"
			}
			return ""
		}
		if err := m.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		return m
	}
	automated := func(m *Main, n int) []*db.Backup {
		t.Helper()
		kind, complete := db.BackupAutomated, db.BackupComplete
		deadline := time.Now().Add(60 * time.Second)
		for {
			bs, _, err := m.Catalog.FindBackups(context.Background(), db.BackupFilter{Kind: &kind, Status: &complete})
			if err != nil {
				t.Fatal(err)
			}
			if len(bs) >= n {
				return bs
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d automated backups complete, want %d", len(bs), n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	m := boot()
	time.Sleep(50 * time.Millisecond)
	if bs, _, _ := m.Catalog.FindBackups(context.Background(), db.BackupFilter{}); len(bs) != 0 {
		t.Fatalf("a new installation backed up at once: %d backups", len(bs))
	}
	set(time.Date(2030, 6, 2, 4, 0, 0, 0, time.UTC))
	m.Scheduler.Wake()
	bs := automated(m, 1)
	a, err := m.Catalog.FindActivityByID(context.Background(), bs[0].ActivityID)
	if err != nil {
		t.Fatal(err)
	}
	if bs[0].Environment != "main" || !bs[0].Live || a.Actor != "schedule" {
		t.Fatalf("scheduled backup = %+v by %q, want a live backup of main by schedule", bs[0], a.Actor)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	// Down from the 2nd to the 5th at 09:00: the 3rd, 4th and 5th at 04:00 are missed; one backup at start-up.
	set(time.Date(2030, 6, 5, 9, 0, 0, 0, time.UTC))
	m = boot()
	defer m.Close()
	bs = automated(m, 2)
	time.Sleep(100 * time.Millisecond) // no second catch-up backup follows
	all, _, _ := m.Catalog.FindBackups(context.Background(), db.BackupFilter{})
	if len(all) != 2 || !bs[0].CreatedAt.Equal(time.Date(2030, 6, 5, 9, 0, 0, 0, time.UTC)) {
		t.Fatalf("after 3 days down: %d backups, newest at %s; want 2, the newest at start-up", len(all), bs[0].CreatedAt)
	}
	next, err := m.Scheduler.NextRun(context.Background())
	if err != nil || !next.Equal(time.Date(2030, 6, 6, 4, 0, 0, 0, time.UTC)) {
		t.Fatalf("next run = %s, %v", next, err)
	}
}

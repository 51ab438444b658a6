package db_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rewind/rewind/db"
)

func TestActivities_CreateUpdate(t *testing.T) {
	ctx := context.Background()
	c := MustOpenDB(t)

	instant := &db.Activity{Type: "environment.create", Environment: "main", Actor: "ana@example.com", Summary: "Created main"}
	if err := c.CreateActivity(ctx, instant); err != nil {
		t.Fatalf("CreateActivity() = %v", err)
	}
	if instant.ID == 0 || instant.State != db.ActivitySucceeded || instant.Progress != 100 || instant.StartedAt == nil || instant.FinishedAt == nil {
		t.Fatalf("instant activity = %+v, want succeeded, 100%%, started and finished", instant)
	}

	job := &db.Activity{Type: "backup.create", Environment: "main", Actor: "ana@example.com", State: db.ActivityQueued, Params: `{"live":false}`}
	if err := c.CreateActivity(ctx, job); err != nil {
		t.Fatal(err)
	}
	if job.StartedAt != nil || job.Duration(time.Now()) != 0 {
		t.Fatalf("queued activity = %+v, want not started", job)
	}
	running, pct, line := db.ActivityRunning, 40, "pinned 2 services"
	a, err := c.UpdateActivity(ctx, job.ID, db.ActivityUpdate{State: &running, Progress: &pct, AppendLog: &line})
	if err != nil {
		t.Fatalf("UpdateActivity(running) = %v", err)
	}
	if a.StartedAt == nil || a.FinishedAt != nil || a.Progress != 40 || a.Log != "pinned 2 services\n" {
		t.Fatalf("running activity = %+v", a)
	}
	line2, done, backupID := "streamed 12 MB", db.ActivitySucceeded, "0123456789abcdef0123"
	a, err = c.UpdateActivity(ctx, job.ID, db.ActivityUpdate{State: &done, AppendLog: &line2, BackupID: &backupID})
	if err != nil {
		t.Fatal(err)
	}
	if a.FinishedAt == nil || a.Log != "pinned 2 services\nstreamed 12 MB\n" || a.BackupID != backupID {
		t.Fatalf("finished activity = %+v", a)
	}
	if got := a.Duration(time.Now()); got <= 0 || got != a.FinishedAt.Sub(*a.StartedAt) {
		t.Fatalf("Duration() = %v, want FinishedAt-StartedAt", got)
	}
	stored, err := c.FindActivityByID(ctx, job.ID)
	if err != nil || stored.Log != a.Log || stored.Params != `{"live":false}` || !stored.Done() {
		t.Fatalf("FindActivityByID() = %+v, %v", stored, err)
	}
	if _, err := c.FindActivityByID(ctx, 999); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("FindActivityByID(999) = %v, want ErrNotFound", err)
	}
	if _, err := c.UpdateActivity(ctx, 999, db.ActivityUpdate{State: &done}); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("UpdateActivity(999) = %v, want ErrNotFound", err)
	}

	bad, over := "exploded", 101
	var ve *db.ValidationError
	if _, err := c.UpdateActivity(ctx, job.ID, db.ActivityUpdate{State: &bad, Progress: &over}); !errors.As(err, &ve) || ve.For("state") == "" || ve.For("progress") == "" {
		t.Fatalf("UpdateActivity(bad) = %v, want state and progress errors", err)
	}
	if err := c.CreateActivity(ctx, &db.Activity{State: db.ActivityQueued}); !errors.As(err, &ve) || ve.For("type") == "" {
		t.Fatalf("CreateActivity(no type) = %v, want a type error", err)
	}
	// A job that fails before it ran still gets both timestamps.
	q := &db.Activity{Type: "restore", State: db.ActivityQueued}
	c.CreateActivity(ctx, q)
	failed := db.ActivityFailed
	if a, _ := c.UpdateActivity(ctx, q.ID, db.ActivityUpdate{State: &failed}); a.StartedAt == nil || a.FinishedAt == nil {
		t.Fatalf("failed-before-start activity = %+v, want both timestamps", a)
	}
}

func TestActivities_Find(t *testing.T) {
	ctx := context.Background()
	c := MustOpenDB(t)
	for i, a := range []db.Activity{
		{Type: "environment.create", Environment: "main"},
		{Type: "backup.create", Environment: "main", State: db.ActivityRunning},
		{Type: "backup.restore", Environment: "staging", State: db.ActivityQueued},
		{Type: "login", Actor: "ana@example.com"},
		{Type: "backup.create", Environment: "staging", State: db.ActivityFailed},
	} {
		a.Summary = string(rune('A' + i))
		if err := c.CreateActivity(ctx, &a); err != nil {
			t.Fatal(err)
		}
	}
	summaries := func(acts []*db.Activity) string {
		s := ""
		for _, a := range acts {
			s += a.Summary
		}
		return s
	}
	str := func(s string) *string { return &s }
	for _, tt := range []struct {
		name      string
		f         db.ActivityFilter
		want      string
		wantTotal int
	}{
		{"all newest first", db.ActivityFilter{}, "EDCBA", 5},
		{"environment", db.ActivityFilter{Environment: str("main")}, "BA", 2},
		{"type", db.ActivityFilter{Type: str("backup.create")}, "EB", 2},
		{"type group", db.ActivityFilter{Type: str("backup.")}, "ECB", 3},
		{"state", db.ActivityFilter{State: str(db.ActivityQueued)}, "C", 1},
		{"combined", db.ActivityFilter{Environment: str("staging"), Type: str("backup.")}, "EC", 2},
		{"page", db.ActivityFilter{Offset: 1, Limit: 2}, "DC", 5},
		{"past the end", db.ActivityFilter{Offset: 10}, "", 5},
	} {
		acts, total, err := c.FindActivities(ctx, tt.f)
		if err != nil {
			t.Fatalf("%s: FindActivities() = %v", tt.name, err)
		}
		if got := summaries(acts); got != tt.want || total != tt.wantTotal {
			t.Fatalf("%s: FindActivities() = %q, total %d; want %q, %d", tt.name, got, total, tt.want, tt.wantTotal)
		}
	}
	unfinished, err := c.FindUnfinishedActivities(ctx)
	if err != nil || summaries(unfinished) != "BC" {
		t.Fatalf("FindUnfinishedActivities() = %q, %v, want BC (oldest first)", summaries(unfinished), err)
	}
}

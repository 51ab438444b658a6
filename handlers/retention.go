package handlers

import (
	"context"
	"time"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/jobs"
	"github.com/rewind/rewind/views"
)

type planFinder interface {
	FindPlan(ctx context.Context) (*db.Plan, error)
}

type backupFinder interface {
	FindBackups(ctx context.Context, f db.BackupFilter) ([]*db.Backup, int, error)
}

// retentionStore joins the catalog's plan and backups for retentionData.
type retentionStore struct {
	planFinder
	backupFinder
}

// retentionData explains the plan's retention for the Backups tab of e, over all of e's backups.
func retentionData(ctx context.Context, store retentionStore, e *db.Environment, now time.Time) (views.RetentionData, error) {
	plan, err := store.FindPlan(ctx)
	if err != nil {
		return views.RetentionData{}, err
	}
	backups, _, err := store.FindBackups(ctx, db.BackupFilter{Environment: &e.Name, Limit: 2000, Brief: true})
	if err != nil {
		return views.RetentionData{}, err
	}
	ex := jobs.Explain(*plan, e, backups, now)
	d := views.RetentionData{NextNote: ex.NextNote, Timezone: plan.Timezone, Policy: ex.Policy,
		Notes: make(map[string]string, len(ex.Backups))}
	if !ex.Next.IsZero() {
		d.Next = ex.Next.In(plan.Location())
	}
	for id, r := range ex.Backups {
		d.Notes[id] = r.Note
	}
	return d, nil
}

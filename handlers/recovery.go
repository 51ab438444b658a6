package handlers

import (
	"context"
	"fmt"
	"time"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/jobs"
	"github.com/rewind/rewind/views"
)

// historyPoints is how many of the newest complete backups the Backups tab's chart shows.
const historyPoints = 30

// recoveryStore is what the RPO/RTO figures read of the catalog.
type recoveryStore interface {
	FindBackupHistory(ctx context.Context, env string, n int) ([]db.BackupPoint, error)
	FindPITRStreamsRecent(ctx context.Context, env string) ([]*db.PITRStream, error)
	FindPlan(ctx context.Context) (*db.Plan, error)
	// Recent keeps a value derived from several reads for up to a second, until the next write (db.DB.Recent).
	Recent(key string, load func() (any, error)) (any, error)
}

// Recovery computes an environment's achieved RPO (the age of its newest restorable point), the RPO the plan
// promises it, its predicted RTO and its backup history, for the Backups tab, the environment list and the API.
type Recovery struct {
	store recoveryStore
	// drills predicts the RTO (jobs.Operations.DrillStatus); nil: no prediction.
	drills DrillOperations
}

func NewRecovery(store recoveryStore, drills DrillOperations) *Recovery {
	return &Recovery{store: store, drills: drills}
}

// recoveryBase is the part of an environment's recovery figures that does not depend on the clock: read once
// per second at most, however many look at the tab.
type recoveryBase struct {
	point   db.RecoveryPoint
	promise time.Duration
	chart   views.HistoryChart
}

// Data is e's recovery figures at now. A nil Recovery shows no card.
func (r *Recovery) Data(ctx context.Context, e *db.Environment, now time.Time) (views.RecoveryData, error) {
	if r == nil {
		return views.RecoveryData{}, nil
	}
	v, err := r.store.Recent("recovery\x00"+e.Name, func() (any, error) {
		// One cache for the whole derivation (chart included): the reads under it need none of their own.
		history, err := r.store.FindBackupHistory(ctx, e.Name, historyPoints)
		if err != nil {
			return nil, err
		}
		streams, err := r.store.FindPITRStreamsRecent(ctx, e.Name)
		if err != nil {
			return nil, err
		}
		plan, err := r.store.FindPlan(ctx)
		if err != nil {
			return nil, err
		}
		var newest *db.BackupPoint
		if len(history) > 0 {
			newest = &history[0]
		}
		return &recoveryBase{point: db.NewestRecoveryPoint(e, newest, streams),
			promise: jobs.PromisedRPO(plan.Schedule, e), chart: views.NewHistoryChart(history)}, nil
	})
	if err != nil {
		return views.RecoveryData{}, fmt.Errorf("recovery objectives of %s: %w", e.Name, err)
	}
	base := v.(*recoveryBase)
	d := views.RecoveryData{Shown: true, Point: base.point, Promise: base.promise, Chart: base.chart, Now: now}
	if r.drills != nil {
		st, err := r.drills.DrillStatus(ctx, e.Name)
		if err != nil {
			return d, err
		}
		d.RTO, d.RTOBasis = st.RTO, st.Basis
	}
	return d, nil
}

// RecoveryJSON is the recovery figures of an environment in the API (GET /api/v1/environments[/{env}]).
type RecoveryJSON struct {
	// RPOSeconds is the age of the newest restorable point; null when nothing is restorable.
	RPOSeconds *int64 `json:"rpo_seconds"`
	// RPOBasis is "backup" (the newest complete backup) or "pitr" (point-in-time streams); "" when none.
	RPOBasis         string     `json:"rpo_basis"`
	RestorableAt     *time.Time `json:"restorable_at,omitempty"`
	RPOBackupID      string     `json:"rpo_backup_id,omitempty"`
	PromisedRPOSecs  int64      `json:"rpo_promised_seconds"`  // 0: the plan runs no automated backups for it
	RTOPredictedSecs *float64   `json:"rto_predicted_seconds"` // null: no restore measured yet
	RTOBasis         string     `json:"rto_basis"`
}

// recoveryJSON renders d for the API.
func recoveryJSON(d views.RecoveryData) RecoveryJSON {
	out := RecoveryJSON{PromisedRPOSecs: int64(d.Promise / time.Second), RTOBasis: d.RTOBasis,
		RPOBackupID: d.Point.BackupID}
	if rpo, ok := d.Point.RPO(d.Now); ok {
		s, at := int64(rpo/time.Second), d.Point.At.UTC()
		out.RPOSeconds, out.RestorableAt, out.RPOBasis = &s, &at, "backup"
		if d.Point.PITR {
			out.RPOBasis = "pitr"
		}
	}
	if d.RTO > 0 {
		s := d.RTO.Seconds()
		out.RTOPredictedSecs = &s
	} else {
		out.RTOBasis = "no restore measured yet: run a drill"
	}
	return out
}

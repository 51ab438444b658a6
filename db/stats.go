package db

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// BackupPoint is one complete backup as the Backups tab's history chart and its recovery point read it.
type BackupPoint struct {
	ID          string
	Kind        string
	SizeBytes   int64
	CreatedAt   time.Time
	CompletedAt time.Time // CreatedAt when the catalog has no completion time
}

// Took is how long the backup ran, from its start to its completion.
func (p BackupPoint) Took() time.Duration { return max(p.CompletedAt.Sub(p.CreatedAt), 0) }

// FindBackupHistory returns env's newest n complete backups of the whole environment (no partial pre-restore
// backup), newest first.
func (db *DB) FindBackupHistory(ctx context.Context, env string, n int) ([]BackupPoint, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT id, kind, size_bytes, created_at, completed_at FROM backups
		WHERE environment = ? AND status = ? AND partial = 0 ORDER BY created_at DESC, id DESC LIMIT ?`, env, BackupComplete, n)
	if err != nil {
		return nil, fmt.Errorf("backup history of %s: %w", env, err)
	}
	defer rows.Close()
	out := make([]BackupPoint, 0, n)
	for rows.Next() {
		var p BackupPoint
		var done *time.Time
		if err := rows.Scan(&p.ID, &p.Kind, &p.SizeBytes, timeCol{&p.CreatedAt}, nullTime{&done}); err != nil {
			return nil, fmt.Errorf("backup history of %s: %w", env, err)
		}
		p.CompletedAt = p.CreatedAt
		if done != nil {
			p.CompletedAt = *done
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("backup history of %s: %w", env, err)
	}
	return out, nil
}

// RecoveryPoint is the newest moment an environment can be restored to, and what makes it restorable.
type RecoveryPoint struct {
	// At is the newest restorable moment: zero when nothing is restorable.
	At time.Time
	// BackupID and BackupAt are the newest complete backup ("" and zero when there is none).
	BackupID string
	BackupAt time.Time
	// PITR says At comes from point-in-time streams, which reach past the newest backup.
	PITR bool
}

// RPO is the achieved recovery point objective at now: how much would be lost if the environment had to be
// restored now. It reports false when nothing is restorable.
func (r RecoveryPoint) RPO(now time.Time) (time.Duration, bool) {
	if r.At.IsZero() {
		return 0, false
	}
	return max(now.Sub(r.At), 0), true
}

// NewestRecoveryPoint is e's newest restorable moment: its newest complete backup's start (newest may be nil),
// or, when point-in-time restore is on and every service of e has a running stream, the earliest moment all of
// the streams cover, if that is later.
func NewestRecoveryPoint(e *Environment, newest *BackupPoint, streams []*PITRStream) RecoveryPoint {
	var r RecoveryPoint
	if newest != nil {
		r.BackupID, r.BackupAt, r.At = newest.ID, newest.CreatedAt, newest.CreatedAt
	}
	if e.PITR == nil || !e.PITR.Enabled || len(e.Services) == 0 {
		return r
	}
	byService := make(map[string]*PITRStream, len(streams))
	for _, s := range streams {
		if s.Environment == e.Name {
			byService[s.Service] = s
		}
	}
	var covered time.Time
	for _, svc := range e.Services {
		st := byService[svc.Name]
		if st == nil || st.State != PITRRunning || st.CoveredUntil == nil {
			return r // a service not followed now is restorable only from backups
		}
		if covered.IsZero() || st.CoveredUntil.Before(covered) {
			covered = *st.CoveredUntil
		}
	}
	if covered.After(r.At) {
		r.At, r.PITR = covered, true
	}
	return r
}

// FormatSpan renders a recovery point or time span the way the dashboard and the CLI say it: "< 1 min",
// "42 min", "3 h", "3 h 20 min", "2 d 4 h".
func FormatSpan(d time.Duration) string {
	m := int64(d / time.Minute)
	switch {
	case m < 1:
		return "< 1 min"
	case m < 60:
		return strconv.FormatInt(m, 10) + " min"
	case m < 48*60:
		s := strconv.FormatInt(m/60, 10) + " h"
		if m%60 != 0 {
			s += " " + strconv.FormatInt(m%60, 10) + " min"
		}
		return s
	}
	s := strconv.FormatInt(m/(24*60), 10) + " d"
	if h := m % (24 * 60) / 60; h != 0 {
		s += " " + strconv.FormatInt(h, 10) + " h"
	}
	return s
}

package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Activity states.
const (
	ActivityQueued    = "queued"
	ActivityRunning   = "running"
	ActivitySucceeded = "succeeded"
	ActivityFailed    = "failed"
	ActivityCancelled = "cancelled"
)

// ActivityStates lists the activity states.
func ActivityStates() []string {
	return []string{ActivityQueued, ActivityRunning, ActivitySucceeded, ActivityFailed, ActivityCancelled}
}

// ActivityDone reports whether state is final.
func ActivityDone(state string) bool {
	return state == ActivitySucceeded || state == ActivityFailed || state == ActivityCancelled
}

// Activity is one operation in the feed, and the job record the runner
// persists queued and running work in.
type Activity struct {
	ID int64 `json:"id"`
	// Type is a dotted name: "environment.create", "user.update",
	// "token.create", "login", "backup.create"...
	Type        string `json:"type"`
	Environment string `json:"environment,omitempty"`
	Actor       string `json:"actor"`
	State       string `json:"state"`
	Summary     string `json:"summary"`
	Log         string `json:"log,omitempty"`
	// Progress is 0-100.
	Progress   int        `json:"progress"`
	BackupID   string     `json:"backup_id,omitempty"`
	Params     string     `json:"params,omitempty"` // JSON
	CreatedAt  time.Time  `json:"created_at"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}

// Duration returns how long the activity ran: until FinishedAt, or until
// now while it runs; 0 before it starts.
func (a *Activity) Duration(now time.Time) time.Duration {
	if a.StartedAt == nil {
		return 0
	}
	end := now
	if a.FinishedAt != nil {
		end = *a.FinishedAt
	}
	if d := end.Sub(*a.StartedAt); d > 0 {
		return d
	}
	return 0
}

// Done reports whether the activity reached a final state.
func (a *Activity) Done() bool { return ActivityDone(a.State) }

func validateActivity(a *Activity) error {
	ve := &ValidationError{}
	if a.Type == "" {
		ve.add("type", "activity type is required")
	}
	if !contains(ActivityStates(), a.State) {
		ve.add("state", fmt.Sprintf("unknown activity state %q: use one of %s", a.State, strings.Join(ActivityStates(), ", ")))
	}
	if a.Params != "" && !json.Valid([]byte(a.Params)) {
		ve.add("params", "params must be a JSON document")
	}
	if a.Progress < 0 || a.Progress > 100 {
		ve.add("progress", fmt.Sprintf("progress %d is out of range: use 0-100", a.Progress))
	}
	return ve.err()
}

// CreateActivity saves a, setting ID and CreatedAt. An empty State means an
// instant change: succeeded, progress 100, started and finished now.
func (db *DB) CreateActivity(ctx context.Context, a *Activity) error {
	now := db.now()
	if a.State == "" {
		a.State = ActivitySucceeded
		a.Progress = 100
	}
	if a.Done() {
		if a.StartedAt == nil {
			a.StartedAt = &now
		}
		if a.FinishedAt == nil {
			a.FinishedAt = &now
		}
	}
	if a.State == ActivityRunning && a.StartedAt == nil {
		a.StartedAt = &now
	}
	if err := validateActivity(a); err != nil {
		return err
	}
	a.CreatedAt = now
	res, err := db.sql.ExecContext(ctx, `INSERT INTO activities (type, environment, actor, state, progress, summary, log,
		backup_id, params, created_at, started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		a.Type, a.Environment, a.Actor, a.State, a.Progress, a.Summary, a.Log, a.BackupID, a.Params,
		formatTime(now), timeArg(a.StartedAt), timeArg(a.FinishedAt))
	if err != nil {
		return fmt.Errorf("create activity: %w", err)
	}
	if a.ID, err = res.LastInsertId(); err != nil {
		return fmt.Errorf("create activity: %w", err)
	}
	return nil
}

// ActivityUpdate holds the fields to change; nil fields are left alone.
// AppendLog is added to the end of the log (a newline is added if missing).
type ActivityUpdate struct {
	State      *string
	Progress   *int
	Summary    *string
	AppendLog  *string
	BackupID   *string
	StartedAt  *time.Time
	FinishedAt *time.Time
}

// UpdateActivity applies upd and returns the updated activity. Moving to
// running sets StartedAt, and to a final state sets FinishedAt, unless given.
func (db *DB) UpdateActivity(ctx context.Context, id int64, upd ActivityUpdate) (*Activity, error) {
	var out *Activity
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		a, err := findActivity(ctx, tx, id)
		if err != nil {
			return err
		}
		now := db.now()
		if upd.State != nil {
			a.State = *upd.State
			if a.State == ActivityRunning && a.StartedAt == nil && upd.StartedAt == nil {
				a.StartedAt = &now
			}
			if a.Done() && upd.FinishedAt == nil {
				if a.StartedAt == nil {
					a.StartedAt = &now
				}
				a.FinishedAt = &now
			}
		}
		if upd.Progress != nil {
			a.Progress = *upd.Progress
		}
		if upd.Summary != nil {
			a.Summary = *upd.Summary
		}
		if upd.BackupID != nil {
			a.BackupID = *upd.BackupID
		}
		if upd.AppendLog != nil && *upd.AppendLog != "" {
			line := *upd.AppendLog
			if !strings.HasSuffix(line, "\n") {
				line += "\n"
			}
			a.Log += line
		}
		if upd.StartedAt != nil {
			t := upd.StartedAt.UTC()
			a.StartedAt = &t
		}
		if upd.FinishedAt != nil {
			t := upd.FinishedAt.UTC()
			a.FinishedAt = &t
		}
		if a.Done() && a.StartedAt == nil && a.FinishedAt != nil {
			a.StartedAt = a.FinishedAt // ended before it ran: zero duration
		}
		if err := validateActivity(a); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE activities SET state = ?, progress = ?, summary = ?, log = ?, backup_id = ?,
			started_at = ?, finished_at = ? WHERE id = ?`,
			a.State, a.Progress, a.Summary, a.Log, a.BackupID, timeArg(a.StartedAt), timeArg(a.FinishedAt), id); err != nil {
			return fmt.Errorf("update activity %d: %w", id, err)
		}
		out = a
		return nil
	})
	return out, err
}

const activityColumns = `id, type, environment, actor, state, progress, summary, log, backup_id, params, created_at, started_at, finished_at`

func scanActivity(row interface{ Scan(...any) error }) (*Activity, error) {
	a := &Activity{}
	err := row.Scan(&a.ID, &a.Type, &a.Environment, &a.Actor, &a.State, &a.Progress, &a.Summary, &a.Log, &a.BackupID,
		&a.Params, timeCol{&a.CreatedAt}, nullTime{&a.StartedAt}, nullTime{&a.FinishedAt})
	return a, err
}

func findActivity(ctx context.Context, q execQuerier, id int64) (*Activity, error) {
	a, err := scanActivity(q.QueryRowContext(ctx, `SELECT `+activityColumns+` FROM activities WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("activity %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("find activity %d: %w", id, err)
	}
	return a, nil
}

// FindActivityByID returns one activity, or ErrNotFound.
func (db *DB) FindActivityByID(ctx context.Context, id int64) (*Activity, error) {
	return findActivity(ctx, db.sql, id)
}

// ActivityFilter selects activities; nil fields match all. Limit 0 means 50.
// Type matches exactly, or a whole group when it ends in "." ("backup.").
type ActivityFilter struct {
	Environment *string
	Type        *string
	State       *string
	Offset      int
	Limit       int
}

// DefaultActivityLimit is the page size when ActivityFilter.Limit is 0.
const DefaultActivityLimit = 50

// FindActivities returns one page of matching activities, newest first, and
// the total number of matches.
func (db *DB) FindActivities(ctx context.Context, f ActivityFilter) ([]*Activity, int, error) {
	where, args := []string{"1 = 1"}, []any{}
	if f.Environment != nil {
		where, args = append(where, "environment = ?"), append(args, *f.Environment)
	}
	if f.Type != nil {
		if strings.HasSuffix(*f.Type, ".") {
			where, args = append(where, "substr(type, 1, ?) = ?"), append(args, len(*f.Type), *f.Type)
		} else {
			where, args = append(where, "type = ?"), append(args, *f.Type)
		}
	}
	if f.State != nil {
		where, args = append(where, "state = ?"), append(args, *f.State)
	}
	cond := strings.Join(where, " AND ")
	var total int
	if err := db.sql.QueryRowContext(ctx, `SELECT COUNT(*) FROM activities WHERE `+cond, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count activities: %w", err)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultActivityLimit
	}
	offset := max(f.Offset, 0)
	rows, err := db.sql.QueryContext(ctx, `SELECT `+activityColumns+` FROM activities WHERE `+cond+
		` ORDER BY id DESC LIMIT ? OFFSET ?`, append(args, limit, offset)...)
	if err != nil {
		return nil, 0, fmt.Errorf("find activities: %w", err)
	}
	defer rows.Close()
	acts := []*Activity{}
	for rows.Next() {
		a, err := scanActivity(rows)
		if err != nil {
			return nil, 0, fmt.Errorf("find activities: %w", err)
		}
		acts = append(acts, a)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("find activities: %w", err)
	}
	return acts, total, nil
}

// FindUnfinishedActivities returns queued and running activities, oldest
// first: the runner's work to pick up again after a restart.
func (db *DB) FindUnfinishedActivities(ctx context.Context) ([]*Activity, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT `+activityColumns+` FROM activities
		WHERE state IN ('queued', 'running') ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("find unfinished activities: %w", err)
	}
	defer rows.Close()
	var acts []*Activity
	for rows.Next() {
		a, err := scanActivity(rows)
		if err != nil {
			return nil, fmt.Errorf("find unfinished activities: %w", err)
		}
		acts = append(acts, a)
	}
	return acts, rows.Err()
}

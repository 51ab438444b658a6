package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Drill schedules of an environment.
const (
	DrillOff    = "off"
	DrillDaily  = "daily"
	DrillWeekly = "weekly"
)

// DrillSchedules lists the drill schedules.
func DrillSchedules() []string { return []string{DrillOff, DrillDaily, DrillWeekly} }

// DrillSettings say when an environment's restore drills run and what they check.
type DrillSettings struct {
	// Schedule is off (the default), daily or weekly: at the time of the project's automated backups, after
	// them (weekly: on Sundays).
	Schedule string `json:"schedule" yaml:"schedule,omitempty"`
	// Smoke is an optional shell command run against the restored scratch services; a non-zero exit fails the
	// drill. REWIND_DRILL_<SERVICE>_URL (and _PATH, _HOST, _PORT) give each service's address.
	Smoke string `json:"smoke,omitempty" yaml:"smoke,omitempty"`
}

// validateDrill adds the problems of an environment's drill settings to ve.
func validateDrill(ve *ValidationError, d DrillSettings) {
	if d.Schedule != "" && !contains(DrillSchedules(), d.Schedule) {
		ve.add("drill.schedule", fmt.Sprintf("unknown drill schedule %q: use off, daily or weekly", d.Schedule))
	}
	if len(d.Smoke) > 4096 || strings.ContainsRune(d.Smoke, 0) {
		ve.add("drill.smoke", "smoke must be a shell command of at most 4096 bytes without NUL characters")
	}
}

// Drill states.
const (
	DrillRunning = "running"
	DrillPassed  = "passed"
	DrillFailed  = "failed"
)

// Drill is one restore drill: a backup restored into throwaway private servers and directories, every checksum
// verified and the smoke command run, the live environment untouched. A drill makes no backup of its own; it
// references the backup it restored.
type Drill struct {
	ID          int64         `json:"id"`
	Environment string        `json:"environment"`
	BackupID    string        `json:"backup_id"`
	ActivityID  int64         `json:"activity_id,omitempty"`
	State       string        `json:"state"`
	SizeBytes   int64         `json:"size_bytes"`
	Restore     time.Duration `json:"-"`
	RestoreMS   int64         `json:"restore_ms"`
	Files       int           `json:"files"`
	Error       string        `json:"error,omitempty"`
	CreatedAt   time.Time     `json:"created_at"`
	FinishedAt  *time.Time    `json:"finished_at,omitempty"`
}

// CreateDrill saves a running drill, setting ID and CreatedAt.
func (db *DB) CreateDrill(ctx context.Context, d *Drill) error {
	if d.Environment == "" {
		return &ValidationError{Errors: []FieldError{{Field: "environment", Message: "environment is required"}}}
	}
	d.State, d.CreatedAt = DrillRunning, db.now()
	res, err := db.sql.ExecContext(ctx, `INSERT INTO drills (environment, backup_id, activity_id, state, size_bytes,
		created_at) VALUES (?, ?, ?, ?, ?, ?)`, d.Environment, d.BackupID, nullID(d.ActivityID), d.State, d.SizeBytes,
		formatTime(d.CreatedAt))
	if err != nil {
		return fmt.Errorf("create drill: %w", err)
	}
	if d.ID, err = res.LastInsertId(); err != nil {
		return fmt.Errorf("create drill: %w", err)
	}
	return nil
}

// FinishDrill records the end of drill id: passed (err == "") or failed with err, how long its restore took
// and how many files it verified.
func (db *DB) FinishDrill(ctx context.Context, id int64, restore time.Duration, files int, errMsg string) (*Drill, error) {
	state := DrillPassed
	if errMsg != "" {
		state = DrillFailed
	}
	res, err := db.sql.ExecContext(ctx, `UPDATE drills SET state = ?, restore_ms = ?, files = ?, error = ?,
		finished_at = ? WHERE id = ?`, state, restore.Milliseconds(), files, errMsg, formatTime(db.now()), id)
	if err != nil {
		return nil, fmt.Errorf("finish drill %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, fmt.Errorf("drill %d: %w", id, ErrNotFound)
	}
	return db.FindDrillByID(ctx, id)
}

const drillColumns = `id, environment, backup_id, COALESCE(activity_id, 0), state, size_bytes, restore_ms, files,
	error, created_at, finished_at`

func scanDrill(row interface{ Scan(...any) error }) (*Drill, error) {
	d := &Drill{}
	err := row.Scan(&d.ID, &d.Environment, &d.BackupID, &d.ActivityID, &d.State, &d.SizeBytes, &d.RestoreMS,
		&d.Files, &d.Error, timeCol{&d.CreatedAt}, nullTime{&d.FinishedAt})
	d.Restore = time.Duration(d.RestoreMS) * time.Millisecond
	return d, err
}

// FindDrillByID returns a drill, or ErrNotFound.
func (db *DB) FindDrillByID(ctx context.Context, id int64) (*Drill, error) {
	d, err := scanDrill(db.sql.QueryRowContext(ctx, `SELECT `+drillColumns+` FROM drills WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("drill %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("find drill %d: %w", id, err)
	}
	return d, nil
}

// DrillFilter selects drills; nil fields match all. Limit 0 means 50.
type DrillFilter struct {
	Environment *string
	State       *string
	ActivityID  *int64
	Limit       int
}

// FindDrills returns matching drills, newest first.
func (db *DB) FindDrills(ctx context.Context, f DrillFilter) ([]*Drill, error) {
	q, args := `SELECT `+drillColumns+` FROM drills WHERE 1 = 1`, []any{}
	if f.Environment != nil {
		q, args = q+` AND environment = ?`, append(args, *f.Environment)
	}
	if f.State != nil {
		q, args = q+` AND state = ?`, append(args, *f.State)
	}
	if f.ActivityID != nil {
		q, args = q+` AND activity_id = ?`, append(args, *f.ActivityID)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	rows, err := db.sql.QueryContext(ctx, q+` ORDER BY id DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("find drills: %w", err)
	}
	defer rows.Close()
	var out []*Drill
	for rows.Next() {
		d, err := scanDrill(rows)
		if err != nil {
			return nil, fmt.Errorf("find drills: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find drills: %w", err)
	}
	return out, nil
}

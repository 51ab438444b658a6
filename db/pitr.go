package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// PITR is an environment's continuous protection: while Enabled, the job runner follows its services so that
// it can be restored to any moment of the last WindowDays days.
type PITR struct {
	Enabled    bool `json:"enabled" yaml:"enabled"`
	WindowDays int  `json:"window_days" yaml:"window_days,omitempty"` // 0 when saving: the plan's limit, at most 30
}

// DefaultPITRWindowDays is the window of an environment that names none (the plan may allow less).
const DefaultPITRWindowDays = 30

// PITRWindowLimit is the longest point-in-time window the plan's schedule allows: basic 7 days, advanced 14,
// premium 30.
func PITRWindowLimit(schedule string) int {
	switch schedule {
	case SchedulePremium:
		return 30
	case ScheduleAdvanced:
		return 14
	}
	return 7
}

// Window is the window in force under the plan's schedule: the stored one, cut to what the plan allows (a
// downgrade shortens it without rewriting the environments).
func (p *PITR) Window(schedule string) time.Duration {
	days := p.WindowDays
	if days <= 0 || days > PITRWindowLimit(schedule) {
		days = PITRWindowLimit(schedule)
	}
	return time.Duration(days) * 24 * time.Hour
}

func (p *PITR) clone() *PITR {
	if p == nil {
		return nil
	}
	c := *p
	return &c
}

func validatePITR(ve *ValidationError, p *PITR) {
	if p != nil && (p.WindowDays < 0 || p.WindowDays > DefaultPITRWindowDays) {
		ve.add("pitr.window_days", fmt.Sprintf("window_days must be between 1 and %d days (0 or left out: the "+
			"longest the plan allows)", DefaultPITRWindowDays))
	}
}

// checkPITRPlan fills a window of 0 with the plan's limit and refuses a window longer than the plan allows,
// unless the setting is unchanged from old (a plan downgrade must not block unrelated edits).
func checkPITRPlan(ctx context.Context, q execQuerier, ve *ValidationError, p, old *PITR) error {
	if ve.For("pitr.window_days") != "" {
		return nil
	}
	plan := DefaultPlan()
	var v []byte
	err := q.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = ?`, planKey).Scan(&v)
	switch {
	case err == nil:
		if err := json.Unmarshal(v, &plan); err != nil {
			return fmt.Errorf("read plan: %w", err)
		}
	case !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("read plan: %w", err)
	}
	limit := PITRWindowLimit(plan.Schedule)
	if p.WindowDays == 0 {
		p.WindowDays = limit
	}
	if old != nil && *p == *old {
		return nil
	}
	if p.WindowDays > limit {
		ve.add("pitr.window_days", fmt.Sprintf("the %s schedule keeps point-in-time restores for at most %d days, "+
			"not %d: shorten the window, or upgrade the plan (advanced 14 days, premium 30)", plan.Schedule, limit,
			p.WindowDays))
	}
	return nil
}

// PITR stream states.
const (
	PITRStarting = "starting"
	PITRRunning  = "running"
	PITRFailed   = "failed"
	PITRStopped  = "stopped"
)

// PITRStream is the follower of one service of an environment and what it has shipped.
type PITRStream struct {
	ID           int64      `json:"-"`
	Environment  string     `json:"environment"`
	Service      string     `json:"service"`
	Slot         string     `json:"slot"`
	State        string     `json:"state"`
	Error        string     `json:"error,omitempty"`
	WALStatus    string     `json:"wal_status,omitempty"`
	LagBytes     int64      `json:"lag_bytes"`
	LastCommitAt *time.Time `json:"last_commit_at,omitempty"`
	CoveredUntil *time.Time `json:"covered_until,omitempty"`
	StartedAt    *time.Time `json:"started_at,omitempty"`
	UpdatedAt    time.Time  `json:"updated_at"`
}

// PITRStreamUpdate changes the non-nil fields of a stream.
type PITRStreamUpdate struct {
	State, Error, WALStatus *string
	LagBytes                *int64
	LastCommitAt, StartedAt *time.Time
	CoveredUntil            *time.Time
}

const pitrStreamColumns = `id, environment, service, slot, state, error, wal_status, lag_bytes, last_commit_at,
	covered_until, started_at, updated_at`

func scanPITRStream(row interface{ Scan(...any) error }) (*PITRStream, error) {
	s := &PITRStream{}
	err := row.Scan(&s.ID, &s.Environment, &s.Service, &s.Slot, &s.State, &s.Error, &s.WALStatus, &s.LagBytes,
		nullTime{&s.LastCommitAt}, nullTime{&s.CoveredUntil}, nullTime{&s.StartedAt}, timeCol{&s.UpdatedAt})
	return s, err
}

// EnsurePITRStream returns the stream of env's service, creating it (state starting) with slot when missing.
func (db *DB) EnsurePITRStream(ctx context.Context, env, service, slot string) (*PITRStream, error) {
	if _, err := db.sql.ExecContext(ctx, `INSERT INTO pitr_streams (environment, service, slot, updated_at)
		VALUES (?, ?, ?, ?) ON CONFLICT (environment, service) DO NOTHING`, env, service, slot,
		formatTime(db.now())); err != nil {
		return nil, fmt.Errorf("create stream of %s/%s: %w", env, service, err)
	}
	return db.FindPITRStream(ctx, env, service)
}

// FindPITRStream returns the stream of env's service, or ErrNotFound.
func (db *DB) FindPITRStream(ctx context.Context, env, service string) (*PITRStream, error) {
	s, err := scanPITRStream(db.sql.QueryRowContext(ctx, `SELECT `+pitrStreamColumns+` FROM pitr_streams
		WHERE environment = ? AND service = ?`, env, service))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("point-in-time stream of %s/%s: %w", env, service, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("find stream of %s/%s: %w", env, service, err)
	}
	return s, nil
}

// FindPITRStreams returns the streams of env ("" for every environment), by environment and service.
func (db *DB) FindPITRStreams(ctx context.Context, env string) ([]*PITRStream, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT `+pitrStreamColumns+` FROM pitr_streams
		WHERE ? = '' OR environment = ? ORDER BY environment, service`, env, env)
	if err != nil {
		return nil, fmt.Errorf("find streams: %w", err)
	}
	defer rows.Close()
	var out []*PITRStream
	for rows.Next() {
		s, err := scanPITRStream(rows)
		if err != nil {
			return nil, fmt.Errorf("find streams: %w", err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// FindPITRStreamsRecent is FindPITRStreams for the environment page, which shows them on every view: it may
// answer from a read of up to a second ago if nothing was written since (recentCache; a follower's progress is a
// write). The streams are the caller's to modify.
func (db *DB) FindPITRStreamsRecent(ctx context.Context, env string) ([]*PITRStream, error) {
	v, err := db.recent.get("pitr streams\x00"+env, func() (any, error) { return db.FindPITRStreams(ctx, env) })
	if err != nil {
		return nil, err
	}
	shared := v.([]*PITRStream)
	out, copies := make([]*PITRStream, len(shared)), make([]PITRStream, len(shared))
	for i, st := range shared {
		copies[i] = *st // its times are never changed in place, only replaced
		out[i] = &copies[i]
	}
	return out, nil
}

// UpdatePITRStream changes the fields of stream id that upd sets.
func (db *DB) UpdatePITRStream(ctx context.Context, id int64, upd PITRStreamUpdate) error {
	set, args := "updated_at = ?", []any{formatTime(db.now())}
	add := func(col string, v any) { set += ", " + col + " = ?"; args = append(args, v) }
	if upd.State != nil {
		add("state", *upd.State)
	}
	if upd.Error != nil {
		add("error", *upd.Error)
	}
	if upd.WALStatus != nil {
		add("wal_status", *upd.WALStatus)
	}
	if upd.LagBytes != nil {
		add("lag_bytes", *upd.LagBytes)
	}
	if upd.LastCommitAt != nil {
		add("last_commit_at", timeArg(upd.LastCommitAt))
	}
	if upd.CoveredUntil != nil {
		add("covered_until", timeArg(upd.CoveredUntil))
	}
	if upd.StartedAt != nil {
		add("started_at", timeArg(upd.StartedAt))
	}
	if _, err := db.sql.ExecContext(ctx, `UPDATE pitr_streams SET `+set+` WHERE id = ?`, append(args, id)...); err != nil {
		return fmt.Errorf("update stream %d: %w", id, err)
	}
	return nil
}

// DeletePITRStream removes a stream with its bases and segments from the catalog (not from the repository).
func (db *DB) DeletePITRStream(ctx context.Context, id int64) error {
	if _, err := db.sql.ExecContext(ctx, `DELETE FROM pitr_streams WHERE id = ?`, id); err != nil {
		return fmt.Errorf("delete stream %d: %w", id, err)
	}
	return nil
}

// PITRBase is one base backup of a stream: a restore to T starts from the newest base finished before T.
type PITRBase struct {
	ID         int64
	StreamID   int64
	Snapshot   string
	SystemID   string
	Timeline   int
	StartLSN   string
	EndLSN     string
	StartWAL   string
	StartedAt  time.Time
	FinishedAt time.Time
	Bytes      int64
}

// CreatePITRBase records a base shipped into the repository.
func (db *DB) CreatePITRBase(ctx context.Context, b *PITRBase) error {
	res, err := db.sql.ExecContext(ctx, `INSERT INTO pitr_bases (stream_id, snapshot, system_id, timeline, start_lsn,
		end_lsn, start_wal, started_at, finished_at, bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		b.StreamID, b.Snapshot, b.SystemID, b.Timeline, b.StartLSN, b.EndLSN, b.StartWAL, formatTime(b.StartedAt),
		formatTime(b.FinishedAt), b.Bytes)
	if err != nil {
		return fmt.Errorf("record base of stream %d: %w", b.StreamID, err)
	}
	b.ID, _ = res.LastInsertId()
	return nil
}

// FindPITRBases returns the bases of a stream, oldest first.
func (db *DB) FindPITRBases(ctx context.Context, streamID int64) ([]*PITRBase, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT id, stream_id, snapshot, system_id, timeline, start_lsn, end_lsn,
		start_wal, started_at, finished_at, bytes FROM pitr_bases WHERE stream_id = ? ORDER BY finished_at, id`, streamID)
	if err != nil {
		return nil, fmt.Errorf("find bases of stream %d: %w", streamID, err)
	}
	defer rows.Close()
	var out []*PITRBase
	for rows.Next() {
		b := &PITRBase{}
		if err := rows.Scan(&b.ID, &b.StreamID, &b.Snapshot, &b.SystemID, &b.Timeline, &b.StartLSN, &b.EndLSN,
			&b.StartWAL, timeCol{&b.StartedAt}, timeCol{&b.FinishedAt}, &b.Bytes); err != nil {
			return nil, fmt.Errorf("find bases of stream %d: %w", streamID, err)
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// PITRSegment is one WAL segment shipped into the repository; Partial marks the one still being written, whose
// snapshot is replaced as it grows.
type PITRSegment struct {
	StreamID      int64
	Name          string
	Snapshot      string
	Partial       bool
	FirstCommitAt *time.Time
	LastCommitAt  *time.Time
	EndLSN        string
	ReadAt        time.Time
	Bytes         int64 // what the segment holds
}

// PutPITRSegment records a shipped segment, replacing the record of the same name, and returns the snapshot
// the replaced record pointed to ("" when there was none), for the caller to delete from the repository.
func (db *DB) PutPITRSegment(ctx context.Context, s *PITRSegment) (replaced string, err error) {
	err = db.inTx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT snapshot FROM pitr_segments WHERE stream_id = ? AND name = ?`,
			s.StreamID, s.Name).Scan(&replaced)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("record segment %s: %w", s.Name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO pitr_segments (stream_id, name, snapshot, partial,
			first_commit_at, last_commit_at, end_lsn, read_at, bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (stream_id, name) DO UPDATE SET snapshot = excluded.snapshot, partial = excluded.partial,
			first_commit_at = excluded.first_commit_at, last_commit_at = excluded.last_commit_at,
			end_lsn = excluded.end_lsn, read_at = excluded.read_at, bytes = excluded.bytes`,
			s.StreamID, s.Name, s.Snapshot, s.Partial, timeArg(s.FirstCommitAt), timeArg(s.LastCommitAt), s.EndLSN,
			formatTime(s.ReadAt), s.Bytes); err != nil {
			return fmt.Errorf("record segment %s: %w", s.Name, err)
		}
		return nil
	})
	return replaced, err
}

// FindPITRSegments returns the segments of a stream whose name is at least from, in WAL order.
func (db *DB) FindPITRSegments(ctx context.Context, streamID int64, from string) ([]*PITRSegment, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT stream_id, name, snapshot, partial, first_commit_at, last_commit_at,
		end_lsn, read_at, bytes FROM pitr_segments WHERE stream_id = ? AND name >= ? ORDER BY name`, streamID, from)
	if err != nil {
		return nil, fmt.Errorf("find segments of stream %d: %w", streamID, err)
	}
	defer rows.Close()
	var out []*PITRSegment
	for rows.Next() {
		s := &PITRSegment{}
		if err := rows.Scan(&s.StreamID, &s.Name, &s.Snapshot, &s.Partial, nullTime{&s.FirstCommitAt},
			nullTime{&s.LastCommitAt}, &s.EndLSN, timeCol{&s.ReadAt}, &s.Bytes); err != nil {
			return nil, fmt.Errorf("find segments of stream %d: %w", streamID, err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// DeletePITRHistory removes from the catalog the bases of a stream finished before base keep and the segments
// before segment name from, and returns the snapshots they pointed to (for the caller to delete from the
// repository).
func (db *DB) DeletePITRHistory(ctx context.Context, streamID, keep int64, from string) ([]string, error) {
	var snaps []string
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		bases := `FROM pitr_bases WHERE stream_id = ? AND id <> ? AND
			finished_at < (SELECT finished_at FROM pitr_bases WHERE id = ?)`
		if err := takeSnapshots(ctx, tx, &snaps, bases, streamID, keep, keep); err != nil {
			return fmt.Errorf("prune bases of stream %d: %w", streamID, err)
		}
		if err := takeSnapshots(ctx, tx, &snaps, `FROM pitr_segments WHERE stream_id = ? AND name < ?`,
			streamID, from); err != nil {
			return fmt.Errorf("prune segments of stream %d: %w", streamID, err)
		}
		return nil
	})
	return snaps, err
}

// takeSnapshots appends the snapshot column of the rows `from` selects to snaps and deletes those rows.
func takeSnapshots(ctx context.Context, tx *sql.Tx, snaps *[]string, from string, args ...any) error {
	rows, err := tx.QueryContext(ctx, `SELECT snapshot `+from, args...)
	if err != nil {
		return err
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return err
		}
		*snaps = append(*snaps, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `DELETE `+from, args...)
	return err
}

// PITRUsage is how much a stream keeps in the repository, before compression and deduplication.
type PITRUsage struct {
	Bases        int
	BaseBytes    int64
	Segments     int
	SegmentBytes int64
}

// Bytes is the logical size of the bases and segments.
func (u PITRUsage) Bytes() int64 { return u.BaseBytes + u.SegmentBytes }

// FindPITRUsage counts the bases and segments a stream keeps.
func (db *DB) FindPITRUsage(ctx context.Context, streamID int64) (PITRUsage, error) {
	var u PITRUsage
	err := db.sql.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM pitr_bases WHERE stream_id = ?),
		(SELECT COALESCE(sum(bytes), 0) FROM pitr_bases WHERE stream_id = ?),
		(SELECT count(*) FROM pitr_segments WHERE stream_id = ?),
		(SELECT COALESCE(sum(bytes), 0) FROM pitr_segments WHERE stream_id = ?)`, streamID, streamID, streamID, streamID).
		Scan(&u.Bases, &u.BaseBytes, &u.Segments, &u.SegmentBytes)
	if err != nil {
		return u, fmt.Errorf("usage of stream %d: %w", streamID, err)
	}
	return u, nil
}

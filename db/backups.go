package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Backup kinds.
const (
	BackupManual     = "manual"
	BackupAutomated  = "automated"
	BackupPreRestore = "pre-restore"
	BackupDrill      = "drill"
)

// Backup states.
const (
	BackupPending  = "pending"
	BackupRunning  = "running"
	BackupComplete = "complete"
	BackupFailed   = "failed"
	BackupExpired  = "expired"
)

// BackupService is what the catalog keeps of one service of a backup.
type BackupService struct {
	Name    string `json:"name"`
	Type    string `json:"type"`
	Version string `json:"version,omitempty"`
	Size    int64  `json:"size"`
	// Path is, for a files service, the sub-tree of the mount the backup holds (the pre-restore backup of a
	// partial restore); "" is the whole mount.
	Path string `json:"path,omitempty"`
	// Entry says that Path names a single file or symlink rather than a directory.
	Entry bool `json:"entry,omitempty"`
}

// Service returns the service of the backup named name, or nil.
func (b *Backup) Service(name string) *BackupService {
	for i := range b.Services {
		if b.Services[i].Name == name {
			return &b.Services[i]
		}
	}
	return nil
}

// Backup is one backup of an environment as the dashboard lists it. The repository holds its content and its
// manifest; the catalog row carries its state.
type Backup struct {
	ID          string `json:"id"`
	Environment string `json:"environment"`
	Kind        string `json:"kind"`
	Live        bool   `json:"live"`
	// Partial is set when the backup holds only part of its environment (the pre-restore backup of a
	// partial restore): it undoes that restore but is no recovery point of the whole environment.
	Partial      bool            `json:"partial,omitempty"`
	Status       string          `json:"status"`
	Progress     int             `json:"progress"`
	ActivityID   int64           `json:"activity_id,omitempty"`
	RestoredFrom string          `json:"restored_from,omitempty"`
	Commit       string          `json:"commit,omitempty"`
	SizeBytes    int64           `json:"size_bytes"`
	NewBytes     int64           `json:"new_bytes"`
	Pause        time.Duration   `json:"-"`
	PauseMS      int64           `json:"pause_ms"`
	Services     []BackupService `json:"services"`
	Error        string          `json:"error,omitempty"`
	CreatedAt    time.Time       `json:"created_at"`
	CompletedAt  *time.Time      `json:"completed_at,omitempty"`
}

// FormatBytes renders a byte count in binary units ("1.5 MiB"), as the dashboard, the CLI and the activity
// logs show backup sizes.
func FormatBytes(n int64) string { return string(AppendBytes(nil, n)) }

// AppendBytes appends FormatBytes(n) to dst, for a page that writes many sizes without allocating each.
func AppendBytes(dst []byte, n int64) []byte {
	const unit = 1024
	if n < unit {
		return append(strconv.AppendInt(dst, n, 10), " B"...)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	dst = strconv.AppendFloat(dst, float64(n)/float64(div), 'f', 1, 64) // as fmt's %.1f
	return append(append(append(dst, ' '), "KMGTPE"[exp]), "iB"...)
}

// Restorable reports whether the backup can be restored: only complete backups can.
func (b *Backup) Restorable() bool { return b.Status == BackupComplete }

// CreateBackup saves b, setting CreatedAt, and Status to pending when empty.
func (db *DB) CreateBackup(ctx context.Context, b *Backup) error {
	if b.Status == "" {
		b.Status = BackupPending
	}
	ve := &ValidationError{}
	if !backupIDPattern(b.ID) {
		ve.add("id", "backup id must be 20 lowercase hexadecimal characters")
	}
	if b.Environment == "" {
		ve.add("environment", "environment is required")
	}
	if !contains([]string{BackupManual, BackupAutomated, BackupPreRestore, BackupDrill}, b.Kind) {
		ve.add("kind", fmt.Sprintf("unknown backup kind %q", b.Kind))
	}
	if err := ve.err(); err != nil {
		return err
	}
	b.CreatedAt = db.now()
	services, err := json.Marshal(nonNilServices(b.Services))
	if err != nil {
		return fmt.Errorf("create backup: %w", err)
	}
	_, err = db.sql.ExecContext(ctx, `INSERT INTO backups (id, environment, kind, live, status, progress, activity_id,
		restored_from, code_commit, size_bytes, new_bytes, pause_ms, services, error, created_at, completed_at, partial)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		b.ID, b.Environment, b.Kind, b.Live, b.Status, b.Progress, nullID(b.ActivityID), b.RestoredFrom, b.Commit,
		b.SizeBytes, b.NewBytes, b.Pause.Milliseconds(), string(services), b.Error, formatTime(b.CreatedAt),
		timeArg(b.CompletedAt), b.Partial)
	if err != nil {
		if isUniqueViolation(err) {
			return fmt.Errorf("backup %s: %w", b.ID, ErrConflict)
		}
		return fmt.Errorf("create backup: %w", err)
	}
	b.PauseMS = b.Pause.Milliseconds()
	return nil
}

// BackupUpdate holds the fields to change; nil fields are left alone. Moving to complete or failed sets
// CompletedAt.
type BackupUpdate struct {
	Status    *string
	Progress  *int
	Commit    *string
	SizeBytes *int64
	NewBytes  *int64
	Pause     *time.Duration
	Services  *[]BackupService
	Error     *string
}

// UpdateBackup applies upd and returns the updated backup.
func (db *DB) UpdateBackup(ctx context.Context, id string, upd BackupUpdate) (*Backup, error) {
	set, args := []string{}, []any{}
	add := func(col string, v any) { set, args = append(set, col+" = ?"), append(args, v) }
	if upd.Status != nil {
		add("status", *upd.Status)
		if *upd.Status == BackupComplete || *upd.Status == BackupFailed {
			add("completed_at", formatTime(db.now()))
		}
	}
	if upd.Progress != nil {
		add("progress", min(max(*upd.Progress, 0), 100))
	}
	if upd.Commit != nil {
		add("code_commit", *upd.Commit)
	}
	if upd.SizeBytes != nil {
		add("size_bytes", *upd.SizeBytes)
	}
	if upd.NewBytes != nil {
		add("new_bytes", *upd.NewBytes)
	}
	if upd.Pause != nil {
		add("pause_ms", upd.Pause.Milliseconds())
	}
	if upd.Services != nil {
		services, err := json.Marshal(nonNilServices(*upd.Services))
		if err != nil {
			return nil, fmt.Errorf("update backup %s: %w", id, err)
		}
		add("services", string(services))
	}
	if upd.Error != nil {
		add("error", *upd.Error)
	}
	if len(set) > 0 {
		res, err := db.sql.ExecContext(ctx, `UPDATE backups SET `+strings.Join(set, ", ")+` WHERE id = ?`,
			append(args, id)...)
		if err != nil {
			return nil, fmt.Errorf("update backup %s: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil, fmt.Errorf("backup %s: %w", id, ErrNotFound)
		}
	}
	return db.FindBackupByID(ctx, id)
}

// FindBackupByID returns one backup, or ErrNotFound.
func (db *DB) FindBackupByID(ctx context.Context, id string) (*Backup, error) {
	b := &Backup{}
	err := scanBackup(db.sql.QueryRowContext(ctx, `SELECT `+backupColumns+` FROM backups WHERE id = ?`, id), b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("backup %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("find backup %s: %w", id, err)
	}
	return b, nil
}

// BackupFilter selects backups; nil fields match all. Limit 0 means DefaultBackupLimit.
type BackupFilter struct {
	Environment *string
	Kind        *string
	Status      *string
	Offset      int
	Limit       int
	// Before, when set, is a backup's id: only the backups older than it match (newer first, as the list is
	// ordered), so a page "older than X" is found through the index however deep it is, and stays the same when
	// new backups are taken (keyset paging). A Before that names no backup is ErrNotFound.
	Before string
	// CountUpTo, when positive, stops counting the total at that many matches, so a page of a long list
	// costs no full count (the Backups tab shows "of 1000+"); 0 counts them all. A capped count may be up to
	// a second old when another process changed the backups (recentCache).
	CountUpTo int
	// Whole leaves out the backups that hold only part of their environment (Backup.Partial).
	Whole bool
	// Brief reads only the columns a list of backups shows (id, environment, kind, live, status, progress, sizes,
	// pause, error, created_at): Services, ActivityID, RestoredFrom, Commit and CompletedAt are left zero.
	// Decoding the services' JSON was a tenth of the Backups tab's CPU, reading the other columns a twentieth.
	Brief bool
}

// DefaultBackupLimit is the page size when BackupFilter.Limit is 0.
const DefaultBackupLimit = 50

// FindBackups returns one page of matching backups, newest first, and the total number of matches.
func (db *DB) FindBackups(ctx context.Context, f BackupFilter) ([]*Backup, int, error) {
	where, args := []string{"1 = 1"}, []any{}
	if f.Environment != nil {
		where, args = append(where, "environment = ?"), append(args, *f.Environment)
	}
	if f.Kind != nil {
		where, args = append(where, "kind = ?"), append(args, *f.Kind)
	}
	if f.Status != nil {
		where, args = append(where, "status = ?"), append(args, *f.Status)
	}
	if f.Before != "" {
		where = append(where, "(created_at, id) < (SELECT created_at, id FROM backups WHERE id = ?)")
		args = append(args, f.Before)
	}
	if f.Whole {
		where = append(where, "partial = 0")
	}
	cond := strings.Join(where, " AND ")
	var total int
	count, countArgs := `SELECT COUNT(*) FROM backups WHERE `+cond, args
	if f.CountUpTo > 0 {
		count = `SELECT COUNT(*) FROM (SELECT 1 FROM backups WHERE ` + cond + ` LIMIT ?)`
		countArgs = append(append([]any{}, args...), f.CountUpTo)
	}
	countRows := func() (any, error) {
		var n int
		err := db.sql.QueryRowContext(ctx, count, countArgs...).Scan(&n)
		return n, err
	}
	var n any
	var err error
	if f.CountUpTo > 0 {
		// Counting a thousand index entries was a sixth of a Backups tab's CPU; everyone looking at the same
		// list in the same second shares one count (recentCache: this process's writes are seen at once).
		n, err = db.recent.get(queryKey(count, countArgs), countRows)
	} else {
		n, err = countRows()
	}
	if err != nil {
		return nil, 0, fmt.Errorf("count backups: %w", err)
	}
	total = n.(int)
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultBackupLimit
	}
	cols, scan := backupColumns, scanBackup
	if f.Brief {
		cols, scan = briefBackupColumns, scanBriefBackup
	}
	page := `SELECT ` + cols + ` FROM backups WHERE ` + cond + ` ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?`
	if f.Offset > 0 {
		// Skip the offset in the index alone (backups_environment covers the rowid), then read only the page's
		// rows: skipping 9,000 rows of the table was most of a deep page's cost.
		page = `SELECT ` + cols + ` FROM backups WHERE rowid IN (SELECT rowid FROM backups WHERE ` + cond +
			` ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?) ORDER BY created_at DESC, id DESC`
	}
	rows, err := db.sql.QueryContext(ctx, page, append(args, limit, max(f.Offset, 0))...)
	if err != nil {
		return nil, 0, fmt.Errorf("find backups: %w", err)
	}
	defer rows.Close()
	backups := make([]*Backup, 0, min(limit, backupSlab))
	var slab []Backup // the page's backups, allocated together
	for rows.Next() {
		if len(slab) == 0 {
			slab = make([]Backup, max(min(limit-len(backups), backupSlab), 1))
		}
		b := &slab[0]
		slab = slab[1:]
		if err := scan(rows, b); err != nil {
			return nil, 0, fmt.Errorf("find backups: %w", err)
		}
		backups = append(backups, b)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("find backups: %w", err)
	}
	if len(backups) == 0 && f.Before != "" {
		var one int
		err := db.sql.QueryRowContext(ctx, `SELECT 1 FROM backups WHERE id = ?`, f.Before).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, 0, fmt.Errorf("backup %s, the page's starting point: %w", f.Before, ErrNotFound)
		}
		if err != nil {
			return nil, 0, fmt.Errorf("find backups: %w", err)
		}
	}
	return backups, total, nil
}

// FindBackupsRecent is FindBackups for the Backups tab: it may answer from a read of up to a second ago
// (recentCache). Every write through this process, a running backup's progress among them, is seen at once; a
// write by another process on the same catalog (an offline admin command), within a second. The backups are the
// caller's to modify.
func (db *DB) FindBackupsRecent(ctx context.Context, f BackupFilter) ([]*Backup, int, error) {
	type result struct {
		backups []*Backup
		total   int
	}
	v, err := db.recent.get(f.key(), func() (any, error) {
		bs, n, err := db.FindBackups(ctx, f)
		return result{bs, n}, err
	})
	if err != nil {
		return nil, 0, err
	}
	r := v.(result)
	out, copies := make([]*Backup, len(r.backups)), make([]Backup, len(r.backups)) // the cached ones are shared
	for i, b := range r.backups {
		copies[i] = *b
		c := &copies[i]
		c.Services = slices.Clone(b.Services)
		if b.CompletedAt != nil {
			t := *b.CompletedAt
			c.CompletedAt = &t
		}
		out[i] = c
	}
	return out, r.total, nil
}

// key is the filter's recentCache key.
func (f BackupFilter) key() string {
	k := make([]byte, 0, 64)
	k = append(k, "backups"...)
	for _, s := range []*string{f.Environment, f.Kind, f.Status, &f.Before} {
		if s == nil {
			k = append(k, " *"...)
		} else {
			k = strconv.AppendQuote(append(k, ' '), *s)
		}
	}
	for _, n := range []int{f.Offset, f.Limit, f.CountUpTo} {
		k = strconv.AppendInt(append(k, ' '), int64(n), 10)
	}
	return string(strconv.AppendBool(append(k, ' '), f.Brief))
}

// DeleteBackup removes a backup's row, or returns ErrNotFound.
func (db *DB) DeleteBackup(ctx context.Context, id string) error {
	res, err := db.sql.ExecContext(ctx, `DELETE FROM backups WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("delete backup %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("backup %s: %w", id, ErrNotFound)
	}
	return nil
}

const backupColumns = `id, environment, kind, live, status, progress, COALESCE(activity_id, 0), restored_from,
	code_commit, size_bytes, new_bytes, pause_ms, services, error, created_at, completed_at, partial`

// backupSlab is how many backups FindBackups allocates at once.
const backupSlab = 32

func scanBackup(row interface{ Scan(...any) error }, b *Backup) error {
	var services string
	err := row.Scan(&b.ID, &b.Environment, &b.Kind, &b.Live, &b.Status, &b.Progress, &b.ActivityID, &b.RestoredFrom,
		&b.Commit, &b.SizeBytes, &b.NewBytes, &b.PauseMS, &services, &b.Error, timeCol{&b.CreatedAt},
		nullTime{&b.CompletedAt}, &b.Partial)
	if err != nil {
		return err
	}
	b.Pause = time.Duration(b.PauseMS) * time.Millisecond
	if err := json.Unmarshal([]byte(services), &b.Services); err != nil {
		return fmt.Errorf("backup %s services: %w", b.ID, err)
	}
	return nil
}

// briefBackupColumns are the columns of BackupFilter.Brief.
const briefBackupColumns = `id, environment, kind, live, status, progress, size_bytes, new_bytes, pause_ms, error,
	created_at`

func scanBriefBackup(row interface{ Scan(...any) error }, b *Backup) error {
	err := row.Scan(&b.ID, &b.Environment, &b.Kind, &b.Live, &b.Status, &b.Progress, &b.SizeBytes, &b.NewBytes,
		&b.PauseMS, &b.Error, timeCol{&b.CreatedAt})
	if err != nil {
		return err
	}
	b.Pause = time.Duration(b.PauseMS) * time.Millisecond
	return nil
}

func nonNilServices(s []BackupService) []BackupService {
	if s == nil {
		return []BackupService{}
	}
	return s
}

func backupIDPattern(id string) bool {
	if len(id) != 20 {
		return false
	}
	for _, c := range id {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

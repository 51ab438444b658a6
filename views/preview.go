package views

import (
	"strconv"
	"time"
)

// RestorePreview is what a restore will change, per service, for the restore dialog; it is also the JSON of
// the plan API's "preview" (handlers.RestorePlanJSON) that `rewind backup:restore --dry-run` prints.
type RestorePreview struct {
	BackupTime time.Time `json:"backup_time"` // the point in time the backup holds
	Now        time.Time `json:"now"`
	AgeSeconds int64     `json:"age_seconds"` // how old the data will be right after the restore
	// Unavailable is why there is no preview at all; the restore can run all the same.
	Unavailable string           `json:"unavailable,omitempty"`
	Services    []ServicePreview `json:"services"`
}

// ServicePreview is what the restore changes in one service: Tables (postgresql, mysql, sqlite), Keyspaces
// (redis) or Files (files), or Unavailable saying why not ("no preview for this service: ...", "preview
// unavailable: <reason>").
type ServicePreview struct {
	Name        string            `json:"name"`
	Type        string            `json:"type"`
	Unavailable string            `json:"unavailable,omitempty"`
	Tables      []TablePreview    `json:"tables,omitempty"`
	Keyspaces   []KeyspacePreview `json:"keyspaces,omitempty"`
	Files       *FilesPreview     `json:"files,omitempty"`
}

// Table changes.
const (
	ChangeAdded   = "added"   // in the backup, not live: the restore brings it back
	ChangeRemoved = "removed" // live, not in the backup: the restore drops it
	ChangeChanged = "changed" // other rows
	ChangeSame    = "same"
)

// TablePreview is one table: rows now (live) and in the backup; -1 when unknown.
type TablePreview struct {
	Name       string `json:"name"`
	RowsNow    int64  `json:"rows_now"`
	RowsBackup int64  `json:"rows_backup"`
	Estimated  bool   `json:"rows_now_estimated,omitempty"` // RowsNow is the server's estimate
	Change     string `json:"change"`                       // one of the Change constants
}

// KeyspacePreview is one Redis database: keys now and in the backup.
type KeyspacePreview struct {
	DB         int   `json:"db"`
	KeysNow    int64 `json:"keys_now"`
	KeysBackup int64 `json:"keys_backup"`
}

// FilesPreview is what the restore does to a files mount.
type FilesPreview struct {
	Added   FileGroupPreview `json:"added"`   // in the backup, not live: brought back
	Removed FileGroupPreview `json:"removed"` // live, not in the backup: deleted
	Changed FileGroupPreview `json:"changed"` // other size, modification time or mode: put back as backed up
	Same    int              `json:"same"`    // left as they are
}

// FileGroupPreview is one kind of change: how many files, their bytes and the first paths.
type FileGroupPreview struct {
	Count int           `json:"count"`
	Bytes int64         `json:"bytes"`
	Files []FilePreview `json:"files"`
}

// FilePreview is one file: its size in the backup (removed: live) and, when changed, live.
type FilePreview struct {
	Path     string `json:"path"`
	Bytes    int64  `json:"bytes"`
	BytesNow int64  `json:"bytes_now,omitempty"`
}

// ageText says how old restored data will be: "42 s", "3m 05s", "2 days 4 h".
func ageText(seconds int64) string {
	d := time.Duration(seconds) * time.Second
	if d < 24*time.Hour {
		return fmtDuration(d)
	}
	days := seconds / 86400
	s := strconv.FormatInt(days, 10) + " days"
	if days == 1 {
		s = "1 day"
	}
	if h := (seconds % 86400) / 3600; h > 0 {
		s += " " + strconv.FormatInt(h, 10) + " h"
	}
	return s
}

// rowsText is a row count, "?" when unknown, "≈" before an estimate.
func rowsText(n int64, estimated bool) string {
	if n < 0 {
		return "?"
	}
	s := strconv.FormatInt(n, 10)
	if estimated {
		s = "≈" + s
	}
	return s
}

// changeText says what the restore does to a table.
func changeText(t TablePreview) string {
	switch t.Change {
	case ChangeAdded:
		return "restored (missing now)"
	case ChangeRemoved:
		return "dropped (not in the backup)"
	case ChangeChanged:
		return "rows change"
	}
	return "unchanged"
}

// fileCount is "1 file" or "N files".
func fileCount(n int) string {
	if n == 1 {
		return "1 file"
	}
	return strconv.Itoa(n) + " files"
}

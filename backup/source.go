// Package backup is Rewind's engine: it captures every service of an environment into one kopia snapshot and
// puts it back. It imports no other package of Rewind; the service types plug in as Drivers from subpackages.
package backup

import (
	"context"
	"time"

	"github.com/kopia/kopia/fs"
)

// Service types known to Rewind.
const (
	TypePostgreSQL = "postgresql"
	TypeMySQL      = "mysql"
	TypeRedis      = "redis"
	TypeSQLite     = "sqlite"
	TypeFiles      = "files"
)

// ServiceSpec describes one service of an environment as the catalog stores it (secrets in clear text: the
// engine never logs or prints URL).
type ServiceSpec struct {
	Name    string   // slug, unique in its environment; the service's folder in a backup
	Type    string   // one of the Type constants
	URL     string   // postgresql, mysql, redis
	Path    string   // sqlite (database file), files (mount directory)
	Exclude []string // files: gitignore-style patterns relative to Path
	// Sub is, for a files service, a sub-tree of Path (slash-separated, relative, see SubPath) that the
	// source captures and restores instead of the whole mount: a partial restore, and the pre-restore backup
	// of what it replaced. Exclude stays relative to Path. "" is the whole mount.
	Sub string
	// Entry says that Sub names a single file or symlink rather than a directory (see Subtree).
	Entry bool
}

// Driver builds the Source of one service type from its spec. Drivers are handed to the engine by main,
// one per type; there is no global registry.
type Driver func(spec ServiceSpec) (Source, error)

// ServiceInfo is what a capture knows about its service; it goes into the backup's manifest.
type ServiceInfo struct {
	Version        string        // server or format version, e.g. "PostgreSQL 15.19"
	PinnedAt       time.Time     // the point in time the capture holds
	PinDuration    time.Duration // how long Pin took
	EstimatedBytes int64         // expected size of the folder, for progress; 0 when unknown
}

// Source captures and restores one service. Implementations live in one subpackage per type and assert
// `var _ backup.Source = (*Source)(nil)`.
type Source interface {
	// Pin fixes the service's point in time and returns as fast as it can: it runs while the environment's
	// requests are held. The Capture keeps that point in time (an open transaction, a staged copy) until it
	// is closed. Pin changes nothing in the service.
	Pin(ctx context.Context) (Capture, error)

	// Prepare builds the restored state from dir (this service's folder of a backup) beside the live state,
	// while the service keeps serving. It never changes the live state; on error it removes what it built.
	Prepare(ctx context.Context, dir fs.Directory, p Progress) (Prepared, error)
}

// Capture is a pinned state of one service, streamed into the repository after the pause.
type Capture interface {
	Info() ServiceInfo

	// Folder returns the pinned state as a directory tree for the repository to upload. Streaming files in it
	// are read once; a file whose producer fails (a dump that exits non-zero, a killed process) returns the
	// error from Read instead of io.EOF, so a broken capture never looks complete. p receives bytes read.
	Folder(ctx context.Context, p Progress) (fs.Directory, error)

	// Close releases the pin (ends the transaction, removes staged copies). It is safe to call more than once
	// and after a failed Folder.
	Close() error
}

// Prepared is a restored state waiting beside the live one.
type Prepared interface {
	// Switch swaps the prepared state in; it is the only restore step done while requests are held, so it
	// must be short. The state it replaces is moved aside, never destroyed in place, and returned.
	Switch(ctx context.Context) (Replaced, error)

	// Discard removes the prepared state when Switch is not called or failed. Safe to call more than once.
	Discard(ctx context.Context) error
}

// Replaced is the live state a Switch moved aside (a renamed database, an exchanged directory, a copy of the
// SQLite file, the dumped Redis keys). It can be captured (it becomes the pre-restore backup), put back, or
// dropped.
type Replaced interface {
	// Pin captures the moved-aside state, like Source.Pin.
	Pin(ctx context.Context) (Capture, error)
	// Revert swaps the moved-aside state back in, undoing the Switch (used when a later service's switch
	// fails, so a restore is all or nothing).
	Revert(ctx context.Context) error
	// Discard deletes the moved-aside state for good. Safe to call more than once.
	Discard(ctx context.Context) error
}

// Progress receives the progress of long work. Implementations must be safe for concurrent use.
type Progress interface {
	// SetTotal sets the estimated number of bytes of the work (0 when unknown); it may be called again when
	// the estimate improves.
	SetTotal(bytes int64)
	// Add records n more bytes done.
	Add(n int64)
}

// NopProgress discards progress.
var NopProgress Progress = nopProgress{}

type nopProgress struct{}

func (nopProgress) SetTotal(int64) {}
func (nopProgress) Add(int64)      {}

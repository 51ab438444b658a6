package jobs

import (
	"context"
	"fmt"

	"github.com/rewind/rewind/backup"
)

// Listing is one directory of a backup's files or SQLite service, or what a database service's backup holds
// (backup.Listing).
type Listing = backup.Listing

// BrowseEntry is one entry of a Listing.
type BrowseEntry = backup.BrowseEntry

// Browse lists directory path of service in complete backup id (see backup.Engine.Browse). A backup that is
// not complete is refused (ErrRefused); a service or path not in the backup wraps backup.ErrNotInBackup, a
// bad path backup.ErrBadPath.
func (o *Operations) Browse(ctx context.Context, id, service, path string) (*Listing, error) {
	b, err := o.Catalog.FindBackupByID(ctx, id)
	if err != nil {
		return nil, err
	}
	if !b.Restorable() {
		return nil, fmt.Errorf("backup %s is %s, not complete: only complete backups can be browsed: %w", b.ID, b.Status,
			ErrRefused)
	}
	l, err := o.Engine.Browse(ctx, b.ID, service, path)
	if err != nil {
		return nil, fmt.Errorf("browse backup %s: %w", b.ID, err)
	}
	return l, nil
}

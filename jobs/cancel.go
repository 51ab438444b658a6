package jobs

import (
	"context"
	"errors"

	"github.com/rewind/rewind/db"
)

// Cancel stops a queued or running activity through the runner (ErrNotRunning for any other). A backup whose
// activity is cancelled before it started is marked failed ("cancelled") at once, so it is never left listed as
// pending; a running one is marked by its job as it returns.
func (o *Operations) Cancel(ctx context.Context, id int64) error {
	if err := o.Runner.Cancel(ctx, id); err != nil {
		return err
	}
	a, err := o.Catalog.FindActivityByID(ctx, id)
	if err != nil || a.Type != TypeBackup || a.BackupID == "" || a.State != db.ActivityCancelled {
		return err
	}
	b, err := o.Catalog.FindBackupByID(ctx, a.BackupID)
	if errors.Is(err, db.ErrNotFound) {
		return nil
	}
	if err != nil || b.Status != db.BackupPending {
		return err
	}
	failed, msg := db.BackupFailed, "cancelled before it started"
	_, err = o.Catalog.UpdateBackup(ctx, b.ID, db.BackupUpdate{Status: &failed, Error: &msg})
	return err
}

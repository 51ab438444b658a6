package views

import (
	"time"

	"github.com/rewind/rewind/db"
)

// RecoveryData is the Backups tab's RPO/RTO card: how much would be lost and how long getting it back would
// take if the environment had to be restored now, and the chart of its recent backups.
type RecoveryData struct {
	// Shown is false when the card is left out (a server without the data).
	Shown bool
	// Point is the newest restorable moment; RPO is now minus it.
	Point db.RecoveryPoint
	// Promise is the RPO the plan's automated backups promise (0: the environment gets none).
	Promise time.Duration
	// RTO is the predicted restore time of the newest backup (0: nothing measured yet), RTOBasis what it is
	// predicted from.
	RTO      time.Duration
	RTOBasis string
	Chart    HistoryChart
	Now      time.Time
}

// rpo is the achieved RPO; false when nothing is restorable.
func (d RecoveryData) rpo() (time.Duration, bool) { return d.Point.RPO(d.Now) }

// Late says the achieved RPO is above what the plan promises.
func (d RecoveryData) Late() bool {
	r, ok := d.rpo()
	return d.Promise > 0 && (!ok || r > d.Promise)
}

func (d RecoveryData) rpoText() string {
	r, ok := d.rpo()
	if !ok {
		return "nothing restorable yet"
	}
	return db.FormatSpan(r)
}

func (d RecoveryData) promiseText() string {
	switch {
	case d.Promise == 0:
		return "no automated backups for this environment: only manual backups protect it"
	case d.Late():
		return "above the " + db.FormatSpan(d.Promise) + " the plan promises: take a backup now, and check why the schedule did not"
	}
	return "plan promises " + db.FormatSpan(d.Promise)
}

func (d RecoveryData) basisText() string {
	switch {
	case d.Point.At.IsZero():
		return "No complete backup yet: take one."
	case d.Point.PITR:
		return "Point-in-time streams cover every service up to " + fmtTime(d.Point.At) + "."
	}
	return "Newest complete backup " + d.Point.BackupID + ", started " + fmtTime(d.Point.BackupAt) + "."
}

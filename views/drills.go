package views

import (
	"fmt"
	"net/url"
	"time"

	"github.com/rewind/rewind/db"
)

// DrillData is the Backups tab's word on restore drills: the last verified restore, the last drill when it
// failed or runs, the predicted RTO and the "Run drill now" button.
type DrillData struct {
	// Shown is false on a server without drills (the card is left out).
	Shown bool
	// Last is the newest drill; Verified the newest passed one (nil: never verified).
	Last, Verified *db.Drill
	// Active is a drill activity queued or running now: the card refreshes itself until it ends.
	Active *db.Activity
	// RTO is the predicted restore time of the newest backup (zero: nothing measured yet), Basis what it
	// is predicted from.
	RTO      time.Duration
	Basis    string
	Schedule string // off, daily, weekly
	// Run says whether the viewer may run a drill now.
	Run Permission
}

// drillVerifiedText is "2 days ago, 41 s" for the last verified restore.
func drillVerifiedText(d *db.Drill, now time.Time) string {
	at := d.CreatedAt
	if d.FinishedAt != nil {
		at = *d.FinishedAt
	}
	return fmt.Sprintf("%s, %s", ago(at, now), seconds(d.Restore))
}

// seconds renders a restore time the way the drill card shows it: "41 s", "0.4 s", "12 min 5 s".
func seconds(d time.Duration) string {
	switch {
	case d < 10*time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d < 10*time.Minute:
		return fmt.Sprintf("%d s", int(d.Round(time.Second).Seconds()))
	default:
		return fmtDuration(d)
	}
}

// drillErrorText is a failed drill's reason as the card shows it: at most 300 characters (the activity's log has
// it all).
func drillErrorText(msg string) string {
	if r := []rune(msg); len(r) > 300 {
		return string(r[:297]) + "..."
	}
	return msg
}

// drillActivityURL links a drill to its activity in the environment's feed.
func drillActivityURL(env string) string {
	return envURL(env, "activity") + "?" + url.Values{"type": {"backup.drill"}}.Encode()
}

// drillScheduleText says when drills run.
func drillScheduleText(s string) string {
	switch s {
	case db.DrillDaily:
		return "Drills run daily, after the automated backups."
	case db.DrillWeekly:
		return "Drills run weekly, after the automated backups."
	}
	return "Scheduled drills are off: set a schedule in Settings."
}

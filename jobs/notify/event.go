// Package notify tells the team when something happens to their backups: it turns the end of an activity (a
// failed backup, drill or restore, a restore done), an RPO gone above its threshold and an unreachable storage
// into events, and delivers each to the channels that subscribe to it (generic webhooks, Slack, Discord, SMTP
// email, healthchecks-style ping URLs), retrying in the background and logging every attempt in the catalog.
package notify

import (
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/jobs"
)

// Event is one thing that happened, as every channel reports it.
type Event struct {
	Kind        string    `json:"event"`                 // db.Event*: "backup.failed", ...
	Title       string    `json:"title"`                 // one line: "Backup of main failed"
	Environment string    `json:"environment,omitempty"` // "" for events of the whole installation
	Detail      string    `json:"detail,omitempty"`      // the error, or more words
	ActivityID  int64     `json:"activity_id,omitempty"`
	BackupID    string    `json:"backup_id,omitempty"`
	At          time.Time `json:"at"`
	URL         string    `json:"url,omitempty"` // where to look on the dashboard
}

// Failure reports whether the event is bad news: a ping channel pings its /fail URL for it.
func (e Event) Failure() bool {
	switch e.Kind {
	case db.EventBackupSucceeded, db.EventRestoreSucceeded, db.EventTest, db.EventQuotaReached:
		return false
	}
	return true
}

// operation names the operation of an activity type for its failure event: "drill" for any type with a drill
// part ("drill", "backup.drill", "drill.run"), "restore" for restores, else the type's first part ("backup"
// for "backup.create", "repository" for "repository.maintenance").
func operation(typ string) string {
	parts := strings.Split(typ, ".")
	for _, p := range parts {
		if p == "drill" {
			return "drill"
		}
	}
	if typ == jobs.TypeRestore {
		return "restore"
	}
	return parts[0]
}

// ActivityEvents returns the events the end of activity a makes; err is the error it ended with (nil when it
// succeeded). A cancelled activity makes none.
func ActivityEvents(a db.Activity, err error, baseURL string) []Event {
	at := time.Now()
	if a.FinishedAt != nil {
		at = *a.FinishedAt
	}
	ev := Event{Environment: a.Environment, ActivityID: a.ID, BackupID: a.BackupID, At: at.UTC(),
		URL: activityURL(baseURL, a)}
	var out []Event
	switch a.State {
	case db.ActivityFailed:
		ev.Kind = operation(a.Type) + ".failed"
		ev.Title = strings.TrimSuffix(a.Summary, ".") + " failed"
		if err != nil {
			ev.Detail = err.Error()
		} else {
			ev.Detail = lastLine(a.Log)
		}
		out = append(out, ev)
		var se *backup.StorageError
		if errors.As(err, &se) {
			st := ev
			st.Kind = db.EventStorageUnreachable
			st.Title = "The backup storage could not be written"
			if a.Environment != "" {
				st.Title += " by the backup of " + a.Environment
			}
			out = append(out, st)
		}
	case db.ActivitySucceeded:
		switch a.Type {
		case jobs.TypeBackup:
			ev.Kind, ev.Title = db.EventBackupSucceeded, strings.TrimSuffix(a.Summary, ".")+" completed"
			out = append(out, ev)
			if old := jobs.ReplacedBackupID(&a); old != "" {
				q := ev
				q.Kind = db.EventQuotaReached
				q.Title = a.Environment + " reached its quota of manual backups"
				q.Detail = "The new backup " + a.BackupID + " replaced the oldest manual backup, " + old + "."
				out = append(out, q)
			}
		case jobs.TypeRestore:
			ev.Kind, ev.Title = db.EventRestoreSucceeded, strings.TrimSuffix(a.Summary, ".")+" is done"
			ev.Detail = lastLine(a.Log)
			out = append(out, ev)
		}
	}
	return out
}

// activityURL links an activity on the dashboard: a backup's page, else its environment's activity tab.
func activityURL(base string, a db.Activity) string {
	base = strings.TrimSuffix(base, "/")
	switch {
	case a.Type == jobs.TypeBackup && a.BackupID != "":
		return base + "/backups/" + url.PathEscape(a.BackupID)
	case a.Environment != "":
		return base + "/environments/" + url.PathEscape(a.Environment) + "/activity"
	}
	return base + "/activities"
}

func lastLine(log string) string {
	log = strings.TrimRight(log, "\n")
	if i := strings.LastIndexByte(log, '\n'); i >= 0 {
		return log[i+1:]
	}
	return log
}

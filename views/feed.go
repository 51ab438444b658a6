package views

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/rewind/rewind/db"
)

// Running reports whether an entry on this page is still queued or running,
// which is when the feed refreshes itself.
func (f FeedData) Running() bool {
	for _, a := range f.Activities {
		if a.State == db.ActivityRunning || a.State == db.ActivityQueued {
			return true
		}
	}
	return false
}

func (f FeedData) pageURL(offset int) string {
	q := url.Values{}
	if f.Type != "" {
		q.Set("type", f.Type)
	}
	if f.State != "" {
		q.Set("state", f.State)
	}
	if offset > 0 {
		q.Set("offset", strconv.Itoa(offset))
	}
	if len(q) == 0 {
		return f.BaseURL
	}
	return f.BaseURL + "?" + q.Encode()
}

func (f FeedData) rangeText() string {
	if f.Total == 0 {
		return "0 entries"
	}
	return fmt.Sprintf("%d–%d of %d", f.Offset+1, f.Offset+len(f.Activities), f.Total)
}

func activityTypes(current string) []string {
	types := []string{
		"environment.create", "environment.update", "environment.deactivate", "environment.activate",
		"user.create", "user.update", "token.create", "token.revoke",
		"backup.create", "backup.restore", "backup.delete", "backup.drill", "environment.branch", "pitr.follow",
		"pitr.gap", db.EventRPOExceeded,
	}
	if current != "" && !slices.Contains(types, current) {
		types = append(types, current)
	}
	return types
}

func activityStates() []string {
	return []string{db.ActivityQueued, db.ActivityRunning, db.ActivitySucceeded, db.ActivityFailed, db.ActivityCancelled}
}

func activityIcon(typ string) string {
	switch {
	case strings.HasPrefix(typ, "environment."):
		return "layers"
	case strings.HasPrefix(typ, "user."):
		return "users"
	case strings.HasPrefix(typ, "token."):
		return "key"
	case strings.HasPrefix(typ, "backup"), strings.HasPrefix(typ, "restore"):
		return "archive"
	default:
		return "activity"
	}
}

func actorName(actor string) string {
	if actor == "" {
		return "system"
	}
	return actor
}

func progressOf(a *db.Activity) int {
	if a.State == db.ActivitySucceeded {
		return 100
	}
	return min(max(a.Progress, 0), 100)
}

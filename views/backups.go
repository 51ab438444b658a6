package views

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rewind/rewind/db"
)

// Running reports whether a backup on this page is pending or running, which
// is when the list refreshes itself.
func (d BackupsData) Running() bool {
	for _, b := range d.Backups {
		if backupBusy(b) {
			return true
		}
	}
	return false
}

func (d BackupsData) pageURL(offset int) string {
	if offset <= 0 {
		return d.BaseURL
	}
	return d.BaseURL + "?" + url.Values{"offset": {strconv.Itoa(offset)}}.Encode()
}

// selfURL is this page's URL, which its live refresh asks again.
func (d BackupsData) selfURL() string {
	if d.Before != "" {
		return d.BaseURL + "?" + url.Values{"before": {d.Before}}.Encode()
	}
	return d.pageURL(d.Offset)
}

// olderURL is the next page: the backups older than this page's last one.
func (d BackupsData) olderURL() string {
	if len(d.Backups) == 0 {
		return d.pageURL(d.Offset + d.Limit)
	}
	return d.BaseURL + "?" + url.Values{"before": {d.Backups[len(d.Backups)-1].ID}}.Encode()
}

func (d BackupsData) rangeText() string {
	if d.Before != "" {
		s := strconv.Itoa(len(d.Backups)) + " of " + strconv.Itoa(d.Total)
		if d.TotalAtLeast {
			s += "+"
		}
		return s + " older than " + short8(d.Before)
	}
	s := pageRange(d.Offset, len(d.Backups), d.Total, "backups")
	if d.TotalAtLeast {
		s += "+"
	}
	return s
}

func backupBusy(b *db.Backup) bool {
	return b.Status == db.BackupPending || b.Status == db.BackupRunning
}

// backupState maps a backup's status onto the badge and progress colours of
// activity states.
func backupState(b *db.Backup) string {
	switch b.Status {
	case db.BackupPending:
		return db.ActivityQueued
	case db.BackupRunning:
		return db.ActivityRunning
	case db.BackupComplete:
		return db.ActivitySucceeded
	case db.BackupFailed:
		return db.ActivityFailed
	}
	return db.ActivityCancelled
}

func backupURL(id string, action ...string) string {
	u := "/backups/" + url.PathEscape(id)
	if len(action) > 0 && action[0] != "" {
		u += "/" + action[0]
	}
	return u
}

func pageRange(offset, n, total int, noun string) string {
	if total == 0 {
		return "0 " + noun
	}
	return fmt.Sprintf("%d–%d of %d", offset+1, offset+n, total)
}

func modeWord(live bool) string {
	if live {
		return "live"
	}
	return "consistent"
}

// sizeOrDash shows a size, or "—" while it is unknown (0 before the engine
// reports it).
func sizeOrDash(n int64, status string) string { return string(appendSizeOrDash(nil, n, status)) }

// appendSizeOrDash appends sizeOrDash(n, status) to dst.
func appendSizeOrDash(dst []byte, n int64, status string) []byte {
	if n <= 0 && status != db.BackupComplete {
		return append(dst, "—"...)
	}
	return db.AppendBytes(dst, n)
}

func pauseText(b *db.Backup) string { return string(appendPause(nil, b)) }

// appendPause appends pauseText(b) to dst.
func appendPause(dst []byte, b *db.Backup) []byte {
	switch {
	case b.Live:
		return append(dst, "none (live)"...)
	case b.Status != db.BackupComplete:
		return append(dst, "—"...)
	case b.Pause < time.Millisecond:
		return append(dst, "< 1 ms"...)
	}
	return appendDuration(dst, b.Pause)
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func short8(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

func short12(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}

func joinComma(s []string) string { return strings.Join(s, ", ") }

// humanBytes renders a size in binary units ("1.5 MiB").
func humanBytes(n int64) string { return db.FormatBytes(n) }

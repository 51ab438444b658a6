package handlers

import (
	"context"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/jobs"
	"github.com/rewind/rewind/views"
)

// retentionMemo keeps each environment's retention explanation for a second. Explaining reads up to 2,000
// backups, which would otherwise dominate the Backups tab's cost when many people (or a polling tab) look at a
// long list; a change to the newest backup (one starting or completing) explains again at once.
type retentionMemo struct {
	mu sync.Mutex
	m  map[string]retentionMemoEntry
}

type retentionMemoEntry struct {
	at         time.Time
	head       string // the newest backup's id and status when explained
	data       views.RetentionData
	refreshing bool // one request explains again; the others use data meanwhile
}

const retentionMemoTTL = time.Second

func (m *retentionMemo) get(env, head string, now time.Time, explain func() (views.RetentionData, error)) (views.RetentionData, error) {
	if m == nil {
		return explain()
	}
	m.mu.Lock()
	e, ok := m.m[env]
	fresh := ok && e.head == head && now.Sub(e.at) >= 0 && now.Sub(e.at) < retentionMemoTTL
	if fresh || (ok && e.head == head && e.refreshing) {
		m.mu.Unlock()
		return e.data, nil
	}
	if ok && e.head == head {
		e.refreshing = true
		m.m[env] = e
	}
	m.mu.Unlock()
	d, err := explain()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = map[string]retentionMemoEntry{}
	}
	if err != nil {
		if cur, ok := m.m[env]; ok && cur.head == head {
			cur.refreshing = false
			m.m[env] = cur
		}
		return d, err
	}
	m.m[env] = retentionMemoEntry{at: now, head: head, data: d}
	return d, nil
}

// backupsTab fills the Backups tab of environment e for u.
func backupsTab(c echo.Context, store interface {
	FindBackups(ctx context.Context, f db.BackupFilter) ([]*db.Backup, int, error)
	// FindBackupsRecent may be a second old when another process changed the backups.
	FindBackupsRecent(ctx context.Context, f db.BackupFilter) ([]*db.Backup, int, error)
}, memo *retentionMemo, u *db.User, e *db.Environment, now time.Time) (views.BackupsData, error) {
	d := views.BackupsData{BaseURL: "/environments/" + url.PathEscape(e.Name), Limit: backupsPageSize, Now: now}
	// A page is either "older than backup X" (?before=X, what the Older link asks: found through the index however
	// deep, and stable while new backups arrive) or, for links from before keyset paging, an offset.
	if d.Before = c.QueryParam("before"); d.Before == "" {
		d.Offset, _ = strconv.Atoi(c.QueryParam("offset"))
		d.Offset = max(d.Offset, 0)
	}
	var err error
	// Count at most a thousand past this page: an exact count of a long list costs more than the page. Past a
	// starting point the count is of the backups older than it.
	countUpTo := d.Offset + d.Limit + 1000
	if d.Backups, d.Total, err = store.FindBackupsRecent(c.Request().Context(), db.BackupFilter{Environment: &e.Name,
		Before: d.Before, Offset: d.Offset, Limit: d.Limit, CountUpTo: countUpTo, Brief: true}); err != nil {
		return d, err
	}
	d.TotalAtLeast = d.Total == countUpTo
	if plans, ok := store.(planFinder); ok {
		head := ""
		if d.Offset == 0 && d.Before == "" && len(d.Backups) > 0 {
			head = d.Backups[0].ID + " " + d.Backups[0].Status
		}
		if d.Retention, err = memo.get(e.Name, head, now, func() (views.RetentionData, error) {
			return retentionData(c.Request().Context(), retentionStore{plans, store}, e, now)
		}); err != nil {
			return d, err
		}
	}
	d.Admin = backupAdmin(u, e.Type)
	d.Create = d.Admin
	if d.Create.Allowed && e.Status != db.StatusActive {
		d.Create = views.Deny("This environment is inactive: activate it before backing it up.")
	}
	return d, nil
}

// lastBackups returns each environment's newest complete backup and the
// number of complete backups.
func lastBackups(ctx context.Context, store interface {
	FindBackups(ctx context.Context, f db.BackupFilter) ([]*db.Backup, int, error)
}, envs []*db.Environment) (map[string]*db.Backup, int, error) {
	complete := db.BackupComplete
	out := map[string]*db.Backup{}
	for _, e := range envs {
		name := e.Name
		bs, _, err := store.FindBackups(ctx, db.BackupFilter{Environment: &name, Status: &complete, Limit: 1})
		if err != nil {
			return nil, 0, err
		}
		if len(bs) > 0 {
			out[name] = bs[0]
		}
	}
	_, total, err := store.FindBackups(ctx, db.BackupFilter{Status: &complete, Limit: 1})
	return out, total, err
}

// feedActions fills the restore, undo and cancel actions of the backup and
// restore entries of a feed page.
func feedActions(ctx context.Context, store interface {
	FindEnvironments(ctx context.Context, f db.EnvironmentFilter) ([]*db.Environment, error)
}, u *db.User, acts []*db.Activity) (map[int64]views.FeedActions, error) {
	types := map[string]string{}
	envs, err := store.FindEnvironments(ctx, db.EnvironmentFilter{})
	if err != nil {
		return nil, err
	}
	for _, e := range envs {
		types[e.Name] = e.Type
	}
	out := map[int64]views.FeedActions{}
	for _, a := range acts {
		var fa views.FeedActions
		switch {
		case a.Type == jobs.TypeBackup && a.State == db.ActivitySucceeded && a.BackupID != "":
			fa.Restore = "/backups/" + a.BackupID + "/restore"
		case a.Type == jobs.TypeRestore && a.State == db.ActivitySucceeded:
			if pre := jobs.PreRestoreBackupID(a); pre != "" {
				fa.Undo = "/backups/" + pre + "/restore?" + url.Values{"target": {a.Environment}}.Encode()
			}
		}
		if (a.State == db.ActivityQueued || a.State == db.ActivityRunning) &&
			(a.Type == jobs.TypeBackup || a.Type == jobs.TypeRestore || a.Type == jobs.TypeMaintenance || a.Type == jobs.TypeDrill) {
			perm := backupAdmin(u, types[a.Environment])
			fa.Cancel = &perm
		}
		if fa != (views.FeedActions{}) {
			out[a.ID] = fa
		}
	}
	return out, nil
}

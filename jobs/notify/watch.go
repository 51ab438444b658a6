package notify

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/jobs"
)

// WatchCatalog is what the periodic checks read of the catalog.
type WatchCatalog interface {
	FindNotificationChannels(ctx context.Context) ([]*db.NotificationChannel, error)
	FindNotificationDeliveries(ctx context.Context, channelID int64, limit int) ([]*db.NotificationDelivery, error)
	FindEnvironments(ctx context.Context, f db.EnvironmentFilter) ([]*db.Environment, error)
	FindBackupHistory(ctx context.Context, env string, n int) ([]db.BackupPoint, error)
	FindPITRStreams(ctx context.Context, env string) ([]*db.PITRStream, error)
	FindActivities(ctx context.Context, f db.ActivityFilter) ([]*db.Activity, int, error)
	CreateActivity(ctx context.Context, a *db.Activity) error
}

// StorageHealth reports the last write of the catalog into the repository's storage: rewind serve's catalog
// saver, which writes every minute the catalog changed, so its error is the first sign of an unreachable storage.
type StorageHealth interface {
	LastSaved() (time.Time, error)
}

// Watch holds the state of the periodic checks: an alert is sent when a condition starts, and again only after
// it ended and started over. A restart of Rewind does not repeat an alert: the delivery log and the activity
// feed say which were sent since the condition started.
type Watch struct {
	Catalog WatchCatalog
	Storage StorageHealth // nil: not watched

	mu          sync.Mutex
	rpoAlerted  map[string]bool  // channel id/environment
	rpoLogged   map[string]int64 // environment: its rpo.exceeded activity of this lapse
	storageDown bool
}

// Check runs the periodic checks once: every channel subscribed to rpo.exceeded gets an event for each of its
// environments (the active production ones when it lists none) whose newest restorable moment (its newest
// complete backup, or what point-in-time protection covers when that is later) is older than the channel's
// threshold, or that has none, and the environment's feed gets an rpo.exceeded activity; a storage that stopped
// taking the catalog's writes is reported to every channel subscribed to storage.unreachable.
func (n *Notifier) Check(ctx context.Context) error {
	w := n.Watch
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	now := n.now()
	if w.Storage != nil {
		_, err := w.Storage.LastSaved()
		switch {
		case err != nil && !w.storageDown:
			w.storageDown = true
			n.Notify(Event{Kind: db.EventStorageUnreachable, Title: "The backup storage cannot be written",
				Detail: err.Error() + ". Backups will fail until it is reachable: check it on the Storage page.",
				At:     now.UTC(), URL: n.base() + "/settings/storage"})
		case err == nil:
			w.storageDown = false
		}
	}
	chs, err := w.Catalog.FindNotificationChannels(ctx)
	if err != nil {
		return fmt.Errorf("rpo check: %w", err)
	}
	if w.rpoAlerted == nil {
		w.rpoAlerted, w.rpoLogged = map[string]bool{}, map[string]int64{}
	}
	var all map[string]*db.Environment
	var production []string
	for _, ch := range chs {
		if !ch.Enabled || ch.RPOHours <= 0 || !ch.Wants(db.EventRPOExceeded, "") {
			continue
		}
		if all == nil {
			if all, production, err = w.environments(ctx); err != nil {
				return err
			}
		}
		envs := ch.Environments
		if len(envs) == 0 {
			envs = production
		}
		limit := time.Duration(ch.RPOHours) * time.Hour
		for _, name := range envs {
			e := all[name]
			if e == nil {
				continue // deleted since the channel named it
			}
			rp, err := w.recoveryPoint(ctx, e)
			if err != nil {
				return err
			}
			key := fmt.Sprintf("%d/%s", ch.ID, name)
			if !rp.At.IsZero() && now.Sub(rp.At) <= limit {
				delete(w.rpoAlerted, key)
				delete(w.rpoLogged, name)
				continue
			}
			if w.rpoAlerted[key] {
				continue
			}
			w.rpoAlerted[key] = true
			if sent, err := w.alertedSince(ctx, ch.ID, name, rp.At); err != nil || sent {
				if err != nil {
					return err
				}
				continue // sent before a restart of Rewind
			}
			ev := Event{Kind: db.EventRPOExceeded, Environment: name, At: now.UTC(),
				URL:      n.base() + "/environments/" + url.PathEscape(name),
				Title:    fmt.Sprintf("%s has no restorable point in the last %d hours", name, ch.RPOHours),
				BackupID: rp.BackupID}
			switch {
			case rp.At.IsZero():
				ev.Detail = "It has no complete backup at all: take one now."
			case rp.PITR:
				ev.Detail = fmt.Sprintf("Point-in-time protection covers it only up to %s, %s ago: check its "+
					"followers on the environment's page.", rp.At.UTC().Format("2006-01-02 15:04 UTC"),
					now.Sub(rp.At).Round(time.Minute))
			default:
				ev.Detail = fmt.Sprintf("Its newest complete backup, %s, was taken %s ago (%s): take a backup, "+
					"and check why the schedule did not.", rp.BackupID, now.Sub(rp.At).Round(time.Minute),
					rp.At.UTC().Format("2006-01-02 15:04 UTC"))
			}
			if ev.ActivityID, err = w.logRPO(ctx, name, rp.At, ev); err != nil {
				return err
			}
			if !n.push(item{ev: ev, ch: ch, attempt: 1}, true) {
				n.log().Warn("notification dropped: the queue is full", "event", ev.Kind, "channel", ch.Name)
			}
		}
	}
	return nil
}

// environments returns every environment by name, and the names of the active production ones.
func (w *Watch) environments(ctx context.Context) (map[string]*db.Environment, []string, error) {
	envs, err := w.Catalog.FindEnvironments(ctx, db.EnvironmentFilter{})
	if err != nil {
		return nil, nil, fmt.Errorf("rpo check: %w", err)
	}
	all, production := map[string]*db.Environment{}, []string{}
	for _, e := range envs {
		all[e.Name] = e
		if e.Type == db.EnvProduction && e.Status == db.StatusActive {
			production = append(production, e.Name)
		}
	}
	return all, production, nil
}

// recoveryPoint is e's newest restorable moment, as the dashboard shows it.
func (w *Watch) recoveryPoint(ctx context.Context, e *db.Environment) (db.RecoveryPoint, error) {
	hist, err := w.Catalog.FindBackupHistory(ctx, e.Name, 1)
	if err != nil {
		return db.RecoveryPoint{}, fmt.Errorf("rpo check of %s: %w", e.Name, err)
	}
	var newest *db.BackupPoint
	if len(hist) > 0 {
		newest = &hist[0]
	}
	var streams []*db.PITRStream
	if e.PITR != nil && e.PITR.Enabled {
		if streams, err = w.Catalog.FindPITRStreams(ctx, e.Name); err != nil {
			return db.RecoveryPoint{}, fmt.Errorf("rpo check of %s: %w", e.Name, err)
		}
	}
	return db.NewestRecoveryPoint(e, newest, streams), nil
}

// alertedSince reports whether channel was sent an rpo.exceeded event for env after since (when the newest
// restorable moment was: the condition has lasted since then).
func (w *Watch) alertedSince(ctx context.Context, channel int64, env string, since time.Time) (bool, error) {
	ds, err := w.Catalog.FindNotificationDeliveries(ctx, channel, 200)
	if err != nil {
		return false, fmt.Errorf("rpo check: %w", err)
	}
	for _, d := range ds {
		if d.Event == db.EventRPOExceeded && d.Environment == env && d.CreatedAt.After(since) {
			return true, nil
		}
	}
	return false, nil
}

// logRPO writes env's rpo.exceeded activity once per lapse (since the newest restorable moment) and returns its
// id for the event.
func (w *Watch) logRPO(ctx context.Context, env string, since time.Time, ev Event) (int64, error) {
	if id, ok := w.rpoLogged[env]; ok {
		return id, nil
	}
	typ := db.EventRPOExceeded
	as, _, err := w.Catalog.FindActivities(ctx, db.ActivityFilter{Environment: &env, Type: &typ, Limit: 1})
	if err != nil {
		return 0, fmt.Errorf("rpo check: %w", err)
	}
	if len(as) > 0 && as[0].CreatedAt.After(since) {
		w.rpoLogged[env] = as[0].ID // written before a restart of Rewind
		return as[0].ID, nil
	}
	a := &db.Activity{Type: typ, Environment: env, Actor: jobs.ActorSchedule, State: db.ActivityFailed,
		Summary: ev.Title + ". " + ev.Detail}
	if err := w.Catalog.CreateActivity(ctx, a); err != nil {
		return 0, fmt.Errorf("rpo check: %w", err)
	}
	w.rpoLogged[env] = a.ID
	return a.ID, nil
}

// watch runs Check every WatchInterval until Close.
func (n *Notifier) watch() {
	defer n.wg.Done()
	every := n.WatchInterval
	if every <= 0 {
		every = 5 * time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(n.ctx, time.Minute)
			if err := n.Check(ctx); err != nil {
				n.log().Error("notification checks", "err", err)
			}
			cancel()
		}
	}
}

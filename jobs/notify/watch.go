package notify

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/rewind/rewind/db"
)

// WatchCatalog is what the periodic checks read of the catalog.
type WatchCatalog interface {
	FindNotificationChannels(ctx context.Context) ([]*db.NotificationChannel, error)
	FindEnvironments(ctx context.Context, f db.EnvironmentFilter) ([]*db.Environment, error)
	FindBackups(ctx context.Context, f db.BackupFilter) ([]*db.Backup, int, error)
}

// StorageHealth reports the last write of the catalog into the repository's storage: rewind serve's catalog
// saver, which writes every minute the catalog changed, so its error is the first sign of an unreachable storage.
type StorageHealth interface {
	LastSaved() (time.Time, error)
}

// Watch holds the state of the periodic checks: an alert is sent when a condition starts, and again only after
// it ended and started over.
type Watch struct {
	Catalog WatchCatalog
	Storage StorageHealth // nil: not watched

	mu          sync.Mutex
	rpoAlerted  map[string]bool // channel id/environment
	storageDown bool
}

// Check runs the periodic checks once: every channel subscribed to rpo.exceeded gets an event for each of its
// environments (the active production ones when it lists none) whose newest complete backup is older than the
// channel's threshold, or that has none; a storage that stopped taking the catalog's writes is reported to every
// channel subscribed to storage.unreachable.
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
		w.rpoAlerted = map[string]bool{}
	}
	var production []string
	for _, ch := range chs {
		if !ch.Enabled || ch.RPOHours <= 0 || !ch.Wants(db.EventRPOExceeded, "") {
			continue
		}
		envs := ch.Environments
		if len(envs) == 0 {
			if production == nil {
				if production, err = w.productionEnvironments(ctx); err != nil {
					return err
				}
			}
			envs = production
		}
		limit := time.Duration(ch.RPOHours) * time.Hour
		for _, env := range envs {
			newest, err := w.newestComplete(ctx, env)
			if err != nil {
				return err
			}
			key := fmt.Sprintf("%d/%s", ch.ID, env)
			if newest != nil && now.Sub(newest.CreatedAt) <= limit {
				delete(w.rpoAlerted, key)
				continue
			}
			if w.rpoAlerted[key] {
				continue
			}
			w.rpoAlerted[key] = true
			ev := Event{Kind: db.EventRPOExceeded, Environment: env, At: now.UTC(),
				URL:   n.base() + "/environments/" + url.PathEscape(env),
				Title: fmt.Sprintf("%s has no backup in the last %d hours", env, ch.RPOHours)}
			if newest == nil {
				ev.Detail = "It has no complete backup at all: take one now."
			} else {
				ev.BackupID = newest.ID
				ev.Detail = fmt.Sprintf("Its newest complete backup, %s, was taken %s ago (%s): take a backup, "+
					"and check why the schedule did not.", newest.ID, now.Sub(newest.CreatedAt).Round(time.Minute),
					newest.CreatedAt.UTC().Format("2006-01-02 15:04 UTC"))
			}
			if !n.push(item{ev: ev, ch: ch, attempt: 1}, true) {
				n.log().Warn("notification dropped: the queue is full", "event", ev.Kind, "channel", ch.Name)
			}
		}
	}
	return nil
}

func (w *Watch) productionEnvironments(ctx context.Context) ([]string, error) {
	envs, err := w.Catalog.FindEnvironments(ctx, db.EnvironmentFilter{})
	if err != nil {
		return nil, fmt.Errorf("rpo check: %w", err)
	}
	out := []string{}
	for _, e := range envs {
		if e.Type == db.EnvProduction && e.Status == db.StatusActive {
			out = append(out, e.Name)
		}
	}
	return out, nil
}

func (w *Watch) newestComplete(ctx context.Context, env string) (*db.Backup, error) {
	complete := db.BackupComplete
	bs, _, err := w.Catalog.FindBackups(ctx, db.BackupFilter{Environment: &env, Status: &complete, Limit: 1})
	if err != nil {
		return nil, fmt.Errorf("rpo check of %s: %w", env, err)
	}
	if len(bs) == 0 {
		return nil, nil
	}
	return bs[0], nil
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

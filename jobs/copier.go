package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/kopia/kopia/repo"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/mirror"
	"github.com/rewind/rewind/backup/storage"
	"github.com/rewind/rewind/db"
)

// The copy target (second location) lives in the catalog's settings; its credentials are encrypted there with
// the catalog key. synced_at is when the last successful sync started: every backup completed before it is in
// the copy.
const (
	settingCopyURL      = "storage.copy.url"
	settingCopyKey      = "storage.copy.access_key"
	settingCopySecret   = "storage.copy.secret_key"
	settingCopySyncedAt = "storage.copy.synced_at"
	settingCopyError    = "storage.copy.error"
)

// Copier copies the repository to the copy target: after every completed backup (Trigger), every Interval
// (maintenance deletes blobs, the catalog copy changes), and once at start. One sync runs at a time; triggers
// during a sync make one more sync after it.
type Copier struct {
	Catalog  *db.DB
	Repo     *backup.Repository
	Logger   *slog.Logger
	Now      func() time.Time
	Interval time.Duration

	trigger chan struct{}
	stop    chan struct{}
	done    chan struct{}

	mu      sync.Mutex
	running bool
}

func (c *Copier) Start() {
	c.trigger, c.stop, c.done = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(c.done)
		t := time.NewTicker(c.Interval)
		defer t.Stop()
		c.Trigger()
		for {
			select {
			case <-c.stop:
				return
			case <-t.C:
			case <-c.trigger:
			}
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				select {
				case <-c.stop:
					cancel()
				case <-ctx.Done():
				}
			}()
			if err := c.Sync(ctx); err != nil && ctx.Err() == nil {
				c.Logger.Error("copy the repository to the copy target", "err", err)
			}
			cancel()
		}
	}()
}

// Trigger asks for a sync soon; it never blocks.
func (c *Copier) Trigger() {
	if c.trigger == nil {
		return
	}
	select {
	case c.trigger <- struct{}{}:
	default:
	}
}

// Close stops the copier, canceling a running sync (the next start resumes it: blobs already copied stay).
func (c *Copier) Close() {
	if c.stop != nil {
		close(c.stop)
		<-c.done
		c.stop = nil
	}
}

// Running reports whether a sync is in progress.
func (c *Copier) Running() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.running
}

// LoadCopyTarget returns the configured copy target, or nil.
func LoadCopyTarget(ctx context.Context, catalog *db.DB) (*storage.Location, error) {
	u, err := catalog.Setting(ctx, settingCopyURL)
	if errors.Is(err, db.ErrNotFound) || (err == nil && u == "") {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	t := &storage.Location{URL: u}
	if t.AccessKey, err = catalog.SecretSetting(ctx, settingCopyKey); err != nil && !errors.Is(err, db.ErrNotFound) {
		return nil, err
	}
	if t.SecretKey, err = catalog.SecretSetting(ctx, settingCopySecret); err != nil && !errors.Is(err, db.ErrNotFound) {
		return nil, err
	}
	return t, nil
}

// Sync copies the repository's new blobs to the copy target (when one is set) and records the outcome: the
// synced_at setting and a storage.copy activity.
func (c *Copier) Sync(ctx context.Context) error {
	t, err := LoadCopyTarget(ctx, c.Catalog)
	if err != nil || t == nil {
		return err
	}
	c.mu.Lock()
	if c.running {
		c.mu.Unlock()
		return nil
	}
	c.running = true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.running = false
		c.mu.Unlock()
	}()

	started := c.now()
	stats, err := c.sync(ctx, t)
	a := &db.Activity{Type: "storage.copy", Actor: "system"}
	if err != nil {
		a.State = db.ActivityFailed
		a.Summary = fmt.Sprintf("Copy to %s failed: %v", t.URL, err)
		_ = c.Catalog.SetSetting(ctx, settingCopyError, err.Error())
	} else {
		a.State = db.ActivitySucceeded
		a.Summary = fmt.Sprintf("Copied %d new objects (%s) to %s; %d gone from the primary removed; the copy holds %d objects",
			stats.Copied, db.FormatBytes(stats.Bytes), t.URL, stats.Deleted, stats.Blobs)
		_ = c.Catalog.SetSetting(ctx, settingCopyError, "")
		if serr := c.Catalog.SetSetting(ctx, settingCopySyncedAt, started.UTC().Format(time.RFC3339Nano)); serr != nil {
			err = serr
		}
	}
	if stats.Copied > 0 || stats.Deleted > 0 || a.State == db.ActivityFailed {
		if aerr := c.Catalog.CreateActivity(context.WithoutCancel(ctx), a); aerr != nil && err == nil {
			err = aerr
		}
	}
	return err
}

func (c *Copier) sync(ctx context.Context, t *storage.Location) (mirror.Stats, error) {
	dr, ok := c.Repo.Kopia().(repo.DirectRepository)
	if !ok {
		return mirror.Stats{}, errors.New("the repository's storage cannot be read directly")
	}
	if err := dr.Refresh(ctx); err != nil {
		return mirror.Stats{}, fmt.Errorf("refresh repository: %w", err)
	}
	dst, err := t.Open(ctx)
	if err != nil {
		return mirror.Stats{}, err
	}
	defer dst.Close(ctx) //nolint:errcheck
	return mirror.Sync(ctx, dr.BlobReader(), dst, 4, nil)
}

func (c *Copier) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// CopiedBefore returns when the last successful sync started (zero: never).
func CopiedBefore(ctx context.Context, catalog *db.DB) time.Time {
	v, err := catalog.Setting(ctx, settingCopySyncedAt)
	if err != nil {
		return time.Time{}
	}
	t, _ := time.Parse(time.RFC3339Nano, v)
	return t
}

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kopia/kopia/repo"
	"github.com/kopia/kopia/repo/blob"
	"github.com/kopia/kopia/repo/blob/filesystem"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/mirror"
	"github.com/rewind/rewind/backup/s3"
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

// copyTarget is a configured second location.
type copyTarget struct {
	URL       string // file:///path or s3://bucket/prefix?...
	AccessKey string // S3 only; "" = the AWS chain
	SecretKey string
}

// parseCopyURL checks a copy target URL: file:///absolute/path or an s3:// URL as for --storage.
func parseCopyURL(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("not a URL: %w", err)
	}
	switch u.Scheme {
	case "file":
		if u.Path == "" || !filepath.IsAbs(u.Path) || u.Host != "" {
			return "", errors.New("want file:///absolute/path")
		}
		return "file://" + filepath.Clean(u.Path), nil
	case "s3":
		o, err := s3.ParseURL(raw)
		if err != nil {
			return "", err
		}
		return o.URL(), nil
	}
	return "", errors.New("use file:///path or s3://BUCKET/PREFIX?endpoint=URL&region=REGION&path_style=true")
}

// open opens the target's blob storage (creating a local directory).
func (t copyTarget) open(ctx context.Context) (blob.Storage, error) {
	if dir, ok := strings.CutPrefix(t.URL, "file://"); ok {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create %s: %w", dir, err)
		}
		return filesystem.New(ctx, &filesystem.Options{Path: dir}, true) //nolint:wrapcheck
	}
	o, err := t.s3Options()
	if err != nil {
		return nil, err
	}
	return s3.New(ctx, o)
}

func (t copyTarget) s3Options() (s3.Options, error) {
	o, err := s3.ParseURL(t.URL)
	if err != nil {
		return o, err
	}
	o.AccessKeyID, o.SecretAccessKey = t.AccessKey, t.SecretKey
	return o, nil
}

// check tests that the target can be written, read and deleted.
func (t copyTarget) check(ctx context.Context) error {
	if dir, ok := strings.CutPrefix(t.URL, "file://"); ok {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("cannot create the copy directory %s: %v", dir, errors.Unwrap(err))
		}
		return checkDir(dir)
	}
	o, err := t.s3Options()
	if err != nil {
		return err
	}
	return s3.Check(ctx, o)
}

// copier copies the repository to the copy target: after every completed backup (Trigger), every Interval
// (maintenance deletes blobs, the catalog copy changes), and once at start. One sync runs at a time; triggers
// during a sync make one more sync after it.
type copier struct {
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

func (c *copier) Start() {
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
func (c *copier) Trigger() {
	if c.trigger == nil {
		return
	}
	select {
	case c.trigger <- struct{}{}:
	default:
	}
}

// Close stops the copier, canceling a running sync (the next start resumes it: blobs already copied stay).
func (c *copier) Close() {
	if c.stop != nil {
		close(c.stop)
		<-c.done
		c.stop = nil
	}
}

// Running reports whether a sync is in progress.
func (c *copier) Running() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.running
}

// target returns the configured copy target, or nil.
func loadCopyTarget(ctx context.Context, catalog *db.DB) (*copyTarget, error) {
	u, err := catalog.Setting(ctx, settingCopyURL)
	if errors.Is(err, db.ErrNotFound) || (err == nil && u == "") {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	t := &copyTarget{URL: u}
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
func (c *copier) Sync(ctx context.Context) error {
	t, err := loadCopyTarget(ctx, c.Catalog)
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

func (c *copier) sync(ctx context.Context, t *copyTarget) (mirror.Stats, error) {
	dr, ok := c.Repo.Kopia().(repo.DirectRepository)
	if !ok {
		return mirror.Stats{}, errors.New("the repository's storage cannot be read directly")
	}
	if err := dr.Refresh(ctx); err != nil {
		return mirror.Stats{}, fmt.Errorf("refresh repository: %w", err)
	}
	dst, err := t.open(ctx)
	if err != nil {
		return mirror.Stats{}, err
	}
	defer dst.Close(ctx) //nolint:errcheck
	return mirror.Sync(ctx, dr.BlobReader(), dst, 4, nil)
}

func (c *copier) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// copiedBefore returns when the last successful sync started (zero: never).
func copiedBefore(ctx context.Context, catalog *db.DB) time.Time {
	v, err := catalog.Setting(ctx, settingCopySyncedAt)
	if err != nil {
		return time.Time{}
	}
	t, _ := time.Parse(time.RFC3339Nano, v)
	return t
}

// readFromCopy makes the repository read from the copy target when the primary storage is down (nil without a
// copy target): a server can then start and restore from the copy alone. Writes still go to the primary only.
// A copy target set while the server runs is used for reading from the next start.
func readFromCopy(t *copyTarget, logger *slog.Logger) func(backup.StorageOpener) backup.StorageOpener {
	if t == nil {
		return nil
	}
	return func(primary backup.StorageOpener) backup.StorageOpener {
		return func(ctx context.Context, create bool) (blob.Storage, error) {
			p, err := primary(ctx, create)
			if err != nil {
				return nil, err
			}
			cp, err := t.open(ctx)
			if err != nil {
				logger.Warn("the copy target cannot be opened: reading from the primary only", "copy", t.URL, "err", err)
				return p, nil
			}
			s3.Register() // kopia reopens both storages from the failover's ConnectionInfo
			mirror.RegisterFailover()
			return mirror.NewFailover(p, cp), nil
		}
	}
}

package jobs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/storage"
	"github.com/rewind/rewind/db"
)

// StorageInspector is the storage page's view of the repository's storage and of its copy target.
type StorageInspector struct {
	primary *storage.Primary
	repo    *backup.Repository
	saver   *CatalogSaver
	copier  *Copier
	catalog *db.DB
	now     func() time.Time

	mu       sync.Mutex
	cached   storage.Status
	cachedAt time.Time
}

// NewStorageInspector inspects the primary storage of r, the catalog saver's and the copier's work.
func NewStorageInspector(primary *storage.Primary, r *backup.Repository, saver *CatalogSaver, cp *Copier, catalog *db.DB,
	now func() time.Time,
) *StorageInspector {
	return &StorageInspector{primary: primary, repo: r, saver: saver, copier: cp, catalog: catalog, now: now}
}

// StorageStatus is the storage as the storage page shows it.
type StorageStatus struct {
	storage.Status
	// CatalogSaved is when this server last saved the catalog into the repository (zero: not yet).
	CatalogSaved time.Time
	CatalogError string
	// Copy is the second location; nil when none is set.
	Copy *CopyStatus
	// CopyError says the copy target could not be read from the catalog.
	CopyError string
	Backups   []StoredBackup // the newest backups and where they are
}

// CopyStatus is the copy target as the page shows it: never its secret key.
type CopyStatus struct {
	URL         string
	Credentials string    // "the AWS chain" or "access key AKIA…"
	SyncedAt    time.Time // start of the last successful copy; zero: not yet
	Error       string    // the last copy's failure
	Running     bool
}

// StoredBackup is one backup and the locations holding it.
type StoredBackup struct {
	ID, Environment, Kind string
	Completed             time.Time
	StoredIn              []string // "primary", "copy"
}

// StorageTest is the result of a connection test of the primary storage.
type StorageTest = storage.TestResult

// statusCacheFor is how long a measured size is shown before the storage is listed again (listing a large
// bucket takes one request per 1000 objects).
const statusCacheFor = 30 * time.Second

// Status describes and measures the storage (measured at most every 30 s, unless the last listing failed),
// the catalog's last save, the copy target and where the newest backups are.
func (si *StorageInspector) Status(ctx context.Context) StorageStatus {
	si.mu.Lock()
	defer si.mu.Unlock()
	now := si.now()
	if si.cachedAt.IsZero() || now.Sub(si.cachedAt) > statusCacheFor || si.cached.Error != "" {
		si.cached = si.primary.Measure(ctx, si.repo)
		si.cachedAt = now
	}
	d := StorageStatus{Status: si.cached}
	si.copyStatus(ctx, &d)
	if si.saver != nil {
		saved, err := si.saver.LastSaved()
		d.CatalogSaved = saved
		if err != nil {
			d.CatalogError = err.Error()
		}
	}
	return d
}

// Test tests the primary storage's connection; a success measures it again on the next Status.
func (si *StorageInspector) Test(ctx context.Context) StorageTest {
	res := si.primary.Test(ctx)
	if res.OK {
		si.mu.Lock()
		si.cachedAt = time.Time{}
		si.mu.Unlock()
	}
	return res
}

// storedBackupsShown is how many of the newest backups the storage page lists with their locations.
const storedBackupsShown = 20

// copyStatus fills in the copy target and where the newest backups are.
func (si *StorageInspector) copyStatus(ctx context.Context, d *StorageStatus) {
	if si.catalog == nil {
		return
	}
	t, err := LoadCopyTarget(ctx, si.catalog)
	if err != nil {
		d.CopyError = "Could not read the copy target: " + err.Error()
		return
	}
	var synced time.Time
	if t != nil {
		synced = CopiedBefore(ctx, si.catalog)
		cd := &CopyStatus{URL: t.URL, SyncedAt: synced, Credentials: "the server's (AWS chain)"}
		if t.Local() {
			cd.Credentials = "none (local path)"
		} else if t.AccessKey != "" {
			cd.Credentials = "access key " + maskKey(t.AccessKey)
		}
		if e, err := si.catalog.Setting(ctx, settingCopyError); err == nil {
			cd.Error = e
		}
		cd.Running = si.copier != nil && si.copier.Running()
		d.Copy = cd
	}
	complete := db.BackupComplete
	rows, _, err := si.catalog.FindBackups(ctx, db.BackupFilter{Status: &complete, Limit: storedBackupsShown})
	if err != nil {
		return
	}
	for _, b := range rows {
		sb := StoredBackup{ID: b.ID, Environment: b.Environment, Kind: b.Kind, StoredIn: []string{"primary"}}
		if b.CompletedAt != nil {
			sb.Completed = *b.CompletedAt
			if t != nil && !synced.IsZero() && !b.CompletedAt.After(synced) {
				sb.StoredIn = append(sb.StoredIn, "copy")
			}
		}
		d.Backups = append(d.Backups, sb)
	}
}

// maskKey shows the first characters of an access key id only.
func maskKey(k string) string {
	if len(k) <= 4 {
		return "…"
	}
	return k[:4] + "…"
}

// SetCopyTarget tests and saves the second location (raw: s3://… or file:///…; accessKey/secretKey: explicit
// S3 credentials, "" for the server's AWS chain, secretKey "" keeps a saved one) and starts a copy. Its error
// is a message for the admin.
func (si *StorageInspector) SetCopyTarget(ctx context.Context, raw, accessKey, secretKey, actor string) error {
	u, err := storage.ParseURL(raw)
	if err != nil {
		return fmt.Errorf("copy target %q: %v", strings.TrimSpace(raw), err)
	}
	if si.primary.SameAs(u) {
		return errors.New("the copy target is the primary storage itself: choose another bucket, prefix or path")
	}
	t := storage.Location{URL: u, AccessKey: strings.TrimSpace(accessKey), SecretKey: secretKey}
	if t.Local() {
		t.AccessKey, t.SecretKey = "", ""
	} else if t.AccessKey != "" && t.SecretKey == "" {
		if old, err := LoadCopyTarget(ctx, si.catalog); err == nil && old != nil && old.AccessKey == t.AccessKey {
			t.SecretKey = old.SecretKey // unchanged key: keep the saved secret
		} else {
			return errors.New("enter the secret access key that goes with the access key ID")
		}
	}
	if err := t.Check(ctx); err != nil {
		return fmt.Errorf("cannot use %s as the copy target: %v", u, err)
	}
	if err := SaveCopyTarget(ctx, si.catalog, t); err != nil {
		return err
	}
	if err := si.catalog.CreateActivity(ctx, &db.Activity{Type: "storage.copy_target", Actor: actor, State: db.ActivitySucceeded,
		Summary: "Set the copy target to " + u}); err != nil {
		return err
	}
	if si.copier != nil {
		si.copier.Trigger()
	}
	return nil
}

// SaveCopyTarget stores t as the copy target, as not yet copied to, without testing it (SetCopyTarget does);
// its credentials are encrypted with the catalog key.
func SaveCopyTarget(ctx context.Context, catalog *db.DB, t storage.Location) error {
	for _, kv := range [][2]string{{settingCopyKey, t.AccessKey}, {settingCopySecret, t.SecretKey}} {
		if err := catalog.SetSecretSetting(ctx, kv[0], kv[1]); err != nil {
			return err
		}
	}
	_ = catalog.SetSetting(ctx, settingCopySyncedAt, "")
	_ = catalog.SetSetting(ctx, settingCopyError, "")
	return catalog.SetSetting(ctx, settingCopyURL, t.URL)
}

// RemoveCopyTarget stops copying (the copy made stays).
func (si *StorageInspector) RemoveCopyTarget(ctx context.Context, actor string) error {
	t, err := LoadCopyTarget(ctx, si.catalog)
	if err != nil || t == nil {
		return err
	}
	if err := clearCopyTarget(ctx, si.catalog); err != nil {
		return err
	}
	return si.catalog.CreateActivity(ctx, &db.Activity{Type: "storage.copy_target", Actor: actor, State: db.ActivitySucceeded,
		Summary: "Stopped copying to " + t.URL + " (the copy made stays there)"})
}

// clearCopyTarget removes the copy target's settings.
func clearCopyTarget(ctx context.Context, catalog *db.DB) error {
	for _, k := range []string{settingCopyURL, settingCopyKey, settingCopySecret, settingCopySyncedAt, settingCopyError} {
		if err := catalog.SetSetting(ctx, k, ""); err != nil {
			return err
		}
	}
	return nil
}

// SyncCopy starts a copy now.
func (si *StorageInspector) SyncCopy(context.Context) {
	if si.copier != nil {
		si.copier.Trigger()
	}
}

// StoredIn names the locations holding backup id: "primary", and "copy" once it was copied.
func (si *StorageInspector) StoredIn(ctx context.Context, id string) ([]string, error) {
	b, err := si.catalog.FindBackupByID(ctx, id)
	if err != nil {
		return nil, err
	}
	where := []string{"primary"}
	if t, err := LoadCopyTarget(ctx, si.catalog); err == nil && t != nil && b.CompletedAt != nil {
		if synced := CopiedBefore(ctx, si.catalog); !synced.IsZero() && !b.CompletedAt.After(synced) {
			where = append(where, "copy")
		}
	}
	return where, nil
}

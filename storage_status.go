package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kopia/kopia/repo"
	"github.com/kopia/kopia/repo/blob"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/s3"
	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/handlers"
	"github.com/rewind/rewind/views"
)

// storageInspector is the storage settings page's view of the repository's storage (handlers.StorageInspector).
type storageInspector struct {
	where   string      // storageFor's description: file:///dir or s3://… without credentials
	s3      *s3.Options // nil for local storage
	dir     string      // local storage directory
	repo    *backup.Repository
	saver   *catalogSaver
	copier  *copier
	catalog *db.DB
	now     func() time.Time

	mu       sync.Mutex
	cached   views.StorageData
	cachedAt time.Time
}

var _ handlers.StorageInspector = (*storageInspector)(nil)

// statusCacheFor is how long a measured size is shown before the storage is listed again (listing a large
// bucket takes one request per 1000 objects).
const statusCacheFor = 30 * time.Second

func newStorageInspector(raw, where string, r *backup.Repository, saver *catalogSaver, cp *copier, catalog *db.DB,
	now func() time.Time,
) *storageInspector {
	si := &storageInspector{where: where, repo: r, saver: saver, copier: cp, catalog: catalog, now: now}
	if strings.HasPrefix(where, "s3://") {
		if o, err := s3.ParseURL(raw); err == nil {
			si.s3 = &o
		}
	} else {
		si.dir = strings.TrimPrefix(where, "file://")
	}
	return si
}

// Status implements handlers.StorageInspector.
func (si *storageInspector) Status(ctx context.Context) views.StorageData {
	si.mu.Lock()
	defer si.mu.Unlock()
	now := si.now()
	if si.cachedAt.IsZero() || now.Sub(si.cachedAt) > statusCacheFor || si.cached.StatusError != "" {
		si.cached = si.measure(ctx)
		si.cachedAt = now
	}
	d := si.cached
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

func (si *storageInspector) measure(ctx context.Context) views.StorageData {
	d := views.StorageData{Location: si.where}
	if si.s3 != nil {
		d.Kind = "S3"
		endpoint := si.s3.Endpoint
		if endpoint == "" {
			endpoint = "AWS S3"
		}
		region := si.s3.Region
		if region == "" {
			region = "from the AWS configuration (us-east-1 when unset)"
		}
		addressing := "virtual-hosted (bucket.endpoint)"
		if si.s3.PathStyle {
			addressing = "path-style (endpoint/bucket)"
		}
		creds := "the AWS chain: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, shared files, or the instance role"
		if si.s3.Profile != "" {
			creds = "AWS profile " + si.s3.Profile
		}
		d.Details = []views.StorageDetail{
			{Label: "Endpoint", Value: endpoint}, {Label: "Bucket", Value: si.s3.Bucket},
			{Label: "Prefix", Value: si.s3.Prefix}, {Label: "Region", Value: region},
			{Label: "Addressing", Value: addressing}, {Label: "Credentials", Value: creds},
		}
	} else {
		d.Kind = "Local disk"
		d.Details = []views.StorageDetail{{Label: "Directory", Value: si.dir}}
	}
	dr, ok := si.repo.Kopia().(repo.DirectRepository)
	if !ok {
		d.StatusError = "The repository's storage cannot be listed."
		return d
	}
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	err := dr.BlobReader().ListBlobs(lctx, "", func(md blob.Metadata) error {
		mu.Lock()
		defer mu.Unlock()
		d.Blobs++
		d.UsedBytes += md.Length
		if md.Timestamp.After(d.LastWrite) {
			d.LastWrite = md.Timestamp
		}
		return nil
	})
	if err != nil {
		d.StatusError = "Could not list the storage: " + si.explain(err) + " Use Test connection for details."
	}
	return d
}

func (si *storageInspector) explain(err error) string {
	if si.s3 != nil {
		return s3.Diagnose(*si.s3, err).Message
	}
	return err.Error()
}

// Test implements handlers.StorageInspector.
func (si *storageInspector) Test(ctx context.Context) *views.StorageTest {
	start := time.Now()
	var err error
	problem := "other"
	if si.s3 != nil {
		err = s3.Check(ctx, *si.s3)
		var ce *s3.CheckError
		if errors.As(err, &ce) {
			problem = string(ce.Problem)
		}
	} else {
		err = checkDir(si.dir)
	}
	if err != nil {
		return &views.StorageTest{Problem: problem, Message: err.Error()}
	}
	si.mu.Lock()
	si.cachedAt = time.Time{} // measure again on the next view
	si.mu.Unlock()
	return &views.StorageTest{OK: true, Took: time.Since(start)}
}

// checkDir writes, syncs, reads back and deletes a file in the local storage directory.
func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("the storage directory %s is not there (%v): mount the disk or fix --storage", dir, errors.Unwrap(err))
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory: fix --storage", dir)
	}
	f, err := os.CreateTemp(dir, ".rewind-check-*")
	if err != nil {
		return fmt.Errorf("cannot write to the storage directory %s: %v", dir, errors.Unwrap(err))
	}
	defer os.Remove(f.Name())
	want := []byte("rewind connection check\n")
	_, werr := f.Write(want)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return fmt.Errorf("cannot write to the storage directory %s (disk full?): %v", dir, err)
	}
	got, err := os.ReadFile(f.Name())
	if err != nil || string(got) != string(want) {
		return fmt.Errorf("cannot read back a file written to %s: %v", filepath.Base(f.Name()), err)
	}
	return nil
}

// storedBackupsShown is how many of the newest backups the storage page lists with their locations.
const storedBackupsShown = 20

// copyStatus fills in the copy target and where the newest backups are.
func (si *storageInspector) copyStatus(ctx context.Context, d *views.StorageData) {
	if si.catalog == nil {
		return
	}
	t, err := loadCopyTarget(ctx, si.catalog)
	if err != nil {
		d.CopyForm.Error = "Could not read the copy target: " + err.Error()
		return
	}
	var synced time.Time
	if t != nil {
		synced = copiedBefore(ctx, si.catalog)
		cd := &views.CopyData{URL: t.URL, SyncedAt: synced, Credentials: "the server's (AWS chain)"}
		if strings.HasPrefix(t.URL, "file://") {
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
		sb := views.StoredBackup{ID: b.ID, Environment: b.Environment, Kind: b.Kind, StoredIn: []string{"primary"}}
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

// SetCopyTarget implements handlers.StorageInspector.
func (si *storageInspector) SetCopyTarget(ctx context.Context, raw, accessKey, secretKey, actor string) error {
	u, err := parseCopyURL(raw)
	if err != nil {
		return fmt.Errorf("copy target %q: %v", strings.TrimSpace(raw), err)
	}
	if u == si.where || (si.s3 != nil && strings.HasPrefix(u, "s3://") && sameBucket(u, *si.s3)) {
		return errors.New("the copy target is the primary storage itself: choose another bucket, prefix or path")
	}
	t := copyTarget{URL: u, AccessKey: strings.TrimSpace(accessKey), SecretKey: secretKey}
	if strings.HasPrefix(u, "file://") {
		t.AccessKey, t.SecretKey = "", ""
	} else if t.AccessKey != "" && t.SecretKey == "" {
		if old, err := loadCopyTarget(ctx, si.catalog); err == nil && old != nil && old.AccessKey == t.AccessKey {
			t.SecretKey = old.SecretKey // unchanged key: keep the saved secret
		} else {
			return errors.New("enter the secret access key that goes with the access key ID")
		}
	}
	if err := t.check(ctx); err != nil {
		return fmt.Errorf("cannot use %s as the copy target: %v", u, err)
	}
	for _, kv := range [][2]string{{settingCopyKey, t.AccessKey}, {settingCopySecret, t.SecretKey}} {
		if err := si.catalog.SetSecretSetting(ctx, kv[0], kv[1]); err != nil {
			return err
		}
	}
	_ = si.catalog.SetSetting(ctx, settingCopySyncedAt, "")
	_ = si.catalog.SetSetting(ctx, settingCopyError, "")
	if err := si.catalog.SetSetting(ctx, settingCopyURL, u); err != nil {
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

// sameBucket reports whether an s3 URL names the primary's bucket and prefix (wherever its endpoint).
func sameBucket(u string, primary s3.Options) bool {
	o, err := s3.ParseURL(u)
	return err == nil && o.Bucket == primary.Bucket && o.Prefix == primary.Prefix && o.Endpoint == primary.Endpoint
}

// RemoveCopyTarget implements handlers.StorageInspector.
func (si *storageInspector) RemoveCopyTarget(ctx context.Context, actor string) error {
	t, err := loadCopyTarget(ctx, si.catalog)
	if err != nil || t == nil {
		return err
	}
	for _, k := range []string{settingCopyURL, settingCopyKey, settingCopySecret, settingCopySyncedAt, settingCopyError} {
		if err := si.catalog.SetSetting(ctx, k, ""); err != nil {
			return err
		}
	}
	return si.catalog.CreateActivity(ctx, &db.Activity{Type: "storage.copy_target", Actor: actor, State: db.ActivitySucceeded,
		Summary: "Stopped copying to " + t.URL + " (the copy made stays there)"})
}

// SyncCopy implements handlers.StorageInspector.
func (si *storageInspector) SyncCopy(context.Context) {
	if si.copier != nil {
		si.copier.Trigger()
	}
}

// StoredIn implements handlers.StorageInspector.
func (si *storageInspector) StoredIn(ctx context.Context, id string) ([]string, error) {
	b, err := si.catalog.FindBackupByID(ctx, id)
	if err != nil {
		return nil, err
	}
	where := []string{"primary"}
	if t, err := loadCopyTarget(ctx, si.catalog); err == nil && t != nil && b.CompletedAt != nil {
		if synced := copiedBefore(ctx, si.catalog); !synced.IsZero() && !b.CompletedAt.After(synced) {
			where = append(where, "copy")
		}
	}
	return where, nil
}

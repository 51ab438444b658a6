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
	"github.com/rewind/rewind/handlers"
	"github.com/rewind/rewind/views"
)

// storageInspector is the storage settings page's view of the repository's storage (handlers.StorageInspector).
type storageInspector struct {
	where string      // storageFor's description: file:///dir or s3://… without credentials
	s3    *s3.Options // nil for local storage
	dir   string      // local storage directory
	repo  *backup.Repository
	saver *catalogSaver
	now   func() time.Time

	mu       sync.Mutex
	cached   views.StorageData
	cachedAt time.Time
}

var _ handlers.StorageInspector = (*storageInspector)(nil)

// statusCacheFor is how long a measured size is shown before the storage is listed again (listing a large
// bucket takes one request per 1000 objects).
const statusCacheFor = 30 * time.Second

func newStorageInspector(raw, where string, r *backup.Repository, saver *catalogSaver, now func() time.Time) *storageInspector {
	si := &storageInspector{where: where, repo: r, saver: saver, now: now}
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

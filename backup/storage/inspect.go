package storage

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
)

// Primary is the repository's own storage, as the storage page describes, measures and tests it.
type Primary struct {
	where string      // Open's description: file:///dir or s3://… without credentials
	s3    *s3.Options // nil for local storage
	dir   string      // local storage directory
}

// NewPrimary describes the storage that --storage raw opened as where (Open's description).
func NewPrimary(raw, where string) *Primary {
	p := &Primary{where: where}
	if strings.HasPrefix(where, "s3://") {
		if o, err := s3.ParseURL(raw); err == nil {
			p.s3 = &o
		}
	} else {
		p.dir = strings.TrimPrefix(where, "file://")
	}
	return p
}

// Where is the storage's description, without credentials.
func (p *Primary) Where() string { return p.where }

// Status describes a storage and what it holds.
type Status struct {
	Kind      string // "S3" or "Local disk"
	Location  string // never credentials
	Details   []Detail
	UsedBytes int64
	Blobs     int
	LastWrite time.Time // newest blob; zero when empty
	Error     string    // the storage could not be listed: a message for the admin
}

// Detail is one labelled fact about the storage (endpoint, region, credentials source).
type Detail struct{ Label, Value string }

// Measure describes the storage and lists the repository's blobs (one request per 1000 objects on S3). A
// storage that cannot be listed sets Error rather than failing.
func (p *Primary) Measure(ctx context.Context, r *backup.Repository) Status {
	d := Status{Location: p.where}
	if p.s3 != nil {
		d.Kind = "S3"
		endpoint := p.s3.Endpoint
		if endpoint == "" {
			endpoint = "AWS S3"
		}
		region := p.s3.Region
		if region == "" {
			region = "from the AWS configuration (us-east-1 when unset)"
		}
		addressing := "virtual-hosted (bucket.endpoint)"
		if p.s3.PathStyle {
			addressing = "path-style (endpoint/bucket)"
		}
		creds := "the AWS chain: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, shared files, or the instance role"
		if p.s3.Profile != "" {
			creds = "AWS profile " + p.s3.Profile
		}
		d.Details = []Detail{
			{Label: "Endpoint", Value: endpoint}, {Label: "Bucket", Value: p.s3.Bucket},
			{Label: "Prefix", Value: p.s3.Prefix}, {Label: "Region", Value: region},
			{Label: "Addressing", Value: addressing}, {Label: "Credentials", Value: creds},
		}
	} else {
		d.Kind = "Local disk"
		d.Details = []Detail{{Label: "Directory", Value: p.dir}}
	}
	dr, ok := r.Kopia().(repo.DirectRepository)
	if !ok {
		d.Error = "The repository's storage cannot be listed."
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
		d.Error = "Could not list the storage: " + p.explain(err) + " Use Test connection for details."
	}
	return d
}

func (p *Primary) explain(err error) string {
	if p.s3 != nil {
		return s3.Diagnose(*p.s3, err).Message
	}
	return err.Error()
}

// TestResult is the result of a connection test.
type TestResult struct {
	OK      bool
	Problem string // "credentials", "no-bucket", "clock-skew", "unreachable", ..., "other"
	Message string
	Took    time.Duration
}

// Test lists, writes, reads and deletes a test object and explains a failure in words an admin can act on.
func (p *Primary) Test(ctx context.Context) TestResult {
	start := time.Now()
	var err error
	problem := "other"
	if p.s3 != nil {
		err = s3.Check(ctx, *p.s3)
		var ce *s3.CheckError
		if errors.As(err, &ce) {
			problem = string(ce.Problem)
		}
	} else {
		err = CheckDir(p.dir)
	}
	if err != nil {
		return TestResult{Problem: problem, Message: err.Error()}
	}
	return TestResult{OK: true, Took: time.Since(start)}
}

// SameAs reports whether the canonical URL u (as ParseURL returns it) is this storage: the same directory, or
// the same bucket and prefix on the same endpoint.
func (p *Primary) SameAs(u string) bool {
	if u == p.where {
		return true
	}
	if p.s3 == nil || !strings.HasPrefix(u, "s3://") {
		return false
	}
	o, err := s3.ParseURL(u)
	return err == nil && o.Bucket == p.s3.Bucket && o.Prefix == p.s3.Prefix && o.Endpoint == p.s3.Endpoint
}

// CheckDir writes, syncs, reads back and deletes a file in a local storage directory.
func CheckDir(dir string) error {
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

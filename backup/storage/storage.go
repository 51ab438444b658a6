// Package storage opens the backup repository from a storage URL (--storage, a copy target): file:///path or
// s3://BUCKET/PREFIX?endpoint=URL&region=REGION&path_style=true, with credentials from the AWS chain or given
// explicitly for a copy target. It serves `rewind serve`, `catalog:rebuild` and the storage page, and its
// descriptions of a storage never hold credentials.
package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/kopia/kopia/repo/blob"
	"github.com/kopia/kopia/repo/blob/filesystem"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/mirror"
	"github.com/rewind/rewind/backup/s3"
)

// Open parses --storage: "" (the data directory's repo/), file:///path or
// s3://BUCKET/PREFIX?endpoint=URL&region=REGION&path_style=true (credentials from the AWS chain). The returned
// description never holds credentials.
func Open(raw, dataDir string) (backup.StorageOpener, string, error) {
	if raw == "" {
		dir := filepath.Join(dataDir, "repo")
		return backup.FileStorage(dir), "file://" + dir, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, "", fmt.Errorf("--storage %q: %w", raw, err)
	}
	switch u.Scheme {
	case "file":
		if u.Path == "" || !filepath.IsAbs(u.Path) {
			return nil, "", fmt.Errorf("--storage %q: want file:///absolute/path", raw)
		}
		return backup.FileStorage(u.Path), "file://" + u.Path, nil
	case "s3":
		opts, err := s3.ParseURL(raw)
		if err != nil {
			return nil, "", fmt.Errorf("--storage: %w", err)
		}
		s3.Register() // so kopia can reopen the storage from its config
		return func(ctx context.Context, _ bool) (blob.Storage, error) { return s3.New(ctx, opts) }, opts.URL(), nil
	}
	return nil, "", fmt.Errorf("--storage %q: unknown scheme %q: use file:///path or s3://BUCKET/PREFIX", raw, u.Scheme)
}

// OpenRepository opens (creating on first start) the backup repository of the data directory on the storage
// raw (as for Open), with kopia's config and cache in <dataDir>/kopia. password is asked for once raw is
// known to be valid. wrap, when not nil, wraps the storage (a server reads from the copy target when the
// primary is down: see Failover). It also returns the storage's description.
func OpenRepository(ctx context.Context, dataDir, raw string, password func() (string, error),
	wrap func(backup.StorageOpener) backup.StorageOpener,
) (*backup.Repository, string, error) {
	opener, where, err := Open(raw, dataDir)
	if err != nil {
		return nil, "", err
	}
	if wrap != nil {
		opener = wrap(opener)
	}
	pw, err := password()
	if err != nil {
		return nil, "", err
	}
	r, err := backup.OpenRepository(ctx, backup.RepositoryOptions{
		Storage: opener, Password: pw, ConfigDir: filepath.Join(dataDir, "kopia"),
	})
	if err != nil {
		if errors.Is(err, backup.ErrWrongPassword) {
			return nil, "", fmt.Errorf("open the backup repository at %s: %w: set REWIND_REPO_PASSWORD to the "+
				"password shown when it was created", where, err)
		}
		return nil, "", fmt.Errorf("open the backup repository at %s: %w", where, err)
	}
	return r, where, nil
}

// RequireRepository refuses a storage that holds no kopia repository (a wrong bucket or prefix), instead of
// creating an empty one.
func RequireRepository(ctx context.Context, opener backup.StorageOpener, where string) error {
	st, err := opener(ctx, false)
	if err != nil {
		return err
	}
	defer st.Close(ctx) //nolint:errcheck
	if _, err := st.GetMetadata(ctx, "kopia.repository"); errors.Is(err, blob.ErrBlobNotFound) {
		return fmt.Errorf("%s holds no backup repository: check the bucket, prefix or path", where)
	} else if err != nil {
		return fmt.Errorf("read %s: %w", where, err)
	}
	return nil
}

// Location is a second storage (a copy target): a URL as ParseURL returns it, with explicit S3 credentials or
// none (the AWS chain; always none for a local path).
type Location struct {
	URL       string // file:///path or s3://bucket/prefix?...
	AccessKey string // S3 only; "" = the AWS chain
	SecretKey string
}

// ParseURL checks a copy target's URL, file:///absolute/path or an s3:// URL as for --storage, and returns it
// in its canonical form.
func ParseURL(raw string) (string, error) {
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

// Local reports whether the location is a local path.
func (l Location) Local() bool { return strings.HasPrefix(l.URL, "file://") }

// Open opens the location's blob storage (creating a local directory).
func (l Location) Open(ctx context.Context) (blob.Storage, error) {
	if dir, ok := strings.CutPrefix(l.URL, "file://"); ok {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create %s: %w", dir, err)
		}
		return filesystem.New(ctx, &filesystem.Options{Path: dir}, true) //nolint:wrapcheck
	}
	o, err := l.s3Options()
	if err != nil {
		return nil, err
	}
	return s3.New(ctx, o)
}

func (l Location) s3Options() (s3.Options, error) {
	o, err := s3.ParseURL(l.URL)
	if err != nil {
		return o, err
	}
	o.AccessKeyID, o.SecretAccessKey = l.AccessKey, l.SecretKey
	return o, nil
}

// Check tests that the location can be written, read and deleted.
func (l Location) Check(ctx context.Context) error {
	if dir, ok := strings.CutPrefix(l.URL, "file://"); ok {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("cannot create the copy directory %s: %v", dir, errors.Unwrap(err))
		}
		return CheckDir(dir)
	}
	o, err := l.s3Options()
	if err != nil {
		return err
	}
	return s3.Check(ctx, o)
}

// Failover makes a repository read from the copy when the primary storage is down: a server can then start
// and restore from the copy alone. Writes still go to the primary only. A copy that cannot be opened is
// logged and the primary used alone.
func Failover(copy Location, logger *slog.Logger) func(backup.StorageOpener) backup.StorageOpener {
	return func(primary backup.StorageOpener) backup.StorageOpener {
		return func(ctx context.Context, create bool) (blob.Storage, error) {
			p, err := primary(ctx, create)
			if err != nil {
				return nil, err
			}
			cp, err := copy.Open(ctx)
			if err != nil {
				logger.Warn("the copy target cannot be opened: reading from the primary only", "copy", copy.URL, "err", err)
				return p, nil
			}
			s3.Register() // kopia reopens both storages from the failover's ConnectionInfo
			mirror.RegisterFailover()
			return mirror.NewFailover(p, cp), nil
		}
	}
}

package backup

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/kopia/kopia/fs"
	"github.com/kopia/kopia/fs/virtualfs"
	"github.com/kopia/kopia/repo"
	"github.com/kopia/kopia/snapshot"
	"github.com/kopia/kopia/snapshot/policy"
	"github.com/kopia/kopia/snapshot/upload"
)

// catalogSource is the kopia snapshot source of the copies of Rewind's own catalog (rewind.db, secret.key)
// kept in the repository, so a new server gets users, settings and environments back from the repository
// alone. Its snapshots carry no rewind-id tag, so they are never listed as backups.
var catalogSource = snapshot.SourceInfo{Host: kopiaHost, UserName: kopiaUser, Path: "/rewind-catalog"}

// catalogCopiesKept is how many catalog copies SaveCatalog keeps (the newest).
const catalogCopiesKept = 3

// SaveCatalog stores files (name → content) as the newest catalog copy and deletes all but the newest few.
// Everything in the repository is encrypted with the repository password.
func (r *Repository) SaveCatalog(ctx context.Context, files map[string][]byte) error {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	entries := make([]fs.Entry, 0, len(names))
	for _, n := range names {
		entries = append(entries, virtualfs.StreamingFileFromReader(n, io.NopCloser(bytes.NewReader(files[n]))))
	}
	err := repo.WriteSession(ctx, r.rep, repo.WriteSessionOptions{Purpose: "rewind catalog copy"},
		func(ctx context.Context, w repo.RepositoryWriter) error {
			polTree, err := policy.TreeForSource(ctx, w, catalogSource)
			if err != nil {
				return fmt.Errorf("read policy: %w", err)
			}
			u := upload.NewUploader(w)
			u.FailFast = true
			u.DisableIgnoreRules = true
			man, err := u.Upload(ctx, virtualfs.NewStaticDirectory("catalog", entries), polTree, catalogSource)
			if err != nil {
				return fmt.Errorf("upload: %w", err)
			}
			if _, err := snapshot.SaveSnapshot(ctx, w, man); err != nil {
				return fmt.Errorf("save: %w", err)
			}
			mans, err := snapshot.ListSnapshots(ctx, w, catalogSource)
			if err != nil {
				return fmt.Errorf("list copies: %w", err)
			}
			sort.Slice(mans, func(i, j int) bool { return mans[i].StartTime.After(mans[j].StartTime) })
			for i := catalogCopiesKept; i < len(mans); i++ {
				if err := w.DeleteManifest(ctx, mans[i].ID); err != nil {
					return fmt.Errorf("delete old copy: %w", err)
				}
			}
			return nil
		})
	if err != nil {
		return fmt.Errorf("save catalog copy: %w", err)
	}
	return nil
}

// LoadCatalog returns the files of the newest catalog copy and when it was saved. With none it returns an
// error wrapping ErrNotFound.
func (r *Repository) LoadCatalog(ctx context.Context) (map[string][]byte, time.Time, error) {
	if err := r.rep.Refresh(ctx); err != nil {
		return nil, time.Time{}, fmt.Errorf("refresh repository: %w", err)
	}
	mans, err := snapshot.ListSnapshots(ctx, r.rep, catalogSource)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("list catalog copies: %w", err)
	}
	if len(mans) == 0 {
		return nil, time.Time{}, fmt.Errorf("catalog copy: %w", ErrNotFound)
	}
	sort.Slice(mans, func(i, j int) bool { return mans[i].StartTime.After(mans[j].StartTime) })
	root, err := rootOf(r.rep, mans[0])
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("catalog copy: %w", err)
	}
	files := map[string][]byte{}
	err = fs.IterateEntries(ctx, root, func(ctx context.Context, e fs.Entry) error {
		f, ok := e.(fs.File)
		if !ok {
			return nil
		}
		rd, err := f.Open(ctx)
		if err != nil {
			return err
		}
		defer rd.Close() //nolint:errcheck
		b, err := io.ReadAll(rd)
		if err != nil {
			return err
		}
		files[e.Name()] = b
		return nil
	})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("read catalog copy: %w", err)
	}
	return files, mans[0].StartTime.ToTime(), nil
}

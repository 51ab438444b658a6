package pitr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/kopia/kopia/fs"
	"github.com/kopia/kopia/fs/localfs"
	"github.com/kopia/kopia/repo"
	"github.com/kopia/kopia/repo/manifest"
	"github.com/kopia/kopia/snapshot"
	"github.com/kopia/kopia/snapshot/policy"
	"github.com/kopia/kopia/snapshot/snapshotfs"
	"github.com/kopia/kopia/snapshot/upload"

	"github.com/rewind/rewind/backup"
)

// Every base and every WAL segment is one kopia snapshot of the source rewind@rewind:/rewind-pitr/<env>/<service>
// (never a loose object, which maintenance would collect), tagged with these labels and pinned like Rewind's
// backups; its root holds the files flat. Without Rewind: `kopia snapshot list --all --tags rewind-pitr-env:<env>`.
const (
	tagEnv     = "tag:rewind-pitr-env"
	tagService = "tag:rewind-pitr-service"
	tagKind    = "tag:rewind-pitr-kind" // base | wal
	tagName    = "tag:rewind-pitr-name" // the WAL file name, or the base's start segment
)

func source(env, service string) snapshot.SourceInfo {
	return snapshot.SourceInfo{Host: "rewind", UserName: "rewind", Path: "/rewind-pitr/" + env + "/" + service}
}

// ErrReplaced is returned when a snapshot a plan named is gone: the follower replaced the growing segment with a
// newer copy meanwhile. Plan again.
var ErrReplaced = errors.New("the shipped WAL changed meanwhile: plan again")

// treeOptions say how ship compares with and saves over an earlier snapshot.
type treeOptions struct {
	previous string // id of the snapshot to compare with: files unchanged since it are not read again
	always   bool   // save even a tree identical to previous's
	live     bool   // the tree is being written: a file removed between the walk and its read is left out
}

// ship saves the tree root as one snapshot of env's service, of kind "base" or "wal" named name, and returns its
// id and the bytes it holds. With the id of a previous snapshot of the same source, files unchanged since it are
// not read again, and unless opt.always is set a tree identical to it is not saved at all: then unchanged is
// true and the id is previous's.
func ship(ctx context.Context, r *backup.Repository, env, service, kind, name string, root fs.Directory,
	opt treeOptions, desc string,
) (id string, size int64, unchanged bool, err error) {
	rep, src := r.Kopia(), source(env, service)
	tags := map[string]string{tagEnv: env, tagService: service, tagKind: kind, tagName: name}
	previous, always := opt.previous, opt.always
	var prev []*snapshot.Manifest
	if previous != "" {
		man, err := snapshot.LoadSnapshot(ctx, rep, manifest.ID(previous))
		if err != nil && !errors.Is(err, snapshot.ErrSnapshotNotFound) {
			return "", 0, false, fmt.Errorf("ship %s: load the previous snapshot: %w", desc, err)
		}
		if man != nil {
			prev = append(prev, man)
		}
	}
	err = repo.WriteSession(ctx, rep, repo.WriteSessionOptions{Purpose: "rewind pitr " + desc},
		func(ctx context.Context, w repo.RepositoryWriter) error {
			pol, err := policy.TreeForSource(ctx, w, src)
			if err != nil {
				return fmt.Errorf("read policy: %w", err)
			}
			u := upload.NewUploader(w)
			u.FailFast = !opt.live
			u.DisableIgnoreRules = true
			man, err := u.Upload(ctx, root, pol, src, prev...)
			if err != nil {
				return fmt.Errorf("upload: %w", err)
			}
			if man.IncompleteReason != "" || man.Stats.ErrorCount > 0 && !(opt.live && onlyVanished(man)) {
				return fmt.Errorf("upload incomplete (%s, %d errors%s)", man.IncompleteReason, man.Stats.ErrorCount,
					firstError(man))
			}
			if !always && len(prev) > 0 && prev[0].RootObjectID() == man.RootObjectID() {
				unchanged, id = true, previous
				if man.RootEntry.DirSummary != nil {
					size = man.RootEntry.DirSummary.TotalFileSize
				}
				return nil
			}
			man.Description = "Rewind point-in-time " + desc
			man.Tags = tags
			man.Pins = []string{"rewind"}
			if man.RootEntry.DirSummary != nil {
				size = man.RootEntry.DirSummary.TotalFileSize
			}
			mid, err := snapshot.SaveSnapshot(ctx, w, man)
			if err != nil {
				return fmt.Errorf("save snapshot: %w", err)
			}
			id = string(mid)
			return nil
		})
	if err != nil {
		return "", 0, false, fmt.Errorf("ship %s: %w", desc, err)
	}
	return id, size, unchanged, nil
}

// snapshotRoot opens the root directory of snapshot id.
func snapshotRoot(ctx context.Context, rep repo.Repository, id string) (fs.Directory, error) {
	man, err := snapshot.LoadSnapshot(ctx, rep, manifest.ID(id))
	if errors.Is(err, snapshot.ErrSnapshotNotFound) {
		return nil, fmt.Errorf("snapshot %s: %w", id, ErrReplaced)
	}
	if err != nil {
		return nil, fmt.Errorf("load snapshot %s: %w", id, err)
	}
	d, ok := snapshotfs.EntryFromDirEntry(rep, man.RootEntry).(fs.Directory)
	if !ok {
		return nil, fmt.Errorf("snapshot %s: root is not a directory", id)
	}
	return d, nil
}

// ShipDir saves the files of dir (flat) into the repository as one snapshot of env's service, of kind "base" or
// "wal" (a segment) named name, and returns its id and the bytes it holds.
func ShipDir(ctx context.Context, rep *backup.Repository, env, service, kind, name, dir, desc string) (string, int64, error) {
	d, err := localfs.Directory(dir)
	if err != nil {
		return "", 0, fmt.Errorf("ship %s: read %s: %w", desc, dir, err)
	}
	id, size, _, err := ship(ctx, rep, env, service, kind, name, d, treeOptions{always: true}, desc)
	return id, size, err
}

// onlyVanished reports whether every error of an upload was a file removed between the walk and its read.
func onlyVanished(man *snapshot.Manifest) bool {
	sum := man.RootEntry.DirSummary
	if sum == nil || int(man.Stats.ErrorCount) != len(sum.FailedEntries) {
		return false // more errors than the summary keeps: some are unknown
	}
	for _, e := range sum.FailedEntries {
		if !strings.Contains(e.Error, "no such file or directory") {
			return false
		}
	}
	return true
}

func firstError(man *snapshot.Manifest) string {
	if sum := man.RootEntry.DirSummary; sum != nil && len(sum.FailedEntries) > 0 {
		return ": " + sum.FailedEntries[0].EntryPath + ": " + sum.FailedEntries[0].Error
	}
	return ""
}

// ShipTree saves the tree root into the repository as one snapshot of env's service, like ShipDir, reading
// again only the files changed since the snapshot previous ("" for none). Unless always is set, a tree
// identical to previous's is not saved again (unchanged, and id is previous). The tree may be live: a file
// removed between the walk and its read is left out, as it no longer exists; any other read error fails.
func ShipTree(ctx context.Context, rep *backup.Repository, env, service, kind, name string, root fs.Directory,
	previous string, always bool, desc string,
) (id string, size int64, unchanged bool, err error) {
	return ship(ctx, rep, env, service, kind, name, root, treeOptions{previous: previous, always: always, live: true}, desc)
}

// LatestShipped is the id of the newest snapshot of env's service of kind ("" when there is none).
func LatestShipped(ctx context.Context, rep *backup.Repository, env, service, kind string) (string, error) {
	mans, err := snapshot.ListSnapshots(ctx, rep.Kopia(), source(env, service))
	if err != nil {
		return "", fmt.Errorf("list the shipped snapshots of %s/%s: %w", env, service, err)
	}
	var newest *snapshot.Manifest
	for _, m := range mans {
		if m.Tags[tagKind] == kind && (newest == nil || m.StartTime.After(newest.StartTime)) {
			newest = m
		}
	}
	if newest == nil {
		return "", nil
	}
	return string(newest.ID), nil
}

// OpenShipped returns the root directory of a shipped snapshot; a snapshot deleted meanwhile is ErrReplaced.
func OpenShipped(ctx context.Context, rep *backup.Repository, id string) (fs.Directory, error) {
	return snapshotRoot(ctx, rep.Kopia(), id)
}

// FetchDir writes the files of a shipped snapshot into dest (which must exist).
func FetchDir(ctx context.Context, rep *backup.Repository, id, dest string) error {
	root, err := snapshotRoot(ctx, rep.Kopia(), id)
	if err != nil {
		return err
	}
	return fs.IterateEntries(ctx, root, func(ctx context.Context, e fs.Entry) error {
		f, ok := e.(fs.File)
		if !ok {
			return nil
		}
		return copyOut(ctx, f, filepath.Join(dest, e.Name()))
	})
}

func copyOut(ctx context.Context, f fs.File, path string) error {
	r, err := f.Open(ctx)
	if err != nil {
		return fmt.Errorf("open %s: %w", f.Name(), err)
	}
	defer r.Close() //nolint:errcheck
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := io.Copy(out, r); err != nil {
		out.Close() //nolint:errcheck
		return fmt.Errorf("read %s from the repository: %w", f.Name(), err)
	}
	return out.Close()
}

// ReadShipped reads one small file of a shipped snapshot.
func ReadShipped(ctx context.Context, rep *backup.Repository, id, name string) ([]byte, error) {
	root, err := snapshotRoot(ctx, rep.Kopia(), id)
	if err != nil {
		return nil, err
	}
	e, err := root.Child(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %s: %w", id, name, err)
	}
	f, ok := e.(fs.File)
	if !ok {
		return nil, fmt.Errorf("snapshot %s: %s is not a file", id, name)
	}
	r, err := f.Open(ctx)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	defer r.Close() //nolint:errcheck
	return io.ReadAll(io.LimitReader(r, 256<<20))
}

// DeleteSnapshots deletes shipped bases and segments (snapshot ids from a Recorder) from the repository; the
// next maintenance collects their data.
func DeleteSnapshots(ctx context.Context, rep *backup.Repository, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	return repo.WriteSession(ctx, rep.Kopia(), repo.WriteSessionOptions{Purpose: "rewind pitr delete"},
		func(ctx context.Context, w repo.RepositoryWriter) error {
			var errs []error
			for _, id := range ids {
				if id == "" {
					continue
				}
				if err := w.DeleteManifest(ctx, manifest.ID(id)); err != nil {
					errs = append(errs, fmt.Errorf("delete snapshot %s: %w", id, err))
				}
			}
			return errors.Join(errs...)
		})
}

package sqlite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/benbjohnson/litestream"
	"github.com/benbjohnson/litestream/file"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/pitr"
)

// Rebuild fetches the chosen base and segments into spec.Dir as a file replica and restores the database at
// spec.Target from it with Litestream: the state at the last sync at or before Target. Nothing runs: the
// result is a file, which the engine backs up like the live database.
func (k *Kind) Rebuild(ctx context.Context, spec pitr.RebuildSpec) (_ pitr.Rebuilt, err error) {
	if spec.Timeout <= 0 {
		spec.Timeout = 30 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, spec.Timeout)
	defer cancel()
	replica := filepath.Join(spec.Dir, "replica")
	l0, snapshots := litestream.LTXLevelDir(replica, 0), litestream.LTXLevelDir(replica, litestream.SnapshotLevel)
	for _, d := range []string{spec.Dir, l0, snapshots} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("create the rebuild directory: %w", err)
		}
	}
	defer func() {
		if err != nil {
			os.RemoveAll(spec.Dir) //nolint:errcheck
		}
	}()
	// The LTX files first, newest first: the growing segment is replaced by the follower at every sync, so it is
	// read before the base (any size) can let its snapshot go (ErrReplaced: plan again).
	for i := len(spec.Choice.Segments) - 1; i >= 0; i-- {
		if err := pitr.FetchDir(ctx, spec.Repo, spec.Choice.Segments[i], l0); err != nil {
			return nil, fmt.Errorf("read LTX files from the repository: %w", err)
		}
	}
	os.Remove(filepath.Join(l0, "commits")) //nolint:errcheck
	if err := pitr.FetchDir(ctx, spec.Repo, spec.Choice.Base.Snapshot, snapshots); err != nil {
		return nil, fmt.Errorf("read the base from the repository: %w", err)
	}

	// The file replica client dates each LTX file by its modification time, which fetching reset: give every
	// file its sync's time back (from its header). Reached is the newest sync at or before the target.
	var reached *time.Time
	for _, d := range []string{snapshots, l0} {
		files, err := l0Files(d)
		if err != nil {
			return nil, err
		}
		for _, lf := range files {
			p := filepath.Join(d, lf.name)
			ts, err := syncTime(p)
			if err != nil {
				return nil, err
			}
			if err := os.Chtimes(p, ts, ts); err != nil {
				return nil, fmt.Errorf("date LTX file %s: %w", lf.name, err)
			}
			if d == l0 && !ts.After(spec.Target) && (reached == nil || ts.After(*reached)) {
				t := ts
				reached = &t
			}
		}
	}

	name := filepath.Base(spec.Service.Path)
	if name == "." || name == string(filepath.Separator) {
		name = "database.sqlite"
	}
	out := filepath.Join(spec.Dir, name)
	opt := litestream.NewRestoreOptions()
	opt.OutputPath = out
	// Litestream takes the files created before Timestamp, and sync times are whole milliseconds: one
	// nanosecond later takes the syncs at or before the target too.
	opt.Timestamp = spec.Target.Add(time.Nanosecond)
	opt.IntegrityCheck = litestream.IntegrityCheckQuick
	rr := litestream.NewReplicaWithClient(nil, file.NewReplicaClient(replica))
	if err := rr.Restore(ctx, opt); err != nil {
		return nil, fmt.Errorf("restore %s at %s with litestream: %w", spec.Service.Name,
			spec.Target.UTC().Format(time.RFC3339Nano), err)
	}
	if err := os.RemoveAll(replica); err != nil {
		return nil, fmt.Errorf("remove the fetched LTX files: %w", err)
	}
	return &rebuilt{dir: spec.Dir, path: out, reached: reached}, nil
}

// rebuilt is a database file restored at a moment.
type rebuilt struct {
	dir, path string
	reached   *time.Time
}

// Spec is svc with the restored file as its path.
func (r *rebuilt) Spec(svc backup.ServiceSpec) backup.ServiceSpec {
	svc.Path = r.path
	return svc
}

// Reached is the time of the last sync restored.
func (r *rebuilt) Reached() *time.Time { return r.reached }

// Close removes the restored file and its directory.
func (r *rebuilt) Close() error {
	if err := os.RemoveAll(r.dir); err != nil {
		return fmt.Errorf("remove the rebuilt database: %w", err)
	}
	return nil
}

package backup

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/kopia/kopia/fs"
	"github.com/kopia/kopia/repo"
	"github.com/kopia/kopia/repo/object"
	"github.com/kopia/kopia/snapshot"
)

// kopia's snapshotfs presents a directory's modification time as the newest time found below it (the
// summary's MaxModTime), not the time it recorded. Restores and tars must put back the recorded times, so
// trueTimeDir reads each directory listing as stored and gives subdirectories their recorded times.
type trueTimeDir struct {
	fs.Directory
	r     repo.Repository
	mtime time.Time
}

func (d *trueTimeDir) ModTime() time.Time { return d.mtime }

// recordedTimes returns the recorded modification times of d's subdirectories.
func recordedTimes(ctx context.Context, r repo.Repository, d fs.Directory) (map[string]time.Time, error) {
	h, ok := d.(object.HasObjectID)
	if !ok {
		return nil, nil
	}
	rd, err := r.OpenObject(ctx, h.ObjectID())
	if err != nil {
		return nil, fmt.Errorf("open directory %s: %w", d.Name(), err)
	}
	defer rd.Close() //nolint:errcheck
	var dm snapshot.DirManifest
	if err := json.NewDecoder(rd).Decode(&dm); err != nil {
		return nil, fmt.Errorf("read directory %s: %w", d.Name(), err)
	}
	out := map[string]time.Time{}
	for _, e := range dm.Entries {
		if e.Type == snapshot.EntryTypeDirectory {
			out[e.Name] = e.ModTime.ToTime()
		}
	}
	return out, nil
}

func (d *trueTimeDir) wrap(times map[string]time.Time, e fs.Entry) fs.Entry {
	sub, ok := e.(fs.Directory)
	if !ok {
		return e
	}
	t, ok := times[e.Name()]
	if !ok {
		t = e.ModTime()
	}
	return &trueTimeDir{Directory: sub, r: d.r, mtime: t}
}

func (d *trueTimeDir) Child(ctx context.Context, name string) (fs.Entry, error) {
	e, err := d.Directory.Child(ctx, name)
	if err != nil {
		return nil, err //nolint:wrapcheck
	}
	times, err := recordedTimes(ctx, d.r, d.Directory)
	if err != nil {
		return nil, err
	}
	return d.wrap(times, e), nil
}

func (d *trueTimeDir) Iterate(ctx context.Context) (fs.DirectoryIterator, error) {
	times, err := recordedTimes(ctx, d.r, d.Directory)
	if err != nil {
		return nil, err
	}
	var ents []fs.Entry
	err = fs.IterateEntries(ctx, d.Directory, func(_ context.Context, e fs.Entry) error {
		ents = append(ents, d.wrap(times, e))
		return nil
	})
	if err != nil {
		return nil, err //nolint:wrapcheck
	}
	return fs.StaticIterator(ents, nil), nil
}

// backupRoot returns the root of a snapshot with recorded directory times.
// openBackup finds backup id and returns its root directory and its manifest (with Snapshot set). A missing
// backup wraps ErrNotFound.
func (e *Engine) openBackup(ctx context.Context, id string) (fs.Directory, *Manifest, error) {
	r := e.Repo.rep
	snap, err := e.findSnapshot(ctx, r, id)
	if err != nil {
		return nil, nil, err
	}
	root, err := backupRoot(r, snap)
	if err != nil {
		return nil, nil, fmt.Errorf("backup %s: %w", id, err)
	}
	m, err := readManifest(ctx, root)
	if err != nil {
		return nil, nil, fmt.Errorf("backup %s: %w", id, err)
	}
	m.Snapshot = string(snap.ID)
	return root, m, nil
}

func backupRoot(r repo.Repository, man *snapshot.Manifest) (fs.Directory, error) {
	d, err := rootOf(r, man)
	if err != nil {
		return nil, err
	}
	return &trueTimeDir{Directory: d, r: r, mtime: man.RootEntry.ModTime.ToTime()}, nil
}

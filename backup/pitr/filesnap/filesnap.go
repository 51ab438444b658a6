// Package filesnap is the point-in-time protection of files mounts: every Every (a minute by default) the
// follower snapshots the mount into the repository, incrementally (kopia reads again only the files whose size,
// modification time, mode or owner changed since the last snapshot, so an unchanged tree costs a walk of its
// metadata), and a tree identical to the last one is not saved again: the stream's coverage just moves on.
//
// How it maps onto the shared stream of backup/pitr: each saved tree is a segment named
// "<run>-<sequence>" (both zero-padded, so names sort in order; the run is the follower's start in
// nanoseconds), whose one change time is the moment its walk ended: the tree holds every change made before
// its walk began and none after its end, so restoring it for any T at or after that end never brings a change
// from after T. With one change time per segment, planning never needs a commits file inside the snapshot (the
// snapshot is the mount's tree itself). A base is a marker (no data of its own) that starts replay at a segment: one when a follower
// starts, and one every BaseEvery so pruning can drop what came before. A restart of Rewind starts a new run:
// the minutes it was down are a gap, not a span restored with an older tree.
//
// Rebuild restores the newest tree at or before T into a scratch directory, which the engine then backs up like
// any mount. The snapshots are live (nothing is paused): a file written while it is read may be caught half
// written, as in a live backup.
package filesnap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/files"
	"github.com/rewind/rewind/backup/pitr"
)

// Kind follows files mounts.
type Kind struct {
	// Every is how often the mount is snapshotted; when 0, FollowSpec.ShipEvery if set (tests), else a minute.
	Every time.Duration
}

var _ pitr.Kind = Kind{}

// Type is backup's files service type.
func (Kind) Type() string { return "files" }

// Slot is empty: nothing is kept on a server for a mount.
func (Kind) Slot(string, string) string { return "" }

// Release has nothing to free.
func (Kind) Release(context.Context, string, backup.ServiceSpec) error { return nil }

// Check verifies that the mount is a readable directory on this host and that its exclude patterns parse.
func (Kind) Check(_ context.Context, _ string, svc backup.ServiceSpec) []pitr.CheckResult {
	var out []pitr.CheckResult
	add := func(name, status, format string, args ...any) {
		out = append(out, pitr.CheckResult{Name: name, Status: status, Message: fmt.Sprintf(format, args...)})
	}
	fi, err := os.Stat(svc.Path)
	switch {
	case err != nil:
		add("mount", pitr.CheckFailed, "service %s: %v: the path must be a directory on the host Rewind runs on",
			svc.Name, err)
		return out
	case !fi.IsDir():
		add("mount", pitr.CheckFailed, "service %s: %s is not a directory: point the service at the mount's directory",
			svc.Name, svc.Path)
		return out
	}
	d, err := os.Open(svc.Path)
	if err == nil {
		_, err = d.Readdirnames(1)
		d.Close() //nolint:errcheck
	}
	if err != nil && !errors.Is(err, io.EOF) {
		add("mount", pitr.CheckFailed, "service %s: cannot read %s: %v: let the user Rewind runs as read it",
			svc.Name, svc.Path, err)
		return out
	}
	add("mount", pitr.CheckOK, "%s is a readable directory", svc.Path)
	if _, err := files.NewMatcher(svc.Exclude); err != nil {
		add("exclude", pitr.CheckFailed, "service %s: %v: fix the exclude patterns", svc.Name, err)
	}
	return out
}

// segment names: <run>-<sequence>.
const (
	runDigits = 20
	seqDigits = 10
)

func segmentName(run int64, seq int) string {
	return fmt.Sprintf("%0*d-%0*d", runDigits, run, seqDigits, seq)
}

func parseSegment(name string) (run int64, seq int, err error) {
	r, s, ok := strings.Cut(name, "-")
	if ok && len(r) == runDigits && len(s) == seqDigits {
		if run, err = strconv.ParseInt(r, 10, 64); err == nil {
			if seq, err = strconv.Atoi(s); err == nil {
				return run, seq, nil
			}
		}
	}
	return 0, 0, fmt.Errorf("not a files snapshot name: %q", name)
}

// NextSegment is the next snapshot of the same run.
func (Kind) NextSegment(name string) (string, error) {
	run, seq, err := parseSegment(name)
	if err != nil {
		return "", err
	}
	return segmentName(run, seq+1), nil
}

// Follow snapshots the mount every k.Every until ctx ends.
func (k Kind) Follow(ctx context.Context, spec pitr.FollowSpec) error {
	every := k.Every
	if every <= 0 {
		every = spec.ShipEvery
	}
	if every <= 0 {
		every = time.Minute
	}
	baseEvery := spec.BaseEvery
	if baseEvery <= 0 {
		baseEvery = 24 * time.Hour
	}
	now := spec.Now
	if now == nil {
		now = time.Now
	}
	svc := spec.Service
	if fi, err := os.Stat(svc.Path); err != nil || !fi.IsDir() {
		return fmt.Errorf("files service %q: %s is not a readable directory (run Test on the Settings tab)",
			svc.Name, svc.Path)
	}
	src, err := files.New(svc.Path, svc.Exclude)
	if err != nil {
		return fmt.Errorf("files service %q: %w", svc.Name, err)
	}
	// The pins stage changed files beside the mount under one name, so what a crash left there is removed here.
	ctx = backup.WithScratch(ctx, "pitr")
	if _, err := src.Sweep(ctx, "pitr"); err != nil {
		return fmt.Errorf("files service %q: remove an earlier run's stage: %w", svc.Name, err)
	}
	// Compare the first tree with the newest one shipped before (an earlier run), so a restart does not read
	// every file again.
	last, err := pitr.LatestShipped(ctx, spec.Repo, spec.Environment, svc.Name, "wal")
	if err != nil {
		return err
	}
	f := &follower{spec: spec, src: src, run: now().UnixNano(), now: now, last: last}
	for {
		// A file written while it is read spoils that tree (the files source notices): walk again at once, a
		// few times, before giving up to the runner's backoff.
		var err error
		for try := 1; try <= 5; try++ {
			if err = f.tick(ctx); err == nil || ctx.Err() != nil {
				break
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		if now().Sub(f.baseAt) >= baseEvery {
			// A new base at the newest tree, so that pruning can drop the older ones.
			if err := f.base(ctx); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
	}
}

type follower struct {
	spec pitr.FollowSpec
	src  *files.Source
	run  int64
	now  func() time.Time

	seq      int       // of the newest tree saved in this run (0: none yet)
	last     string    // snapshot id of the newest tree saved (by this run or, until it saves one, an earlier one)
	lastName string    // its segment name
	lastAt   time.Time // when its walk ended
	baseAt   time.Time // when the newest base was recorded
}

// tick snapshots the tree once. The run's first tree is always saved, and is its first base.
func (f *follower) tick(ctx context.Context) error {
	svc, env := f.spec.Service, f.spec.Environment
	started := f.now()
	staged, err := f.src.Stage(ctx, backup.NopProgress)
	if err != nil {
		return fmt.Errorf("walk %s: %w", svc.Path, err)
	}
	defer staged.Close() //nolint:errcheck
	capt, err := staged.Pin(ctx)
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", svc.Path, err)
	}
	defer capt.Close() //nolint:errcheck
	root, err := capt.Folder(ctx, backup.NopProgress)
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", svc.Path, err)
	}
	name := segmentName(f.run, f.seq+1)
	first := f.seq == 0
	id, size, unchanged, err := pitr.ShipTree(ctx, f.spec.Repo, env, svc.Name, "wal", name, root, f.last, first,
		"snapshot "+name+" of "+env+"/"+svc.Name)
	if err != nil {
		return err
	}
	if unchanged {
		return f.spec.Record.Report(ctx, pitr.Report{CoveredUntil: started})
	}
	ended := f.now()
	replaced, err := f.spec.Record.SegmentShipped(ctx, pitr.Segment{Name: name, Snapshot: id,
		Commits: []time.Time{ended}, ReadAt: ended, Bytes: size})
	if err != nil {
		pitr.DeleteSnapshots(context.WithoutCancel(ctx), f.spec.Repo, id) //nolint:errcheck
		return err
	}
	if replaced != "" && replaced != id {
		pitr.DeleteSnapshots(ctx, f.spec.Repo, replaced) //nolint:errcheck
	}
	f.seq, f.last, f.lastName, f.lastAt = f.seq+1, id, name, ended
	if first {
		if err := f.base(ctx); err != nil {
			return err
		}
	}
	return f.spec.Record.Report(ctx, pitr.Report{CoveredUntil: started, LastCommit: ended})
}

// base records a base starting at the newest saved tree: restorable from the end of its walk.
func (f *follower) base(ctx context.Context) error {
	f.baseAt = f.now()
	return f.spec.Record.BaseShipped(ctx, pitr.Base{SystemID: "files:" + f.spec.Service.Path, StartWAL: f.lastName,
		StartedAt: f.lastAt, FinishedAt: f.lastAt})
}

// rebuilt is a tree restored into a scratch directory.
type rebuilt struct {
	dir, tree string
	reached   *time.Time
}

func (r *rebuilt) Spec(svc backup.ServiceSpec) backup.ServiceSpec {
	return backup.ServiceSpec{Name: svc.Name, Type: svc.Type, Path: r.tree}
}

func (r *rebuilt) Reached() *time.Time { return r.reached }

func (r *rebuilt) Close() error { return os.RemoveAll(r.dir) }

// Rebuild restores the newest tree at or before spec.Target into spec.Dir/tree.
func (Kind) Rebuild(ctx context.Context, spec pitr.RebuildSpec) (pitr.Rebuilt, error) {
	segs := spec.Choice.Segments
	if !spec.Choice.ToEnd {
		segs = segs[:len(segs)-1] // the last one is the first tree after T
	}
	if len(segs) == 0 {
		return nil, fmt.Errorf("no snapshot of %s at or before %s", spec.Service.Name, spec.Target.UTC().Format(time.RFC3339Nano))
	}
	if err := os.MkdirAll(spec.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create scratch directory: %w", err)
	}
	r := &rebuilt{dir: spec.Dir, tree: filepath.Join(spec.Dir, "tree"), reached: spec.Choice.Reached}
	root, err := pitr.OpenShipped(ctx, spec.Repo, segs[len(segs)-1])
	if err != nil {
		r.Close() //nolint:errcheck
		return nil, err
	}
	dst, err := files.New(r.tree, nil)
	if err != nil {
		r.Close() //nolint:errcheck
		return nil, err
	}
	prep, err := dst.Prepare(ctx, root, backup.NopProgress)
	if err != nil {
		r.Close() //nolint:errcheck
		return nil, fmt.Errorf("restore the snapshot of %s: %w", spec.Service.Name, err)
	}
	if _, err := prep.Switch(ctx); err != nil {
		prep.Discard(ctx) //nolint:errcheck
		r.Close()         //nolint:errcheck
		return nil, fmt.Errorf("restore the snapshot of %s: %w", spec.Service.Name, err)
	}
	return r, nil
}

package sqlite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/benbjohnson/litestream"
	"github.com/benbjohnson/litestream/file"
	"github.com/superfly/ltx"

	"github.com/rewind/rewind/backup/pitr"
)

// The spool of a follower: Litestream's metadata (its local LTX files), the replica the file client writes, the
// stream's generation, and the staging of what is being shipped.
const (
	spoolMeta       = "litestream"
	spoolReplica    = "replica"
	spoolGeneration = "generation"
	spoolShip       = "ship"
)

// follower is one run of Follow.
type follower struct {
	spec    pitr.FollowSpec
	path    string
	gen     string
	replica string // the file replica client's root
	db      *litestream.DB
	r       *litestream.Replica

	recMu   sync.Mutex          // one Recorder call at a time (the base goroutine and the shipping loop)
	shipped map[string]ltx.TXID // growing segments shipped in this run: the newest TXID each held
}

func (f *follower) now() time.Time {
	if f.spec.Now != nil {
		return f.spec.Now()
	}
	return time.Now()
}

// Follow runs Litestream on the service's database and ships its syncs until ctx ends; see the package doc.
func (k *Kind) Follow(ctx context.Context, spec pitr.FollowSpec) (err error) {
	if spec.ShipEvery <= 0 {
		spec.ShipEvery = time.Second
	}
	if spec.BaseEvery <= 0 {
		spec.BaseEvery = 24 * time.Hour
	}
	if err := k.failedCheck(ctx, spec.Environment, spec.Service); err != nil {
		return err
	}
	f := &follower{spec: spec, path: spec.Service.Path, replica: filepath.Join(spec.Spool, spoolReplica),
		shipped: map[string]ltx.TXID{}}
	fresh, err := f.generation()
	if err != nil {
		return err
	}
	id, finished, ok, err := spec.Record.LatestBase(ctx)
	if err != nil {
		return err
	}
	if ok && id != f.gen {
		reason := "Rewind's local Litestream state for this database was lost"
		if !fresh {
			reason = "the catalog's newest base belongs to another Litestream stream than the follower's spool"
		}
		if err := f.record(func() error {
			return spec.Record.Gap(ctx, reason+": changes since the last shipped sync cannot be restored; "+
				"starting again from a new base")
		}); err != nil {
			return err
		}
	}
	needBase := !ok || id != f.gen || f.now().Sub(finished) > spec.BaseEvery

	if err := f.open(); err != nil {
		return err
	}
	defer func() {
		// Close syncs once more; what it writes is shipped by the next Follow.
		if cerr := f.db.Close(context.WithoutCancel(ctx)); cerr != nil && err == nil && ctx.Err() == nil {
			err = fmt.Errorf("close litestream on %s: %w", f.path, cerr)
		}
	}()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	baseDone := make(chan error, 1)
	baseRunning := false
	lastBase := finished
	defer func() {
		if baseRunning {
			cancel()
			<-baseDone
		}
	}()

	tick := time.NewTicker(spec.ShipEvery)
	defer tick.Stop()
	for {
		if err := f.round(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if needBase && !baseRunning {
			needBase, baseRunning = false, true
			go func() { baseDone <- f.base(ctx) }()
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-baseDone:
			baseRunning = false
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			lastBase = f.now()
		case <-tick.C:
		}
		if !baseRunning && f.now().Sub(lastBase) > spec.BaseEvery {
			needBase = true
		}
	}
}

// generation reads the stream's generation from the spool, or starts a new one (clearing any Litestream
// state, so its transaction ids start again at 1) when the spool has none; fresh says it is new.
func (f *follower) generation() (fresh bool, err error) {
	if err := os.MkdirAll(f.spec.Spool, 0o700); err != nil {
		return false, fmt.Errorf("create the follower's spool: %w", err)
	}
	p := filepath.Join(f.spec.Spool, spoolGeneration)
	raw, err := os.ReadFile(p)
	if err == nil {
		if _, _, perr := parseSegment(string(raw) + "-" + ltx.TXID(1).String()); perr == nil {
			f.gen = string(raw)
			return false, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("read the stream's generation: %w", err)
	}
	for _, d := range []string{spoolMeta, spoolReplica, spoolShip} {
		if err := os.RemoveAll(filepath.Join(f.spec.Spool, d)); err != nil {
			return false, fmt.Errorf("clear the follower's spool: %w", err)
		}
	}
	f.gen = fmt.Sprintf("%016x", time.Now().UnixNano())
	if err := pitr.WriteFileAtomic(p, []byte(f.gen)); err != nil {
		return false, fmt.Errorf("write the stream's generation: %w", err)
	}
	return true, nil
}

// open starts Litestream on the database: its metadata in the spool, its replica the spool's file client, and
// no goroutines of its own (round drives both syncs, so their errors end Follow).
func (f *follower) open() error {
	db := litestream.NewDB(f.path)
	db.SetMetaPath(filepath.Join(f.spec.Spool, spoolMeta))
	db.MonitorInterval = 0
	db.ShutdownSyncTimeout = 0
	db.Logger = slog.Default().With("pitr", "sqlite", "environment", f.spec.Environment, "service", f.spec.Service.Name)
	client := file.NewReplicaClient(f.replica)
	r := litestream.NewReplicaWithClient(db, client)
	r.MonitorEnabled = false
	client.Replica = r
	db.Replica = r
	if err := db.Open(); err != nil {
		return fmt.Errorf("start litestream on %s: %w", f.path, err)
	}
	f.db, f.r = db, r
	return nil
}

// record runs one Recorder call, one at a time.
func (f *follower) record(call func() error) error {
	f.recMu.Lock()
	defer f.recMu.Unlock()
	return call()
}

// round syncs the database (its new WAL frames become one LTX file), copies the new LTX files into the replica,
// ships them, and reports the stream covered up to the moment the sync began.
func (f *follower) round(ctx context.Context) error {
	began := f.now()
	if err := f.db.Sync(ctx); err != nil {
		return fmt.Errorf("litestream sync of %s: %w", f.path, err)
	}
	if err := f.r.Sync(ctx); err != nil {
		return fmt.Errorf("litestream replica of %s: %w", f.path, err)
	}
	last, err := f.ship(ctx)
	if err != nil {
		return err
	}
	if err := f.pruneLocal(); err != nil {
		return err
	}
	return f.record(func() error {
		return f.spec.Record.Report(ctx, pitr.Report{CoveredUntil: began, LastCommit: last})
	})
}

// ltxFile is one L0 LTX file of a directory.
type ltxFile struct {
	name string
	txid ltx.TXID
}

// l0Files lists the L0 LTX files of dir in TXID order.
func l0Files(dir string) ([]ltxFile, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	var out []ltxFile
	for _, e := range ents {
		if _, maxTX, err := ltx.ParseFilename(e.Name()); err == nil {
			out = append(out, ltxFile{name: e.Name(), txid: maxTX})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].txid < out[j].txid })
	return out, nil
}

// ship ships every segment of the replica that changed since it was last shipped in this run, and removes the
// files of segments that are complete (a later TXID exists) once shipped. It returns the newest sync shipped.
func (f *follower) ship(ctx context.Context) (time.Time, error) {
	var newest time.Time
	dir := litestream.LTXLevelDir(f.replica, 0)
	files, err := l0Files(dir)
	if err != nil || len(files) == 0 {
		return newest, err
	}
	readAt := f.now()
	maxTX := files[len(files)-1].txid
	for i := 0; i < len(files); {
		name := segmentName(f.gen, files[i].txid)
		j := i
		for j < len(files) && segmentName(f.gen, files[j].txid) == name {
			j++
		}
		seg, last := files[i:j], files[j-1].txid
		_, first, _ := parseSegment(name)
		complete := uint64(maxTX) >= first+segmentTXIDs
		i = j
		if !complete && f.shipped[name] == last {
			continue
		}
		commits, err := f.shipSegment(ctx, dir, name, seg, !complete, readAt)
		if err != nil {
			return newest, err
		}
		if n := len(commits); n > 0 && commits[n-1].After(newest) {
			newest = commits[n-1]
		}
		if !complete {
			f.shipped[name] = last
			continue
		}
		delete(f.shipped, name)
		for _, lf := range seg {
			if err := os.Remove(filepath.Join(dir, lf.name)); err != nil {
				return newest, fmt.Errorf("remove shipped LTX file: %w", err)
			}
		}
	}
	return newest, nil
}

// shipSegment ships the LTX files of one segment, with the time of each sync, as one snapshot and records it.
func (f *follower) shipSegment(ctx context.Context, dir, name string, seg []ltxFile, partial bool,
	readAt time.Time,
) ([]time.Time, error) {
	stage := filepath.Join(f.spec.Spool, spoolShip, name)
	if err := os.RemoveAll(stage); err != nil {
		return nil, fmt.Errorf("clear stage: %w", err)
	}
	if err := os.MkdirAll(stage, 0o700); err != nil {
		return nil, fmt.Errorf("create stage: %w", err)
	}
	defer os.RemoveAll(stage) //nolint:errcheck
	var commits []time.Time
	for _, lf := range seg {
		src := filepath.Join(dir, lf.name)
		ts, err := syncTime(src)
		if err != nil {
			return nil, err
		}
		commits = append(commits, ts)
		if err := os.Link(src, filepath.Join(stage, lf.name)); err != nil {
			return nil, fmt.Errorf("stage LTX file %s: %w", lf.name, err)
		}
	}
	if err := os.WriteFile(filepath.Join(stage, "commits"), pitr.MarshalCommits(commits), 0o600); err != nil {
		return nil, fmt.Errorf("write commits of %s: %w", name, err)
	}
	env, svc := f.spec.Environment, f.spec.Service.Name
	snap, size, err := pitr.ShipDir(ctx, f.spec.Repo, env, svc, "wal", name, stage,
		"LTX segment "+name+" of "+env+"/"+svc)
	if err != nil {
		return nil, err
	}
	s := pitr.Segment{Name: name, Snapshot: snap, Partial: partial, Commits: commits,
		LastLSN: seg[len(seg)-1].txid.String(), ReadAt: readAt, Bytes: size}
	var replaced string
	err = f.record(func() (err error) { replaced, err = f.spec.Record.SegmentShipped(ctx, s); return err })
	if err != nil {
		pitr.DeleteSnapshots(context.WithoutCancel(ctx), f.spec.Repo, snap) //nolint:errcheck
		return nil, err
	}
	if replaced != "" && replaced != snap {
		// Once recorded, the replaced snapshot is no one's: delete it even when Follow is being stopped.
		if err := pitr.DeleteSnapshots(context.WithoutCancel(ctx), f.spec.Repo, replaced); err != nil {
			return nil, err
		}
	}
	return commits, nil
}

// syncTime is the time of the sync that wrote the LTX file at path (its header's timestamp, in milliseconds).
func syncTime(path string) (time.Time, error) {
	fh, err := os.Open(path)
	if err != nil {
		return time.Time{}, fmt.Errorf("open LTX file: %w", err)
	}
	defer fh.Close() //nolint:errcheck
	hdr, _, err := ltx.PeekHeader(fh)
	if err != nil {
		return time.Time{}, fmt.Errorf("read the header of LTX file %s: %w", filepath.Base(path), err)
	}
	return time.UnixMilli(hdr.Timestamp).UTC(), nil
}

// pruneLocal removes Litestream's local LTX files that its replica already holds, but the newest, from which
// Litestream reads its position. (Without its Store nothing else would remove them.)
func (f *follower) pruneLocal() error {
	dir := f.db.LTXLevelDir(0)
	files, err := l0Files(dir)
	if err != nil {
		return err
	}
	held := f.r.Pos().TXID
	for i, lf := range files {
		if i == len(files)-1 || lf.txid >= held {
			break
		}
		if err := os.Remove(filepath.Join(dir, lf.name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove replicated LTX file: %w", err)
		}
	}
	return nil
}

// base ships a Litestream snapshot of the whole database at its current TXID as a new base.
func (f *follower) base(ctx context.Context) error {
	started := f.now()
	pos, rd, err := f.db.SnapshotReader(ctx)
	if err != nil {
		return fmt.Errorf("litestream snapshot of %s: %w", f.path, err)
	}
	dir := filepath.Join(f.spec.Spool, fmt.Sprintf("base-%d", started.UnixNano()))
	defer os.RemoveAll(dir) //nolint:errcheck
	err = os.MkdirAll(dir, 0o700)
	file := filepath.Join(dir, ltx.FormatFilename(1, pos.TXID))
	if err == nil {
		err = writeFrom(file, rd)
	}
	if cerr := rd.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write the snapshot of %s: %w", f.path, err)
	}
	finished, err := syncTime(file)
	if err != nil {
		return err
	}
	env, svc := f.spec.Environment, f.spec.Service.Name
	start := segmentName(f.gen, pos.TXID)
	snap, size, err := pitr.ShipDir(ctx, f.spec.Repo, env, svc, "base", start, dir, "base of "+env+"/"+svc)
	if err != nil {
		return err
	}
	b := pitr.Base{Snapshot: snap, SystemID: f.gen, StartLSN: pos.TXID.String(), EndLSN: pos.TXID.String(),
		StartWAL: start, StartedAt: started, FinishedAt: finished, Bytes: size}
	if err := f.record(func() error { return f.spec.Record.BaseShipped(ctx, b) }); err != nil {
		pitr.DeleteSnapshots(context.WithoutCancel(ctx), f.spec.Repo, snap) //nolint:errcheck
		return err
	}
	return nil
}

// writeFrom writes r into a new file at path and syncs it.
func writeFrom(path string, r io.Reader) error {
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err //nolint:wrapcheck // the caller says what it wrote
	}
	_, err = io.Copy(out, r)
	if serr := out.Sync(); err == nil {
		err = serr
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

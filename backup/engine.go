package backup

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kopia/kopia/fs"
	"github.com/kopia/kopia/repo"
	"github.com/kopia/kopia/repo/manifest"
	"github.com/kopia/kopia/repo/object"
	"github.com/kopia/kopia/snapshot"
	"github.com/kopia/kopia/snapshot/snapshotfs"
)

// HoldFunc pauses the environment (the gate stops dispatching, or the pre_pause hook runs) and returns the
// function that releases it. The engine calls release exactly once.
type HoldFunc func(ctx context.Context) (release func(), err error)

// Engine backs up and restores environments into one Repository. Its zero value is not usable: Repo and
// Drivers are required. Methods are safe for concurrent use; the caller (the job runner) makes sure one
// environment runs one backup or restore at a time.
type Engine struct {
	Repo    *Repository
	Drivers map[string]Driver // service type → Driver
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Parallel is the number of files read and uploaded at once; 0 means two per CPU (see parallel).
	Parallel int
	// FilesCompression is the kopia compressor of the files of files services; "" means
	// DefaultFilesCompression. Everything else uses the repository's compressor (DefaultCompression).
	FilesCompression string
}

// DefaultCompression is the repository's compressor: what the database dumps (and the metadata) are stored with.
//
// A dump is one stream, compressed on one CPU while the database server and the dump tool use the others, so
// its compressor is what a backup waits for: with "zstd" (klauspost/compress at SpeedDefault) a 490 MB pgbench
// dump took 2.12-2.15 s against 1.91-1.94 s for a plain `pg_dump -Fc` (bench/db.sh, scale 50, 3 rounds, load
// 0.9); with "zstd-fastest" 1.87-1.96 s (ratio 0.98), stored 2% larger (4.3 MB instead of 4.2 MB, a third of
// pg_dump's own 13.4 MB), and the run's peak RSS fell from 231 to 181 MB (the encoder's smaller tables).
const DefaultCompression = "zstd-fastest"

// DefaultFilesCompression compresses the files of files services.
//
// Not the repository's compressor: zstd's encoder at SpeedDefault (and faster) stores a 128 KiB block as is
// when it finds too few repeated strings in it, without entropy-coding its bytes, so base64 text (mail
// attachments, PEM certificates, keys and encrypted fields in JSON or YAML, data URIs) is not compressed at
// all, where zstd -3 codes it to 3/4 of its size. "zstd-better-compression" does, and finds more repeats in
// ordinary text (Go source: 10% smaller output), at 2-3x the CPU time (per CPU: base64 440 MB/s, Go source
// 190, random bytes 1,200, hex text 43; "zstd": 2,200 doing nothing, 360, 1,700, 100). A files tree is read
// several files at once on every CPU (see parallel), so it can afford that; a database dump is one stream,
// compressed on one CPU as the dump tool writes it, so it keeps the fast level (a 100 MB text stream took
// 1.5 s instead of 0.9 s with this one). Any kopia reads every zstd level: this is no format change.
const DefaultFilesCompression = "zstd-better-compression"

// MemoryLimit is the Go runtime's soft memory limit in the rewind binary unless GOMEMLIMIT is set. A backup
// churns through chunk and compression buffers; without a limit the heap grows to twice its live size between
// collections, so a 2 GB files backup peaked at 520 MB RSS with GOMAXPROCS 8 and 8 parallel uploads. It is
// soft: a larger live heap is never refused, the collector just runs more often. With FilesSplitter a 2 GB
// files backup holds at most about 140 MB live on 2 CPUs and peaks at 171 MB RSS (bench/mem.sh); kopia's
// password key derivation (scrypt) takes 64 MB for a moment at every open.
const MemoryLimit = 160 << 20

// FilesSplitter cuts the files of files services into contents of 1 MiB on average (512 KiB to 2 MiB; restic's
// average too), not the repository's 4 MiB (2 to 8 MiB). Each file read at once holds a content or two in
// memory at every stage (split, compressed, encrypted), two files per CPU: with 4 MiB contents a 2 GB backup
// held 190 MB live on 2 CPUs, with 1 MiB 137 MB, so it stays under the server's 160 MiB memory limit without
// the collector running all the time. A change inside a large file also uploads less. Contents are named by
// their hash, so the first backup of a repository written with 4 MiB contents uploads its files larger than
// 512 KiB once more; database streams keep the repository's splitter. Any kopia reads every splitter.
const FilesSplitter = "DYNAMIC-1M-BUZHASH"

// parallel is the number of files kopia reads and uploads at once. Each file is a two-stage pipeline (one
// goroutine reads, checksums and splits it; another hashes, compresses and encrypts its previous chunk), and
// either stage often waits for the other, so one file per CPU left the CPUs half idle: two per CPU keep them
// busy, in the same memory (bench/files.sh's 300 MB tree on 2 CPUs, GOMEMLIMIT 200 MiB: first backup 1.8-2.0 s
// with 2 files at once, 1.1-1.2 s with 4, the same CPU time and peak RSS 219 MB; 8 are no faster than 4).
// Restic, for comparison, reads 2 files at once into a pool of one compressing and encrypting worker per CPU.
func (e *Engine) parallel() int {
	if e.Parallel > 0 {
		return e.Parallel
	}
	return 2 * runtime.GOMAXPROCS(0)
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now().UTC()
	}
	return time.Now().UTC()
}

// Stager is optionally implemented by a Source whose pin cannot be instant (a files tree on a filesystem
// without reflinks). Stage runs outside the pause; the engine uploads the StagedSource's Folder (the live
// state, read while the app runs) ahead of the pin, and then, within the pause, calls its Pin, which re-reads
// only what changed since. The final upload reuses what the first pass uploaded.
type Stager interface {
	Stage(ctx context.Context, p Progress) (StagedSource, error)
}

// StagedSource is a Source's work done ahead of the pause.
type StagedSource interface {
	// Folder returns the live state for the first pass. A file that changes while it is read fails its read;
	// the engine tolerates such failures in the first pass (Pin catches up on them).
	Folder(ctx context.Context, p Progress) (fs.Directory, error)
	// Pin is Source.Pin, finishing from the first pass; the returned Capture owns whatever it staged.
	Pin(ctx context.Context) (Capture, error)
	// Close releases the staged state. Safe to call more than once.
	Close() error
}

// Rereader is optionally implemented by the Capture of a StagedSource: Reread names the files of its folder
// (slash-separated, relative to it) that changed since the first pass while keeping their size, modification
// time, mode and owner, so the engine must not let the repository reuse the first pass's copy of them.
type Rereader interface {
	Reread() []string
}

// BackupRequest says what to back up.
type BackupRequest struct {
	ID          string // the backup id; NewID() when empty
	Environment string // slug
	Kind        string // KindManual, KindAutomated, KindPreRestore or KindDrill
	Live        bool   // pin without pausing
	Commit      string // the environment's code commit, when known
	Services    []ServiceSpec
	// Hold pauses the environment for the pins of a consistent backup; nil (or Live) pins without pausing.
	Hold HoldFunc
	// RestoredFrom is, for a pre-restore backup, the id of the backup being restored.
	RestoredFrom string
}

// ServiceError is a failure of one service; the engine's errors wrap it so the runner can name the service.
type ServiceError struct {
	Op      string // "capture", "pin", "prepare", "switch", ...
	Service string
	Type    string
	Err     error
}

func (e *ServiceError) Error() string {
	return fmt.Sprintf("%s service %q (%s): %v", e.Op, e.Service, e.Type, e.Err)
}

func (e *ServiceError) Unwrap() error { return e.Err }

// StorageError is a backup that failed writing into the repository's storage (a full disk, an unreachable or
// refusing S3 endpoint) rather than reading one of its services (a *ServiceError). Its message is the cause's.
type StorageError struct{ Err error }

func (e *StorageError) Error() string { return e.Err.Error() }

func (e *StorageError) Unwrap() error { return e.Err }

// storageError wraps err, the failure of a write session, as a *StorageError unless a service or a
// cancellation caused it.
func storageError(err error) error {
	var se *ServiceError
	if errors.As(err, &se) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return &StorageError{Err: err}
}

// ErrNotFound is returned when a backup does not exist in the repository.
var ErrNotFound = errors.New("backup not found")

// ErrExists is returned by Backup and BackupReplaced when the repository already holds a backup with the
// requested id (e.g. a retried job whose first run completed): nothing is captured.
var ErrExists = errors.New("backup already exists")

// pinner pins one service; stage (optional) runs before the pause.
type pinner struct {
	spec  ServiceSpec
	src   Source
	stage StagedSource
	pin   func(ctx context.Context) (Capture, error)
}

type pinnedService struct {
	spec ServiceSpec
	capt Capture
	info ServiceInfo
}

// Backup captures every service of req into one snapshot and returns its manifest. When any capture fails no
// snapshot is saved and the error names the service (a *ServiceError).
func (e *Engine) Backup(ctx context.Context, req BackupRequest, p Progress) (*Manifest, error) {
	if p == nil {
		p = NopProgress
	}
	if err := e.checkRequest(ctx, &req); err != nil {
		return nil, err
	}
	ctx = WithScratch(ctx, req.ID)
	pinners := make([]*pinner, 0, len(req.Services))
	for _, spec := range req.Services {
		src, err := e.source(spec)
		if err != nil {
			return nil, err
		}
		pn := &pinner{spec: spec, src: src, pin: src.Pin}
		pinners = append(pinners, pn)
	}
	defer func() {
		for _, pn := range pinners {
			if pn.stage != nil {
				pn.stage.Close() //nolint:errcheck
			}
		}
	}()
	for _, pn := range pinners {
		st, ok := pn.src.(Stager)
		if !ok {
			continue
		}
		staged, err := st.Stage(ctx, NopProgress)
		if err != nil {
			return nil, &ServiceError{Op: "stage", Service: pn.spec.Name, Type: pn.spec.Type, Err: err}
		}
		pn.stage, pn.pin = staged, staged.Pin
	}
	pre, err := e.prestage(ctx, req, pinners, p)
	if err != nil {
		return nil, err
	}
	hold := req.Hold
	if req.Live {
		hold = nil
	}
	return e.backup(ctx, req, pinners, hold, p, pre)
}

// ReplacedService is one service's state moved aside by a restore.
type ReplacedService struct {
	Spec     ServiceSpec
	Replaced Replaced
}

// BackupReplaced captures the states a restore moved aside (RestoreResult.Replaced) as one backup, normally of
// kind KindPreRestore with RestoredFrom set. It does not pause (the moved-aside states are no longer live) and
// records the backup as live. The caller Discards the Replaced states afterwards.
func (e *Engine) BackupReplaced(ctx context.Context, req BackupRequest, replaced []ReplacedService, p Progress) (*Manifest, error) {
	if p == nil {
		p = NopProgress
	}
	req.Services = nil
	for _, r := range replaced {
		req.Services = append(req.Services, r.Spec)
	}
	req.Live = true // captured without a pause: the states are no longer live, nothing to hold
	if err := e.checkRequest(ctx, &req); err != nil {
		return nil, err
	}
	pinners := make([]*pinner, 0, len(replaced))
	for _, r := range replaced {
		pinners = append(pinners, &pinner{spec: r.Spec, pin: r.Replaced.Pin})
	}
	return e.backup(ctx, req, pinners, nil, p, nil)
}

func (e *Engine) checkRequest(ctx context.Context, req *BackupRequest) error {
	if req.ID == "" {
		req.ID = NewID()
	}
	if !ValidID(req.ID) {
		return fmt.Errorf("backup id %q is not 20 lowercase hex characters", req.ID)
	}
	if !slugPattern.MatchString(req.Environment) {
		return fmt.Errorf("environment name %q is not a slug", req.Environment)
	}
	switch req.Kind {
	case KindManual, KindAutomated, KindPreRestore, KindDrill:
	default:
		return fmt.Errorf("unknown backup kind %q", req.Kind)
	}
	if len(req.Services) == 0 {
		return errors.New("environment has no services to back up")
	}
	if _, err := e.findSnapshot(ctx, e.Repo.rep, req.ID); err == nil {
		return fmt.Errorf("%w: %s", ErrExists, req.ID)
	} else if !errors.Is(err, ErrNotFound) {
		return storageError(err)
	}
	seen := map[string]bool{}
	for _, s := range req.Services {
		if !ValidServiceName(s.Name) {
			return fmt.Errorf("service name %q is not a slug", s.Name)
		}
		if seen[s.Name] {
			return fmt.Errorf("service %q listed twice", s.Name)
		}
		seen[s.Name] = true
	}
	return nil
}

// Subtree is optionally implemented by a Source of a tree (files): Subtree returns the Source of its sub-tree
// sub (a clean path, see SubPath), which captures, restores and summarizes that sub-tree alone
// (ServiceSpec.Sub). With entry, sub is a single file or symlink: the Source's folders are sub's directory
// holding that entry alone (nothing when it is absent), and its restore replaces that entry alone
// (ServiceSpec.Entry). A Source without it cannot restore part of its service.
type Subtree interface {
	Subtree(sub string, entry bool) (Source, error)
}

// source opens the Source of spec, narrowed to spec.Sub when set.
func (e *Engine) source(spec ServiceSpec) (Source, error) {
	d := e.Drivers[spec.Type]
	if d == nil {
		return nil, fmt.Errorf("service %q: no driver for type %q", spec.Name, spec.Type)
	}
	sub, entry := spec.Sub, spec.Entry
	spec.Sub, spec.Entry = "", false
	src, err := d(spec)
	if err != nil {
		return nil, &ServiceError{Op: "open", Service: spec.Name, Type: spec.Type, Err: err}
	}
	if sub == "" {
		return src, nil
	}
	st, ok := src.(Subtree)
	if !ok {
		return nil, fmt.Errorf("%w: service %q (%s) cannot restore part of itself: leave out the path", ErrBadPath,
			spec.Name, spec.Type)
	}
	if src, err = st.Subtree(sub, entry); err != nil {
		return nil, &ServiceError{Op: "open", Service: spec.Name, Type: spec.Type, Err: err}
	}
	return src, nil
}

// backup pins (within hold, when given) and stores.
func (e *Engine) backup(ctx context.Context, req BackupRequest, pinners []*pinner, hold HoldFunc, p Progress, pre *firstPass) (*Manifest, error) {
	started := e.now()
	pinned := make([]*pinnedService, 0, len(pinners))
	defer func() {
		for _, ps := range pinned {
			ps.capt.Close() //nolint:errcheck
		}
	}()

	var pause time.Duration
	err := func() error {
		if hold != nil {
			// The pause counts from the moment the hold starts (it waits for in-flight requests) to release.
			holdStart := time.Now()
			release, err := hold(ctx)
			if err != nil {
				return fmt.Errorf("pause environment: %w", err)
			}
			defer func() {
				release()
				pause = time.Since(holdStart)
			}()
		}
		for _, pn := range pinners {
			t0 := time.Now()
			c, err := pn.pin(ctx)
			if err != nil {
				return &ServiceError{Op: "pin", Service: pn.spec.Name, Type: pn.spec.Type, Err: err}
			}
			if pn.stage != nil {
				pn.stage = nil // the capture owns the staged data now
			}
			info := c.Info()
			if info.PinDuration == 0 {
				info.PinDuration = time.Since(t0)
			}
			if info.PinnedAt.IsZero() {
				info.PinnedAt = e.now()
			}
			pinned = append(pinned, &pinnedService{spec: pn.spec, capt: c, info: info})
		}
		return nil
	}()
	if err != nil {
		return nil, err
	}

	m := &Manifest{
		Format:       ManifestFormat,
		ID:           req.ID,
		Environment:  req.Environment,
		Kind:         req.Kind,
		Live:         req.Live,
		Commit:       req.Commit,
		RestoredFrom: req.RestoredFrom,
		StartedAt:    started,
		Pause:        pause,
	}
	if err := e.store(ctx, m, pinned, p, pre); err != nil {
		return nil, err
	}
	return m, nil
}

// sumsProgress aggregates the per-service totals a Folder or Prepare reports; bytes are counted by the
// hashing wrapper instead, so Add is ignored here.
type totals struct {
	p  Progress
	mu sync.Mutex
	m  map[string]int64
}

func (t *totals) forService(name string) Progress { return serviceTotal{t, name} }

type serviceTotal struct {
	t    *totals
	name string
}

func (s serviceTotal) SetTotal(n int64) {
	s.t.mu.Lock()
	s.t.m[s.name] = n
	var sum int64
	for _, v := range s.t.m {
		sum += v
	}
	s.t.mu.Unlock()
	s.t.p.SetTotal(sum)
}

func (serviceTotal) Add(int64) {}

// store streams every pinned service into one snapshot whose root holds rewind.json, SHA256SUMS and one folder
// per service. Nothing is saved unless every service streamed completely.
func (e *Engine) store(ctx context.Context, m *Manifest, pinned []*pinnedService, p Progress, pre *firstPass) error {
	tot := &totals{p: p, m: map[string]int64{}}
	for _, ps := range pinned {
		tot.forService(ps.spec.Name).SetTotal(ps.info.EstimatedBytes)
	}
	rec := newHashRecorder(p)
	reread := map[string][]string{}
	for _, ps := range pinned {
		if rr, ok := ps.capt.(Rereader); ok {
			reread[ps.spec.Name] = rr.Reread()
		}
	}
	folders := make([]fs.Entry, 0, len(pinned))
	for _, ps := range pinned {
		d, err := ps.capt.Folder(ctx, tot.forService(ps.spec.Name))
		if err != nil {
			return &ServiceError{Op: "capture", Service: ps.spec.Name, Type: ps.spec.Type, Err: err}
		}
		folders = append(folders, namedDir{Directory: wrapHashing(d, ps.spec.Name, rec), name: ps.spec.Name})
	}

	// stored counts the bytes this backup's sessions upload (Manifest.StoredBytes): the first pass's, then
	// this session's, whose OnUpload sees only its own writes however many backups run at once.
	var stored atomic.Int64
	if pre != nil {
		stored.Store(pre.stored)
	}
	uploadSource := snapshot.SourceInfo{Host: kopiaHost, UserName: kopiaUser, Path: "/rewind-upload/" + m.ID}
	err := repo.WriteSession(ctx, e.Repo.rep, repo.WriteSessionOptions{Purpose: "rewind backup " + m.ID,
		OnUpload: func(n int64) { stored.Add(n) }},
		func(ctx context.Context, w repo.RepositoryWriter) error {
			return e.upload(ctx, w, m, pinned, folders, rec, uploadSource, p, pre, reread, &stored)
		})
	if err != nil {
		// Checkpoints of a long failed upload were saved under the upload source: drop them (best effort).
		_ = repo.WriteSession(context.WithoutCancel(ctx), e.Repo.rep, repo.WriteSessionOptions{Purpose: "rewind cleanup"},
			func(ctx context.Context, w repo.RepositoryWriter) error { return deleteSource(ctx, w, uploadSource) })
		return storageError(err)
	}
	m.StoredBytes = stored.Load() // the session has flushed: now with rewind.json and the snapshot's metadata
	return nil
}

// namedDir gives a service's folder its service name.
type namedDir struct {
	fs.Directory
	name string
}

func (d namedDir) Name() string { return d.name }

func deleteSource(ctx context.Context, w repo.RepositoryWriter, src snapshot.SourceInfo) error {
	mans, err := snapshot.ListSnapshots(ctx, w, src)
	if err != nil {
		return fmt.Errorf("list upload checkpoints: %w", err)
	}
	for _, man := range mans {
		if err := w.DeleteManifest(ctx, man.ID); err != nil {
			return fmt.Errorf("delete upload checkpoint: %w", err)
		}
	}
	return nil
}

// envSource is the kopia snapshot source of an environment's backups.
func envSource(env string) snapshot.SourceInfo {
	return snapshot.SourceInfo{Host: kopiaHost, UserName: kopiaUser, Path: "/rewind/" + env}
}

// Labels (kopia manifest tags) on every Rewind snapshot.
const (
	tagID          = "tag:rewind-id"
	tagEnvironment = "tag:rewind-environment"
	tagKind        = "tag:rewind-kind"
)

// serviceOf returns the service (first path element) of a path relative to the backup root.
func serviceOf(rel string) string {
	s, _, _ := strings.Cut(rel, "/")
	return s
}

// fileEntries walks a directory of the repository and calls fn for every regular file with its path relative
// to the backup root.
func fileEntries(ctx context.Context, d fs.Directory, rel string, fn func(rel string, f fs.File, de *snapshot.DirEntry) error) error {
	return fs.IterateEntries(ctx, d, func(ctx context.Context, e fs.Entry) error {
		p := rel + "/" + e.Name()
		switch e := e.(type) {
		case fs.Directory:
			return fileEntries(ctx, e, p, fn)
		case fs.File:
			var de *snapshot.DirEntry
			if h, ok := e.(snapshot.HasDirEntry); ok {
				de = h.DirEntry()
			}
			return fn(p, e, de)
		}
		return nil
	})
}

// sortManifests orders backups newest first.
func sortManifests(ms []*Manifest) {
	sort.Slice(ms, func(i, j int) bool {
		if !ms[i].StartedAt.Equal(ms[j].StartedAt) {
			return ms[i].StartedAt.After(ms[j].StartedAt)
		}
		return ms[i].ID > ms[j].ID
	})
}

// findSnapshot returns the kopia snapshot of backup id.
func (e *Engine) findSnapshot(ctx context.Context, r repo.Repository, id string) (*snapshot.Manifest, error) {
	if !ValidID(id) {
		return nil, fmt.Errorf("%w: %q is not a backup id", ErrNotFound, id)
	}
	ents, err := r.FindManifests(ctx, map[string]string{manifest.TypeLabelKey: snapshot.ManifestType, tagID: id})
	if err != nil {
		return nil, fmt.Errorf("find backup %s: %w", id, err)
	}
	if len(ents) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	latest := manifest.PickLatestID(ents)
	man, err := snapshot.LoadSnapshot(ctx, r, latest)
	if err != nil {
		return nil, fmt.Errorf("load backup %s: %w", id, err)
	}
	return man, nil
}

// rootOf returns the root directory of a snapshot.
func rootOf(r repo.Repository, man *snapshot.Manifest) (fs.Directory, error) {
	if man.RootObjectID() == object.EmptyID {
		return nil, errors.New("snapshot has no root")
	}
	d, ok := snapshotfs.EntryFromDirEntry(r, man.RootEntry).(fs.Directory)
	if !ok {
		return nil, errors.New("snapshot root is not a directory")
	}
	return d, nil
}

package backup

import (
	"context"
	"errors"
	"fmt"
	"path"
	"time"

	"github.com/kopia/kopia/fs"
)

// RestoreRequest says which backup to restore into which services.
type RestoreRequest struct {
	ID string // the backup id
	// Services are the target environment's services. Each is matched by name to a service of the backup and
	// must have the same type; every service of the backup needs a target (every service of Only, when set).
	// Any mismatch is refused before anything is touched.
	Services []ServiceSpec
	// Only, when set, names the services of the backup to restore: the others are not opened, prepared,
	// switched or captured, and Services may omit them. Empty: every service of the backup.
	Only []string
	// Path, when set, restores only this sub-tree (a directory, see SubPath) of the one files service Only
	// names, or only this file or symlink: it is prepared beside the live one and switched in its place, and
	// the rest of the mount is not touched (ServiceSpec.Sub and Entry). What it replaced is captured as that sub-tree (ServiceManifest.Path), so restoring the
	// pre-restore backup puts back that sub-tree only. Path is relative to the service's folder in the
	// backup, which, in a backup of a sub-tree, is itself ServiceManifest.Path of the mount.
	Path string
	// Hold pauses the target environment for the switches; nil switches without pausing.
	Hold HoldFunc
	// Scratch names this restore's scratch state (the prepared databases and directories beside the live
	// data), so that Engine.Sweep(ctx, Scratch, Services) can remove it if the restore is cut off before its
	// switch. Empty: a random name.
	Scratch string
	// VerifyAll checks every file of the backup against its SHA256SUMS and every service's checksum in
	// rewind.json before anything is switched, reading from the repository the files a Prepare did not read to
	// the end (a restore drill). Without it, only the files read are checked.
	VerifyAll bool
}

// RestoreResult is a finished restore.
type RestoreResult struct {
	Backup *Manifest
	// Replaced are the live states the switches moved aside, in the order of RestoreRequest.Services. The caller
	// captures them with BackupReplaced (the pre-restore backup) and then Discards them.
	Replaced []ReplacedService
	Pause    time.Duration // how long requests were held
	// Verified is how many files were checked against the backup's SHA256SUMS: every file with
	// RestoreRequest.VerifyAll.
	Verified int
}

// ErrChecksum is wrapped when restored data does not match the checksums recorded at backup time.
var ErrChecksum = errors.New("checksum mismatch")

type preparedService struct {
	spec ServiceSpec
	prep Prepared
}

// Restore puts backup req.ID back: it prepares every service beside the live state, pauses, switches every
// service, and releases. If a switch fails, the services already switched are reverted, so a restore is all or
// nothing. Errors naming a service are *ServiceError.
func (e *Engine) Restore(ctx context.Context, req RestoreRequest, p Progress) (*RestoreResult, error) {
	res, err := e.restore(ctx, req, p)
	return res, classify(err)
}

func (e *Engine) restore(ctx context.Context, req RestoreRequest, p Progress) (*RestoreResult, error) {
	if p == nil {
		p = NopProgress
	}
	if req.Scratch != "" {
		ctx = WithScratch(ctx, req.Scratch)
	}
	root, m, err := e.openBackup(ctx, req.ID)
	if err != nil {
		return nil, err
	}

	// Refuse mismatches before touching anything.
	scope, sub, err := restoreScope(m, req)
	if err != nil {
		return nil, err
	}
	targets := map[string]bool{}
	var specs []ServiceSpec
	for _, spec := range req.Services {
		sm := m.Service(spec.Name)
		if sm == nil {
			return nil, fmt.Errorf("service %q of the target is not in backup %s", spec.Name, m.ID)
		}
		if sm.Type != spec.Type {
			return nil, fmt.Errorf("service %q is %s in backup %s but %s in the target", spec.Name, sm.Type, m.ID, spec.Type)
		}
		if targets[spec.Name] {
			return nil, fmt.Errorf("service %q listed twice", spec.Name)
		}
		targets[spec.Name] = true
		if scope != nil && !scope[spec.Name] {
			continue
		}
		if sm.Entry && sub[spec.Name] != "" {
			return nil, fmt.Errorf("%w: backup %s holds the single entry /%s of service %q: restore it without a path",
				ErrBadPath, m.ID, sm.Path, spec.Name)
		}
		spec.Sub = path.Join(sm.Path, sub[spec.Name])
		if spec.Sub == "." {
			spec.Sub = ""
		}
		spec.Entry = sm.Entry
		specs = append(specs, spec)
	}
	for _, sm := range m.Services {
		if !targets[sm.Name] && (scope == nil || scope[sm.Name]) {
			return nil, fmt.Errorf("service %q (%s) of backup %s has no service of that name in the target", sm.Name, sm.Type, m.ID)
		}
	}
	req.Services = specs
	folders := make([]fs.Directory, 0, len(specs))
	sizes := make([]int64, 0, len(specs))
	for i, spec := range specs {
		ent, err := lookup(ctx, root, m, spec.Name, sub[spec.Name])
		if err != nil {
			return nil, err
		}
		size := ent.Size()
		if p := sub[spec.Name]; p != "" && !ent.IsDir() {
			// A single file or symlink: its directory in the backup is the folder, and it alone is restored.
			parent := path.Dir(p)
			if parent == "." {
				parent = ""
			}
			if ent, err = lookup(ctx, root, m, spec.Name, parent); err != nil {
				return nil, err
			}
			specs[i].Entry = true
			sub[spec.Name] = parent
		}
		dir, ok := ent.(fs.Directory)
		if !ok {
			return nil, &ServiceError{Op: "prepare", Service: spec.Name, Type: spec.Type, Err: errors.New("backup folder is not a directory")}
		}
		folders = append(folders, dir)
		sizes = append(sizes, size)
	}
	sources := make([]Source, 0, len(specs))
	for _, spec := range req.Services {
		src, err := e.source(spec)
		if err != nil {
			return nil, err
		}
		sources = append(sources, src)
	}
	sumsData, err := readRootFile(ctx, root, SumsFile)
	if err != nil {
		return nil, fmt.Errorf("backup %s: %w", req.ID, err)
	}
	sums, err := ParseSums(sumsData)
	if err != nil {
		return nil, fmt.Errorf("backup %s: %w", req.ID, err)
	}

	tot := &totals{p: p, m: map[string]int64{}}
	for i, spec := range req.Services {
		total := m.Service(spec.Name).Bytes
		if spec.Sub != "" {
			total = sizes[i] // the bytes of the files below the sub-tree, or of the entry
		}
		tot.forService(spec.Name).SetTotal(total)
	}

	// Prepare.
	verified := 0
	var prepared []preparedService
	discardAll := func() {
		for _, ps := range prepared {
			ps.prep.Discard(context.WithoutCancel(ctx)) //nolint:errcheck
		}
	}
	for i, spec := range req.Services {
		sm := m.Service(spec.Name)
		dir := folders[i]
		rec := newHashRecorder(p)
		prep, err := sources[i].Prepare(ctx, wrapHashing(dir, path.Join(spec.Name, sub[spec.Name]), rec), tot.forService(spec.Name))
		if err == nil {
			if ferr := rec.firstFailure(); ferr != nil {
				// the source swallowed a read error: never switch in a partial state
				prep.Discard(context.WithoutCancel(ctx)) //nolint:errcheck
				err = ferr
			}
		}
		if err == nil && req.VerifyAll {
			n, verr := verifyAll(ctx, dir, spec.Name, sums, sm.SHA256, rec)
			if verr != nil {
				prep.Discard(context.WithoutCancel(ctx)) //nolint:errcheck
				err = verr
			}
			verified += n
		}
		if err == nil {
			if verr := verifySums(spec.Name, sums, sm.SHA256, rec); verr != nil {
				prep.Discard(context.WithoutCancel(ctx)) //nolint:errcheck
				err = verr
			}
		}
		if err != nil {
			discardAll()
			return nil, &ServiceError{Op: "prepare", Service: spec.Name, Type: spec.Type, Err: err}
		}
		prepared = append(prepared, preparedService{spec: spec, prep: prep})
	}

	// Pause and switch.
	res := &RestoreResult{Backup: m, Verified: verified}
	var switchErr error
	func() {
		if req.Hold != nil {
			t0 := time.Now()
			release, err := req.Hold(ctx)
			if err != nil {
				switchErr = fmt.Errorf("pause environment: %w", err)
				return
			}
			defer func() {
				release()
				res.Pause = time.Since(t0)
			}()
		}
		for _, ps := range prepared {
			rep, err := ps.prep.Switch(ctx)
			if err != nil {
				switchErr = &ServiceError{Op: "switch", Service: ps.spec.Name, Type: ps.spec.Type, Err: err}
				// undo the switched ones, newest first
				for i := len(res.Replaced) - 1; i >= 0; i-- {
					rs := res.Replaced[i]
					if rerr := rs.Replaced.Revert(context.WithoutCancel(ctx)); rerr != nil {
						switchErr = errors.Join(switchErr, &ServiceError{Op: "revert", Service: rs.Spec.Name, Type: rs.Spec.Type, Err: rerr})
					}
				}
				res.Replaced = nil
				return
			}
			res.Replaced = append(res.Replaced, ReplacedService{Spec: ps.spec, Replaced: rep})
		}
	}()
	if switchErr != nil {
		discardAll()
		return nil, switchErr
	}
	return res, nil
}

// restoreScope checks req.Only and req.Path against backup m: scope is the set of services to restore (nil:
// all), sub the clean sub-path to restore of each (only the files service of a Path has one).
func restoreScope(m *Manifest, req RestoreRequest) (scope map[string]bool, sub map[string]string, err error) {
	sub = map[string]string{}
	p, err := SubPath(req.Path)
	if err != nil {
		return nil, nil, err
	}
	if len(req.Only) > 0 {
		scope = map[string]bool{}
		for _, name := range req.Only {
			if _, err := backupService(m, name); err != nil {
				return nil, nil, err
			}
			scope[name] = true
		}
	}
	if p == "" {
		return scope, sub, nil
	}
	if len(scope) != 1 {
		return nil, nil, fmt.Errorf("%w: a path restores part of one files service: name that one service with it", ErrBadPath)
	}
	sm := m.Service(req.Only[0])
	if sm.Type != TypeFiles {
		return nil, nil, fmt.Errorf("%w: service %q is %s, not files: a path names a sub-tree of a files service; "+
			"restore %q without a path", ErrBadPath, sm.Name, sm.Type, sm.Name)
	}
	if req.VerifyAll {
		return nil, nil, errors.New("a restore that verifies every file restores whole services: leave out the path")
	}
	sub[sm.Name] = p
	return scope, sub, nil
}

// verifySums compares what Prepare read with the backup's checksums. Files a source did not read to the end
// are not verified here (kopia's authenticated encryption still guards them); any file read must match.
func verifySums(service string, sums Sums, want string, rec *hashRecorder) error {
	all := true
	for p, s := range sums {
		if serviceOf(p) != service {
			continue
		}
		got, ok := rec.lookup(p)
		if !ok {
			all = false
			continue
		}
		if got.sum != s {
			return fmt.Errorf("%w: %s", ErrChecksum, p)
		}
	}
	if all && sums.ServiceChecksum(service) != want {
		return fmt.Errorf("%w: service listing of %s", ErrChecksum, service)
	}
	return nil
}

// verifyAll checks every file of a service's folder, and the service's checksum in rewind.json, once its Prepare
// is done (RestoreRequest.VerifyAll).
// It returns how many files it checked.
func verifyAll(ctx context.Context, dir fs.Directory, service string, sums Sums, want string, rec *hashRecorder) (int, error) {
	if got := sums.ServiceChecksum(service); got != want {
		return 0, fmt.Errorf("%w: listing of service %q", ErrChecksum, service)
	}
	n, err := verifyService(ctx, dir, service, sums, rec, NopProgress)
	if err != nil {
		return n, err
	}
	listed := 0
	for p := range sums {
		if serviceOf(p) == service {
			listed++
		}
	}
	if n != listed {
		return n, fmt.Errorf("%w: %s lists %d files of service %q, the backup holds %d", ErrChecksum, SumsFile, listed, service, n)
	}
	return n, nil
}

func readManifest(ctx context.Context, root fs.Directory) (*Manifest, error) {
	js, err := readRootFile(ctx, root, ManifestFile)
	if err != nil {
		return nil, err
	}
	return ParseManifest(js)
}

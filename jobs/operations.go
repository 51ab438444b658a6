package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/hooks"
	"github.com/rewind/rewind/db"
)

// Activity types of the work the operations start.
const (
	TypeBackup        = "backup.create"
	TypeRestore       = "backup.restore"
	TypeBackupDelete  = "backup.delete"
	TypeEnvBranch     = "environment.branch"
	TypeMaintenance   = "repository.maintenance"
	ActorSchedule     = "schedule"
	preRestoreKeepFor = 7 * 24 * time.Hour
)

// ErrRefused wraps the reason an operation cannot start now (an inactive environment, a backup that is not
// complete, ...). The web layer maps it to 409 Conflict; its message says what to do.
var ErrRefused = errors.New("refused")

// Catalog is what the operations need of the catalog.
type Catalog interface {
	Store
	CreateActivity(ctx context.Context, a *db.Activity) error
	FindEnvironmentByName(ctx context.Context, name string) (*db.Environment, error)
	FindEnvironments(ctx context.Context, f db.EnvironmentFilter) ([]*db.Environment, error)
	CreateEnvironment(ctx context.Context, e *db.Environment) error
	CreateBackup(ctx context.Context, b *db.Backup) error
	UpdateBackup(ctx context.Context, id string, upd db.BackupUpdate) (*db.Backup, error)
	FindBackupByID(ctx context.Context, id string) (*db.Backup, error)
	FindBackups(ctx context.Context, f db.BackupFilter) ([]*db.Backup, int, error)
	DeleteBackup(ctx context.Context, id string) error
	FindActivities(ctx context.Context, f db.ActivityFilter) ([]*db.Activity, int, error)
	FindPlan(ctx context.Context) (*db.Plan, error)
	CreateDrill(ctx context.Context, d *db.Drill) error
	FinishDrill(ctx context.Context, id int64, restore time.Duration, files int, errMsg string) (*db.Drill, error)
	FindDrills(ctx context.Context, f db.DrillFilter) ([]*db.Drill, error)
	// Recent answers from a read of up to a second ago when no write came since (db.DB.Recent).
	Recent(key string, load func() (any, error)) (any, error)
}

// Pauser holds an environment's traffic: the request gates started by `rewind serve`. An environment without a
// gate returns a nil release and no error (it pauses through its hooks alone).
type Pauser interface {
	Hold(ctx context.Context, env string) (release func(), err error)
}

// Operations start backups, restores and deletions as activities and build their jobs for the Runner.
type Operations struct {
	Catalog Catalog
	Engine  *backup.Engine
	Runner  *Runner
	Pauser  Pauser        // nil: no environment has a gate
	Hooks   *hooks.Runner // nil: hooks run with the defaults
	Now     func() time.Time
	// ScratchDir is where restore drills put their private servers and files; os.TempDir() when empty.
	ScratchDir string
	// AfterBackup, when set, runs in a backup's job after the backup completed (retention: Scheduler.AfterBackup).
	AfterBackup func(ctx context.Context, env string, p *Progress)
	// PITR runs restores to a moment (nil: none can run).
	PITR *PITR

	retention sync.Mutex // one retention pass at a time (after a backup, the daily pass, a plan change)
	branch    sync.Mutex // one branch at a time: its Redis database is picked and taken in the catalog together
}

func (o *Operations) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// backupParams are the params of a backup activity.
type backupParams struct {
	Live bool   `json:"live"`
	Kind string `json:"kind"`
	// Replaces is the oldest manual backup a manual backup beyond the quota replaces (confirmed by the caller).
	Replaces string `json:"replaces,omitempty"`
}

// restoreParams are the params of a restore activity.
type restoreParams struct {
	Target       string `json:"target"`
	BranchFrom   string `json:"branch_from,omitempty"`
	PreRestoreID string `json:"pre_restore_id"`
	// Source and At are set for a restore to a moment (point-in-time) instead of a backup.
	Source string `json:"source,omitempty"`
	At     string `json:"at,omitempty"`
	// Transient is the id of the capture of the rebuilt state a restore to a moment restores (deleted after).
	Transient string `json:"transient,omitempty"`
	// Services and Path scope a partial restore (RestoreRequest.Services and Path).
	Services []string `json:"services,omitempty"`
	Path     string   `json:"path,omitempty"`
}

// BackupRequest asks for a backup of one environment.
type BackupRequest struct {
	Environment string
	Live        bool
	Kind        string // db.BackupManual (default) or db.BackupAutomated
	Actor       string
	// ReplaceOldest confirms that a manual backup beyond the environment's quota replaces the oldest manual
	// backup (expired once the new one completes). Without it such a request fails with a *QuotaError.
	ReplaceOldest bool
}

// QuotaError refuses a manual backup beyond the environment's quota until the caller confirms replacing the
// oldest manual backup (BackupRequest.ReplaceOldest). It wraps ErrRefused.
type QuotaError struct {
	Quota   int
	Replace *db.Backup // the oldest manual backup, which the new one would replace
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("%s already has %d manual backups, its quota: the new backup would replace the oldest, %s "+
		"of %s; confirm to replace it", e.Replace.Environment, e.Quota, e.Replace.ID,
		e.Replace.CreatedAt.UTC().Format("2006-01-02 15:04 UTC"))
}

func (e *QuotaError) Unwrap() error { return ErrRefused }

// StartBackup queues a backup of an environment and returns its activity and backup. The backup is listed as
// pending at once and becomes restorable only when it completes.
func (o *Operations) StartBackup(ctx context.Context, req BackupRequest) (*db.Activity, *db.Backup, error) {
	env, err := o.Catalog.FindEnvironmentByName(ctx, req.Environment)
	if err != nil {
		return nil, nil, err
	}
	if env.Status != db.StatusActive {
		return nil, nil, fmt.Errorf("environment %q is inactive: activate it in its Settings tab before backing it up: %w",
			env.Name, ErrRefused)
	}
	if len(env.Services) == 0 {
		return nil, nil, fmt.Errorf("environment %q has no services to back up: add one in its Settings tab: %w",
			env.Name, ErrRefused)
	}
	if req.Kind == "" {
		req.Kind = db.BackupManual
	}
	var replaces string
	if req.Kind == db.BackupManual {
		if replaces, err = o.checkManualQuota(ctx, env, req.ReplaceOldest); err != nil {
			return nil, nil, err
		}
	}
	params, _ := json.Marshal(backupParams{Live: req.Live, Kind: req.Kind, Replaces: replaces})
	mode := "consistent"
	if req.Live {
		mode = "live"
	}
	id := backup.NewID()
	a := &db.Activity{
		Type: TypeBackup, Environment: env.Name, Actor: req.Actor, State: db.ActivityQueued, BackupID: id,
		Params: string(params), Summary: fmt.Sprintf("%s %s backup of %s", article(req.Kind), req.Kind+" "+mode, env.Name),
	}
	if err := o.Catalog.CreateActivity(ctx, a); err != nil {
		return nil, nil, err
	}
	b := &db.Backup{ID: id, Environment: env.Name, Kind: req.Kind, Live: req.Live, ActivityID: a.ID}
	if err := o.Catalog.CreateBackup(ctx, b); err != nil {
		return nil, nil, err
	}
	if err := o.Runner.Enqueue(a.ID); err != nil {
		return nil, nil, err
	}
	return a, b, nil
}

func article(word string) string {
	if strings.ContainsAny(word[:1], "aeiou") {
		return "An"
	}
	return "A"
}

// RestoreRequest asks for a restore of a backup.
type RestoreRequest struct {
	BackupID   string
	Target     string // environment to restore into; the backup's environment when empty
	BranchFrom string // create Target as a child of this environment when it does not exist yet
	Confirm    string // must equal the target environment's name
	Actor      string
	// Preview asks PlanRestore for the plan's Preview (the dialog, the plan API, the CLI's --dry-run).
	Preview bool
	// Services, when set, restores only these services of the backup: the target's others are not touched
	// (nor paused longer than the switches of these take). Empty: every service.
	Services []string
	// Path, when set, restores only this sub-tree of the one files service Services names (a directory,
	// relative to the mount, see backup.SubPath): the rest of the mount is not touched.
	Path string
}

// RestorePlan is what a restore will do, for the confirmation dialog: checked before anything is touched.
type RestorePlan struct {
	Backup  *db.Backup
	Target  string
	Create  bool             // the target environment is created (branched from BranchFrom)
	Parent  string           // BranchFrom
	Mapping []ServiceMapping // backup service → target service: only the services restored
	// Services and Path are the request's scope, checked and clean (Path "" with Services empty: everything).
	Services []string
	Path     string
	Problem  *db.ValidationError // why the restore cannot run (nil when it can)
	// Commit is the backup's code commit and TargetHead the target's current checkout HEAD ("" when unknown).
	Commit, TargetHead string
	// Preview is what the restore will change, when asked for (RestoreRequest.Preview) and the plan has no
	// Problem. It never stops a restore: what it could not read it says in its Unavailable fields.
	Preview *Preview
}

// ServiceMapping maps one service of the backup to the target's service of the same name.
type ServiceMapping struct {
	Name, Type string
	Target     string // masked URL or path of the target service (of the sub-tree, for a partial files restore)
	// Path is the sub-tree of the service's folder in the backup that is restored ("" the whole folder), and
	// Sub where it goes below the target's mount: Path below the backup's own sub-tree (db.BackupService.Path).
	Path, Sub string
	// Entry says that Sub is a single file or symlink, not a directory.
	Entry bool
}

// PlanRestore checks a restore without starting it.
func (o *Operations) PlanRestore(ctx context.Context, req RestoreRequest) (*RestorePlan, error) {
	b, err := o.Catalog.FindBackupByID(ctx, req.BackupID)
	if err != nil {
		return nil, err
	}
	if !b.Restorable() {
		return nil, fmt.Errorf("backup %s is %s, not complete: only complete backups can be restored: %w",
			b.ID, b.Status, ErrRefused)
	}
	plan := &RestorePlan{Backup: b, Target: req.Target, Parent: req.BranchFrom, Commit: b.Commit}
	if plan.Target == "" {
		plan.Target = b.Environment
		if req.BranchFrom != "" {
			plan.Target = "restore-" + b.ID[:8]
		}
	}
	ve := &db.ValidationError{}
	target, create, err := o.restoreTarget(ctx, plan.Target, req.BranchFrom)
	if err != nil {
		return nil, err
	}
	plan.Create = create
	if target.Status != db.StatusActive {
		ve.Errors = append(ve.Errors, db.FieldError{Field: "target", Message: fmt.Sprintf(
			"environment %q is inactive: activate it before restoring into it", target.Name)})
	}
	scoped, entry, err := o.restoreScope(ctx, b, req, plan, ve)
	if err != nil {
		return nil, err
	}
	for _, s := range b.Services {
		if scoped != nil && !scoped[s.Name] {
			continue
		}
		ts := target.Service(s.Name)
		switch {
		case ts == nil:
			ve.Errors = append(ve.Errors, db.FieldError{Field: "services", Message: fmt.Sprintf(
				"environment %q has no service %q (%s) to restore the backup's %q into: add it first",
				target.Name, s.Name, s.Type, s.Name)})
		case ts.Type != s.Type:
			ve.Errors = append(ve.Errors, db.FieldError{Field: "services", Message: fmt.Sprintf(
				"service %q is %s in the backup but %s in %q: a restore cannot change a service's type",
				s.Name, s.Type, ts.Type, target.Name)})
		default:
			where := ts.MaskedURL()
			if where == "" {
				where = ts.Path
			}
			sm := ServiceMapping{Name: s.Name, Type: s.Type, Target: where}
			if s.Type == db.ServiceFiles && (s.Path != "" || plan.Path != "") {
				sm.Path, sm.Entry = plan.Path, s.Entry || entry
				sm.Sub = path.Join(s.Path, plan.Path)
				sm.Target = strings.TrimRight(ts.Path, "/") + "/" + sm.Sub
			}
			plan.Mapping = append(plan.Mapping, sm)
		}
	}
	if target.GitDir != "" {
		plan.TargetHead, _ = headCommit(ctx, target.GitDir)
	}
	if len(ve.Errors) > 0 {
		plan.Problem = ve
	}
	if req.Preview && plan.Problem == nil {
		plan.Preview = o.previewRestore(ctx, b, target, plan.Mapping, plan.Create)
	}
	return plan, nil
}

// Scope says what part of the backup the plan restores, as in "service uploads, path images/2026" or
// "services db, cache"; "" for the whole backup.
func (p *RestorePlan) Scope() string {
	switch {
	case len(p.Services) == 0:
		return ""
	case p.Path != "":
		return fmt.Sprintf("service %s, path %s", p.Services[0], p.Path)
	case len(p.Services) == 1:
		return "service " + p.Services[0]
	}
	return "services " + strings.Join(p.Services, ", ")
}

// restoreScope checks the scope of a partial restore (req.Services, req.Path) against backup b, sets it on the
// plan, and returns the services restored (nil: all) and whether the path is a single file or symlink. What the request names wrongly goes into ve: nothing is
// touched, and the message says what to pass instead.
func (o *Operations) restoreScope(ctx context.Context, b *db.Backup, req RestoreRequest, plan *RestorePlan, ve *db.ValidationError) (scoped map[string]bool, entry bool, err error) {
	names := make([]string, 0, len(b.Services))
	for _, s := range b.Services {
		names = append(names, s.Name)
	}
	for _, name := range req.Services {
		name = strings.TrimSpace(name)
		if name == "" || scoped[name] {
			continue
		}
		if b.Service(name) == nil {
			ve.Errors = append(ve.Errors, db.FieldError{Field: "services", Message: fmt.Sprintf(
				"backup %s has no service %q: pass one of %s, or none to restore them all", b.ID, name,
				strings.Join(names, ", "))})
			continue
		}
		if scoped == nil {
			scoped = map[string]bool{}
		}
		scoped[name] = true
		plan.Services = append(plan.Services, name)
	}
	p, err := backup.SubPath(req.Path)
	if err != nil {
		ve.Errors = append(ve.Errors, db.FieldError{Field: "path", Message: strings.TrimPrefix(err.Error(), backup.ErrBadPath.Error()+": ")})
		return scoped, false, nil
	}
	if p == "" {
		return scoped, false, nil
	}
	var files []string
	for _, s := range b.Services {
		if s.Type == db.ServiceFiles {
			files = append(files, s.Name)
		}
	}
	switch {
	case len(files) == 0:
		ve.Errors = append(ve.Errors, db.FieldError{Field: "path", Message: fmt.Sprintf(
			"backup %s has no files service, so no path to restore: restore a service without a path", b.ID)})
		return scoped, false, nil
	case len(plan.Services) != 1 || b.Service(plan.Services[0]).Type != db.ServiceFiles:
		ve.Errors = append(ve.Errors, db.FieldError{Field: "path", Message: fmt.Sprintf(
			"a path restores part of one files service: pass exactly one service with it, one of %s",
			strings.Join(files, ", "))})
		return scoped, false, nil
	}
	plan.Path = p
	if o.Engine == nil {
		return scoped, false, nil
	}
	if bs := b.Service(plan.Services[0]); bs.Entry {
		ve.Errors = append(ve.Errors, db.FieldError{Field: "path", Message: fmt.Sprintf(
			"backup %s holds the single file /%s of %q: restore it without a path", b.ID, bs.Path, bs.Name)})
		return scoped, false, nil
	}
	// The path must be in the backup: checked in the repository before anything is touched.
	st, err := o.Engine.Stat(ctx, b.ID, plan.Services[0], p)
	if err != nil {
		if !errors.Is(err, backup.ErrNotInBackup) && !errors.Is(err, backup.ErrBadPath) {
			return nil, false, fmt.Errorf("check path %q of backup %s: %w", p, b.ID, err)
		}
		msg := strings.TrimPrefix(strings.TrimPrefix(err.Error(), backup.ErrNotInBackup.Error()+": "), backup.ErrBadPath.Error()+": ")
		ve.Errors = append(ve.Errors, db.FieldError{Field: "path", Message: msg})
		return scoped, false, nil
	}
	return scoped, st.Type != backup.EntryDir, nil
}

// restoreTarget finds the environment a restore goes into, or (with branchFrom, when it does not exist) the
// environment it would be branched as; create says which.
func (o *Operations) restoreTarget(ctx context.Context, name, branchFrom string) (*db.Environment, bool, error) {
	target, err := o.Catalog.FindEnvironmentByName(ctx, name)
	switch {
	case errors.Is(err, db.ErrNotFound) && branchFrom != "":
		parent, err := o.Catalog.FindEnvironmentByName(ctx, branchFrom)
		if err != nil {
			if errors.Is(err, db.ErrNotFound) {
				return nil, false, &db.ValidationError{Errors: []db.FieldError{{Field: "branch_from",
					Message: fmt.Sprintf("there is no environment %q to branch from", branchFrom)}}}
			}
			return nil, false, err
		}
		if target, err = branchEnvironment(parent, name, o.freeRedisDB(ctx)); err != nil {
			return nil, false, &db.ValidationError{Errors: []db.FieldError{{Field: "branch_from", Message: err.Error()}}}
		}
		return target, true, nil
	case errors.Is(err, db.ErrNotFound):
		return nil, false, &db.ValidationError{Errors: []db.FieldError{{Field: "target", Message: fmt.Sprintf(
			"there is no environment %q: pick an existing one, or branch a new one from a parent", name)}}}
	case err != nil:
		return nil, false, err
	}
	return target, false, nil
}

// StartRestore checks and queues a restore. Nothing is touched when the plan has a problem or the confirmation
// does not name the target environment.
func (o *Operations) StartRestore(ctx context.Context, req RestoreRequest) (*db.Activity, *RestorePlan, error) {
	plan, err := o.PlanRestore(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	if plan.Problem != nil {
		return nil, plan, plan.Problem
	}
	if strings.TrimSpace(req.Confirm) != plan.Target {
		return nil, plan, &db.ValidationError{Errors: []db.FieldError{{Field: "confirm", Message: fmt.Sprintf(
			"type the target environment's name, %q, to confirm that its current state is replaced", plan.Target)}}}
	}
	if plan.Create {
		if err := o.branchTarget(ctx, plan.Target, plan.Parent, req.Actor, "backup "+plan.Backup.ID); err != nil {
			return nil, plan, err
		}
	}
	params, _ := json.Marshal(restoreParams{Target: plan.Target, BranchFrom: plan.Parent, PreRestoreID: backup.NewID(),
		Services: plan.Services, Path: plan.Path})
	what := "backup " + plan.Backup.ID
	if plan.Target != plan.Backup.Environment {
		what += " of " + plan.Backup.Environment
	}
	if scope := plan.Scope(); scope != "" {
		what += " (" + scope + ")"
	}
	summary := fmt.Sprintf("Restore of %s into %s", what, plan.Target)
	a := &db.Activity{Type: TypeRestore, Environment: plan.Target, Actor: req.Actor, State: db.ActivityQueued,
		BackupID: plan.Backup.ID, Params: string(params), Summary: summary}
	if err := o.Catalog.CreateActivity(ctx, a); err != nil {
		return nil, plan, err
	}
	if err := o.Runner.Enqueue(a.ID); err != nil {
		return nil, plan, err
	}
	return a, plan, nil
}

// branchTarget creates the target environment of a restore as a child of parent; what names what is restored.
func (o *Operations) branchTarget(ctx context.Context, target, parentName, actor, what string) error {
	parent, err := o.Catalog.FindEnvironmentByName(ctx, parentName)
	if err != nil {
		return err
	}
	o.branch.Lock()
	env, err := branchEnvironment(parent, target, o.freeRedisDB(ctx))
	if err == nil {
		err = o.Catalog.CreateEnvironment(ctx, env)
	}
	o.branch.Unlock()
	if err != nil {
		return fmt.Errorf("branch %q from %q: %w", target, parentName, err)
	}
	return o.Catalog.CreateActivity(ctx, &db.Activity{Type: TypeEnvBranch, Environment: env.Name,
		Actor: actor, Summary: fmt.Sprintf("Branched %s from %s to restore %s", env.Name, parent.Name, what)})
}

// PreRestoreBackupID returns the id of the pre-restore backup a restore activity takes (the backup that undoes
// it), or "" for other activities.
func PreRestoreBackupID(a *db.Activity) string {
	p, _ := paramsOf[restoreParams](a, TypeRestore)
	return p.PreRestoreID
}

// ReplacedBackupID returns the oldest manual backup a backup activity was confirmed to replace, its environment
// being at its quota of manual backups, or "" for other activities.
func ReplacedBackupID(a *db.Activity) string {
	p, _ := paramsOf[backupParams](a, TypeBackup)
	return p.Replaces
}

// paramsOf decodes the params of an activity of type typ; the zero value for other activities or bad params.
func paramsOf[T any](a *db.Activity, typ string) (T, bool) {
	var p T
	if a.Type != typ || json.Unmarshal([]byte(a.Params), &p) != nil {
		var zero T
		return zero, false
	}
	return p, true
}

// DeleteBackup deletes a backup from the repository and the catalog, and records who did it.
func (o *Operations) DeleteBackup(ctx context.Context, id, actor string) error {
	b, err := o.Catalog.FindBackupByID(ctx, id)
	if err != nil {
		return err
	}
	if b.Status == db.BackupPending || b.Status == db.BackupRunning {
		return fmt.Errorf("backup %s is still %s: cancel its activity first: %w", id, b.Status, ErrRefused)
	}
	if b.Status == db.BackupComplete {
		if err := o.Engine.DeleteBackup(ctx, id); err != nil && !errors.Is(err, backup.ErrNotFound) {
			return fmt.Errorf("delete backup %s: %w", id, err)
		}
	}
	if err := o.Catalog.DeleteBackup(ctx, id); err != nil {
		return err
	}
	return o.Catalog.CreateActivity(ctx, &db.Activity{Type: TypeBackupDelete, Environment: b.Environment,
		Actor: actor, BackupID: id, Summary: fmt.Sprintf("Deleted %s backup %s of %s", b.Kind, id, b.Environment)})
}

// WriteTar writes a complete backup as a tar stream: rewind.json and every service's files.
func (o *Operations) WriteTar(ctx context.Context, id string, w io.Writer) error {
	b, err := o.Catalog.FindBackupByID(ctx, id)
	if err != nil {
		return err
	}
	if !b.Restorable() {
		return fmt.Errorf("backup %s is %s: only complete backups can be downloaded: %w", id, b.Status, ErrRefused)
	}
	return o.Engine.WriteTar(ctx, id, w)
}

// Recover marks the backups a crash left pending or running as failed: their activity did not finish them, and
// the engine saved no snapshot for them, so they must not be listed as restorable. Call it after Runner.Start.
func (o *Operations) Recover(ctx context.Context) error {
	for _, status := range []string{db.BackupPending, db.BackupRunning} {
		st := status
		backups, _, err := o.Catalog.FindBackups(ctx, db.BackupFilter{Status: &st, Limit: 1000})
		if err != nil {
			return fmt.Errorf("recover backups: %w", err)
		}
		for _, b := range backups {
			if b.ActivityID != 0 {
				a, err := o.Catalog.FindActivityByID(ctx, b.ActivityID)
				if err == nil && !a.Done() {
					continue // queued again: it will run
				}
			}
			failed, msg := db.BackupFailed, "interrupted: rewind stopped before this backup completed"
			if _, err := o.Catalog.UpdateBackup(ctx, b.ID, db.BackupUpdate{Status: &failed, Error: &msg}); err != nil {
				return fmt.Errorf("recover backup %s: %w", b.ID, err)
			}
		}
	}
	return nil
}

// Build is the Runner's Builder for the activities the operations start.
func (o *Operations) Build(a *db.Activity) (Job, error) {
	switch a.Type {
	case TypeBackup:
		var p backupParams
		if err := json.Unmarshal([]byte(a.Params), &p); err != nil {
			return nil, fmt.Errorf("backup activity %d: bad params: %w", a.ID, err)
		}
		return &backupJob{o: o, activity: a, params: p}, nil
	case TypeRestore:
		var p restoreParams
		if err := json.Unmarshal([]byte(a.Params), &p); err != nil {
			return nil, fmt.Errorf("restore activity %d: bad params: %w", a.ID, err)
		}
		if p.At != "" {
			return &restoreAtJob{restoreJob{o: o, activity: a, params: p}}, nil
		}
		return &restoreJob{o: o, activity: a, params: p}, nil
	case TypeDrill:
		return &drillJob{o: o, activity: a}, nil
	case TypeMaintenance:
		return JobFunc(func(ctx context.Context, p *Progress) error {
			p.Logf("running repository maintenance")
			return o.Engine.Maintenance(ctx, a.Params == "full" || a.Params == maintenanceFull)
		}), nil
	}
	return nil, fmt.Errorf("no job for activity type %q", a.Type)
}

// specs turns an environment's services into the engine's specs.
func specs(env *db.Environment) []backup.ServiceSpec {
	out := make([]backup.ServiceSpec, 0, len(env.Services))
	for _, s := range env.Services {
		out = append(out, serviceSpec(s))
	}
	return out
}

// serviceSpec is one service as the engine's spec.
func serviceSpec(s db.Service) backup.ServiceSpec {
	return backup.ServiceSpec{Name: s.Name, Type: s.Type, URL: s.URL, Path: s.Path, Exclude: s.Exclude}
}

// hold returns the engine's HoldFunc for env: the pre_pause hook, then the gate's hold; release lets the
// requests go and runs the post_pause hook. Hook output goes to the activity's log.
func (o *Operations) hold(env *db.Environment, op, backupID string, p *Progress) backup.HoldFunc {
	return func(ctx context.Context) (func(), error) {
		if err := o.runHook(ctx, hooks.PrePause, env.Hooks.PrePause, env.Name, op, backupID, p); err != nil {
			return nil, err
		}
		postPause := func() {
			// The pause is over whatever the hook does; a failing post_pause hook is logged, not fatal.
			ctx := context.WithoutCancel(ctx)
			if err := o.runHook(ctx, hooks.PostPause, env.Hooks.PostPause, env.Name, op, backupID, p); err != nil {
				p.Logf("warning: %v", err)
			}
		}
		var release func()
		if o.Pauser != nil {
			r, err := o.Pauser.Hold(ctx, env.Name)
			if err != nil {
				postPause()
				return nil, fmt.Errorf("pause %s: %w", env.Name, err)
			}
			release = r
		}
		start := o.now()
		p.Logf("requests held")
		return func() {
			if release != nil {
				release()
			}
			p.Logf("requests released after %s", o.now().Sub(start).Round(time.Millisecond))
			postPause()
		}, nil
	}
}

func (o *Operations) runHook(ctx context.Context, phase, command, env, op, backupID string, p *Progress) error {
	if strings.TrimSpace(command) == "" {
		return nil
	}
	runner := o.Hooks
	if runner == nil {
		runner = &hooks.Runner{}
	}
	p.Logf("running %s hook", phase)
	_, err := runner.Run(ctx, hooks.Run{Phase: phase, Command: command, Environment: env, Operation: op,
		BackupID: backupID}, p)
	return err
}

// headCommit returns the HEAD commit of the git checkout in dir. Rewind only reads it; it never changes a
// checkout.
func headCommit(ctx context.Context, dir string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "git", "-C", dir, "rev-parse", "HEAD").Output()
	if err != nil {
		return "", fmt.Errorf("read git HEAD of %s: %w", dir, err)
	}
	return strings.TrimSpace(string(out)), nil
}

package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/pitr"
	"github.com/rewind/rewind/db"
)

// RestoreAtRequest asks for a restore of an environment to a moment.
type RestoreAtRequest struct {
	Environment string    // whose state at At is restored
	At          time.Time // the moment
	Target      string    // environment to restore into; Environment when empty
	BranchFrom  string    // create Target as a child of this environment when it does not exist yet
	Confirm     string    // must equal the target environment's name
	Actor       string
}

// RestoreAtPlan is what a restore to a moment will do, checked before anything is touched.
type RestoreAtPlan struct {
	Environment string
	At          time.Time
	Target      string
	Create      bool   // the target is branched from Parent
	Parent      string // BranchFrom
	Services    []RestoreAtService
	Problem     *db.ValidationError // why it cannot run into this target (nil when it can)
}

// RestoreAtService is one service's part of a restore to a moment.
type RestoreAtService struct {
	Name, Type string
	Target     string // masked URL of the target service
	// RestoredTo is the exact moment the service is restored to: its newest commit at or before At (nil: no
	// commit between its base backup and At: it is restored as the base backup of BaseAt left it).
	RestoredTo   *time.Time
	BaseAt       time.Time
	Ranges       []pitr.Range // every moment the service can be restored to, in the window
	choice       *pitr.Choice
	kind         pitr.Kind
	source       backup.ServiceSpec // the followed service
	sourceStream *db.PITRStream
}

// Window returns the moment before which env cannot be restored: now minus its window under the plan.
func (s *PITR) window(ctx context.Context, e *db.Environment, now time.Time) (time.Time, error) {
	plan, err := s.Catalog.FindPlan(ctx)
	if err != nil {
		return time.Time{}, err
	}
	p := e.PITR
	if p == nil {
		p = &db.PITR{}
	}
	return now.Add(-p.Window(plan.Schedule)), nil
}

// PlanRestoreAt checks a restore to a moment without starting it. Refusals: a moment in the future or before
// the window is a *db.ValidationError on "at" (422); a moment in a gap or not shipped yet, or an environment
// that cannot be restored to a moment, wraps ErrRefused (409). Both name the nearest restorable moments.
func (o *Operations) PlanRestoreAt(ctx context.Context, req RestoreAtRequest) (*RestoreAtPlan, error) {
	for attempt := 1; ; attempt++ {
		plan, err := o.planRestoreAt(ctx, req)
		if !errors.Is(err, pitr.ErrReplaced) || attempt == 3 {
			return plan, err
		}
	}
}

func (o *Operations) planRestoreAt(ctx context.Context, req RestoreAtRequest) (*RestoreAtPlan, error) {
	s := o.PITR
	if s == nil {
		return nil, fmt.Errorf("point-in-time restore is not available on this server: %w", ErrRefused)
	}
	env, err := o.Catalog.FindEnvironmentByName(ctx, req.Environment)
	if err != nil {
		return nil, err
	}
	now := o.now()
	plan := &RestoreAtPlan{Environment: env.Name, At: req.At.UTC(), Target: req.Target, Parent: req.BranchFrom}
	if plan.Target == "" {
		plan.Target = env.Name
		if req.BranchFrom != "" {
			plan.Target = "restore-" + env.Name + "-" + plan.At.Format("20060102-150405")
		}
	}
	var others []string
	for _, svc := range env.Services {
		if s.kind(svc.Type) == nil {
			others = append(others, fmt.Sprintf("%s (%s)", svc.Name, svc.Type))
		}
	}
	if len(others) > 0 {
		return nil, fmt.Errorf("environment %s has services point-in-time restore does not cover yet: %s; only "+
			"environments whose services are all of the types %s can be restored to a moment: restore a backup "+
			"instead: %w", env.Name, strings.Join(others, ", "), strings.Join(s.KindTypes(), ", "), ErrRefused)
	}
	if len(env.Services) == 0 {
		return nil, fmt.Errorf("environment %s has no services: %w", env.Name, ErrRefused)
	}
	notBefore, err := s.window(ctx, env, now)
	if err != nil {
		return nil, err
	}
	var gaps []error
	for _, svc := range env.Services {
		st, err := s.Catalog.FindPITRStream(ctx, env.Name, svc.Name)
		if errors.Is(err, db.ErrNotFound) {
			return nil, fmt.Errorf("service %s of %s is not followed: switch point-in-time restore on in the "+
				"environment's settings; moments from then on become restorable: %w", svc.Name, env.Name, ErrRefused)
		}
		if err != nil {
			return nil, err
		}
		kind := s.kind(svc.Type)
		stream, err := s.stream(ctx, st, kind)
		if err != nil {
			return nil, err
		}
		rs := RestoreAtService{Name: svc.Name, Type: svc.Type, Ranges: stream.Ranges(notBefore), kind: kind,
			source: serviceSpec(svc), sourceStream: st}
		if plan.At.After(now) {
			newest := "nothing is restorable yet"
			if n := len(rs.Ranges); n > 0 {
				newest = "the newest restorable moment is " + rs.Ranges[n-1].To.Format(time.RFC3339Nano)
			}
			return nil, &db.ValidationError{Errors: []db.FieldError{{Field: "at", Message: fmt.Sprintf(
				"%s is in the future (it is %s now): pick a moment in the past; %s",
				plan.At.Format(time.RFC3339Nano), now.UTC().Format(time.RFC3339), newest)}}}
		}
		c, err := stream.Choose(notBefore, plan.At)
		var ge *pitr.GapError
		switch {
		case errors.As(err, &ge) && plan.At.Before(notBefore):
			return nil, &db.ValidationError{Errors: []db.FieldError{{Field: "at", Message: fmt.Sprintf(
				"service %s: %v", svc.Name, err)}}}
		case errors.As(err, &ge):
			gaps = append(gaps, fmt.Errorf("service %s: %w", svc.Name, err))
			plan.Services = append(plan.Services, rs)
			continue
		case err != nil:
			return nil, err
		}
		if err := c.Exact(ctx, s.Repo); err != nil {
			return nil, fmt.Errorf("service %s: read the commit times around %s: %w", svc.Name, plan.At, err)
		}
		rs.choice, rs.RestoredTo, rs.BaseAt = c, c.Reached, c.Base.FinishedAt
		plan.Services = append(plan.Services, rs)
	}
	if len(gaps) > 0 {
		return plan, fmt.Errorf("%w: %w", errors.Join(gaps...), ErrRefused)
	}

	target, create, err := o.restoreTarget(ctx, plan.Target, req.BranchFrom)
	if err != nil {
		return nil, err
	}
	plan.Create = create
	ve := &db.ValidationError{}
	if target.Status != db.StatusActive {
		ve.Errors = append(ve.Errors, db.FieldError{Field: "target", Message: fmt.Sprintf(
			"environment %q is inactive: activate it before restoring into it", target.Name)})
	}
	for i := range plan.Services {
		rs := &plan.Services[i]
		ts := target.Service(rs.Name)
		switch {
		case ts == nil:
			ve.Errors = append(ve.Errors, db.FieldError{Field: "services", Message: fmt.Sprintf(
				"environment %q has no service %q (%s) to restore into: add it first", target.Name, rs.Name, rs.Type)})
		case ts.Type != rs.Type:
			ve.Errors = append(ve.Errors, db.FieldError{Field: "services", Message: fmt.Sprintf(
				"service %q is %s in %s but %s in %q: a restore cannot change a service's type",
				rs.Name, rs.Type, env.Name, ts.Type, target.Name)})
		default:
			rs.Target = ts.MaskedURL()
		}
	}
	if len(ve.Errors) > 0 {
		plan.Problem = ve
	}
	return plan, nil
}

// stream reads what the catalog knows of a stream of kind, to plan with.
func (s *PITR) stream(ctx context.Context, st *db.PITRStream, kind pitr.Kind) (pitr.Stream, error) {
	dbBases, err := s.Catalog.FindPITRBases(ctx, st.ID)
	if err != nil {
		return pitr.Stream{}, err
	}
	segs, err := s.Catalog.FindPITRSegments(ctx, st.ID, "")
	if err != nil {
		return pitr.Stream{}, err
	}
	var bases []pitr.Base
	for _, b := range dbBases {
		bases = append(bases, pitr.Base{Snapshot: b.Snapshot, SystemID: b.SystemID, Timeline: b.Timeline,
			StartLSN: b.StartLSN, EndLSN: b.EndLSN, StartWAL: b.StartWAL, StartedAt: b.StartedAt,
			FinishedAt: b.FinishedAt, Bytes: b.Bytes})
	}
	var shipped []pitr.Shipped
	for _, sg := range segs {
		shipped = append(shipped, pitr.Shipped{Name: sg.Name, Snapshot: sg.Snapshot, Partial: sg.Partial,
			FirstCommit: sg.FirstCommitAt, LastCommit: sg.LastCommitAt})
	}
	out := pitr.Stream{Bases: bases, Segments: shipped, Next: kind.NextSegment}
	if st.CoveredUntil != nil {
		out.CoveredUntil = *st.CoveredUntil
	}
	return out, nil
}

// StartRestoreAt checks and queues a restore to a moment. Nothing is touched when the plan has a problem or the
// confirmation does not name the target.
func (o *Operations) StartRestoreAt(ctx context.Context, req RestoreAtRequest) (*db.Activity, *RestoreAtPlan, error) {
	plan, err := o.PlanRestoreAt(ctx, req)
	if err != nil {
		return nil, plan, err
	}
	if plan.Problem != nil {
		return nil, plan, plan.Problem
	}
	if strings.TrimSpace(req.Confirm) != plan.Target {
		return nil, plan, &db.ValidationError{Errors: []db.FieldError{{Field: "confirm", Message: fmt.Sprintf(
			"type the target environment's name, %q, to confirm that its current state is replaced", plan.Target)}}}
	}
	at := plan.At.Format(time.RFC3339Nano)
	if plan.Create {
		if err := o.branchTarget(ctx, plan.Target, plan.Parent, req.Actor, plan.Environment+" as of "+at); err != nil {
			return nil, plan, err
		}
	}
	params, _ := json.Marshal(restoreParams{Target: plan.Target, BranchFrom: plan.Parent, PreRestoreID: backup.NewID(),
		Source: plan.Environment, At: at, Transient: backup.NewID()})
	summary := fmt.Sprintf("Restore of %s to %s", plan.Environment, at)
	if plan.Target != plan.Environment {
		summary = fmt.Sprintf("Restore of %s as of %s into %s", plan.Environment, at, plan.Target)
	}
	a := &db.Activity{Type: TypeRestore, Environment: plan.Target, Actor: req.Actor, State: db.ActivityQueued,
		Params: string(params), Summary: summary}
	if err := o.Catalog.CreateActivity(ctx, a); err != nil {
		return nil, plan, err
	}
	if err := o.Runner.Enqueue(a.ID); err != nil {
		return nil, plan, err
	}
	return a, plan, nil
}

// restoreAtJob restores an environment's state at a moment: each service is rebuilt at that moment by its kind in
// a private scratch instance, the scratch databases are taken as a transient backup, and that backup is restored
// like any other (prepare, pause, switch, pre-restore backup), so undo works as for a backup's restore.
type restoreAtJob struct {
	restoreJob
}

func (j *restoreAtJob) Run(ctx context.Context, p *Progress) error {
	o := j.o
	at, err := time.Parse(time.RFC3339Nano, j.params.At)
	if err != nil {
		return fmt.Errorf("restore activity %d: bad moment %q", j.activity.ID, j.params.At)
	}
	env, err := o.Catalog.FindEnvironmentByName(ctx, j.params.Target)
	if err != nil {
		return fmt.Errorf("target environment %q: %w", j.params.Target, err)
	}
	// Rebuild every service at the moment (planning again when the growing segment was replaced meanwhile),
	// then take the scratch databases as one transient backup.
	var scratch []pitr.Rebuilt
	defer func() {
		for _, sc := range scratch {
			sc.Close() //nolint:errcheck
		}
	}()
	var plan *RestoreAtPlan
	var specs, targets []backup.ServiceSpec
	for attempt := 1; ; attempt++ {
		plan, err = o.PlanRestoreAt(ctx, RestoreAtRequest{Environment: j.params.Source, At: at, Target: j.params.Target})
		if err == nil && plan.Problem != nil {
			err = plan.Problem
		}
		if err != nil {
			return fmt.Errorf("%w (nothing was changed)", err)
		}
		specs, targets, err = j.rebuild(ctx, p, plan, env, &scratch)
		if !errors.Is(err, pitr.ErrReplaced) || attempt == 3 {
			break
		}
	}
	if err != nil {
		return err
	}
	sort.Slice(specs, func(a, b int) bool { return specs[a].Name < specs[b].Name })
	sort.Slice(targets, func(a, b int) bool { return targets[a].Name < targets[b].Name })
	transient := j.params.Transient
	if _, err := o.Engine.Backup(ctx, backup.BackupRequest{ID: transient, Environment: plan.Environment,
		Kind: backup.KindManual, Live: true, Services: specs}, nil); err != nil {
		return fmt.Errorf("capture the rebuilt state: %w (nothing was changed)", err)
	}
	defer func() {
		if err := o.Engine.DeleteBackup(context.WithoutCancel(ctx), transient); err != nil {
			p.Logf("warning: could not delete the transient capture %s: %v", transient, err)
		}
	}()
	for _, sc := range scratch {
		sc.Close() //nolint:errcheck
	}
	scratch = nil
	return j.restoreInto(ctx, p, env, &db.Backup{ID: transient}, targets,
		fmt.Sprintf("the state of %s at %s", plan.Environment, j.params.At))
}

// rebuild starts a scratch instance per service of plan, rebuilt at its moment by the service's kind, and returns
// the specs of the scratch instances and of the target services they are restored into.
func (j *restoreAtJob) rebuild(ctx context.Context, p *Progress, plan *RestoreAtPlan, env *db.Environment,
	scratch *[]pitr.Rebuilt,
) (specs, targets []backup.ServiceSpec, err error) {
	o := j.o
	for _, sc := range *scratch {
		sc.Close() //nolint:errcheck
	}
	*scratch = nil
	for _, rs := range plan.Services {
		dir, err := os.MkdirTemp("", "rewind-pitr-")
		if err != nil {
			return nil, nil, fmt.Errorf("create scratch directory: %w", err)
		}
		t0 := o.now()
		sc, err := rs.kind.Rebuild(ctx, pitr.RebuildSpec{Repo: o.PITR.Repo, Service: rs.source, Choice: rs.choice,
			Target: plan.At, Dir: dir})
		if err != nil {
			return nil, nil, fmt.Errorf("rebuild service %s at %s: %w (nothing was changed)", rs.Name, j.params.At, err)
		}
		*scratch = append(*scratch, sc)
		p.Logf("rebuilt %s at %s in a scratch server in %s: %s", rs.Name, j.params.At,
			o.now().Sub(t0).Round(time.Millisecond), reachedText(sc.Reached(), rs.BaseAt))
		specs = append(specs, sc.Spec(rs.source))
		ts := env.Service(rs.Name)
		targets = append(targets, backup.ServiceSpec{Name: ts.Name, Type: ts.Type, URL: ts.URL, Path: ts.Path})
	}
	return specs, targets, nil
}

func reachedText(reached *time.Time, base time.Time) string {
	if reached == nil {
		return "no change between its base backup of " + base.UTC().Format(time.RFC3339) + " and then"
	}
	return "its last commit at or before then was at " + reached.UTC().Format(time.RFC3339Nano)
}

// dropTransient deletes the capture of the rebuilt state that a restore to a moment cut off by a stop of Rewind
// left in the repository (the job deletes it when it ends).
func (o *Operations) dropTransient(a *db.Activity) {
	var p restoreParams
	if json.Unmarshal([]byte(a.Params), &p) != nil || p.Transient == "" || o.Engine == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = o.Engine.DeleteBackup(ctx, p.Transient) // gone already, or never taken: nothing to do
}

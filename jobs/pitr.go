package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/pitr"
	"github.com/rewind/rewind/db"
)

// PITRRange is a span of restorable moments; PITRCheckResult one prerequisite of following a server.
type (
	PITRRange       = pitr.Range
	PITRCheckResult = pitr.CheckResult
)

// PITRCatalog is what point-in-time protection needs of the catalog.
type PITRCatalog interface {
	FindEnvironments(ctx context.Context, f db.EnvironmentFilter) ([]*db.Environment, error)
	FindEnvironmentByName(ctx context.Context, name string) (*db.Environment, error)
	FindPlan(ctx context.Context) (*db.Plan, error)
	CreateActivity(ctx context.Context, a *db.Activity) error
	EnsurePITRStream(ctx context.Context, env, service, slot string) (*db.PITRStream, error)
	FindPITRStream(ctx context.Context, env, service string) (*db.PITRStream, error)
	FindPITRStreams(ctx context.Context, env string) ([]*db.PITRStream, error)
	UpdatePITRStream(ctx context.Context, id int64, upd db.PITRStreamUpdate) error
	CreatePITRBase(ctx context.Context, b *db.PITRBase) error
	FindPITRBases(ctx context.Context, streamID int64) ([]*db.PITRBase, error)
	PutPITRSegment(ctx context.Context, s *db.PITRSegment) (string, error)
	FindPITRSegments(ctx context.Context, streamID int64, from string) ([]*db.PITRSegment, error)
	DeletePITRHistory(ctx context.Context, streamID, keep int64, from string) ([]string, error)
}

// PITR keeps one follower running per service, whose type has a Kind, of every active environment with
// point-in-time protection on, as the catalog says (read every Poll), restarting a failed follower with backoff,
// and releases what a service's server keeps for the stream (a replication slot) once its protection is switched
// off. It also plans and runs restores to a moment (RestoreAt).
type PITR struct {
	Catalog  PITRCatalog
	Repo     *backup.Repository
	SpoolDir string // the followers' spools and base backups: <data>/pitr
	Log      *slog.Logger
	Now      func() time.Time
	// Kinds are the point-in-time protections by service type (backup.TypePostgreSQL, ...): services of other
	// types are not followed, and an environment holding one cannot be restored to a moment.
	Kinds map[string]pitr.Kind
	// Poll is how often the settings are read (2 s when 0); ShipEvery how often a follower ships its newest
	// changes (1 s when 0).
	Poll      time.Duration
	ShipEvery time.Duration
	// PruneEvery is how often bases and segments older than the window are deleted (1 h when 0).
	PruneEvery time.Duration

	mu      sync.Mutex
	running map[streamKey]*followerRun
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

type streamKey struct{ env, service string }

type followerRun struct {
	svc    backup.ServiceSpec
	kind   pitr.Kind
	cancel context.CancelFunc
	done   chan struct{}
}

func (s *PITR) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *PITR) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.New(slog.DiscardHandler)
}

// Start begins following; Close stops every follower.
func (s *PITR) Start(ctx context.Context) {
	ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	poll := s.Poll
	if poll <= 0 {
		poll = 2 * time.Second
	}
	pruneEvery := s.PruneEvery
	if pruneEvery <= 0 {
		pruneEvery = time.Hour
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		var pruned time.Time
		for {
			if err := s.Sync(ctx); err != nil && ctx.Err() == nil {
				s.log().Error("point-in-time followers", "err", err)
			}
			if s.now().Sub(pruned) >= pruneEvery {
				pruned = s.now()
				if err := s.Prune(ctx); err != nil && ctx.Err() == nil {
					s.log().Error("prune point-in-time history", "err", err)
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(poll):
			}
		}
	}()
}

// kind is the point-in-time protection of services of type typ (nil: none).
func (s *PITR) kind(typ string) pitr.Kind { return s.Kinds[typ] }

// KindTypes are the service types that can be followed and restored to a moment, sorted.
func (s *PITR) KindTypes() []string {
	out := make([]string, 0, len(s.Kinds))
	for t := range s.Kinds {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Close stops the followers (their slots stay: following resumes from them at the next start).
func (s *PITR) Close() {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	s.mu.Lock()
	runs := s.running
	s.running = nil
	s.mu.Unlock()
	for _, r := range runs {
		r.cancel()
		<-r.done
	}
}

// Sync starts the followers the catalog asks for and stops (releasing what their servers keep for them) those it
// no longer does.
func (s *PITR) Sync(ctx context.Context) error {
	envs, err := s.Catalog.FindEnvironments(ctx, db.EnvironmentFilter{})
	if err != nil {
		return err
	}
	want := map[streamKey]backup.ServiceSpec{}
	known := map[streamKey]backup.ServiceSpec{} // every service with a kind, followed or not: to release it
	for _, e := range envs {
		for _, svc := range e.Services {
			if s.kind(svc.Type) == nil {
				continue
			}
			k := streamKey{e.Name, svc.Name}
			known[k] = serviceSpec(svc)
			if e.PITR != nil && e.PITR.Enabled && e.Status == db.StatusActive {
				want[k] = serviceSpec(svc)
			}
		}
	}
	s.mu.Lock()
	if s.running == nil {
		s.running = map[streamKey]*followerRun{}
	}
	var stop []*followerRun
	for k, r := range s.running {
		if sp, ok := want[k]; !ok || sp.URL != r.svc.URL || sp.Path != r.svc.Path || sp.Type != r.svc.Type {
			stop = append(stop, r)
			delete(s.running, k)
			if _, ok := known[k]; !ok {
				known[k] = r.svc // the service is gone from the catalog: its follower still knows the server
			}
		}
	}
	s.mu.Unlock()
	for _, r := range stop {
		r.cancel()
		<-r.done
	}

	streams, err := s.Catalog.FindPITRStreams(ctx, "")
	if err != nil {
		return err
	}
	var errs []error
	for _, st := range streams {
		k := streamKey{st.Environment, st.Service}
		if _, ok := want[k]; ok || st.State == db.PITRStopped {
			continue
		}
		// Switched off (or the environment deactivated): the server must stop keeping anything for Rewind.
		state, msg := db.PITRStopped, ""
		summary := fmt.Sprintf("Stopped point-in-time protection of %s", st.Service)
		if sp, ok := known[k]; ok {
			if err := s.kind(sp.Type).Release(ctx, st.Environment, sp); err != nil {
				errs = append(errs, err)
				continue // tried again at the next sync
			}
			if st.Slot != "" {
				summary += fmt.Sprintf(" and dropped its replication slot %s", st.Slot)
			}
		} else if st.Slot != "" {
			msg = fmt.Sprintf("the service is gone, so Rewind could not drop its replication slot: run "+
				"SELECT pg_drop_replication_slot('%s') on its server", st.Slot)
		}
		if err := s.Catalog.UpdatePITRStream(ctx, st.ID, db.PITRStreamUpdate{State: &state, Error: &msg}); err != nil {
			errs = append(errs, err)
			continue
		}
		s.activity(ctx, st.Environment, summary)
	}

	for k, sp := range want {
		s.mu.Lock()
		_, ok := s.running[k]
		s.mu.Unlock()
		if ok {
			continue
		}
		kind := s.kind(sp.Type)
		st, err := s.Catalog.EnsurePITRStream(ctx, k.env, k.service, kind.Slot(k.env, k.service))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if st.State == db.PITRStopped || st.StartedAt == nil {
			summary := fmt.Sprintf("Started point-in-time protection of %s", k.service)
			if st.Slot != "" {
				summary += fmt.Sprintf(" (replication slot %s)", st.Slot)
			}
			s.activity(ctx, k.env, summary)
		}
		rctx, cancel := context.WithCancel(ctx)
		r := &followerRun{svc: sp, kind: kind, cancel: cancel, done: make(chan struct{})}
		s.mu.Lock()
		if s.running == nil { // closed meanwhile
			s.mu.Unlock()
			cancel()
			return errors.Join(errs...)
		}
		s.running[k] = r
		s.mu.Unlock()
		go s.follow(rctx, r, st)
	}
	return errors.Join(errs...)
}

func (s *PITR) activity(ctx context.Context, env, summary string) {
	if err := s.Catalog.CreateActivity(ctx, &db.Activity{Type: "pitr.follow", Environment: env,
		Actor: ActorSchedule, Summary: summary}); err != nil {
		s.log().Error("record activity", "err", err)
	}
}

// follow runs a follower until ctx ends, restarting it after a failure: 1 s, doubling up to a minute, and
// back to 1 s after a run that lasted a minute.
func (s *PITR) follow(ctx context.Context, r *followerRun, st *db.PITRStream) {
	defer close(r.done)
	spec := pitr.FollowSpec{Environment: st.Environment, Service: r.svc, Repo: s.Repo,
		Spool: filepath.Join(s.SpoolDir, st.Environment, st.Service), ShipEvery: s.ShipEvery, Now: s.Now,
		Record: &streamRecorder{cat: s.Catalog, id: st.ID, env: st.Environment, service: st.Service}}
	backoff := time.Second
	for {
		started := s.now()
		state, none := db.PITRRunning, ""
		_ = s.Catalog.UpdatePITRStream(ctx, st.ID, db.PITRStreamUpdate{State: &state, Error: &none, StartedAt: &started})
		err := r.kind.Follow(ctx, spec)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("the follower stopped")
		}
		if s.now().Sub(started) > time.Minute {
			backoff = time.Second
		}
		failed, msg := db.PITRFailed, fmt.Sprintf("%v (retrying in %s)", err, backoff)
		_ = s.Catalog.UpdatePITRStream(ctx, st.ID, db.PITRStreamUpdate{State: &failed, Error: &msg})
		s.log().Warn("point-in-time follower failed", "environment", st.Environment, "service", st.Service, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Minute)
	}
}

// streamRecorder records what a follower ships in the catalog.
type streamRecorder struct {
	cat          PITRCatalog
	id           int64
	env, service string
}

func (r *streamRecorder) LatestBase(ctx context.Context) (string, time.Time, bool, error) {
	bases, err := r.cat.FindPITRBases(ctx, r.id)
	if err != nil || len(bases) == 0 {
		return "", time.Time{}, false, err
	}
	b := bases[len(bases)-1]
	return b.SystemID, b.FinishedAt, true, nil
}

func (r *streamRecorder) BaseShipped(ctx context.Context, b pitr.Base) error {
	return r.cat.CreatePITRBase(ctx, &db.PITRBase{StreamID: r.id, Snapshot: b.Snapshot, SystemID: b.SystemID,
		Timeline: b.Timeline, StartLSN: b.StartLSN, EndLSN: b.EndLSN, StartWAL: b.StartWAL, StartedAt: b.StartedAt,
		FinishedAt: b.FinishedAt, Bytes: b.Bytes})
}

func (r *streamRecorder) SegmentShipped(ctx context.Context, s pitr.Segment) (string, error) {
	seg := &db.PITRSegment{StreamID: r.id, Name: s.Name, Snapshot: s.Snapshot, Partial: s.Partial, EndLSN: s.LastLSN,
		ReadAt: s.ReadAt, Bytes: s.Bytes}
	if n := len(s.Commits); n > 0 {
		seg.FirstCommitAt, seg.LastCommitAt = &s.Commits[0], &s.Commits[n-1]
	}
	return r.cat.PutPITRSegment(ctx, seg)
}

func (r *streamRecorder) Report(ctx context.Context, rep pitr.Report) error {
	state, none := db.PITRRunning, ""
	upd := db.PITRStreamUpdate{State: &state, Error: &none, WALStatus: &rep.WALStatus, LagBytes: &rep.LagBytes}
	if !rep.CoveredUntil.IsZero() {
		upd.CoveredUntil = &rep.CoveredUntil
	}
	if !rep.LastCommit.IsZero() {
		upd.LastCommitAt = &rep.LastCommit
	}
	return r.cat.UpdatePITRStream(ctx, r.id, upd)
}

// Gap records, as an activity of the stream's environment, that following lost its position.
func (r *streamRecorder) Gap(ctx context.Context, reason string) error {
	return r.cat.CreateActivity(ctx, &db.Activity{Type: "pitr.gap", Environment: r.env, Actor: ActorSchedule,
		State: db.ActivityFailed, Summary: fmt.Sprintf("Point-in-time protection of %s has a gap: %s", r.service, reason)})
}

// Check runs the prerequisites check of every service of env whose type has a kind.
func (s *PITR) Check(ctx context.Context, env string) (map[string][]pitr.CheckResult, error) {
	e, err := s.Catalog.FindEnvironmentByName(ctx, env)
	if err != nil {
		return nil, err
	}
	out := map[string][]pitr.CheckResult{}
	for _, svc := range e.Services {
		if k := s.kind(svc.Type); k != nil {
			ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			out[svc.Name] = k.Check(ctx, e.Name, serviceSpec(svc))
			cancel()
		}
	}
	return out, nil
}

// Ranges returns the moments each followed service of env can be restored to, within its window.
func (s *PITR) Ranges(ctx context.Context, env string) (map[string][]pitr.Range, error) {
	e, err := s.Catalog.FindEnvironmentByName(ctx, env)
	if err != nil {
		return nil, err
	}
	notBefore, err := s.window(ctx, e, s.now())
	if err != nil {
		return nil, err
	}
	streams, err := s.Catalog.FindPITRStreams(ctx, env)
	if err != nil {
		return nil, err
	}
	out := map[string][]pitr.Range{}
	for _, st := range streams {
		svc := e.Service(st.Service)
		if svc == nil || s.kind(svc.Type) == nil {
			continue // the service is gone, or its type is no longer followed: nothing to restore it into
		}
		stream, err := s.stream(ctx, st, s.kind(svc.Type))
		if err != nil {
			return nil, err
		}
		out[st.Service] = stream.Ranges(notBefore)
	}
	return out, nil
}

// Prune deletes, for every stream, what no moment of its window needs: the bases before the newest one finished
// before the window starts, and the segments before that base. The catalog forgets them first, so a restore never
// plans with a deleted snapshot. A stream whose environment is gone keeps the longest window (30 days).
func (s *PITR) Prune(ctx context.Context) error {
	streams, err := s.Catalog.FindPITRStreams(ctx, "")
	if err != nil {
		return err
	}
	var errs []error
	for _, st := range streams {
		notBefore := s.now().Add(-db.DefaultPITRWindowDays * 24 * time.Hour)
		if e, err := s.Catalog.FindEnvironmentByName(ctx, st.Environment); err == nil {
			if notBefore, err = s.window(ctx, e, s.now()); err != nil {
				return err
			}
		}
		bases, err := s.Catalog.FindPITRBases(ctx, st.ID)
		if err != nil || len(bases) == 0 {
			errs = append(errs, err)
			continue
		}
		keep := bases[0]
		for _, b := range bases {
			if !b.FinishedAt.After(notBefore) {
				keep = b // the newest base the oldest moment of the window replays from
			}
		}
		snaps, err := s.Catalog.DeletePITRHistory(ctx, st.ID, keep.ID, keep.StartWAL)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := pitr.DeleteSnapshots(ctx, s.Repo, snaps...); err != nil {
			errs = append(errs, fmt.Errorf("delete %d pruned snapshots of %s/%s: %w", len(snaps), st.Environment,
				st.Service, err))
		}
	}
	return errors.Join(errs...)
}

package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/db"
)

// Activity types of retention.
const (
	TypeBackupExpire = "backup.expire"
	TypePlanChange   = "plan.change"
)

// slotHours are the local hours of a schedule's automated backups: daily at 04:00, premium every 6 hours
// anchored on 04:00.
func slotHours(schedule string) []int {
	if schedule == db.SchedulePremium {
		return []int{4, 10, 16, 22}
	}
	return []int{4}
}

// slotsAround returns the schedule's slots on the local days around t, in order. Slots are wall-clock times in
// loc, so a DST change neither skips nor doubles a day.
func slotsAround(schedule string, loc *time.Location, t time.Time) []time.Time {
	l := t.In(loc)
	var out []time.Time
	for d := -1; d <= 1; d++ {
		for _, h := range slotHours(schedule) {
			out = append(out, time.Date(l.Year(), l.Month(), l.Day()+d, h, 0, 0, 0, loc))
		}
	}
	return out
}

// NextRun is the first slot of schedule strictly after t.
func NextRun(schedule string, loc *time.Location, t time.Time) time.Time {
	for _, s := range slotsAround(schedule, loc, t) {
		if s.After(t) {
			return s
		}
	}
	panic("unreachable: a slot every day")
}

// LastSlot is the latest slot of schedule at or before t.
func LastSlot(schedule string, loc *time.Location, t time.Time) time.Time {
	slots := slotsAround(schedule, loc, t)
	for i := len(slots) - 1; i >= 0; i-- {
		if !slots[i].After(t) {
			return slots[i]
		}
	}
	panic("unreachable: a slot every day")
}

// SchedulerCatalog is what the scheduler needs of the catalog.
type SchedulerCatalog interface {
	FindPlan(ctx context.Context) (*db.Plan, error)
	FindEnvironments(ctx context.Context, f db.EnvironmentFilter) ([]*db.Environment, error)
	FindBackups(ctx context.Context, f db.BackupFilter) ([]*db.Backup, int, error)
	Setting(ctx context.Context, key string) (string, error)
	SetSetting(ctx context.Context, key, value string) error
	FindDrills(ctx context.Context, f db.DrillFilter) ([]*db.Drill, error)
}

// Settings keys of the scheduler's state: the last slot it ran and the local day of its last maintenance.
const (
	lastSlotKey        = "scheduler.last_slot"
	lastMaintenanceKey = "scheduler.last_maintenance"
	lastDrillsKey      = "scheduler.last_drills"
)

// Scheduler starts the automated backups of the plan: live backups of every active production environment at
// each slot, attributed to "schedule", then retention and a daily repository maintenance. It remembers the last
// slot it ran in the catalog, so a slot missed while the server was down runs once at start-up, not once per
// missed slot.
type Scheduler struct {
	Catalog SchedulerCatalog
	Ops     *Operations
	Now     func() time.Time
	Log     *slog.Logger
	// MaxSleep caps how long the loop waits before looking again, so a plan change or a clock jump is seen;
	// default one minute.
	MaxSleep time.Duration

	mu   sync.Mutex
	wake chan struct{}
	stop context.CancelFunc
	done chan struct{}
}

func (s *Scheduler) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Scheduler) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

// Start runs what is due now (a missed slot) and then wakes at each next slot until Close. Start it after the
// runner.
func (s *Scheduler) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stop != nil {
		return errors.New("scheduler already started")
	}
	ctx, s.stop = context.WithCancel(context.WithoutCancel(ctx))
	s.wake, s.done = make(chan struct{}, 1), make(chan struct{})
	go s.loop(ctx)
	return nil
}

// Wake makes the loop look at the clock now (after a plan change, or in tests after moving the clock).
func (s *Scheduler) Wake() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wake != nil {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// Close stops the loop and waits for it; backups it started keep running in the runner.
func (s *Scheduler) Close() {
	s.mu.Lock()
	stop, done := s.stop, s.done
	s.mu.Unlock()
	if stop == nil {
		return
	}
	stop()
	<-done
}

func (s *Scheduler) loop(ctx context.Context) {
	defer close(s.done)
	maxSleep := s.MaxSleep
	if maxSleep <= 0 {
		maxSleep = time.Minute
	}
	for {
		if _, err := s.Tick(ctx); err != nil && ctx.Err() == nil {
			s.log().Error("scheduled backups", "err", err)
		}
		wait := maxSleep
		if next, err := s.NextRun(ctx); err == nil {
			wait = min(max(next.Sub(s.now()), 0), maxSleep)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-s.wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// NextRun is the next slot of the project's plan.
func (s *Scheduler) NextRun(ctx context.Context) (time.Time, error) {
	plan, err := s.Catalog.FindPlan(ctx)
	if err != nil {
		return time.Time{}, err
	}
	return NextRun(plan.Schedule, plan.Location(), s.now()), nil
}

// TickResult is what one Tick did.
type TickResult struct {
	Slot        time.Time      // the slot that ran; zero when none was due
	Started     []*db.Backup   // automated backups queued
	Expired     []*db.Backup   // backups retention expired
	Maintenance bool           // a repository maintenance was queued
	Drills      []*db.Activity // restore drills queued (behind the slot's backups)
}

// Tick runs the latest slot at or before now if it has not run yet: one automated backup per active production
// environment, retention for every environment and, once a day, a full repository maintenance. On the very first
// Tick of a catalog it only records the slot, so a new installation does not back up at once.
func (s *Scheduler) Tick(ctx context.Context) (TickResult, error) {
	var res TickResult
	plan, err := s.Catalog.FindPlan(ctx)
	if err != nil {
		return res, err
	}
	loc, now := plan.Location(), s.now()
	due := LastSlot(plan.Schedule, loc, now)
	last, err := s.Catalog.Setting(ctx, lastSlotKey)
	if errors.Is(err, db.ErrNotFound) {
		return res, s.Catalog.SetSetting(ctx, lastSlotKey, due.UTC().Format(time.RFC3339))
	}
	if err != nil {
		return res, err
	}
	if lt, perr := time.Parse(time.RFC3339, last); perr == nil && !due.After(lt) {
		return res, nil
	}
	// Record the slot before starting it: a crash in the middle must not start its backups twice.
	if err := s.Catalog.SetSetting(ctx, lastSlotKey, due.UTC().Format(time.RFC3339)); err != nil {
		return res, err
	}
	res.Slot = due
	envs, err := s.Catalog.FindEnvironments(ctx, db.EnvironmentFilter{})
	if err != nil {
		return res, err
	}
	var errs []error
	for _, env := range envs {
		if !Scheduled(env) {
			continue
		}
		if busy, err := s.automatedInProgress(ctx, env.Name); err != nil || busy {
			if busy {
				s.log().Warn("skipping a scheduled backup: the previous one has not finished", "environment", env.Name)
			}
			errs = append(errs, err)
			continue
		}
		_, b, err := s.Ops.StartBackup(ctx, BackupRequest{Environment: env.Name, Live: true, Kind: db.BackupAutomated,
			Actor: ActorSchedule})
		if err != nil {
			errs = append(errs, fmt.Errorf("scheduled backup of %s: %w", env.Name, err))
			continue
		}
		res.Started = append(res.Started, b)
	}
	// Daily: retention everywhere (pre-restore backups age out, inactive environments follow plan changes) and a
	// full maintenance, so the space of expired backups is freed once kopia's safety margins have passed.
	expired, err := s.Ops.ApplyRetentionAll(ctx, *plan, ActorSchedule)
	res.Expired = expired
	errs = append(errs, err)
	day := due.In(loc).Format("2006-01-02")
	if lastDay, _ := s.Catalog.Setting(ctx, lastMaintenanceKey); lastDay != day {
		if err := s.Catalog.SetSetting(ctx, lastMaintenanceKey, day); err != nil {
			errs = append(errs, err)
		} else if queued, err := s.Ops.QueueMaintenance(ctx, ActorSchedule); err != nil {
			errs = append(errs, err)
		} else {
			res.Maintenance = queued
		}
	}
	// Daily too: the restore drills that are due, queued behind the slot's backups so they restore those.
	if lastDay, _ := s.Catalog.Setting(ctx, lastDrillsKey); lastDay != day {
		if err := s.Catalog.SetSetting(ctx, lastDrillsKey, day); err != nil {
			errs = append(errs, err)
		} else {
			res.Drills, err = s.startDrills(ctx, envs, now)
			errs = append(errs, err)
		}
	}
	return res, errors.Join(errs...)
}

// drillSlack is how much earlier than a full period after the last drill the next one is due, so a drill that
// ran a little later than its slot (behind a long backup) does not push the next one to the day after.
const drillSlack = 4 * time.Hour

// DrillDue reports whether env's restore drill is due at now, given its latest drill (nil: none yet): daily
// and weekly drills are due a day or a week after the last one started, less drillSlack.
func DrillDue(env *db.Environment, last *db.Drill, now time.Time) bool {
	var period time.Duration
	switch env.Drill.Schedule {
	case db.DrillDaily:
		period = 24 * time.Hour
	case db.DrillWeekly:
		period = 7 * 24 * time.Hour
	default:
		return false
	}
	return env.Status == db.StatusActive && (last == nil || now.Sub(last.CreatedAt) >= period-drillSlack)
}

// startDrills queues the restore drills of envs that are due.
func (s *Scheduler) startDrills(ctx context.Context, envs []*db.Environment, now time.Time) ([]*db.Activity, error) {
	var started []*db.Activity
	var errs []error
	for _, env := range envs {
		name := env.Name
		last, err := s.Catalog.FindDrills(ctx, db.DrillFilter{Environment: &name, Limit: 1})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var latest *db.Drill
		if len(last) > 0 {
			latest = last[0]
		}
		if !DrillDue(env, latest, now) {
			continue
		}
		a, err := s.Ops.StartDrill(ctx, DrillRequest{Environment: env.Name, Actor: ActorSchedule, Latest: true})
		if err != nil {
			errs = append(errs, fmt.Errorf("scheduled drill of %s: %w", env.Name, err))
			continue
		}
		started = append(started, a)
	}
	return started, errors.Join(errs...)
}

// Scheduled reports whether env gets automated backups: active production environments with services.
func Scheduled(env *db.Environment) bool {
	return env.Type == db.EnvProduction && env.Status == db.StatusActive && len(env.Services) > 0
}

func (s *Scheduler) automatedInProgress(ctx context.Context, env string) (bool, error) {
	kind := db.BackupAutomated
	for _, st := range []string{db.BackupPending, db.BackupRunning} {
		st := st
		_, n, err := s.Catalog.FindBackups(ctx, db.BackupFilter{Environment: &env, Kind: &kind, Status: &st, Limit: 1})
		if err != nil || n > 0 {
			return n > 0, err
		}
	}
	return false, nil
}

// AfterBackup applies retention to env after one of its backups completed; Operations.AfterBackup calls it from
// the backup's job, so it runs under the environment's lock and logs to the backup's activity.
func (s *Scheduler) AfterBackup(ctx context.Context, env string, p *Progress) {
	plan, err := s.Catalog.FindPlan(ctx)
	if err == nil {
		var expired []*db.Backup
		expired, err = s.Ops.ApplyRetention(ctx, *plan, env, ActorSchedule)
		for _, b := range expired {
			p.Logf("retention: expired %s backup %s", b.Kind, b.ID)
		}
	}
	if err != nil {
		p.Logf("warning: retention after the backup: %v", err)
	}
}

// ApplyRetention expires the backups of env that plan no longer keeps: snapshot deleted from the repository,
// row marked expired, an activity for each; then queues a repository maintenance so the space is freed. It
// returns the expired backups.
func (o *Operations) ApplyRetention(ctx context.Context, plan db.Plan, env, actor string) ([]*db.Backup, error) {
	o.retention.Lock()
	defer o.retention.Unlock()
	expiring, err := o.expiring(ctx, plan, env)
	if err != nil || len(expiring) == 0 {
		return nil, err
	}
	var done []*db.Backup
	for _, e := range expiring {
		if err := o.expire(ctx, e, plan.Schedule, actor); err != nil {
			return done, err
		}
		done = append(done, e.Backup)
	}
	_, err = o.QueueMaintenance(ctx, actor)
	return done, err
}

// ApplyRetentionAll applies retention to every environment.
func (o *Operations) ApplyRetentionAll(ctx context.Context, plan db.Plan, actor string) ([]*db.Backup, error) {
	envs, err := o.environmentsWithBackups(ctx)
	if err != nil {
		return nil, err
	}
	var all []*db.Backup
	var errs []error
	for _, env := range envs {
		done, err := o.ApplyRetention(ctx, plan, env, actor)
		all = append(all, done...)
		errs = append(errs, err)
	}
	return all, errors.Join(errs...)
}

// Expiring is a backup retention would expire, and why.
type Expiring struct {
	Backup *db.Backup
	Reason string
}

// PreviewRetention lists the backups of every environment that plan would expire now, newest first per
// environment: what a downgrade shows before it is confirmed.
func (o *Operations) PreviewRetention(ctx context.Context, plan db.Plan) ([]Expiring, error) {
	envs, err := o.environmentsWithBackups(ctx)
	if err != nil {
		return nil, err
	}
	var out []Expiring
	for _, env := range envs {
		e, err := o.expiring(ctx, plan, env)
		if err != nil {
			return nil, err
		}
		out = append(out, e...)
	}
	return out, nil
}

func (o *Operations) environmentsWithBackups(ctx context.Context) ([]string, error) {
	backups, err := o.allBackups(ctx, nil)
	if err != nil {
		return nil, err
	}
	seen, out := map[string]bool{}, []string{}
	for _, b := range backups {
		if !seen[b.Environment] {
			seen[b.Environment] = true
			out = append(out, b.Environment)
		}
	}
	return out, nil
}

func (o *Operations) allBackups(ctx context.Context, env *string) ([]*db.Backup, error) {
	var all []*db.Backup
	for offset := 0; ; offset += 1000 {
		page, total, err := o.Catalog.FindBackups(ctx, db.BackupFilter{Environment: env, Offset: offset, Limit: 1000})
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if len(page) == 0 || offset+len(page) >= total {
			return all, nil
		}
	}
}

func (o *Operations) expiring(ctx context.Context, plan db.Plan, env string) ([]Expiring, error) {
	envType := ""
	if e, err := o.Catalog.FindEnvironmentByName(ctx, env); err == nil {
		envType = e.Type
	} else if !errors.Is(err, db.ErrNotFound) {
		return nil, err
	}
	backups, err := o.allBackups(ctx, &env)
	if err != nil {
		return nil, err
	}
	verdicts := Retain(backups, plan.Schedule, envType, plan.Location(), o.now())
	restoring, err := o.restoring(ctx)
	if err != nil {
		return nil, err
	}
	var out []Expiring
	for _, b := range backups { // newest first
		if v, ok := verdicts[b.ID]; ok && !v.Keep && !restoring[b.ID] {
			out = append(out, Expiring{Backup: b, Reason: v.Reason})
		}
	}
	return out, nil
}

// restoring returns the backups a queued or running restore or restore drill reads: retention leaves them until
// it ends.
func (o *Operations) restoring(ctx context.Context) (map[string]bool, error) {
	out := map[string]bool{}
	for _, typ := range []string{TypeRestore, TypeDrill} {
		for _, st := range []string{db.ActivityQueued, db.ActivityRunning} {
			acts, _, err := o.Catalog.FindActivities(ctx, db.ActivityFilter{Type: &typ, State: &st, Limit: 1000})
			if err != nil {
				return nil, err
			}
			for _, a := range acts {
				out[a.BackupID] = true
			}
		}
	}
	return out, nil
}

// expire deletes a backup's snapshot (its data is freed by the next full maintenance), marks the row expired and
// writes the activity.
func (o *Operations) expire(ctx context.Context, e Expiring, schedule, actor string) error {
	b := e.Backup
	if o.Engine != nil {
		if err := o.Engine.DeleteBackup(ctx, b.ID); err != nil && !errors.Is(err, backup.ErrNotFound) {
			return fmt.Errorf("expire backup %s: %w", b.ID, err)
		}
	}
	expired := db.BackupExpired
	if _, err := o.Catalog.UpdateBackup(ctx, b.ID, db.BackupUpdate{Status: &expired}); err != nil {
		return err
	}
	return o.Catalog.CreateActivity(ctx, &db.Activity{Type: TypeBackupExpire, Environment: b.Environment,
		Actor: actor, BackupID: b.ID, Summary: fmt.Sprintf("Expired %s backup %s of %s (%s schedule: %s)", b.Kind,
			b.ID, b.Environment, schedule, e.Reason)})
}

// maintenanceFull are the params of a full maintenance activity.
const maintenanceFull = `{"full":true}`

// QueueMaintenance queues a full repository maintenance unless one is already waiting; it reports whether it
// queued one.
func (o *Operations) QueueMaintenance(ctx context.Context, actor string) (bool, error) {
	typ, queued := TypeMaintenance, db.ActivityQueued
	if _, n, err := o.Catalog.FindActivities(ctx, db.ActivityFilter{Type: &typ, State: &queued, Limit: 1}); err != nil || n > 0 {
		return false, err
	}
	a := &db.Activity{Type: TypeMaintenance, Actor: actor, State: db.ActivityQueued, Params: maintenanceFull,
		Summary: "Repository maintenance: free the space of deleted and expired backups"}
	if err := o.Catalog.CreateActivity(ctx, a); err != nil {
		return false, err
	}
	return true, o.Runner.Enqueue(a.ID)
}

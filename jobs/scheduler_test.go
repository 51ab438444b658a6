package jobs_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/jobs"
)

// clock is a settable clock shared by the catalog, the runner and the scheduler.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// schedWorld is a real catalog and runner whose backup jobs complete at once (no repository: the scheduler's
// decisions are what is tested here; jobs/operations_test.go and the web tests take real backups).
type schedWorld struct {
	catalog *db.DB
	ops     *jobs.Operations
	sched   *jobs.Scheduler
	clock   *clock
	loc     *time.Location
}

func newSchedWorld(t *testing.T, schedule, tz string, start time.Time) *schedWorld {
	t.Helper()
	ctx := context.Background()
	loc, _ := time.LoadLocation(tz)
	w := &schedWorld{catalog: openCatalog(t), clock: &clock{t: start}, loc: loc}
	w.catalog.Now = w.clock.Now
	tier := db.TierEnterprise
	if err := w.catalog.UpdatePlan(ctx, db.Plan{Name: "Shop", Timezone: tz, Tier: tier, Schedule: schedule}); err != nil {
		t.Fatal(err)
	}
	w.ops = &jobs.Operations{Catalog: w.catalog, Now: w.clock.Now}
	w.sched = &jobs.Scheduler{Catalog: w.catalog, Ops: w.ops, Now: w.clock.Now}
	w.ops.AfterBackup = w.sched.AfterBackup
	w.ops.Runner = jobs.NewRunner(w.catalog, func(a *db.Activity) (jobs.Job, error) {
		return jobs.JobFunc(func(ctx context.Context, p *jobs.Progress) error {
			if a.Type == jobs.TypeBackup {
				complete := db.BackupComplete
				if _, err := w.catalog.UpdateBackup(ctx, a.BackupID, db.BackupUpdate{Status: &complete}); err != nil {
					return err
				}
				w.ops.AfterBackup(ctx, a.Environment, p)
			}
			return nil
		}), nil
	}, 1, nil)
	w.ops.Runner.Now = w.clock.Now
	if err := w.ops.Runner.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.ops.Runner.Close)
	for _, e := range []*db.Environment{
		{Name: "main", Type: db.EnvProduction, Services: []db.Service{{Name: "app", Type: db.ServiceSQLite, Path: "/srv/app.db"}}},
		{Name: "stage", Type: db.EnvStaging, Services: []db.Service{{Name: "app", Type: db.ServiceSQLite, Path: "/srv/s.db"}}},
		{Name: "old", Type: db.EnvProduction, Status: db.StatusInactive, Services: []db.Service{{Name: "app", Type: db.ServiceSQLite, Path: "/srv/o.db"}}},
		{Name: "empty", Type: db.EnvProduction},
	} {
		if err := w.catalog.CreateEnvironment(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

func (w *schedWorld) at(t *testing.T, local string) {
	t.Helper()
	tm, err := time.ParseInLocation("2006-01-02 15:04", local, w.loc)
	if err != nil {
		t.Fatal(err)
	}
	w.clock.Set(tm)
}

func (w *schedWorld) tick(t *testing.T) jobs.TickResult {
	t.Helper()
	res, err := w.sched.Tick(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Wait for everything queued (backups, maintenance) to end.
	deadline := time.Now().Add(20 * time.Second)
	for {
		acts, err := w.catalog.FindUnfinishedActivities(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(acts) == 0 {
			return res
		}
		if time.Now().After(deadline) {
			t.Fatalf("activity %d (%s) did not finish", acts[0].ID, acts[0].Type)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (w *schedWorld) backups(t *testing.T, kind, status string) []string {
	t.Helper()
	f := db.BackupFilter{Limit: 1000}
	if kind != "" {
		f.Kind = &kind
	}
	if status != "" {
		f.Status = &status
	}
	bs, _, err := w.catalog.FindBackups(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, b := range bs {
		out = append(out, b.Environment+" "+b.CreatedAt.In(w.loc).Format("01-02 15:04"))
	}
	return out
}

func TestSchedulerTicks(t *testing.T) {
	ctx := context.Background()
	w := newSchedWorld(t, db.ScheduleBasic, "Europe/Berlin", time.Time{})
	w.at(t, "2028-03-24 12:00")
	if res := w.tick(t); len(res.Started) != 0 || !res.Slot.IsZero() {
		t.Fatalf("first tick of a new catalog = %+v, want it to only record the slot", res)
	}
	steps := []struct {
		at      string
		started int
		auto    []string // complete automated backups after the step, newest first
	}{
		{"2028-03-24 23:59", 0, nil},
		{"2028-03-25 04:00", 1, []string{"main 03-25 04:00"}},
		{"2028-03-25 04:30", 0, []string{"main 03-25 04:00"}},
		// DST: Berlin springs forward on the 26th; the slot is still 04:00, once.
		{"2028-03-26 04:00", 1, []string{"main 03-26 04:00", "main 03-25 04:00"}},
		{"2028-03-26 05:00", 0, []string{"main 03-26 04:00", "main 03-25 04:00"}},
		// Down from the 26th to the 29th at 09:15: the missed slots run once, at start-up.
		{"2028-03-29 09:15", 1, []string{"main 03-29 09:15", "main 03-26 04:00"}},
		{"2028-03-29 10:00", 0, []string{"main 03-29 09:15", "main 03-26 04:00"}},
		{"2028-03-30 04:00", 1, []string{"main 03-30 04:00", "main 03-29 09:15"}},
	}
	for _, s := range steps {
		w.at(t, s.at)
		res := w.tick(t)
		if got := len(res.Started); got != s.started {
			t.Fatalf("%s: started %d backups, want %d", s.at, got, s.started)
		}
		for _, b := range res.Started {
			if b.Kind != db.BackupAutomated || !b.Live || b.Environment != "main" {
				t.Fatalf("%s: started %+v, want a live automated backup of main", s.at, b)
			}
			a, _ := w.catalog.FindActivityByID(ctx, b.ActivityID)
			if a.Actor != "schedule" {
				t.Fatalf("actor = %q, want schedule", a.Actor)
			}
		}
		if got, want := strings.Join(w.backups(t, db.BackupAutomated, db.BackupComplete), ", "), strings.Join(s.auto, ", "); got != want {
			t.Fatalf("%s: automated backups kept = [%s], want [%s]", s.at, got, want)
		}
	}
	if got, want := len(w.backups(t, db.BackupAutomated, db.BackupExpired)), 2; got != want {
		t.Fatalf("expired automated backups = %d, want %d", got, want)
	}
	typ := jobs.TypeBackupExpire
	acts, _, _ := w.catalog.FindActivities(ctx, db.ActivityFilter{Type: &typ})
	if len(acts) != 2 || !strings.Contains(acts[0].Summary, "basic schedule") || acts[0].Actor != "schedule" {
		t.Fatalf("expire activities = %d, first %+v", len(acts), acts)
	}
	typ = jobs.TypeMaintenance
	if _, n, _ := w.catalog.FindActivities(ctx, db.ActivityFilter{Type: &typ}); n < 4 {
		t.Fatalf("maintenance activities = %d, want one a day at least (25, 26, 29, 30 March)", n)
	}
}

func TestSchedulerPremiumAndLoop(t *testing.T) {
	w := newSchedWorld(t, db.SchedulePremium, "America/New_York", time.Time{})
	w.at(t, "2028-11-04 12:00")
	w.tick(t)
	// Fall back on 5 November: four slots on the day, each once.
	for _, at := range []string{"2028-11-04 16:00", "2028-11-04 22:00", "2028-11-05 04:00", "2028-11-05 10:00", "2028-11-05 16:00", "2028-11-05 22:00"} {
		w.at(t, at)
		if got := len(w.tick(t).Started); got != 1 {
			t.Fatalf("%s: %d backups, want 1", at, got)
		}
	}
	// The loop: started, it wakes when told to (the clock moved to the next slot) without sleeping until then.
	next, _ := w.sched.NextRun(context.Background())
	if got, want := next.In(w.loc).Format("01-02 15:04"), "11-06 04:00"; got != want {
		t.Fatalf("next run = %s, want %s", got, want)
	}
	w.sched.MaxSleep = time.Hour
	if err := w.sched.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer w.sched.Close()
	w.clock.Set(next)
	w.sched.Wake()
	deadline := time.Now().Add(10 * time.Second)
	for len(w.backups(t, db.BackupAutomated, "")) < 7 {
		if time.Now().After(deadline) {
			t.Fatalf("the woken scheduler did not take the 04:00 backup: %v", w.backups(t, db.BackupAutomated, ""))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestManualQuota(t *testing.T) {
	ctx := context.Background()
	w := newSchedWorld(t, db.ScheduleBasic, "UTC", time.Date(2028, 1, 1, 12, 0, 0, 0, time.UTC))
	take := func(req jobs.BackupRequest) (*db.Backup, error) {
		t.Helper()
		w.clock.Set(w.clock.Now().Add(time.Hour))
		a, b, err := w.ops.StartBackup(ctx, req)
		if err == nil {
			waitDone(t, w.catalog, a.ID)
		}
		return b, err
	}
	first, err := take(jobs.BackupRequest{Environment: "main"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := take(jobs.BackupRequest{Environment: "main"}); err != nil {
		t.Fatal(err)
	}
	_, err = take(jobs.BackupRequest{Environment: "main"})
	var qe *jobs.QuotaError
	if !errors.As(err, &qe) || !errors.Is(err, jobs.ErrRefused) || qe.Replace.ID != first.ID || !strings.Contains(err.Error(), first.ID) {
		t.Fatalf("third manual backup on basic = %v, want a QuotaError naming %s", err, first.ID)
	}
	if _, err := take(jobs.BackupRequest{Environment: "main", ReplaceOldest: true}); err != nil {
		t.Fatal(err)
	}
	b, _ := w.catalog.FindBackupByID(ctx, first.ID)
	if b.Status != db.BackupExpired {
		t.Fatalf("replaced backup is %s, want expired", b.Status)
	}
	if got := len(w.backups(t, db.BackupManual, db.BackupComplete)); got != 2 {
		t.Fatalf("manual backups = %d, want 2", got)
	}
	// Advanced allows 4 in production; a staging environment keeps 2 whatever the schedule.
	w.catalog.UpdatePlan(ctx, db.Plan{Name: "Shop", Timezone: "UTC", Tier: db.TierEnterprise, Schedule: db.ScheduleAdvanced})
	for i := 0; i < 2; i++ {
		if _, err := take(jobs.BackupRequest{Environment: "main"}); err != nil {
			t.Fatalf("manual backup %d on advanced: %v", i+3, err)
		}
	}
	if _, err := take(jobs.BackupRequest{Environment: "main"}); !errors.As(err, &qe) || qe.Quota != 4 {
		t.Fatalf("fifth manual backup on advanced = %v, want a quota of 4", err)
	}
	for i := 0; i < 2; i++ {
		if _, err := take(jobs.BackupRequest{Environment: "stage"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := take(jobs.BackupRequest{Environment: "stage"}); !errors.As(err, &qe) || qe.Quota != 2 {
		t.Fatalf("third manual backup of staging = %v, want a quota of 2", err)
	}
}

func TestExplain(t *testing.T) {
	loc, _ := time.LoadLocation("Europe/Berlin")
	now := time.Date(2028, 11, 21, 12, 0, 0, 0, loc)
	plan := db.Plan{Name: "Shop", Timezone: "Europe/Berlin", Tier: db.TierEnterprise, Schedule: db.ScheduleAdvanced}
	env := &db.Environment{Name: "main", Type: db.EnvProduction, Status: db.StatusActive, Services: []db.Service{{Name: "app"}}}
	var backups []*db.Backup
	for i := 0; i < 8; i++ {
		backups = append(backups, &db.Backup{ID: string(rune('a'+i)) + "0000000000000000000", Kind: db.BackupAutomated,
			Status: db.BackupComplete, CreatedAt: time.Date(2028, 11, 21-i, 4, 0, 0, 0, loc)})
	}
	ex := jobs.Explain(plan, env, backups, now)
	if got, want := ex.Next.Format("2006-01-02 15:04"), "2028-11-22 04:00"; got != want {
		t.Fatalf("next = %s, want %s", got, want)
	}
	if !strings.Contains(ex.Policy, "6 daily, 3 weekly and 12 monthly") || !strings.Contains(ex.Policy, "up to 4 manual") {
		t.Fatalf("policy = %q", ex.Policy)
	}
	newest := ex.Backups[backups[0].ID]
	if !newest.Kept || newest.Reason != "daily, 21 November" || newest.Expires.Format("01-02 15:04") != "11-29 04:00" {
		// Out of the 6 daily on the 27th, it is the week of 20 November's weekly, then November's monthly
		// (the 28th), until the 22nd replaces it as November's newest left (the 29th).
		t.Fatalf("newest = %+v, want kept daily, 21 November, expiring on 29 November at 04:00", newest)
	}
	if r := ex.Backups[backups[6].ID]; !r.Kept || r.Reason != "weekly, week of 13 November" {
		t.Fatalf("15 November = %+v, want weekly", r)
	}
	staging := &db.Environment{Name: "s", Type: db.EnvStaging, Status: db.StatusActive}
	if ex := jobs.Explain(plan, staging, nil, now); !ex.Next.IsZero() || !strings.Contains(ex.NextNote, "production") {
		t.Fatalf("staging explanation = %+v", ex)
	}
}

func TestRetentionSparesABackupBeingRestored(t *testing.T) {
	for _, typ := range []string{jobs.TypeRestore, jobs.TypeDrill} {
		t.Run(typ, func(t *testing.T) { testRetentionSpares(t, typ) })
	}
}

// testRetentionSpares checks that retention leaves a backup alone while an activity of type typ reads it.
func testRetentionSpares(t *testing.T, typ string) {
	ctx := context.Background()
	w := newSchedWorld(t, db.ScheduleBasic, "UTC", time.Date(2028, 1, 1, 4, 0, 0, 0, time.UTC))
	var ids []string
	for i := 0; i < 3; i++ {
		w.clock.Set(time.Date(2028, 1, 1+i, 4, 0, 0, 0, time.UTC))
		b := &db.Backup{ID: strings.Repeat(string(rune('a'+i)), 20), Environment: "main", Kind: db.BackupAutomated,
			Status: db.BackupComplete}
		if err := w.catalog.CreateBackup(ctx, b); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, b.ID)
	}
	restore := &db.Activity{Type: typ, Environment: "main", State: db.ActivityQueued, BackupID: ids[0]}
	if err := w.catalog.CreateActivity(ctx, restore); err != nil {
		t.Fatal(err)
	}
	plan, _ := w.catalog.FindPlan(ctx)
	if expired, err := w.ops.ApplyRetention(ctx, *plan, "main", "test"); err != nil || len(expired) != 0 {
		t.Fatalf("retention while a %s of %s is queued expired %d (%v), want none", typ, ids[0], len(expired), err)
	}
	done := db.ActivitySucceeded
	if _, err := w.catalog.UpdateActivity(ctx, restore.ID, db.ActivityUpdate{State: &done}); err != nil {
		t.Fatal(err)
	}
	if expired, err := w.ops.ApplyRetention(ctx, *plan, "main", "test"); err != nil || len(expired) != 1 || expired[0].ID != ids[0] {
		t.Fatalf("retention after the restore expired %v (%v), want %s", expired, err, ids[0])
	}
}

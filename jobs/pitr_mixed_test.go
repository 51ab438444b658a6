package jobs_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/pitr"
	"github.com/rewind/rewind/backup/pitr/pgwal"
	"github.com/rewind/rewind/backup/pitr/pitrtest"
	"github.com/rewind/rewind/backup/pitr/redisrepl"
	"github.com/rewind/rewind/backup/postgres"
	"github.com/rewind/rewind/backup/redis"
	"github.com/rewind/rewind/backup/testserver"
	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/jobs"
)

// TestRestoreAtMixedThroughTheRunner follows a real PostgreSQL and a real Redis server of one environment from
// the supervisor, and restores the environment to a moment through the runner, in place and into a new branch:
// each service holds exactly the markers written by then (PostgreSQL by commit time, Redis by the time Rewind
// received each command), and the plan names each service's own moment.
func TestRestoreAtMixedThroughTheRunner(t *testing.T) {
	ctx := context.Background()
	pg := testserver.StartPostgres(t)
	pgURL := pg.URL(pg.CreateDatabase(t, ""))
	rd := testserver.StartRedis(t)
	rdURL := rd.URL(rd.CreateDatabase(t))
	admin := rd.Client(0)
	defer admin.Close()
	if err := admin.ConfigSet(ctx, "repl-diskless-sync-delay", "0").Err(); err != nil { // a base at once
		t.Fatal(err)
	}
	w := newWorld(t)
	w.ops.Engine.Drivers[backup.TypePostgreSQL] = postgres.New
	w.ops.Engine.Drivers[backup.TypeRedis] = redis.New
	envName := testserver.UniqueName("m")
	env := &db.Environment{Name: envName, Type: db.EnvProduction, PITR: &db.PITR{Enabled: true}, Services: []db.Service{
		{Name: "db", Type: db.ServicePostgreSQL, URL: pgURL}, {Name: "cache", Type: db.ServiceRedis, URL: rdURL}}}
	if err := w.catalog.CreateEnvironment(ctx, env); err != nil {
		t.Fatal(err)
	}
	sup := &jobs.PITR{Catalog: w.catalog, Repo: w.ops.Engine.Repo, SpoolDir: filepath.Join(w.dir, "pitr"),
		Kinds: map[string]pitr.Kind{backup.TypePostgreSQL: pgwal.Kind{}, backup.TypeRedis: redisrepl.Kind{}},
		Poll:  200 * time.Millisecond, ShipEvery: 200 * time.Millisecond}
	w.ops.PITR = sup
	sup.Start(ctx)
	t.Cleanup(func() {
		sup.Close()
		pgwal.DropSlot(context.Background(), pgURL, envName, "db") //nolint:errcheck
	})
	checks, err := sup.Check(ctx, envName)
	if err != nil {
		t.Fatal(err)
	}
	for _, svc := range []string{"db", "cache"} {
		if len(checks[svc]) == 0 {
			t.Fatalf("no check of %s", svc)
		}
		for _, c := range checks[svc] {
			if c.Status == pitr.CheckFailed {
				t.Fatalf("check %s %s: %s", svc, c.Name, c.Message)
			}
		}
	}

	stop := make(chan struct{})
	pgMarkers := pitrtest.Writer(t, pgURL, stop)
	rdMarkers := pitrtest.RedisWriter(t, rdURL, stop)
	based := map[string]time.Time{}
	for _, svc := range []string{"db", "cache"} {
		st := waitServiceStream(t, w.catalog, envName, svc, func(s *db.PITRStream) bool {
			bases, _ := w.catalog.FindPITRBases(ctx, s.ID)
			return s.CoveredUntil != nil && len(bases) > 0
		})
		if svc == "cache" && st.Slot != "" {
			t.Errorf("the Redis stream has slot %q, want none", st.Slot)
		}
		bases, _ := w.catalog.FindPITRBases(ctx, st.ID)
		based[svc] = bases[0].FinishedAt
	}
	time.Sleep(2 * time.Second)
	close(stop)
	pms, rms := pgMarkers(), rdMarkers()
	last := later(pms[len(pms)-1].After, rms[len(rms)-1].After)
	for _, svc := range []string{"db", "cache"} {
		waitServiceStream(t, w.catalog, envName, svc, func(s *db.PITRStream) bool {
			return s.CoveredUntil != nil && s.CoveredUntil.After(last.Add(300*time.Millisecond))
		})
	}
	// A moment clear of both workloads, after both bases.
	from := later(based["db"], based["cache"]).Add(300 * time.Millisecond)
	clear := func(at time.Time) time.Time {
		for pitrtest.Ambiguous(pms, at) || pitrtest.AmbiguousBy(rms, at, 25*time.Millisecond) {
			at = at.Add(3 * time.Millisecond)
		}
		return at
	}
	at := clear(from.Add(last.Sub(from) / 2))
	plan, err := w.ops.PlanRestoreAt(ctx, jobs.RestoreAtRequest{Environment: envName, At: at})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Services) != 2 {
		t.Fatalf("plan = %+v, want both services", plan.Services)
	}
	for _, s := range plan.Services {
		if s.RestoredTo == nil || s.RestoredTo.After(at) {
			t.Errorf("plan for %s restores to %v, want its own last change at or before %s", s.Name, s.RestoredTo, at)
		}
	}
	a, _, err := w.ops.StartRestoreAt(ctx, jobs.RestoreAtRequest{Environment: envName, At: at, Confirm: envName, Actor: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	if done := waitDone(t, w.catalog, a.ID); done.State != db.ActivitySucceeded {
		t.Fatalf("restore to %s: %s\n%s", at, done.State, done.Log)
	}
	if got, want := pitrtest.Count(t, pgURL), pitrtest.UpTo(pms, at); got != want {
		t.Errorf("PostgreSQL after the restore to %s: %d markers, want %d", at, got, want)
	}
	if got, want := pitrtest.RedisCount(t, rdURL), pitrtest.UpTo(rms, at); got != want {
		t.Errorf("Redis after the restore to %s: %d markers, want %d", at, got, want)
	}

	// Another moment into a new environment (--target); the parent keeps what the first restore left.
	at2 := clear(from.Add(last.Sub(from) / 4))
	ba, bplan, err := w.ops.StartRestoreAt(ctx, jobs.RestoreAtRequest{Environment: envName, At: at2,
		BranchFrom: envName, Target: envName + "-b", Confirm: envName + "-b", Actor: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	if got := waitDone(t, w.catalog, ba.ID); got.State != db.ActivitySucceeded || !bplan.Create {
		t.Fatalf("branch restore: %s, create %v\n%s", got.State, bplan.Create, got.Log)
	}
	branch, err := w.catalog.FindEnvironmentByName(ctx, envName+"-b")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := pitrtest.Count(t, branch.Service("db").URL), pitrtest.UpTo(pms, at2); got != want {
		t.Errorf("branch PostgreSQL at %s: %d markers, want %d", at2, got, want)
	}
	if got, want := pitrtest.RedisCount(t, branch.Service("cache").URL), pitrtest.UpTo(rms, at2); got != want {
		t.Errorf("branch Redis at %s: %d markers, want %d", at2, got, want)
	}
	if got, want := pitrtest.RedisCount(t, rdURL), pitrtest.UpTo(rms, at); got != want {
		t.Errorf("parent Redis after the branch restore: %d markers, want %d", got, want)
	}

	// Switched off: both followers stop; only the PostgreSQL one had a slot to drop.
	env, _ = w.catalog.FindEnvironmentByName(ctx, envName)
	env.PITR = &db.PITR{Enabled: false}
	if err := w.catalog.UpdateEnvironment(ctx, env); err != nil {
		t.Fatal(err)
	}
	for _, svc := range []string{"db", "cache"} {
		waitServiceStream(t, w.catalog, envName, svc, func(s *db.PITRStream) bool { return s.State == db.PITRStopped })
	}
	acts, _, err := w.catalog.FindActivities(ctx, db.ActivityFilter{Environment: &envName, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	stopped := map[string]string{}
	for _, a := range acts {
		if a.Type == "pitr.follow" && strings.HasPrefix(a.Summary, "Stopped") {
			stopped[strings.Fields(a.Summary)[4]] = a.Summary
		}
	}
	if !strings.Contains(stopped["db"], "replication slot") || stopped["cache"] == "" ||
		strings.Contains(stopped["cache"], "slot") {
		t.Errorf("stop activities = %q, want the slot named for db only", stopped)
	}
}

// TestRestoreAtRefusesUncoveredTypes: an environment with a service whose type has no kind is refused, naming the
// service and the types that can be restored to a moment.
func TestRestoreAtRefusesUncoveredTypes(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	w.ops.PITR = &jobs.PITR{Catalog: w.catalog, Repo: w.ops.Engine.Repo,
		Kinds: map[string]pitr.Kind{backup.TypePostgreSQL: pgwal.Kind{}, backup.TypeRedis: redisrepl.Kind{}}}
	env := &db.Environment{Name: "main", Type: db.EnvProduction, PITR: &db.PITR{Enabled: true}, Services: []db.Service{
		{Name: "db", Type: db.ServicePostgreSQL, URL: "postgres://app@127.0.0.1:1/app"},
		{Name: "files", Type: db.ServiceSQLite, Path: "/srv/app.db"}}}
	if err := w.catalog.CreateEnvironment(ctx, env); err != nil {
		t.Fatal(err)
	}
	_, err := w.ops.PlanRestoreAt(ctx, jobs.RestoreAtRequest{Environment: "main", At: time.Now().Add(-time.Minute)})
	if !errors.Is(err, jobs.ErrRefused) || !strings.Contains(err.Error(), "files (sqlite)") ||
		!strings.Contains(err.Error(), "postgresql, redis") {
		t.Fatalf("PlanRestoreAt = %v, want refused naming files (sqlite) and the types postgresql, redis", err)
	}
}

func waitServiceStream(t *testing.T, cat *db.DB, env, service string, cond func(*db.PITRStream) bool) *db.PITRStream {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := cat.FindPITRStream(context.Background(), env, service)
		if err == nil && cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for the stream of %s/%s: %+v, %v", env, service, st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

package jobs_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/pitr"
	"github.com/rewind/rewind/backup/pitr/pgwal"
	"github.com/rewind/rewind/backup/pitr/pitrtest"
	"github.com/rewind/rewind/backup/postgres"
	"github.com/rewind/rewind/backup/testserver"
	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/jobs"
)

// TestRestoreAtThroughTheRunner follows a real PostgreSQL server from the supervisor, restores the environment
// to a moment through the runner (and undoes it), branches another moment into a new environment, refuses
// moments it cannot restore, and drops the slot when protection is switched off.
func TestRestoreAtThroughTheRunner(t *testing.T) {
	ctx := context.Background()
	srv := testserver.StartPostgres(t)
	dbName := srv.CreateDatabase(t, "")
	url := srv.URL(dbName)
	w := newWorld(t)
	w.ops.Engine.Drivers[backup.TypePostgreSQL] = postgres.New
	envName := testserver.UniqueName("e")
	env := &db.Environment{Name: envName, Type: db.EnvProduction, Services: []db.Service{
		{Name: "db", Type: db.ServicePostgreSQL, URL: url}}, PITR: &db.PITR{Enabled: true}}
	if err := w.catalog.CreateEnvironment(ctx, env); err != nil {
		t.Fatal(err)
	}
	sup := &jobs.PITR{Catalog: w.catalog, Repo: w.ops.Engine.Repo, SpoolDir: filepath.Join(w.dir, "pitr"),
		Kinds: map[string]pitr.Kind{backup.TypePostgreSQL: pgwal.Kind{}},
		Poll:  200 * time.Millisecond, ShipEvery: 200 * time.Millisecond}
	w.ops.PITR = sup
	sup.Start(ctx)
	t.Cleanup(func() {
		sup.Close()
		pgwal.DropSlot(context.Background(), url, envName, "db") //nolint:errcheck
	})

	// The Test of the prerequisites passes on the private server.
	checks, err := sup.Check(ctx, envName)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range checks["db"] {
		if c.Status == pitr.CheckFailed {
			t.Fatalf("check %s: %s", c.Name, c.Message)
		}
	}

	stop := make(chan struct{})
	markers := pitrtest.Writer(t, url, stop)
	waitStream(t, w.catalog, envName, func(s *db.PITRStream) bool {
		bases, _ := w.catalog.FindPITRBases(ctx, s.ID)
		return s.CoveredUntil != nil && len(bases) > 0
	})
	time.Sleep(700 * time.Millisecond)
	// The server cuts the WAL stream: the follower fails, is restarted after its backoff, and resumes from
	// the slot, so the stream has no gap.
	srv.Exec(t, "postgres", "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1",
		pgwal.SlotName(envName, "db"))
	waitStream(t, w.catalog, envName, func(s *db.PITRStream) bool { return s.State == db.PITRFailed })
	cut := time.Now()
	waitStream(t, w.catalog, envName, func(s *db.PITRStream) bool {
		return s.State == db.PITRRunning && s.CoveredUntil != nil && s.CoveredUntil.After(cut)
	})
	time.Sleep(time.Second)
	close(stop)
	ms := markers()
	last := ms[len(ms)-1].After
	st := waitStream(t, w.catalog, envName, func(s *db.PITRStream) bool {
		return s.CoveredUntil != nil && s.CoveredUntil.After(last.Add(200*time.Millisecond))
	})
	if st.State != db.PITRRunning || st.LastCommitAt == nil {
		t.Fatalf("stream = %+v, want running with a last commit", st)
	}
	ranges, err := sup.Ranges(ctx, envName)
	if err != nil {
		t.Fatal(err)
	}
	if rs := ranges["db"]; len(rs) != 1 || rs[0].To.Before(last) {
		t.Fatalf("restorable ranges after the cut = %+v, want one, from the base past the last marker %s", rs, last)
	}

	bases, err := w.catalog.FindPITRBases(ctx, st.ID)
	if err != nil || len(bases) != 1 {
		t.Fatalf("bases = %d, %v; want 1", len(bases), err)
	}
	var later []pitrtest.Marker // committed after the base: restorable
	for _, m := range ms {
		if m.Before.After(bases[0].FinishedAt) {
			later = append(later, m)
		}
	}
	if len(later) < 10 {
		t.Fatalf("only %d markers after the base", len(later))
	}
	// A moment while the follower was down: the plan names the exact commit, the restore brings exactly the
	// markers committed by then.
	at := pitrtest.Clear(ms, cut.Add(500*time.Millisecond))
	want := pitrtest.UpTo(ms, at)
	plan, err := w.ops.PlanRestoreAt(ctx, jobs.RestoreAtRequest{Environment: envName, At: at})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Services) != 1 || plan.Services[0].RestoredTo == nil || plan.Services[0].RestoredTo.After(at) ||
		plan.Services[0].RestoredTo.Before(ms[want-1].Before) {
		t.Fatalf("plan = %+v, want the commit of marker %d (between %s and %s)", plan.Services, want,
			ms[want-1].Before, ms[want-1].After)
	}
	a, _, err := w.ops.StartRestoreAt(ctx, jobs.RestoreAtRequest{Environment: envName, At: at, Confirm: envName, Actor: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	done := waitDone(t, w.catalog, a.ID)
	if done.State != db.ActivitySucceeded {
		t.Fatalf("restore to %s: %s\n%s", at, done.State, done.Log)
	}
	if got := pitrtest.Count(t, url); got != want {
		t.Fatalf("after the restore to %s: %d markers, want %d\n%s", at, got, want, done.Log)
	}
	if !strings.Contains(done.Log, "last commit at or before then") {
		t.Errorf("restore log does not say the moment reached:\n%s", done.Log)
	}

	// Undo: the pre-restore backup brings every marker back.
	undo := jobs.PreRestoreBackupID(done)
	ua, _, err := w.ops.StartRestore(ctx, jobs.RestoreRequest{BackupID: undo, Confirm: envName, Actor: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	if got := waitDone(t, w.catalog, ua.ID); got.State != db.ActivitySucceeded {
		t.Fatalf("undo: %s\n%s", got.State, got.Log)
	}
	if got := pitrtest.Count(t, url); got != len(ms) {
		t.Fatalf("after undo: %d markers, want all %d", got, len(ms))
	}

	// Another moment into a new branch; the parent keeps its data.
	at2 := pitrtest.Clear(ms, later[len(later)/4].After.Add(10*time.Millisecond))
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
	if got, want := pitrtest.Count(t, branch.Service("db").URL), pitrtest.UpTo(ms, at2); got != want {
		t.Fatalf("branch at %s: %d markers, want %d", at2, got, want)
	}
	if got := pitrtest.Count(t, url); got != len(ms) {
		t.Fatalf("parent after the branch restore: %d markers, want %d", got, len(ms))
	}

	// Refusals: the future and before the window are 422 (a field error on "at"); a moment after the last
	// shipped change is 409, naming the newest restorable moment.
	var ve *db.ValidationError
	_, err = w.ops.PlanRestoreAt(ctx, jobs.RestoreAtRequest{Environment: envName, At: time.Now().Add(time.Hour)})
	if !errors.As(err, &ve) || ve.For("at") == "" || !strings.Contains(ve.For("at"), "future") {
		t.Errorf("an hour ahead: %v, want a validation error on at", err)
	}
	_, err = w.ops.PlanRestoreAt(ctx, jobs.RestoreAtRequest{Environment: envName, At: time.Now().Add(-8 * 24 * time.Hour)})
	if !errors.As(err, &ve) || !strings.Contains(ve.For("at"), "before the point-in-time window") ||
		!strings.Contains(ve.For("at"), "oldest restorable moment") {
		t.Errorf("8 days ago on the basic plan: %v, want a validation error naming the window and the oldest moment", err)
	}
	_, err = w.ops.PlanRestoreAt(ctx, jobs.RestoreAtRequest{Environment: envName, At: ms[0].Before.Add(-time.Minute)})
	if !errors.Is(err, jobs.ErrRefused) || !strings.Contains(err.Error(), "oldest restorable moment") {
		t.Errorf("before the first base: %v, want refused naming the oldest restorable moment", err)
	}

	// Switched off: the follower stops and the slot is dropped from the server.
	env, _ = w.catalog.FindEnvironmentByName(ctx, envName)
	env.PITR = &db.PITR{Enabled: false}
	if err := w.catalog.UpdateEnvironment(ctx, env); err != nil {
		t.Fatal(err)
	}
	waitStream(t, w.catalog, envName, func(s *db.PITRStream) bool { return s.State == db.PITRStopped })
	if n := slots(t, url, pgwal.SlotName(envName, "db")); n != 0 {
		t.Fatalf("slot still on the server after switching off (%d)", n)
	}
}

func slots(t *testing.T, url, slot string) int {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1", slot).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func waitStream(t *testing.T, cat *db.DB, env string, cond func(*db.PITRStream) bool) *db.PITRStream {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := cat.FindPITRStream(context.Background(), env, "db")
		if err == nil && cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for the stream of %s: %+v, %v", env, st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

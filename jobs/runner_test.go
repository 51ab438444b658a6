package jobs_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/jobs"
)

func openCatalog(t testing.TB) *db.DB {
	t.Helper()
	key := make([]byte, 32)
	catalog, err := db.Open(context.Background(), filepath.Join(t.TempDir(), "rewind.db"), key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { catalog.Close() })
	return catalog
}

func queue(t *testing.T, catalog *db.DB, typ, env string) int64 {
	t.Helper()
	a := &db.Activity{Type: typ, Environment: env, Actor: "test", State: db.ActivityQueued, Summary: typ}
	if err := catalog.CreateActivity(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	return a.ID
}

// waitDone waits for an activity to finish; up to three minutes, for a drill that starts servers on a shared
// machine or a benchmark's sizeable data.
func waitDone(t testing.TB, catalog *db.DB, id int64) *db.Activity {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		a, err := catalog.FindActivityByID(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if a.Done() {
			return a
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("activity %d did not finish", id)
	return nil
}

// recorder is a builder whose jobs record when they run and wait for a release.
type recorder struct {
	mu      sync.Mutex
	events  []string
	release map[int64]chan struct{}
	fail    map[int64]error
}

func (r *recorder) gate(id int64) chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.release == nil {
		r.release = map[int64]chan struct{}{}
	}
	if r.release[id] == nil {
		r.release[id] = make(chan struct{})
	}
	return r.release[id]
}

func (r *recorder) log(e string) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

func (r *recorder) build(a *db.Activity) (jobs.Job, error) {
	gate := r.gate(a.ID)
	return jobs.JobFunc(func(ctx context.Context, p *jobs.Progress) error {
		r.log("start " + a.Summary)
		p.SetTotal(100)
		p.Add(50)
		p.Logf("half way through %s", a.Summary)
		select {
		case <-gate:
		case <-ctx.Done():
			r.log("cancelled " + a.Summary)
			return ctx.Err()
		}
		r.log("end " + a.Summary)
		r.mu.Lock()
		err := r.fail[a.ID]
		r.mu.Unlock()
		return err
	}), nil
}

func waitEvents(t *testing.T, rec *recorder, n int) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if ev := rec.snapshot(); len(ev) >= n {
			return ev
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("events = %v, want %d", rec.snapshot(), n)
	return nil
}

func TestRunnerOneJobPerEnvironment(t *testing.T) {
	catalog := openCatalog(t)
	rec := &recorder{}
	r := jobs.NewRunner(catalog, rec.build, 4, nil)
	r.ProgressInterval = 10 * time.Millisecond
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	a1 := queue(t, catalog, "backup.create", "main")
	a2 := queue(t, catalog, "backup.create", "main")
	b1 := queue(t, catalog, "backup.create", "staging")
	for _, id := range []int64{a1, a2, b1} {
		if err := r.Enqueue(id); err != nil {
			t.Fatal(err)
		}
	}
	events := waitEvents(t, rec, 2)
	for _, e := range events {
		if e == "start backup.create" {
			continue
		}
		t.Fatalf("unexpected event %q", e)
	}
	// Both environments run; the second job of main waits, visibly queued.
	if a, _ := catalog.FindActivityByID(context.Background(), a2); a.State != db.ActivityQueued {
		t.Fatalf("second job of main is %s, want queued", a.State)
	}
	if a, _ := catalog.FindActivityByID(context.Background(), a1); a.State != db.ActivityRunning {
		t.Fatalf("first job of main is %s, want running", a.State)
	}
	close(rec.gate(a1))
	close(rec.gate(b1))
	if got := waitDone(t, catalog, a1); got.State != db.ActivitySucceeded || got.Progress != 100 {
		t.Fatalf("first job: state %s progress %d, want succeeded 100", got.State, got.Progress)
	}
	waitEvents(t, rec, 5) // the second job of main starts once the first is done
	close(rec.gate(a2))
	got := waitDone(t, catalog, a2)
	if got.State != db.ActivitySucceeded {
		t.Fatalf("second job: state %s", got.State)
	}
	if !strings.Contains(got.Log, "half way through") {
		t.Fatalf("log %q lacks the job's line", got.Log)
	}
	if got.StartedAt == nil || got.FinishedAt == nil {
		t.Fatalf("times not recorded: %+v", got)
	}
}

func TestRunnerFailureAndCancel(t *testing.T) {
	catalog := openCatalog(t)
	rec := &recorder{fail: map[int64]error{}}
	r := jobs.NewRunner(catalog, rec.build, 2, nil)
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	failing := queue(t, catalog, "backup.create", "main")
	rec.fail[failing] = errors.New(`capture service "db": connection refused`)
	running := queue(t, catalog, "backup.create", "staging")
	queued := queue(t, catalog, "backup.create", "staging")
	for _, id := range []int64{failing, running, queued} {
		if err := r.Enqueue(id); err != nil {
			t.Fatal(err)
		}
	}
	waitEvents(t, rec, 2)
	close(rec.gate(failing))
	got := waitDone(t, catalog, failing)
	if got.State != db.ActivityFailed || !strings.Contains(got.Log, `capture service "db": connection refused`) {
		t.Fatalf("failed job: state %s log %q", got.State, got.Log)
	}

	if err := r.Cancel(context.Background(), queued); err != nil {
		t.Fatal(err)
	}
	if got := waitDone(t, catalog, queued); got.State != db.ActivityCancelled {
		t.Fatalf("queued job after cancel: %s", got.State)
	}
	if err := r.Cancel(context.Background(), running); err != nil {
		t.Fatal(err)
	}
	if got := waitDone(t, catalog, running); got.State != db.ActivityCancelled {
		t.Fatalf("running job after cancel: %s", got.State)
	}
	if err := r.Cancel(context.Background(), running); !errors.Is(err, jobs.ErrNotRunning) {
		t.Fatalf("cancel of a finished job = %v, want ErrNotRunning", err)
	}
}

func TestRunnerRecoversAfterRestart(t *testing.T) {
	catalog := openCatalog(t)
	// A previous process left one job running and one queued.
	wasRunning := queue(t, catalog, "backup.create", "main")
	state := db.ActivityRunning
	if _, err := catalog.UpdateActivity(context.Background(), wasRunning, db.ActivityUpdate{State: &state}); err != nil {
		t.Fatal(err)
	}
	wasQueued := queue(t, catalog, "backup.create", "main")

	rec := &recorder{}
	close(rec.gate(wasQueued))
	r := jobs.NewRunner(catalog, rec.build, 1, nil)
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	got := waitDone(t, catalog, wasRunning)
	if got.State != db.ActivityFailed || !strings.Contains(got.Log, "interrupted") {
		t.Fatalf("interrupted job: state %s log %q", got.State, got.Log)
	}
	if got := waitDone(t, catalog, wasQueued); got.State != db.ActivitySucceeded {
		t.Fatalf("resumed job: state %s", got.State)
	}
	if ev := rec.snapshot(); len(ev) != 2 {
		t.Fatalf("events = %v: the interrupted job must not run again", ev)
	}
}

func TestRunnerCloseInterruptsRunningJobs(t *testing.T) {
	catalog := openCatalog(t)
	rec := &recorder{}
	r := jobs.NewRunner(catalog, rec.build, 1, nil)
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	running := queue(t, catalog, "backup.create", "main")
	waiting := queue(t, catalog, "backup.create", "main")
	r.Enqueue(running)
	r.Enqueue(waiting)
	waitEvents(t, rec, 1)
	r.Close()

	a, _ := catalog.FindActivityByID(context.Background(), running)
	if a.State != db.ActivityFailed || !strings.Contains(a.Log, "interrupted") {
		t.Fatalf("running job after Close: state %s log %q", a.State, a.Log)
	}
	if a, _ := catalog.FindActivityByID(context.Background(), waiting); a.State != db.ActivityQueued {
		t.Fatalf("waiting job after Close: %s, want still queued", a.State)
	}
}

func TestRunnerPanicFailsTheJobOnly(t *testing.T) {
	catalog := openCatalog(t)
	build := func(a *db.Activity) (jobs.Job, error) {
		return jobs.JobFunc(func(context.Context, *jobs.Progress) error { panic("boom") }), nil
	}
	r := jobs.NewRunner(catalog, build, 1, nil)
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	id := queue(t, catalog, "backup.create", "main")
	r.Enqueue(id)
	got := waitDone(t, catalog, id)
	if got.State != db.ActivityFailed || strings.Contains(got.Log, "boom") {
		t.Fatalf("panicking job: state %s log %q (the panic value stays in the server log)", got.State, got.Log)
	}
}

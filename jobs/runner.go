// Package jobs runs Rewind's long work — backups, restores, maintenance — as activities of the catalog: an
// activity is the durable job record, so queued work survives a restart and running work that a crash cut off is
// marked failed instead of being lost or reported as finished.
package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/rewind/rewind/db"
)

// Job is one unit of work the runner executes for an activity. Run reports progress and log lines through p and
// returns nil on success. A Job must return promptly once ctx is cancelled.
type Job interface {
	Run(ctx context.Context, p *Progress) error
}

// JobFunc adapts a function to a Job.
type JobFunc func(ctx context.Context, p *Progress) error

// Run calls f.
func (f JobFunc) Run(ctx context.Context, p *Progress) error { return f(ctx, p) }

// Builder turns a queued activity into its Job, from the activity's type and params. It is called when the
// activity is dispatched, so work that waited in the queue sees the catalog as it is then.
type Builder func(a *db.Activity) (Job, error)

// Store is what the runner needs of the catalog.
type Store interface {
	FindActivityByID(ctx context.Context, id int64) (*db.Activity, error)
	UpdateActivity(ctx context.Context, id int64, upd db.ActivityUpdate) (*db.Activity, error)
	FindUnfinishedActivities(ctx context.Context) ([]*db.Activity, error)
}

// ErrInterrupted is the cause recorded on work that was running when Rewind stopped without finishing it.
var ErrInterrupted = errors.New("interrupted: rewind stopped while this ran; start it again")

// ErrNotRunning is returned by Cancel for an activity that is neither queued nor running.
var ErrNotRunning = errors.New("activity is not queued or running")

// Runner executes activities' jobs on a bounded pool of workers, at most one at a time per environment; work for a
// busy environment waits in the queue, in order, and shows as queued.
type Runner struct {
	store   Store
	build   Builder
	workers int
	log     *slog.Logger

	// Interrupted, when set, says what an activity cut off by a stop left behind: the error recorded on it, or
	// nil when its work had in fact finished (it is then recorded as succeeded). ErrInterrupted when unset.
	Interrupted func(a *db.Activity) error

	// OnActivityEnd, when set, is called once with every activity the runner brings to a final state
	// (succeeded, failed, cancelled; interrupted work at Start included) and the error it ended with (nil on
	// success), after the state is saved. It runs on the job's goroutine: it must return at once (the notifier
	// only queues).
	OnActivityEnd func(ctx context.Context, a db.Activity, err error)

	// Now is the clock; ProgressInterval is how often progress is written (about once a second).
	Now              func() time.Time
	ProgressInterval time.Duration

	mu      sync.Mutex
	queue   []queued                     // activities waiting, oldest first
	running map[int64]context.CancelFunc // by activity id
	envBusy map[string]int64             // environment → running activity id
	wake    chan struct{}
	closed  bool
	wg      sync.WaitGroup
	ctx     context.Context
	stop    context.CancelFunc
}

// queued is an activity waiting in the queue, with the environment it locks.
type queued struct {
	id  int64
	env string
}

// NewRunner returns a runner with the given number of workers (at least one). Call Start before Enqueue.
func NewRunner(store Store, build Builder, workers int, log *slog.Logger) *Runner {
	if workers < 1 {
		workers = 1
	}
	if log == nil {
		log = slog.Default()
	}
	return &Runner{
		store:            store,
		build:            build,
		workers:          workers,
		log:              log,
		Now:              time.Now,
		ProgressInterval: time.Second,
		running:          map[int64]context.CancelFunc{},
		envBusy:          map[string]int64{},
		wake:             make(chan struct{}, 1),
	}
}

// Start recovers the work a previous process left behind and starts dispatching. Activities that were running
// are finished as Interrupted says (failed, naming what was left behind); queued ones are queued again in their
// original order.
func (r *Runner) Start(ctx context.Context) error {
	unfinished, err := r.store.FindUnfinishedActivities(ctx)
	if err != nil {
		return fmt.Errorf("recover jobs: %w", err)
	}
	r.mu.Lock()
	r.ctx, r.stop = context.WithCancel(context.WithoutCancel(ctx))
	r.mu.Unlock()
	for _, a := range unfinished {
		if a.State == db.ActivityRunning {
			r.finish(a.ID, r.interrupted(a), false)
			continue
		}
		r.mu.Lock()
		r.queue = append(r.queue, queued{id: a.ID, env: a.Environment})
		r.mu.Unlock()
	}
	r.wg.Add(1)
	go r.dispatch()
	r.poke()
	return nil
}

// Enqueue schedules a queued activity. The activity must have been created with state queued; its job is built
// when it is dispatched.
func (r *Runner) Enqueue(id int64) error {
	a, err := r.store.FindActivityByID(context.Background(), id)
	if err != nil {
		return fmt.Errorf("enqueue activity %d: %w", id, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.ctx == nil {
		return errors.New("job runner is not running")
	}
	r.queue = append(r.queue, queued{id: id, env: a.Environment})
	r.pokeLocked()
	return nil
}

// Cancel stops a queued or running activity. A queued one is marked cancelled at once; a running one is
// cancelled through its context and marked cancelled when its job returns.
func (r *Runner) Cancel(ctx context.Context, id int64) error {
	r.mu.Lock()
	if cancel, ok := r.running[id]; ok {
		cancel()
		r.mu.Unlock()
		return nil
	}
	for i, q := range r.queue {
		if q.id == id {
			r.queue = append(r.queue[:i:i], r.queue[i+1:]...)
			r.mu.Unlock()
			r.finish(id, context.Canceled, true)
			return nil
		}
	}
	r.mu.Unlock()
	return ErrNotRunning
}

// Busy reports whether an activity is running or queued for env.
func (r *Runner) Busy(env string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.envBusy[env]; ok {
		return true
	}
	for _, q := range r.queue {
		if q.env == env {
			return true
		}
	}
	return false
}

// Close cancels the running jobs, waits for them to return and stops dispatching. Queued work stays queued in the
// catalog and resumes on the next Start. Running jobs that return because of Close are marked failed with
// ErrInterrupted.
func (r *Runner) Close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	stop := r.stop
	r.mu.Unlock()
	if stop != nil {
		stop()
	}
	r.poke()
	r.wg.Wait()
}

func (r *Runner) poke() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pokeLocked()
}

func (r *Runner) pokeLocked() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// dispatch starts queued work whenever a worker and the work's environment are free.
func (r *Runner) dispatch() {
	defer r.wg.Done()
	for {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return
		}
		r.startReadyLocked()
		r.mu.Unlock()
		<-r.wake
	}
}

// startReadyLocked starts every queued activity that can run now, in queue order.
func (r *Runner) startReadyLocked() {
	for i := 0; i < len(r.queue) && len(r.running) < r.workers; {
		q := r.queue[i]
		if q.env != "" {
			if _, busy := r.envBusy[q.env]; busy {
				i++
				continue
			}
			r.envBusy[q.env] = q.id
		}
		r.queue = append(r.queue[:i:i], r.queue[i+1:]...)
		ctx, cancel := context.WithCancel(r.ctx)
		r.running[q.id] = cancel
		r.wg.Add(1)
		go r.run(ctx, cancel, q)
	}
}

// run loads a dispatched activity (the catalog as it is now: it may have been cancelled while it waited) and
// runs its job.
func (r *Runner) run(ctx context.Context, cancel context.CancelFunc, q queued) {
	defer r.wg.Done()
	defer func() {
		cancel()
		r.mu.Lock()
		delete(r.running, q.id)
		if q.env != "" && r.envBusy[q.env] == q.id {
			delete(r.envBusy, q.env)
		}
		r.pokeLocked()
		r.mu.Unlock()
	}()
	a, err := r.store.FindActivityByID(ctx, q.id)
	if err != nil {
		r.log.Error("load queued activity", "activity", q.id, "err", err)
		return
	}
	if a.Done() {
		return
	}

	state, now := db.ActivityRunning, r.Now()
	if _, err := r.store.UpdateActivity(ctx, a.ID, db.ActivityUpdate{State: &state, StartedAt: &now}); err != nil {
		r.log.Error("start activity", "activity", a.ID, "err", err)
		return
	}
	p := newProgress(r, a.ID)
	err = r.execute(ctx, a, p)
	p.stop()
	closing := r.isClosed()
	if closing && err != nil && ctx.Err() != nil {
		if a, ferr := r.store.FindActivityByID(context.Background(), a.ID); ferr == nil {
			err = r.interrupted(a)
		} else {
			err = ErrInterrupted
		}
	}
	r.finish(a.ID, err, ctx.Err() != nil && !closing)
}

func (r *Runner) interrupted(a *db.Activity) error {
	if r.Interrupted != nil {
		return r.Interrupted(a)
	}
	return ErrInterrupted
}

// execute builds and runs a's job, turning a panic into an error so one bad job cannot take the server down.
func (r *Runner) execute(ctx context.Context, a *db.Activity, p *Progress) (err error) {
	defer func() {
		if v := recover(); v != nil {
			r.log.Error("job panicked", "activity", a.ID, "type", a.Type, "panic", v)
			err = fmt.Errorf("internal error in %s job", a.Type)
		}
	}()
	job, err := r.build(a)
	if err != nil {
		return err
	}
	return job.Run(ctx, p)
}

func (r *Runner) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// finish records the final state of an activity: succeeded, cancelled, or failed with err's message in the
// summary's place of honour: the log's last line.
func (r *Runner) finish(id int64, err error, cancelled bool) {
	state, progress := db.ActivitySucceeded, 100
	var line *string
	switch {
	case err == nil:
	case cancelled && errors.Is(err, context.Canceled):
		state, progress = db.ActivityCancelled, -1
		msg := "cancelled"
		line = &msg
	default:
		state, progress = db.ActivityFailed, -1
		msg := "error: " + err.Error()
		line = &msg
	}
	upd := db.ActivityUpdate{State: &state, AppendLog: line}
	if progress >= 0 {
		upd.Progress = &progress
	}
	now := r.Now()
	upd.FinishedAt = &now
	// The job's own context may be gone; the final state must still be written.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, uerr := r.store.UpdateActivity(ctx, id, upd)
	if uerr != nil {
		r.log.Error("finish activity", "activity", id, "state", state, "err", uerr)
		return
	}
	if r.OnActivityEnd != nil {
		r.OnActivityEnd(ctx, *a, err)
	}
}

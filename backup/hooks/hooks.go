// Package hooks runs an environment's shell hooks around a pause or a restore: pre_pause, post_pause and
// post_restore. A hook is a command line run with /bin/sh -c in its own process group, with a timeout; its
// combined stdout and stderr go to the caller's writer (the activity log) and its last lines are kept for the
// error when it fails.
package hooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Phases a hook runs at.
const (
	PrePause    = "pre_pause"    // before the gate holds (or instead of a gate): e.g. stop the workers
	PostPause   = "post_pause"   // after the pause, whether the pins succeeded or not: e.g. start them again
	PostRestore = "post_restore" // after a restore switched every service: e.g. clear caches, migrate
)

// Defaults used when the corresponding Runner field is zero.
const (
	DefaultTimeout   = 2 * time.Minute
	DefaultMaxOutput = 64 << 10
	DefaultWaitDelay = 2 * time.Second
	tailSize         = 2 << 10
)

// ErrTimeout: a hook ran out of time and its process group was killed.
var ErrTimeout = errors.New("hook timed out")

// Runner runs hooks. The zero value is ready to use.
type Runner struct {
	// Timeout bounds each hook; DefaultTimeout when zero.
	Timeout time.Duration
	// MaxOutput bounds the bytes of output copied to the writer; the rest is counted and noted, not copied.
	// DefaultMaxOutput when zero.
	MaxOutput int
	// WaitDelay is how long a hook's output is still read after its shell exited (a background process it
	// started may keep the output open) or after it was killed; DefaultWaitDelay when zero.
	WaitDelay time.Duration
	// Dir is the hooks' working directory; the server's when empty.
	Dir string
	// Env is added to the server's environment, before the REWIND_* variables.
	Env []string
}

// Run describes one run of a hook.
type Run struct {
	Phase       string // PrePause, PostPause or PostRestore: $REWIND_HOOK
	Command     string // the shell command line; an empty command does nothing
	Environment string // $REWIND_ENVIRONMENT
	Operation   string // "backup", "restore", ...: $REWIND_OPERATION
	BackupID    string // $REWIND_BACKUP_ID (empty when not known yet)
}

// Result is what a hook did.
type Result struct {
	ExitCode  int           // -1 when killed or never started
	Duration  time.Duration // wall time
	Output    int64         // bytes of output the hook wrote, including the ones not copied
	Truncated bool          // output went beyond Runner.MaxOutput
	Tail      string        // the last couple of KiB of output
}

// ExitError is returned when a hook exits with a non-zero status, is killed or times out.
type ExitError struct {
	Phase    string
	ExitCode int    // -1 when killed
	Tail     string // the end of its output
	Err      error  // the cause: ErrTimeout, a context error, or the exec error
}

func (e *ExitError) Error() string {
	msg := fmt.Sprintf("%s hook failed", e.Phase)
	switch {
	case errors.Is(e.Err, ErrTimeout) || errors.Is(e.Err, context.Canceled) || errors.Is(e.Err, context.DeadlineExceeded):
		msg += ": " + e.Err.Error()
	case e.ExitCode >= 0:
		msg += fmt.Sprintf(" with exit code %d", e.ExitCode)
	default:
		msg += ": " + e.Err.Error()
	}
	if e.Tail != "" {
		msg += "; output ends with:\n" + e.Tail
	}
	return msg
}

func (e *ExitError) Unwrap() error { return e.Err }

// Run runs the hook, copying its combined output to out (nil discards it) as it comes, up to MaxOutput bytes;
// out is written from one goroutine at a time. Run returns when the hook's shell has exited and its output is
// closed (or WaitDelay after the exit, if a background process keeps it open: the hook still succeeds and that
// process keeps running). When the timeout or ctx ends first, the hook's whole process group is killed
// (children included) and the *ExitError wraps ErrTimeout or ctx's error. A non-zero exit returns an
// *ExitError with the exit code and the tail of the output. An empty command does nothing.
func (r *Runner) Run(ctx context.Context, run Run, out io.Writer) (Result, error) {
	res := Result{ExitCode: -1}
	if run.Command == "" {
		res.ExitCode = 0
		return res, nil
	}
	timeout := orDefault(r.Timeout, DefaultTimeout)
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("%w after %s", ErrTimeout, timeout))
	defer cancel()

	if out == nil {
		out = io.Discard
	}
	capture := &output{w: out, max: int64(orDefault(r.MaxOutput, DefaultMaxOutput))}
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", run.Command)
	cmd.Dir = r.Dir
	cmd.Env = append(os.Environ(), r.Env...)
	cmd.Env = append(cmd.Env,
		"REWIND_HOOK="+run.Phase,
		"REWIND_ENVIRONMENT="+run.Environment,
		"REWIND_OPERATION="+run.Operation,
		"REWIND_BACKUP_ID="+run.BackupID,
	)
	cmd.Stdin = nil
	cmd.Stdout = capture
	cmd.Stderr = capture
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The shell's pid is its process group's id: kill the group, children and all.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = orDefault(r.WaitDelay, DefaultWaitDelay)

	start := time.Now()
	err := cmd.Run()
	res.Duration = time.Since(start)
	if cmd.ProcessState != nil {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	res.Output, res.Truncated, res.Tail = capture.result()
	if capture.werr != nil && err == nil {
		err = fmt.Errorf("%s hook: write output: %w", run.Phase, capture.werr)
		return res, err
	}
	switch {
	case ctx.Err() != nil:
		return res, &ExitError{Phase: run.Phase, ExitCode: -1, Tail: res.Tail, Err: context.Cause(ctx)}
	case err == nil, errors.Is(err, exec.ErrWaitDelay) && res.ExitCode == 0:
		// Exited 0; a background process kept the output open past WaitDelay: the hook still succeeded.
		return res, nil
	default:
		return res, &ExitError{Phase: run.Phase, ExitCode: res.ExitCode, Tail: res.Tail, Err: err}
	}
}

func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// output copies a hook's output to w up to max bytes and keeps its tail.
type output struct {
	w   io.Writer
	max int64

	mu        sync.Mutex
	n         int64
	tail      []byte
	truncated bool
	werr      error
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	room := o.max - o.n
	if room > 0 && o.werr == nil {
		if _, err := o.w.Write(p[:min(int64(len(p)), room)]); err != nil {
			o.werr = err
		}
	}
	if int64(len(p)) > room && !o.truncated {
		o.truncated = true
		if o.werr == nil {
			_, o.werr = fmt.Fprintf(o.w, "\n[rewind: hook output truncated after %d bytes]\n", o.max)
		}
	}
	o.n += int64(len(p))
	o.tail = append(o.tail, p...)
	if len(o.tail) > tailSize {
		o.tail = append(o.tail[:0], o.tail[len(o.tail)-tailSize:]...)
	}
	return len(p), nil
}

func (o *output) result() (n int64, truncated bool, tail string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	t := o.tail
	if o.n > int64(len(t)) {
		// Start the tail at a line boundary when it was cut.
		if i := bytes.IndexByte(t, '\n'); i >= 0 && i < len(t)-1 {
			t = t[i+1:]
		}
	}
	return o.n, o.truncated, string(bytes.TrimRight(t, "\n"))
}

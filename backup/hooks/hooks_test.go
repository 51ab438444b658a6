package hooks_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rewind/rewind/backup/hooks"
)

func TestRunCapturesOutputAndEnvironment(t *testing.T) {
	var out strings.Builder
	var r hooks.Runner
	res, err := r.Run(context.Background(), hooks.Run{
		Phase:       hooks.PrePause,
		Command:     `echo to stdout; echo to stderr >&2; echo "$REWIND_HOOK $REWIND_ENVIRONMENT $REWIND_OPERATION $REWIND_BACKUP_ID"`,
		Environment: "main",
		Operation:   "backup",
		BackupID:    "0123456789abcdef0123",
	}, &out)
	if err != nil {
		t.Fatal(err)
	}
	want := "to stdout\nto stderr\npre_pause main backup 0123456789abcdef0123\n"
	if got := out.String(); got != want {
		t.Fatalf("output = %q, want %q", got, want)
	}
	if got, want := res.ExitCode, 0; got != want {
		t.Fatalf("ExitCode = %d, want %d", got, want)
	}
	if got, want := res.Output, int64(len(want)); got != want {
		t.Fatalf("Output = %d bytes, want %d", got, want)
	}
	if res.Truncated {
		t.Fatal("Truncated = true for a short output")
	}
}

func TestRunReportsExitCodeAndTail(t *testing.T) {
	var r hooks.Runner
	res, err := r.Run(context.Background(), hooks.Run{Phase: hooks.PostRestore, Command: "echo migrating; echo 'migration 7 failed' >&2; exit 3"}, nil)
	var ee *hooks.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("Run = %v, want an *ExitError", err)
	}
	if got, want := ee.ExitCode, 3; got != want {
		t.Fatalf("ExitCode = %d, want %d", got, want)
	}
	if got, want := res.ExitCode, 3; got != want {
		t.Fatalf("Result.ExitCode = %d, want %d", got, want)
	}
	for _, want := range []string{"post_restore hook failed with exit code 3", "migration 7 failed"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q lacks %q", err, want)
		}
	}
	if got, want := ee.Tail, "migrating\nmigration 7 failed"; got != want {
		t.Fatalf("Tail = %q, want %q", got, want)
	}
}

// TestTimeoutKillsProcessGroup: a hook that runs too long is killed with every process it started.
func TestTimeoutKillsProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	r := hooks.Runner{Timeout: 200 * time.Millisecond}
	var out strings.Builder
	res, err := r.Run(context.Background(), hooks.Run{
		Phase:   hooks.PrePause,
		Command: "echo stopping workers; sleep 30 & echo $! > " + pidFile + "; sleep 30",
	}, &out)
	if !errors.Is(err, hooks.ErrTimeout) {
		t.Fatalf("Run = %v, want ErrTimeout", err)
	}
	if !strings.Contains(err.Error(), "stopping workers") {
		t.Fatalf("error %q lacks the output", err)
	}
	if res.Duration > 10*time.Second {
		t.Fatalf("Run took %s: the timeout did not stop it", res.Duration)
	}
	assertDead(t, readPid(t, pidFile))
}

func TestCancelKillsProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for {
			if _, err := os.Stat(pidFile); err == nil {
				cancel()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	var r hooks.Runner
	_, err := r.Run(ctx, hooks.Run{Phase: hooks.PrePause, Command: "sh -c 'sleep 30' & echo $! > " + pidFile + ".tmp; mv " + pidFile + ".tmp " + pidFile + "; sleep 30"}, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	assertDead(t, readPid(t, pidFile))
}

// TestBackgroundProcessDoesNotBlock: a hook that leaves a process running with its output open still
// returns, successfully, shortly after its shell exits.
func TestBackgroundProcessDoesNotBlock(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	r := hooks.Runner{WaitDelay: 100 * time.Millisecond}
	res, err := r.Run(context.Background(), hooks.Run{Phase: hooks.PostPause, Command: "sleep 20 & echo $! > " + pidFile + "; echo started"}, nil)
	pid := readPid(t, pidFile)
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	if err != nil {
		t.Fatalf("Run = %v, want success", err)
	}
	if res.Duration > 10*time.Second {
		t.Fatalf("Run took %s: it waited for the background process", res.Duration)
	}
	if got, want := res.Tail, "started"; got != want {
		t.Fatalf("Tail = %q, want %q", got, want)
	}
}

func TestOutputIsBounded(t *testing.T) {
	var out strings.Builder
	r := hooks.Runner{MaxOutput: 100}
	res, err := r.Run(context.Background(), hooks.Run{Phase: hooks.PrePause, Command: "i=0; while [ $i -lt 500 ]; do echo line $i; i=$((i+1)); done; echo last line"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Truncated {
		t.Fatal("Truncated = false, want true")
	}
	if got, want := out.Len(), 100+len("\n[rewind: hook output truncated after 100 bytes]\n"); got != want {
		t.Fatalf("copied %d bytes, want %d:\n%s", got, want, out.String())
	}
	if !strings.HasPrefix(out.String(), "line 0\nline 1\n") || !strings.HasSuffix(out.String(), "truncated after 100 bytes]\n") {
		t.Fatalf("copied output = %q", out.String())
	}
	if !strings.HasSuffix(res.Tail, "line 499\nlast line") || len(res.Tail) > 2048 {
		t.Fatalf("Tail = %q (%d bytes), want the last lines", res.Tail, len(res.Tail))
	}
	if strings.HasPrefix(res.Tail, "ine") || !strings.HasPrefix(res.Tail, "line ") {
		t.Fatalf("Tail starts mid-line: %q", res.Tail[:20])
	}
}

func TestEmptyCommandDoesNothing(t *testing.T) {
	var r hooks.Runner
	res, err := r.Run(context.Background(), hooks.Run{Phase: hooks.PostPause}, nil)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("Run(empty) = %+v, %v; want exit 0, nil", res, err)
	}
}

func readPid(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("read pid: %v", err)
	}
	return pid
}

// assertDead waits for pid to be gone (or a zombie: its parent, the killed shell, cannot reap it).
func assertDead(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return
		}
		if f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:])); len(f) > 0 && f[0] == "Z" {
			return
		}
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("process %d outlived its hook", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

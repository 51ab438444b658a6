// Package scratch starts private, throwaway PostgreSQL, MariaDB and Redis servers: each runs as a child of this
// process in a directory the caller names, on a free loopback port, with no durability (fsync off, no
// persistence), and Stop removes it with its directory. Restore drills restore backups into them; the tests'
// private servers (backup/internal/testserver) are started with it too.
//
// A server dies with the process that started it (the kernel sends it SIGKILL, Pdeathsig), so a crash leaves no
// server running; what it leaves is the directory, which Sweep removes (it also kills a server still running
// from it, should one have survived).
package scratch

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrNotInstalled is wrapped when a server's binary is not on this machine.
var ErrNotInstalled = errors.New("not installed")

// pidFile is the file in a server's directory that holds the server's process id, for Sweep.
const pidFile = "scratch.pid"

// attempts is how often a start is tried on a fresh port: another process may take the free port first.
const attempts = 3

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// process is a server child process with the tail of its output.
type process struct {
	cmd  *exec.Cmd
	dir  string
	mu   sync.Mutex
	log  bytes.Buffer
	done chan struct{}
	err  error
}

// logWriter is a goroutine-safe sink for a child's output; it keeps the first MiB.
type logWriter struct{ p *process }

func (w logWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	if w.p.log.Len() < 1<<20 {
		w.p.log.Write(b)
	}
	return len(b), nil
}

func (p *process) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.log.String()
	if len(s) > 4000 {
		s = "..." + s[len(s)-4000:]
	}
	return s
}

// start runs cmd as a child of its own process group that dies with this process, and records its pid in dir.
func start(cmd *exec.Cmd, dir string, cred *syscall.Credential) (*process, error) {
	p := &process{cmd: cmd, dir: dir, done: make(chan struct{})}
	cmd.Stdout = logWriter{p}
	cmd.Stderr = logWriter{p}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: cred, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", filepath.Base(cmd.Path), err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := os.WriteFile(filepath.Join(dir, pidFile), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		p.stop(syscall.SIGKILL)
		return nil, fmt.Errorf("record the server's pid: %w", err)
	}
	return p, nil
}

// stop asks the process to stop with sig and kills its process group after a grace period.
func (p *process) stop(sig syscall.Signal) {
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// waitReady polls ready until it succeeds, the process exits or the timeout passes; a server that is not ready
// in time is killed.
func (p *process) waitReady(timeout time.Duration, ready func() error) error {
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("server exited (%v): %s", p.err, p.output())
		default:
		}
		if err = ready(); err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.stop(syscall.SIGKILL)
	return fmt.Errorf("server not ready after %s: %v; log: %s", timeout, err, p.output())
}

// startReady starts the server that run builds for a free port, up to attempts times (another process may take
// the port between the check and the server's bind), and waits until ready(port) succeeds.
func startReady(dir string, cred *syscall.Credential, timeout time.Duration, run func(port int) *exec.Cmd,
	ready func(port int) error) (*process, int, error) {
	var last error
	for range attempts {
		port, err := freePort()
		if err != nil {
			return nil, 0, err
		}
		p, err := start(run(port), dir, cred)
		if err != nil {
			return nil, 0, err
		}
		if last = p.waitReady(timeout, func() error { return ready(port) }); last == nil {
			return p, port, nil
		}
	}
	return nil, 0, last
}

// lookBin finds a server binary on PATH or in one of dirs.
func lookBin(name string, dirs ...string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s is %w", name, ErrNotInstalled)
}

// userCredential returns the credential to run a server as name when this process is root, nil otherwise.
func userCredential(name string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL refuses to run as root and there is no %q user: %w", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// RunsFrom reports whether process pid runs from dir: its working directory is dir or below (every server
// works in its directory: PostgreSQL and MariaDB in their data directory, Redis in its --dir), or its command
// line names dir (Redis rewrites its own). A process that has exited (a zombie too) does not.
func RunsFrom(pid int, dir string) bool {
	dir = filepath.Clean(dir)
	if cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); err == nil {
		cwd = strings.TrimSuffix(cwd, " (deleted)")
		if cwd == dir || strings.HasPrefix(cwd, dir+"/") {
			return true
		}
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && bytes.Contains(cmdline, []byte(dir))
}

// makeDir creates dir (and its parents) for a server; it must not exist yet or be empty.
func makeDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create server directory: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read server directory: %w", err)
	}
	if len(ents) > 0 {
		return fmt.Errorf("server directory %s is not empty", dir)
	}
	return nil
}

// Sweep removes dir, which scratch servers (or what a crash left of them) live under: it first kills every
// server whose pid file is found in it and that still runs from it, then removes the tree. A missing dir is
// not an error.
func Sweep(dir string) error {
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != pidFile {
			return nil
		}
		killFrom(filepath.Dir(path))
		return nil
	})
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove scratch directory: %w", err)
	}
	return nil
}

// killFrom kills the server recorded in dir's pid file if that process still runs from dir (a pid reused by
// another program is left alone).
func killFrom(dir string) {
	b, err := os.ReadFile(filepath.Join(dir, pidFile))
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 || !RunsFrom(pid, dir) {
		return
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for range 100 { // wait for it to go, so its files can be removed
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

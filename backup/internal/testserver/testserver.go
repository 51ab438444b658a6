// Package testserver starts private PostgreSQL, MariaDB and Redis servers for the tests of Rewind's sources.
//
// Each server runs as a child of the test binary in its own temporary directory on a free loopback port; it is
// never one of the machine's shared servers. One server of each kind is started lazily per test binary and
// shared by its tests (each test gets its own database); wrap the package's tests with Main so the servers are
// stopped when they end:
//
//	func TestMain(m *testing.M) { testserver.Main(m) }
//
// The children also get SIGKILL from the kernel when the test binary dies (Pdeathsig), so a crashed or killed
// test run leaves no server behind. A test is skipped, with a message naming the binary, only when the server's
// binary is not installed; any other failure to start fails the test.
package testserver

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// registry of the servers started by this test binary, stopped by Main.
var (
	mu      sync.Mutex
	stopped bool
	stops   []func()
)

// Main runs the tests of a package and stops the servers they started.
func Main(m *testing.M) {
	code := m.Run()
	StopAll()
	os.Exit(code)
}

// StopAll stops every server started so far. Main calls it; tests rarely need to.
func StopAll() {
	mu.Lock()
	fns := stops
	stops = nil
	stopped = true
	mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}

func register(stop func()) {
	mu.Lock()
	defer mu.Unlock()
	stops = append(stops, stop)
}

// errMissing marks a server binary that is not installed: the caller skips instead of failing.
type errMissing struct{ bin string }

func (e errMissing) Error() string {
	return fmt.Sprintf("%s is not installed", e.bin)
}

// checkStart fails or skips t after a failed start.
func checkStart(t testing.TB, what string, err error) {
	t.Helper()
	var m errMissing
	if errors.As(err, &m) {
		t.Skipf("skipping: %s, so no private %s server can be started", m, what)
	}
	if err != nil {
		t.Fatalf("start private %s server: %v", what, err)
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// process is a server child process with its log.
type process struct {
	cmd  *exec.Cmd
	log  *bytes.Buffer
	mu   sync.Mutex
	done chan struct{}
	err  error
}

// logWriter is a goroutine-safe buffer for a child's output.
type logWriter struct {
	p *process
}

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

// start runs cmd as a child that dies with the test binary.
func start(cmd *exec.Cmd, cred *syscall.Credential) (*process, error) {
	p := &process{cmd: cmd, log: new(bytes.Buffer), done: make(chan struct{})}
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
	return p, nil
}

// stop asks the process to stop with sig and kills it after a grace period.
func (p *process) stop(sig syscall.Signal) {
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// waitReady polls ready until it succeeds, the process exits or the timeout passes.
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

// lookBin finds a server binary on PATH or in the given directories.
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
	return "", errMissing{bin: name}
}

// UniqueName returns prefix followed by 8 random hex characters: a fresh database or role name.
func UniqueName(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func itoa(n int) string { return strconv.Itoa(n) }

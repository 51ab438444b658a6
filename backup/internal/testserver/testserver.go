// Package testserver starts private PostgreSQL, MariaDB and Redis servers for the tests of Rewind's sources.
//
// Each server runs as a child of the test binary in its own temporary directory on a free loopback port; it is
// never one of the machine's shared servers. One server of each kind is started lazily per test binary and
// shared by its tests (each test gets its own database); wrap the package's tests with Main so the servers are
// stopped when they end:
//
//	func TestMain(m *testing.M) { testserver.Main(m) }
//
// The servers are started by backup/scratch, so they also get SIGKILL from the kernel when the test binary dies
// (Pdeathsig): a crashed or killed test run leaves no server behind. A test is skipped, with a message naming the
// binary, only when the server's binary is not installed; any other failure to start fails the test.
package testserver

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/rewind/rewind/backup/scratch"
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

// checkStart fails or skips t after a failed start.
func checkStart(t testing.TB, what string, err error) {
	t.Helper()
	if errors.Is(err, scratch.ErrNotInstalled) {
		t.Skipf("skipping: %v, so no private %s server can be started", err, what)
	}
	if err != nil {
		t.Fatalf("start private %s server: %v", what, err)
	}
}

// tempDir returns a new directory for a server of this test binary.
func tempDir(prefix string) (string, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", fmt.Errorf("create server directory: %w", err)
	}
	return dir, nil
}

// UniqueName returns prefix followed by 8 random hex characters: a fresh database or role name.
func UniqueName(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

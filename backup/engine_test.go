package backup_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kopia/kopia/fs"
	"github.com/kopia/kopia/fs/virtualfs"
	"github.com/kopia/kopia/snapshot"
	"github.com/kopia/kopia/snapshot/policy"

	"github.com/rewind/rewind/backup"
)

// memSource is a tiny real Source over an in-memory value: its folder holds one streaming file "data".
// failAfter > 0 makes the stream fail after that many bytes.
type memSource struct {
	mu         *sync.Mutex
	value      *[]byte
	failAfter  int
	failPrep   bool
	failSwitch bool
	peek       bool // Prepare reads only the first byte of "data", as a source that skips what it does not need
}

var _ backup.Source = (*memSource)(nil)

func (s *memSource) Pin(context.Context) (backup.Capture, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &memCapture{data: append([]byte(nil), (*s.value)...), failAfter: s.failAfter}, nil
}

func (s *memSource) Prepare(ctx context.Context, dir fs.Directory, _ backup.Progress) (backup.Prepared, error) {
	if s.failPrep {
		return nil, errors.New("prepare refused")
	}
	ent, err := dir.Child(ctx, "data")
	if err != nil {
		return nil, err
	}
	r, err := ent.(fs.File).Open(ctx)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if s.peek {
		b := make([]byte, 1)
		_, err := io.ReadFull(r, b)
		return &memPrepared{s: s, data: b, fail: s.failSwitch}, err
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	return &memPrepared{s: s, data: b, fail: s.failSwitch}, nil
}

type memCapture struct {
	data      []byte
	failAfter int
}

func (c *memCapture) Info() backup.ServiceInfo {
	return backup.ServiceInfo{Version: "mem 1", EstimatedBytes: int64(len(c.data))}
}

func (c *memCapture) Folder(context.Context, backup.Progress) (fs.Directory, error) {
	var r io.Reader = bytes.NewReader(c.data)
	if c.failAfter < 0 { // endless: a dump that never ends
		r = endless{}
	}
	if c.failAfter > 0 {
		r = io.MultiReader(io.LimitReader(r, int64(c.failAfter)), errReader{})
	}
	return virtualfs.NewStaticDirectory("x", []fs.Entry{
		virtualfs.StreamingFileFromReader("data", io.NopCloser(r)),
	}), nil
}

func (c *memCapture) Close() error { return nil }

type endless struct{}

func (endless) Read(b []byte) (int, error) {
	time.Sleep(time.Millisecond)
	for i := range b {
		b[i] = byte(i)
	}
	return len(b), nil
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("dump process exited with status 1") }

type memPrepared struct {
	s    *memSource
	data []byte
	fail bool
}

func (p *memPrepared) Switch(context.Context) (backup.Replaced, error) {
	if p.fail {
		return nil, errors.New("switch refused")
	}
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	old := *p.s.value
	*p.s.value = p.data
	return &memReplaced{s: p.s, data: old}, nil
}

func (p *memPrepared) Discard(context.Context) error { return nil }

type memReplaced struct {
	s    *memSource
	data []byte
}

func (r *memReplaced) Pin(context.Context) (backup.Capture, error) {
	return &memCapture{data: r.data}, nil
}

func (r *memReplaced) Revert(context.Context) error {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	*r.s.value = r.data
	return nil
}

func (r *memReplaced) Discard(context.Context) error { return nil }

// memEnv holds the values of a few mem services, keyed by name.
type memEnv struct {
	mu         sync.Mutex
	values     map[string]*[]byte
	failures   map[string]int
	failPrep   map[string]bool
	failSwitch map[string]bool
	peek       map[string]bool
}

func newMemEnv() *memEnv {
	return &memEnv{values: map[string]*[]byte{}, failures: map[string]int{}, failPrep: map[string]bool{},
		failSwitch: map[string]bool{}, peek: map[string]bool{}}
}

func (m *memEnv) set(name, v string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b := []byte(v)
	if p, ok := m.values[name]; ok {
		*p = b
		return
	}
	m.values[name] = &b
}

func (m *memEnv) get(name string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return string(*m.values[name])
}

func (m *memEnv) driver(spec backup.ServiceSpec) (backup.Source, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.values[spec.Name]
	if !ok {
		b := []byte{}
		v = &b
		m.values[spec.Name] = v
	}
	return &memSource{mu: &m.mu, value: v, failAfter: m.failures[spec.Name], failPrep: m.failPrep[spec.Name], failSwitch: m.failSwitch[spec.Name], peek: m.peek[spec.Name]}, nil
}

func openTestRepo(t testing.TB, dir string) *backup.Repository {
	t.Helper()
	ctx := context.Background()
	r, err := backup.OpenRepository(ctx, backup.RepositoryOptions{
		Storage:   backup.FileStorage(dir + "/repo"),
		Password:  "correct horse battery staple",
		ConfigDir: dir + "/kopia",
	})
	if err != nil {
		t.Fatalf("OpenRepository: %v", err)
	}
	t.Cleanup(func() { r.Close(context.Background()) })
	return r
}

func newTestEngine(t testing.TB, env *memEnv) *backup.Engine {
	t.Helper()
	return &backup.Engine{
		Repo:    openTestRepo(t, t.TempDir()),
		Drivers: map[string]backup.Driver{"mem": env.driver},
	}
}

func memSpecs(names ...string) []backup.ServiceSpec {
	var s []backup.ServiceSpec
	for _, n := range names {
		s = append(s, backup.ServiceSpec{Name: n, Type: "mem"})
	}
	return s
}

type countingProgress struct {
	mu          sync.Mutex
	total, done int64
}

func (p *countingProgress) SetTotal(n int64) { p.mu.Lock(); p.total = n; p.mu.Unlock() }
func (p *countingProgress) Add(n int64)      { p.mu.Lock(); p.done += n; p.mu.Unlock() }

func TestBackupRestoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	env := newMemEnv()
	env.set("db", "hello database")
	env.set("cache", strings.Repeat("cache line\n", 1000))
	e := newTestEngine(t, env)

	var held, released int
	hold := func(context.Context) (func(), error) {
		held++
		return func() { released++ }, nil
	}
	prog := &countingProgress{}
	m, err := e.Backup(ctx, backup.BackupRequest{
		Environment: "main", Kind: backup.KindManual, Commit: "abc123", Services: memSpecs("db", "cache"), Hold: hold,
	}, prog)
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	if got, want := held+released, 2; got != want {
		t.Fatalf("hold+release = %d, want %d", got, want)
	}
	if m.Live {
		t.Fatalf("consistent backup marked live")
	}
	if got, want := len(m.Services), 2; got != want {
		t.Fatalf("services = %d, want %d", got, want)
	}
	if got, want := m.Service("db").Bytes, int64(len("hello database")); got != want {
		t.Fatalf("db bytes = %d, want %d", got, want)
	}
	if got, want := prog.done, int64(len("hello database")+11000); got != want {
		t.Fatalf("progress done = %d, want %d", got, want)
	}

	if err := e.VerifyBackup(ctx, m.ID, nil); err != nil {
		t.Fatalf("VerifyBackup: %v", err)
	}
	if _, err := e.Backup(ctx, backup.BackupRequest{ID: m.ID, Environment: "main", Kind: backup.KindManual, Services: memSpecs("db")}, nil); !errors.Is(err, backup.ErrExists) {
		t.Fatalf("Backup with an existing id = %v, want ErrExists", err)
	}
	found, err := e.FindBackup(ctx, m.ID)
	if err != nil {
		t.Fatalf("FindBackup: %v", err)
	}
	if got, want := found.Service("cache").SHA256, m.Service("cache").SHA256; got != want {
		t.Fatalf("found checksum = %s, want %s", got, want)
	}
	if got, want := found.Commit, "abc123"; got != want {
		t.Fatalf("commit = %q, want %q", got, want)
	}

	env.set("db", "mutated")
	env.set("cache", "")
	res, err := e.Restore(ctx, backup.RestoreRequest{ID: m.ID, Services: memSpecs("db", "cache"), Hold: hold}, nil)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got, want := env.get("db"), "hello database"; got != want {
		t.Fatalf("db after restore = %q, want %q", got, want)
	}
	if got, want := len(res.Replaced), 2; got != want {
		t.Fatalf("replaced = %d, want %d", got, want)
	}
	pre, err := e.BackupReplaced(ctx, backup.BackupRequest{
		Environment: "main", Kind: backup.KindPreRestore, RestoredFrom: m.ID,
	}, res.Replaced, nil)
	if err != nil {
		t.Fatalf("BackupReplaced: %v", err)
	}
	// undo = restore the pre-restore backup
	if _, err := e.Restore(ctx, backup.RestoreRequest{ID: pre.ID, Services: memSpecs("db", "cache")}, nil); err != nil {
		t.Fatalf("Restore pre-restore: %v", err)
	}
	if got, want := env.get("db"), "mutated"; got != want {
		t.Fatalf("db after undo = %q, want %q", got, want)
	}

	list, err := e.ListBackups(ctx, "main")
	if err != nil {
		t.Fatalf("ListBackups: %v", err)
	}
	if got, want := len(list), 2; got != want {
		t.Fatalf("backups = %d, want %d", got, want)
	}
	if err := e.DeleteBackup(ctx, pre.ID); err != nil {
		t.Fatalf("DeleteBackup: %v", err)
	}
	if _, err := e.FindBackup(ctx, pre.ID); !errors.Is(err, backup.ErrNotFound) {
		t.Fatalf("FindBackup deleted = %v, want ErrNotFound", err)
	}
	for _, full := range []bool{false, true} {
		if err := e.Maintenance(ctx, full); err != nil {
			t.Fatalf("Maintenance(%v): %v", full, err)
		}
	}
	if _, err := e.FindBackup(ctx, m.ID); err != nil {
		t.Fatalf("FindBackup after maintenance: %v", err)
	}
}

func TestFailedCaptureLeavesNoSnapshot(t *testing.T) {
	ctx := context.Background()
	env := newMemEnv()
	env.set("db", strings.Repeat("x", 100000))
	env.set("files", "ok")
	env.failures["db"] = 5000
	e := newTestEngine(t, env)
	_, err := e.Backup(ctx, backup.BackupRequest{Environment: "main", Kind: backup.KindManual, Services: memSpecs("files", "db")}, nil)
	if err == nil {
		t.Fatalf("Backup with a failing stream succeeded")
	}
	var se *backup.ServiceError
	if !errors.As(err, &se) || se.Service != "db" {
		t.Fatalf("error %v does not name service db", err)
	}
	if !strings.Contains(err.Error(), `capture service "db" (mem)`) || !strings.Contains(err.Error(), "exited with status 1") {
		t.Fatalf("error = %q, want the service and the cause", err)
	}
	list, err := e.ListBackups(ctx, "")
	if err != nil {
		t.Fatalf("ListBackups: %v", err)
	}
	if got, want := len(list), 0; got != want {
		t.Fatalf("backups after failed capture = %d, want %d", got, want)
	}
	// no snapshot of any source at all (no checkpoint, no partial root)
	snaps, err := listAllSnapshots(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := snaps, 0; got != want {
		t.Fatalf("kopia snapshots = %d, want %d", got, want)
	}
}

func TestRestoreRefusesMismatchBeforeTouching(t *testing.T) {
	ctx := context.Background()
	env := newMemEnv()
	env.set("db", "v1")
	e := newTestEngine(t, env)
	m, err := e.Backup(ctx, backup.BackupRequest{Environment: "main", Kind: backup.KindManual, Live: true, Services: memSpecs("db")}, nil)
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	if !m.Live {
		t.Fatalf("live backup not marked live")
	}
	env.set("db", "v2")
	for name, specs := range map[string][]backup.ServiceSpec{
		"type mismatch":   {{Name: "db", Type: "files"}},
		"missing service": memSpecs("db", "other"),
		"no target":       nil,
	} {
		if _, err := e.Restore(ctx, backup.RestoreRequest{ID: m.ID, Services: specs}, nil); err == nil {
			t.Fatalf("%s: Restore succeeded", name)
		}
		if got, want := env.get("db"), "v2"; got != want {
			t.Fatalf("%s: db = %q, want %q (untouched)", name, got, want)
		}
	}
	if _, err := e.Restore(ctx, backup.RestoreRequest{ID: "0123456789abcdef0123", Services: memSpecs("db")}, nil); !errors.Is(err, backup.ErrNotFound) {
		t.Fatalf("Restore of unknown id = %v, want ErrNotFound", err)
	}
}

func TestFailedPrepareAndSwitchLeaveLiveData(t *testing.T) {
	ctx := context.Background()
	env := newMemEnv()
	env.set("a", "a1")
	env.set("b", "b1")
	e := newTestEngine(t, env)
	m, err := e.Backup(ctx, backup.BackupRequest{Environment: "main", Kind: backup.KindManual, Services: memSpecs("a", "b")}, nil)
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	env.set("a", "a2")
	env.set("b", "b2")
	env.failPrep["b"] = true
	_, err = e.Restore(ctx, backup.RestoreRequest{ID: m.ID, Services: memSpecs("a", "b")}, nil)
	if err == nil || !strings.Contains(err.Error(), `prepare service "b"`) {
		t.Fatalf("Restore error = %v, want a prepare failure naming b", err)
	}
	if got, want := env.get("a")+env.get("b"), "a2b2"; got != want {
		t.Fatalf("live data = %q, want %q", got, want)
	}
}

func TestFailedSwitchRevertsSwitched(t *testing.T) {
	ctx := context.Background()
	env := newMemEnv()
	env.set("a", "a1")
	env.set("b", "b1")
	env.set("c", "c1")
	e := newTestEngine(t, env)
	m, err := e.Backup(ctx, backup.BackupRequest{Environment: "main", Kind: backup.KindManual, Services: memSpecs("a", "b", "c")}, nil)
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	env.set("a", "a2")
	env.set("b", "b2")
	env.set("c", "c2")
	env.failSwitch["c"] = true
	released := 0
	hold := func(context.Context) (func(), error) { return func() { released++ }, nil }
	_, err = e.Restore(ctx, backup.RestoreRequest{ID: m.ID, Services: memSpecs("a", "b", "c"), Hold: hold}, nil)
	var se *backup.ServiceError
	if !errors.As(err, &se) || se.Op != "switch" || se.Service != "c" {
		t.Fatalf("Restore error = %v, want a switch failure of c", err)
	}
	if got, want := env.get("a")+env.get("b")+env.get("c"), "a2b2c2"; got != want {
		t.Fatalf("live data after failed switch = %q, want %q (reverted)", got, want)
	}
	if got, want := released, 1; got != want {
		t.Fatalf("released %d times, want %d", got, want)
	}
}

func TestWrongPassword(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	r := openTestRepo(t, dir)
	r.Close(ctx)
	_, err := backup.OpenRepository(ctx, backup.RepositoryOptions{
		Storage: backup.FileStorage(dir + "/repo"), Password: "wrong", ConfigDir: dir + "/kopia2",
	})
	if !errors.Is(err, backup.ErrWrongPassword) {
		t.Fatalf("OpenRepository with a wrong password = %v, want ErrWrongPassword", err)
	}
}

func listAllSnapshots(ctx context.Context, e *backup.Engine) (int, error) {
	ents, err := e.Repo.Kopia().FindManifests(ctx, map[string]string{"type": "snapshot"})
	if err != nil {
		return 0, fmt.Errorf("find manifests: %w", err)
	}
	return len(ents), nil
}

func TestCanceledBackupLeavesNoSnapshot(t *testing.T) {
	env := newMemEnv()
	env.set("db", "x")
	env.failures["db"] = -1
	e := newTestEngine(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := e.Backup(ctx, backup.BackupRequest{Environment: "main", Kind: backup.KindManual, Services: memSpecs("db")}, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Backup = %v, want the context's error", err)
	}
	n, err := listAllSnapshots(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("snapshots after a canceled backup = %d, want 0", n)
	}
}

func TestRepositoryPolicy(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	openTestRepo(t, dir).Close(ctx)
	r := openTestRepo(t, dir) // reopened: the policy is kept, not rewritten
	tree, err := policy.TreeForSource(ctx, r.Kopia(), snapshot.SourceInfo{Host: "rewind", UserName: "rewind", Path: "/rewind/main"})
	if err != nil {
		t.Fatal(err)
	}
	pol := tree.EffectivePolicy()
	if got, want := string(pol.CompressionPolicy.CompressorName), backup.DefaultCompression; got != want {
		t.Fatalf("compressor = %q, want %q", got, want)
	}
	if got, want := pol.UploadPolicy.ParallelUploadAboveSize.OrDefault(0), int64(-1); got != want {
		t.Fatalf("parallel upload above = %d, want %d", got, want)
	}
	if got, want := contentHash(t, r), "BLAKE3-256-128"; got != want {
		t.Fatalf("content hash of a new repository = %q, want %q", got, want)
	}
}

// TestMaintenanceDuringBackup runs full maintenance over and over while backups are taken and deleted; every
// remaining backup still verifies.
func TestMaintenanceDuringBackup(t *testing.T) {
	ctx := context.Background()
	env := newMemEnv()
	env.set("db", strings.Repeat("maintenance-safe data ", 50000))
	e := newTestEngine(t, env)
	stop := make(chan struct{})
	done := make(chan error)
	go func() {
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if err := e.Maintenance(ctx, true); err != nil {
				done <- err
				return
			}
		}
	}()
	var keep []string
	for i := range 4 {
		env.set("db", fmt.Sprintf("%d %s", i, strings.Repeat("maintenance-safe data ", 50000)))
		m, err := e.Backup(ctx, backup.BackupRequest{Environment: "main", Kind: backup.KindAutomated, Live: true, Services: memSpecs("db")}, nil)
		if err != nil {
			t.Fatalf("Backup %d: %v", i, err)
		}
		if i%2 == 0 {
			if err := e.DeleteBackup(ctx, m.ID); err != nil {
				t.Fatal(err)
			}
		} else {
			keep = append(keep, m.ID)
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatalf("Maintenance: %v", err)
	}
	if err := e.Maintenance(ctx, false); err != nil {
		t.Fatalf("quick Maintenance: %v", err)
	}
	for _, id := range keep {
		if err := e.VerifyBackup(ctx, id, nil); err != nil {
			t.Fatalf("VerifyBackup %s after maintenance: %v", id, err)
		}
	}
}

// TestRestoreVerifyAll restores with RestoreRequest.VerifyAll: the files a Prepare read and the ones it skipped
// are all checked against SHA256SUMS and counted; without it, only what was read is.
func TestRestoreVerifyAll(t *testing.T) {
	ctx := context.Background()
	env := newMemEnv()
	env.set("db", "hello database")
	env.set("cache", strings.Repeat("cache line\n", 1000))
	e := newTestEngine(t, env)
	m, err := e.Backup(ctx, backup.BackupRequest{Environment: "main", Kind: backup.KindManual, Live: true,
		Services: memSpecs("db", "cache")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	env.peek["cache"] = true // its Prepare reads one byte of its 11,000
	for _, tc := range []struct {
		verifyAll bool
		want      int
	}{{false, 0}, {true, 2}} {
		res, err := e.Restore(ctx, backup.RestoreRequest{ID: m.ID, Services: memSpecs("db", "cache"), VerifyAll: tc.verifyAll}, nil)
		if err != nil {
			t.Fatalf("Restore (VerifyAll %v): %v", tc.verifyAll, err)
		}
		if res.Verified != tc.want {
			t.Fatalf("Restore (VerifyAll %v) verified %d files, want %d", tc.verifyAll, res.Verified, tc.want)
		}
	}
}

package backup_test

import (
	"context"
	"crypto/rand"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/files"
)

// storedSlack bounds what a backup writes besides its new data: listings, rewind.json, SHA256SUMS, the
// snapshot manifest, index blobs and session markers (each pack padded to 4 KiB).
const storedSlack = 64 << 10

// repoSize is the size of every blob of the repository in dir (the filesystem storage of openTestRepo).
func repoSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(filepath.Join(dir, "repo"), func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			n += fi.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatalf("size of the repository: %v", err)
	}
	return n
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return string(b)
}

// checkAbout fails unless got is within [want, want+storedSlack].
func checkAbout(t *testing.T, what string, got, want int64) {
	t.Helper()
	if got < want || got > want+storedSlack {
		t.Fatalf("%s = %d, want %d to %d", what, got, want, want+storedSlack)
	}
}

// TestStoredBytes: a backup reports the bytes it added to the repository, after deduplication and compression.
func TestStoredBytes(t *testing.T) {
	ctx := context.Background()
	env := newMemEnv()
	const random = 1 << 20
	env.set("db", randomString(random))                               // incompressible
	env.set("cache", strings.Repeat("the same line, again\n", 50000)) // 1 MB that compresses to almost nothing
	dir := t.TempDir()
	e := &backup.Engine{Repo: openTestRepo(t, dir), Drivers: map[string]backup.Driver{"mem": env.driver}}
	req := backup.BackupRequest{Environment: "main", Kind: backup.KindManual, Services: memSpecs("db", "cache")}
	backupOf := func(what string) (*backup.Manifest, int64) {
		t.Helper()
		before := repoSize(t, dir)
		m, err := e.Backup(ctx, req, nil)
		if err != nil {
			t.Fatalf("%s: Backup: %v", what, err)
		}
		grew := repoSize(t, dir) - before
		t.Logf("%s: %d bytes of data, stored %d, repository grew %d", what, m.Bytes, m.StoredBytes, grew)
		// The count includes the session markers kopia deletes on commit (a few hundred bytes).
		if d := grew - m.StoredBytes; d < -4096 || d > 4096 {
			t.Fatalf("%s: stored %d, but the repository grew %d", what, m.StoredBytes, grew)
		}
		return m, grew
	}

	first, _ := backupOf("first backup")
	checkAbout(t, "first backup's stored bytes", first.StoredBytes, random)
	if first.StoredBytes >= first.Bytes*3/4 {
		t.Fatalf("stored %d of %d bytes: the compressible half was not compressed", first.StoredBytes, first.Bytes)
	}

	same, _ := backupOf("unchanged data")
	if same.StoredBytes <= 0 || same.StoredBytes > first.StoredBytes/20 {
		t.Fatalf("backup of unchanged data stored %d, want > 0 and under 5%% of the first (%d)", same.StoredBytes, first.StoredBytes)
	}

	const changed = 512 << 10
	env.set("db", randomString(changed))
	next, _ := backupOf("new data")
	checkAbout(t, "stored bytes of a backup of new data", next.StoredBytes, changed)

	// The figure is in rewind.json (a catalog rebuilt from the repository has it), less the few KB written
	// after it.
	found, err := e.FindBackup(ctx, next.ID)
	if err != nil {
		t.Fatalf("FindBackup: %v", err)
	}
	if got, want := found.StoredBytes, next.StoredBytes; got > want || got < want-16<<10 {
		t.Fatalf("stored bytes read back = %d, want at most %d and at least %d", got, want, want-16<<10)
	}

	// The pre-restore backup of a restore counts too: the replaced state (the first db) is already stored.
	res, err := e.Restore(ctx, backup.RestoreRequest{ID: first.ID, Services: memSpecs("db", "cache")}, nil)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	pre, err := e.BackupReplaced(ctx, backup.BackupRequest{Environment: "main", Kind: backup.KindPreRestore,
		RestoredFrom: first.ID}, res.Replaced, nil)
	if err != nil {
		t.Fatalf("BackupReplaced: %v", err)
	}
	if pre.StoredBytes <= 0 || pre.StoredBytes > storedSlack {
		t.Fatalf("pre-restore backup of stored data stored %d, want > 0 and at most %d", pre.StoredBytes, storedSlack)
	}
}

// TestStoredBytesConcurrent: two environments backing up at once each count what they wrote, not the other's,
// and together what the repository grew.
func TestStoredBytesConcurrent(t *testing.T) {
	ctx := context.Background()
	env := newMemEnv()
	sizes := map[string]int64{"a": 1 << 20, "b": 640 << 10}
	for name, n := range sizes {
		env.set(name, randomString(int(n)))
	}
	dir := t.TempDir()
	e := &backup.Engine{Repo: openTestRepo(t, dir), Drivers: map[string]backup.Driver{"mem": env.driver}}
	before := repoSize(t, dir)
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := map[string]*backup.Manifest{}
	// Both hold their pause until the other arrives, so the uploads that follow overlap.
	var arrived sync.WaitGroup
	arrived.Add(len(sizes))
	hold := func(context.Context) (func(), error) {
		arrived.Done()
		arrived.Wait()
		return func() {}, nil
	}
	for name := range sizes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := e.Backup(ctx, backup.BackupRequest{Environment: "env-" + name, Kind: backup.KindManual,
				Services: memSpecs(name), Hold: hold}, nil)
			if err != nil {
				t.Errorf("Backup of %s: %v", name, err)
				return
			}
			mu.Lock()
			got[name] = m
			mu.Unlock()
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	grew := repoSize(t, dir) - before
	var sum int64
	for name, n := range sizes {
		checkAbout(t, "stored bytes of environment "+name, got[name].StoredBytes, n)
		sum += got[name].StoredBytes
	}
	t.Logf("stored %d + %d = %d, repository grew %d", got["a"].StoredBytes, got["b"].StoredBytes, sum, grew)
	if d := grew - sum; d < -8192 || d > 8192 {
		t.Fatalf("stored bytes add up to %d, but the repository grew %d", sum, grew)
	}
}

// TestStoredBytesStaged: a files service is uploaded in a first pass before the pause; its bytes count.
func TestStoredBytesStaged(t *testing.T) {
	ctx := context.Background()
	mount := t.TempDir()
	const size = 768 << 10
	if err := os.WriteFile(filepath.Join(mount, "photo.jpg"), []byte(randomString(size)), 0o644); err != nil {
		t.Fatal(err)
	}
	e := &backup.Engine{Repo: openTestRepo(t, t.TempDir()), Drivers: map[string]backup.Driver{backup.TypeFiles: files.Driver}}
	req := backup.BackupRequest{Environment: "main", Kind: backup.KindManual,
		Services: []backup.ServiceSpec{{Name: "uploads", Type: backup.TypeFiles, Path: mount}}}
	m, err := e.Backup(ctx, req, nil)
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	checkAbout(t, "stored bytes of a staged files backup", m.StoredBytes, size)
	again, err := e.Backup(ctx, req, nil)
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	if again.StoredBytes <= 0 || again.StoredBytes > m.StoredBytes/20 {
		t.Fatalf("backup of unchanged files stored %d, want > 0 and under 5%% of the first (%d)", again.StoredBytes, m.StoredBytes)
	}
}

// TestStoredBytesManifestCompatible: a rewind.json written before stored_bytes existed still parses (as 0).
func TestStoredBytesManifestCompatible(t *testing.T) {
	old := `{"format":1,"id":"0123456789abcdef0123","environment":"main","kind":"manual","live":false,
		"started_at":"2026-01-02T03:04:05Z","finished_at":"2026-01-02T03:04:06Z","pause_ns":0,"services":[],"bytes":0}`
	m, err := backup.ParseManifest([]byte(old))
	if err != nil {
		t.Fatalf("ParseManifest of a manifest without stored_bytes: %v", err)
	}
	if got, want := m.StoredBytes, int64(0); got != want {
		t.Fatalf("stored bytes = %d, want %d", got, want)
	}
	bad := strings.Replace(old, `"bytes":0`, `"bytes":0,"stored_bytes":-1`, 1)
	if _, err := backup.ParseManifest([]byte(bad)); err == nil {
		t.Fatal("ParseManifest accepted negative stored bytes")
	}
}

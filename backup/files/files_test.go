package files_test

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/backuptest"
	"github.com/rewind/rewind/backup/files"
)

// state describes a tree exactly: per path, its type, mode, mtime (files, dirs and symlinks), size and
// sha256 or symlink target. contentOnly leaves out modes and times.
func state(t testing.TB, root string, contentOnly bool) backuptest.State {
	t.Helper()
	s := backuptest.State{}
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if strings.HasPrefix(fi.Name(), ".rewind-") {
			if fi.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		meta := ""
		if !contentOnly {
			meta = fmt.Sprintf(" %v %d", fi.Mode(), fi.ModTime().UnixNano())
		}
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			s["link "+rel] = target + meta
		case fi.IsDir():
			s["dir "+rel] = "dir" + meta
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			s["file "+rel] = hex.EncodeToString(sum[:]) + meta
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return s
}

func write(t testing.TB, p string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// fill makes a varied tree: nested directories, modes, symlinks, empty directories, unicode and awkward names,
// excluded files, and one large file.
func fill(t testing.TB, root string, large int) {
	t.Helper()
	past := time.Date(2024, 2, 29, 12, 34, 56, 789000000, time.UTC)
	write(t, filepath.Join(root, "README.md"), []byte("# hello\n"), 0o644)
	write(t, filepath.Join(root, "a/b/c/deep.txt"), []byte("deep"), 0o600)
	write(t, filepath.Join(root, "a/run.sh"), []byte("#!/bin/sh\necho hi\n"), 0o755)
	write(t, filepath.Join(root, "a/b/ro.txt"), []byte("read only"), 0o444)
	write(t, filepath.Join(root, "café/日本語.txt"), []byte("ユニコード"), 0o640)
	write(t, filepath.Join(root, "emoji 🎉 dir/file with spaces.txt"), []byte("spaces"), 0o644)
	write(t, filepath.Join(root, "odd/new\nline.txt"), []byte("newline name"), 0o644)
	write(t, filepath.Join(root, "odd/back\\slash"), []byte("backslash name"), 0o644)
	write(t, filepath.Join(root, "empty.bin"), nil, 0o644)
	for i := range 50 {
		write(t, filepath.Join(root, "many", fmt.Sprintf("f%03d.dat", i)), randomBytes(uint64(i), 1000+i*37), 0o644)
	}
	write(t, filepath.Join(root, "large.bin"), randomBytes(99, large), 0o644)
	// excluded
	write(t, filepath.Join(root, "cache/x"), []byte("cache"), 0o644)
	write(t, filepath.Join(root, "a/cache/y"), []byte("cache"), 0o644)
	write(t, filepath.Join(root, "scratch.tmp"), []byte("tmp"), 0o644)
	write(t, filepath.Join(root, "keep.tmp"), []byte("kept despite *.tmp"), 0o644)
	for _, d := range []string{"empty-dir", "a/empty-nested/inner"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"link-to-deep": "a/b/c/deep.txt",
		"a/b/up":       "../run.sh",
		"dir-link":     "a",
		"dangling":     "does-not-exist",
		"café/self":    ".",
	} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	// fixed times everywhere, directories last (children change their parent's mtime)
	var dirs []string
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if fi.IsDir() {
			dirs = append(dirs, p)
			return nil
		}
		touch(t, p, past)
		return nil
	})
	sort.Sort(sort.Reverse(sort.StringSlice(dirs)))
	for _, d := range dirs {
		touch(t, d, past)
	}
}

func touch(t testing.TB, p string, when time.Time) {
	t.Helper()
	if err := lutimes(p, when); err != nil {
		t.Fatalf("touch %s: %v", p, err)
	}
}

var exclude = []string{"cache/", "*.tmp", "!keep.tmp"}

func withoutExcluded(s backuptest.State) backuptest.State {
	out := backuptest.State{}
	for k, v := range s {
		if strings.Contains(k, "cache") || strings.HasSuffix(k, "scratch.tmp") {
			continue
		}
		out[k] = v
	}
	return out
}

func largeSize() int {
	if testing.Short() {
		return 8 << 20
	}
	return 200 << 20
}

func openEngine(t testing.TB, dir string) *backup.Engine {
	t.Helper()
	r, err := backup.OpenRepository(context.Background(), backup.RepositoryOptions{
		Storage: backup.FileStorage(filepath.Join(dir, "repo")), Password: "pw", ConfigDir: filepath.Join(dir, "kopia"),
	})
	if err != nil {
		t.Fatalf("OpenRepository: %v", err)
	}
	t.Cleanup(func() { r.Close(context.Background()) })
	return &backup.Engine{Repo: r, Drivers: map[string]backup.Driver{backup.TypeFiles: files.Driver}}
}

// TestEngineRoundTrip backs a mount up through a real kopia repository while it is being written to, damages
// it, restores it and compares every path, mode, mtime, checksum and symlink with the state at the pin.
func TestEngineRoundTrip(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	mount := filepath.Join(base, "srv", "uploads")
	fill(t, mount, largeSize())
	e := openEngine(t, filepath.Join(base, "data"))
	spec := backup.ServiceSpec{Name: "uploads", Type: backup.TypeFiles, Path: mount, Exclude: exclude}

	var atPin backuptest.State
	hold := func(context.Context) (func(), error) {
		// Writes after the first pass read the tree, before the pin: the pin must catch up on them.
		write(t, filepath.Join(mount, "a/b/c/deep.txt"), []byte("DEEP"), 0o600) // same size, in place
		// Same size, mode and mtime as when the first pass read it; only ctime tells the change.
		f5 := filepath.Join(mount, "many/f005.dat")
		fi5, _ := os.Stat(f5)
		b5, _ := os.ReadFile(f5)
		b5[0] ^= 0xff
		write(t, f5, b5, 0o644)
		touch(t, f5, fi5.ModTime())
		write(t, filepath.Join(mount, "new-during-stage.txt"), []byte("new"), 0o644)
		os.Remove(filepath.Join(mount, "many/f007.dat"))
		os.Chmod(filepath.Join(mount, "a/run.sh"), 0o700)
		os.Remove(filepath.Join(mount, "dangling"))
		os.Symlink("README.md", filepath.Join(mount, "dangling"))
		atPin = withoutExcluded(state(t, mount, false))
		return func() {
			// Writes after the pin must not be in the backup.
			write(t, filepath.Join(mount, "README.md"), []byte("# changed after pin\n"), 0o644)
			write(t, filepath.Join(mount, "after-pin.txt"), []byte("late"), 0o644)
			f, err := os.OpenFile(filepath.Join(mount, "many/f001.dat"), os.O_WRONLY, 0)
			if err == nil {
				f.WriteAt([]byte("XXXX"), 10)
				f.Close()
			}
		}, nil
	}
	m, err := e.Backup(ctx, backup.BackupRequest{
		Environment: "main", Kind: backup.KindManual, Services: []backup.ServiceSpec{spec}, Hold: hold,
	}, nil)
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	if m.Pause <= 0 {
		t.Fatalf("pause = %v, want > 0", m.Pause)
	}
	if err := e.VerifyBackup(ctx, m.ID, nil); err != nil {
		t.Fatalf("VerifyBackup: %v", err)
	}

	// Damage: update, delete, add, change a mode.
	write(t, filepath.Join(mount, "café/日本語.txt"), []byte("changed"), 0o600)
	os.RemoveAll(filepath.Join(mount, "a/b"))
	write(t, filepath.Join(mount, "added/x.txt"), []byte("added"), 0o644)
	damaged := withoutExcluded(state(t, mount, false))

	res, err := e.Restore(ctx, backup.RestoreRequest{ID: m.ID, Services: []backup.ServiceSpec{spec}}, nil)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	backuptest.MustEqual(t, "mount after restore (the state at the pin)", atPin, withoutExcluded(state(t, mount, false)))
	for _, p := range []string{"cache/x", "a/cache/y", "scratch.tmp"} {
		if _, err := os.Lstat(filepath.Join(mount, p)); err != nil {
			t.Fatalf("excluded %s not kept by the restore: %v", p, err)
		}
	}

	// The replaced tree can be backed up (pre-restore) and is the damaged state.
	pre, err := e.BackupReplaced(ctx, backup.BackupRequest{Environment: "main", Kind: backup.KindPreRestore, RestoredFrom: m.ID}, res.Replaced, nil)
	if err != nil {
		t.Fatalf("BackupReplaced: %v", err)
	}
	for _, r := range res.Replaced {
		if err := r.Replaced.Discard(ctx); err != nil {
			t.Fatalf("Discard: %v", err)
		}
	}
	if _, err := e.Restore(ctx, backup.RestoreRequest{ID: pre.ID, Services: []backup.ServiceSpec{spec}}, nil); err != nil {
		t.Fatalf("Restore of the pre-restore backup: %v", err)
	}
	backuptest.MustEqual(t, "mount after undo", damaged, withoutExcluded(state(t, mount, false)))
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(mount), ".rewind-*"))
	if got, want := len(leftovers), 1; got != want { // the replaced tree of the undo, not yet discarded
		t.Fatalf("siblings left = %v, want one", leftovers)
	}

	// The tar download holds the same tree.
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(e.WriteTar(ctx, m.ID, pw)) }()
	checkTar(t, pr, atPin, m)
}

func checkTar(t *testing.T, r io.Reader, want backuptest.State, m *backup.Manifest) {
	t.Helper()
	tr := tar.NewReader(r)
	got := backuptest.State{}
	var names []string
	var sums []byte
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read tar: %v", err)
		}
		names = append(names, h.Name)
		name := strings.TrimSuffix(h.Name, "/")
		if name == backup.ManifestFile || name == backup.SumsFile {
			b, _ := io.ReadAll(tr)
			if name == backup.ManifestFile {
				pm, err := backup.ParseManifest(b)
				if err != nil || pm.ID != m.ID {
					t.Fatalf("tar rewind.json = %v, %v", pm, err)
				}
			} else {
				sums = b
			}
			continue
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(name, "uploads"), "/")
		if rel == "" {
			rel = "."
		}
		meta := fmt.Sprintf(" %v %d", h.FileInfo().Mode(), h.ModTime.UnixNano())
		switch h.Typeflag {
		case tar.TypeDir:
			if rel == "." {
				continue
			}
			got["dir "+rel] = "dir" + meta
		case tar.TypeSymlink:
			got["link "+rel] = h.Linkname + meta
		case tar.TypeReg:
			b, _ := io.ReadAll(tr)
			sum := sha256.Sum256(b)
			got["file "+rel] = hex.EncodeToString(sum[:]) + meta
		}
	}
	if got, want := names[0], backup.ManifestFile; got != want {
		t.Fatalf("first tar entry = %q, want %q", got, want)
	}
	w := backuptest.State{}
	for k, v := range want {
		if k != "dir ." {
			w[k] = v
		}
	}
	backuptest.MustEqual(t, "tar contents", w, got)
	parsed, err := backup.ParseSums(sums)
	if err != nil {
		t.Fatalf("ParseSums: %v", err)
	}
	if got, want := parsed.ServiceChecksum("uploads"), m.Service("uploads").SHA256; got != want {
		t.Fatalf("tar checksum = %s, want %s", got, want)
	}
	if _, ok := parsed["uploads/odd/new\nline.txt"]; !ok {
		t.Fatalf("SHA256SUMS lacks the name with a newline")
	}
}

// TestContract runs the shared source suite (content only: the suite's copy step keeps no modes or links).
func TestContract(t *testing.T) {
	root := filepath.Join(t.TempDir(), "mount")
	src, err := files.New(root, exclude)
	if err != nil {
		t.Fatal(err)
	}
	backuptest.RoundTrip(t, backuptest.Case{
		Source: src,
		Fill: func(t testing.TB) {
			write(t, filepath.Join(root, "a/b.txt"), []byte("b"), 0o644)
			write(t, filepath.Join(root, "c.txt"), randomBytes(1, 100000), 0o644)
			write(t, filepath.Join(root, "x.tmp"), []byte("excluded"), 0o644)
			os.MkdirAll(filepath.Join(root, "empty"), 0o755)
		},
		Checksum: func(t testing.TB) backuptest.State {
			return withoutExcluded(state(t, root, true))
		},
		Write: func(t testing.TB, n int) {
			write(t, filepath.Join(root, fmt.Sprintf("w%d.txt", n)), []byte("w"), 0o644)
		},
		Damage: func(t testing.TB) {
			os.RemoveAll(filepath.Join(root, "a"))
			write(t, filepath.Join(root, "c.txt"), []byte("short"), 0o644)
			write(t, filepath.Join(root, "d/new.txt"), []byte("new"), 0o644)
		},
	})
}

// TestDamagedRepository corrupts (then removes) the repository's data blobs: the restore fails with a clear
// error, and the mount is untouched with no sibling left behind.
func TestDamagedRepository(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	mount := filepath.Join(base, "srv", "uploads")
	fill(t, mount, 1<<20)
	data := filepath.Join(base, "data")
	e := openEngine(t, data)
	spec := backup.ServiceSpec{Name: "uploads", Type: backup.TypeFiles, Path: mount, Exclude: exclude}
	m, err := e.Backup(ctx, backup.BackupRequest{Environment: "main", Kind: backup.KindManual, Live: true, Services: []backup.ServiceSpec{spec}}, nil)
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	write(t, filepath.Join(mount, "README.md"), []byte("live"), 0o644)
	live := state(t, mount, false)

	var packs []string
	filepath.Walk(filepath.Join(data, "repo"), func(p string, fi os.FileInfo, err error) error {
		rel, _ := filepath.Rel(filepath.Join(data, "repo"), p)
		if err == nil && !fi.IsDir() && strings.HasPrefix(rel, "p") {
			packs = append(packs, p)
		}
		return nil
	})
	if len(packs) == 0 {
		t.Fatalf("no pack blobs found")
	}
	for _, step := range []string{"corrupt", "remove"} {
		for _, p := range packs {
			if step == "corrupt" {
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				for i := len(b) / 3; i < len(b); i += 97 {
					b[i] ^= 0x5a
				}
				os.WriteFile(p, b, 0o600)
			} else {
				os.Remove(p)
			}
		}
		// a fresh connection: no cached contents to hide the damage
		e2 := openEngine(t, filepath.Join(base, "data2-"+step))
		e2.Repo.Close(ctx)
		r, err := backup.OpenRepository(ctx, backup.RepositoryOptions{
			Storage: backup.FileStorage(filepath.Join(data, "repo")), Password: "pw", ConfigDir: filepath.Join(base, "kopia-"+step),
		})
		if err != nil {
			t.Fatalf("%s: OpenRepository: %v", step, err)
		}
		e2 = &backup.Engine{Repo: r, Drivers: e.Drivers}
		if err := e2.VerifyBackup(ctx, m.ID, nil); !errors.Is(err, backup.ErrDamaged) {
			t.Fatalf("%s: VerifyBackup = %v, want ErrDamaged", step, err)
		}
		_, err = e2.Restore(ctx, backup.RestoreRequest{ID: m.ID, Services: []backup.ServiceSpec{spec}}, nil)
		r.Close(ctx)
		if !errors.Is(err, backup.ErrDamaged) {
			t.Fatalf("%s: Restore from a damaged repository = %v, want ErrDamaged", step, err)
		}
		t.Logf("%s: %v", step, err)
		backuptest.MustEqual(t, step+": mount after failed restore", live, state(t, mount, false))
		if left, _ := filepath.Glob(filepath.Join(filepath.Dir(mount), ".rewind-*")); len(left) != 0 {
			t.Fatalf("%s: siblings left: %v", step, left)
		}
	}
}

// TestIncremental backs up twice with a few changes between: the second backup reuses unchanged files through
// the repository's cache, and its checksums (verified by Restore for every file read) still match.
func TestIncremental(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	mount := filepath.Join(base, "m")
	fill(t, mount, 2<<20)
	e := openEngine(t, filepath.Join(base, "data"))
	spec := backup.ServiceSpec{Name: "m", Type: backup.TypeFiles, Path: mount, Exclude: exclude}
	req := backup.BackupRequest{Environment: "main", Kind: backup.KindManual, Services: []backup.ServiceSpec{spec}}
	first, err := e.Backup(ctx, req, nil)
	if err != nil {
		t.Fatalf("first Backup: %v", err)
	}
	write(t, filepath.Join(mount, "many/f003.dat"), []byte("changed"), 0o644)
	write(t, filepath.Join(mount, "fresh.txt"), []byte("fresh"), 0o644)
	want := withoutExcluded(state(t, mount, false))
	prog := &progress{}
	second, err := e.Backup(ctx, req, prog)
	if err != nil {
		t.Fatalf("second Backup: %v", err)
	}
	if err := e.VerifyBackup(ctx, second.ID, nil); err != nil {
		t.Fatalf("VerifyBackup of the incremental backup: %v", err)
	}
	if first.Service("m").SHA256 == second.Service("m").SHA256 {
		t.Fatalf("checksum did not change with the tree")
	}
	os.RemoveAll(filepath.Join(mount, "many"))
	if _, err := e.Restore(ctx, backup.RestoreRequest{ID: second.ID, Services: []backup.ServiceSpec{spec}}, nil); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	backuptest.MustEqual(t, "mount after restoring the second backup", want, withoutExcluded(state(t, mount, false)))
	if total, done := prog.total.Load(), prog.done.Load(); total == 0 || done < total/2 {
		t.Fatalf("progress %d of %d", done, total)
	}
}

type progress struct{ total, done atomic.Int64 }

func (p *progress) SetTotal(n int64) { p.total.Store(n) }
func (p *progress) Add(n int64)      { p.done.Add(n) }

// TestRestoreIntoNewMount restores into a mount that does not exist yet (a branch environment), then reverts.
func TestRestoreIntoNewMount(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	mount := filepath.Join(base, "main", "uploads")
	fill(t, mount, 1<<20)
	want := withoutExcluded(state(t, mount, false))
	delete(want, "dir .")
	e := openEngine(t, filepath.Join(base, "data"))
	m, err := e.Backup(ctx, backup.BackupRequest{Environment: "main", Kind: backup.KindManual, Live: true,
		Services: []backup.ServiceSpec{{Name: "uploads", Type: backup.TypeFiles, Path: mount, Exclude: exclude}}}, nil)
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	branch := filepath.Join(base, "branch", "uploads")
	spec := backup.ServiceSpec{Name: "uploads", Type: backup.TypeFiles, Path: branch, Exclude: exclude}
	res, err := e.Restore(ctx, backup.RestoreRequest{ID: m.ID, Services: []backup.ServiceSpec{spec}}, nil)
	if err != nil {
		t.Fatalf("Restore into a new mount: %v", err)
	}
	got := state(t, branch, false)
	delete(got, "dir .")
	backuptest.MustEqual(t, "new mount", want, got)
	if err := res.Replaced[0].Replaced.Revert(ctx); err != nil {
		t.Fatalf("Revert: %v", err)
	}
	if _, err := os.Lstat(branch); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("mount after Revert: %v, want it gone", err)
	}
	if err := res.Replaced[0].Replaced.Discard(ctx); err != nil {
		t.Fatalf("Discard: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(base, "branch", ".rewind-*")); len(left) != 0 {
		t.Fatalf("siblings left: %v", left)
	}
}

// TestRestoreKeepsOutsideSymlinks: links that are absolute or leave the mount are backed up and restored as
// they were (a link to shared configuration is part of the app's tree), and the restore never writes through
// one: the excluded entries Switch carries over are not moved into a directory a restored link points to.
func TestRestoreKeepsOutsideSymlinks(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	mount := filepath.Join(base, "m")
	outside := filepath.Join(base, "outside")
	write(t, filepath.Join(outside, "b/file"), []byte("outside"), 0o644)
	write(t, filepath.Join(mount, "keep/file"), []byte("x"), 0o644)
	links := map[string]string{"abs": outside, "up": "../outside", "mid": "keep/../../outside", "a": outside}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(mount, name)); err != nil {
			t.Fatal(err)
		}
	}
	e := openEngine(t, filepath.Join(base, "data"))
	spec := backup.ServiceSpec{Name: "m", Type: backup.TypeFiles, Path: mount, Exclude: exclude}
	m, err := e.Backup(ctx, backup.BackupRequest{Environment: "main", Kind: backup.KindManual, Live: true, Services: []backup.ServiceSpec{spec}}, nil)
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	want := state(t, mount, false)
	wantOutside := state(t, outside, false)

	// The live tree now has a real directory where the backup has the link "a", with an excluded cache below
	// it, in the place that the link's target also has a directory for.
	if err := os.Remove(filepath.Join(mount, "a")); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(mount, "a/b/cache/x"), []byte("excluded"), 0o644)
	if _, err := e.Restore(ctx, backup.RestoreRequest{ID: m.ID, Services: []backup.ServiceSpec{spec}}, nil); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	backuptest.MustEqual(t, "mount after restore", want, state(t, mount, false))
	for name, target := range links {
		if got, err := os.Readlink(filepath.Join(mount, name)); err != nil || got != target {
			t.Errorf("link %s = %q, %v; want %q", name, got, err, target)
		}
	}
	backuptest.MustEqual(t, "the links' target after restore", wantOutside, state(t, outside, false))
}

// TestContractMountPoint runs the shared suite on a mount restored as a mount point is (built inside the
// mount, swapped entry by entry), then checks that a full round trip keeps every mode and time.
func TestContractMountPoint(t *testing.T) {
	root := filepath.Join(t.TempDir(), "mount")
	src, err := files.New(root, exclude)
	if err != nil {
		t.Fatal(err)
	}
	files.ForceMountPoint(src)
	backuptest.RoundTrip(t, backuptest.Case{
		Source: src,
		Fill: func(t testing.TB) {
			write(t, filepath.Join(root, "a/b.txt"), []byte("b"), 0o644)
			write(t, filepath.Join(root, "c.txt"), randomBytes(1, 100000), 0o600)
			write(t, filepath.Join(root, "cache/x"), []byte("excluded"), 0o644)
			os.MkdirAll(filepath.Join(root, "empty"), 0o755)
		},
		Checksum: func(t testing.TB) backuptest.State {
			return withoutExcluded(state(t, root, true))
		},
		Write: func(t testing.TB, n int) {
			write(t, filepath.Join(root, fmt.Sprintf("w%d.txt", n)), []byte("w"), 0o644)
		},
		Damage: func(t testing.TB) {
			os.RemoveAll(filepath.Join(root, "a"))
			write(t, filepath.Join(root, "c.txt"), []byte("short"), 0o644)
			write(t, filepath.Join(root, "d/new.txt"), []byte("new"), 0o644)
		},
	})
	if _, err := os.Stat(filepath.Join(root, "cache/x")); err != nil {
		t.Fatalf("excluded entry not kept: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(root, ".rewind-*")); len(left) != 0 {
		t.Fatalf("scratch left inside the mount: %v", left)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(root), ".rewind-*")); len(left) != 0 {
		t.Fatalf("scratch left beside the mount: %v", left)
	}
}

// TestEngineRoundTripRealMountPoint restores into a real mount point (a tmpfs, when the test may mount one):
// the directory cannot be renamed, so the restore is built inside it and swapped entry by entry.
func TestEngineRoundTripRealMountPoint(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	mount := filepath.Join(base, "srv", "uploads")
	if err := os.MkdirAll(mount, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "rewind-test", mount).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mount).Run() })
	fill(t, mount, 1<<20)
	e := openEngine(t, filepath.Join(base, "data"))
	spec := backup.ServiceSpec{Name: "uploads", Type: backup.TypeFiles, Path: mount, Exclude: exclude}
	m, err := e.Backup(ctx, backup.BackupRequest{Environment: "main", Kind: backup.KindManual, Services: []backup.ServiceSpec{spec}}, nil)
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	want := withoutExcluded(state(t, mount, false))
	write(t, filepath.Join(mount, "café/日本語.txt"), []byte("changed"), 0o600)
	os.RemoveAll(filepath.Join(mount, "a/b"))
	damaged := withoutExcluded(state(t, mount, false))
	res, err := e.Restore(ctx, backup.RestoreRequest{ID: m.ID, Services: []backup.ServiceSpec{spec}}, nil)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	backuptest.MustEqual(t, "mount point after restore", want, withoutExcluded(state(t, mount, false)))
	if _, err := os.Stat(filepath.Join(mount, "a/cache/y")); err != nil {
		t.Fatalf("excluded entry not kept: %v", err)
	}
	if err := res.Replaced[0].Replaced.Revert(ctx); err != nil {
		t.Fatalf("Revert: %v", err)
	}
	backuptest.MustEqual(t, "mount point after revert", damaged, withoutExcluded(state(t, mount, false)))
	if err := res.Replaced[0].Replaced.Discard(ctx); err != nil {
		t.Fatalf("Discard: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(mount, ".rewind-*")); len(left) != 0 {
		t.Fatalf("scratch left inside the mount: %v", left)
	}
}

package files_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/backuptest"
)

// TestDiskFullDuringPrepare restores into a file system that has no room for the restored tree: the restore
// fails naming the service and the cause, and the live tree is untouched, with nothing left beside it.
func TestDiskFullDuringPrepare(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	small := filepath.Join(base, "small")
	if err := os.MkdirAll(small, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "rewind-full", small).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a size-limited tmpfs here (needs root): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", small).Run() })
	mount := filepath.Join(small, "uploads")
	fill(t, mount, 1500<<10)

	e := openEngine(t, filepath.Join(base, "data")) // the repository is on the roomy disk
	spec := backup.ServiceSpec{Name: "uploads", Type: backup.TypeFiles, Path: mount, Exclude: exclude}
	m, err := e.Backup(ctx, backup.BackupRequest{Environment: "main", Kind: backup.KindManual, Services: []backup.ServiceSpec{spec}}, nil)
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	// The app fills the disk after the backup: no room is left for a second copy of the tree.
	write(t, filepath.Join(mount, "large.bin"), randomBytes(7, 2200<<10), 0o644)
	live := state(t, mount, false)

	_, err = e.Restore(ctx, backup.RestoreRequest{ID: m.ID, Services: []backup.ServiceSpec{spec}}, nil)
	if err == nil {
		t.Fatal("Restore into a full file system succeeded")
	}
	var se *backup.ServiceError
	if !errors.As(err, &se) || se.Service != "uploads" || se.Op != "prepare" {
		t.Fatalf("Restore error = %v, want a prepare error of service uploads", err)
	}
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("Restore error = %v, want it to say the disk is full", err)
	}
	backuptest.MustEqual(t, "live tree after a failed prepare", live, state(t, mount, false))
	if left, _ := filepath.Glob(filepath.Join(small, ".rewind-*")); len(left) != 0 {
		t.Fatalf("scratch left beside the mount: %v", left)
	}
}

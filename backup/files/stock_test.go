package files_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/backuptest"
)

// TestStockKopiaRestore checks the promise that the stock kopia tool restores a backup without Rewind.
// It runs only when REWIND_KOPIA names a kopia binary.
func TestStockKopiaRestore(t *testing.T) {
	bin := os.Getenv("REWIND_KOPIA")
	if bin == "" {
		t.Skip("REWIND_KOPIA not set")
	}
	ctx := context.Background()
	base := t.TempDir()
	mount := filepath.Join(base, "m")
	fill(t, mount, 1<<20)
	data := filepath.Join(base, "data")
	e := openEngine(t, data)
	spec := backup.ServiceSpec{Name: "uploads", Type: backup.TypeFiles, Path: mount, Exclude: exclude}
	m, err := e.Backup(ctx, backup.BackupRequest{Environment: "main", Kind: backup.KindManual, Live: true, Services: []backup.ServiceSpec{spec}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "KOPIA_PASSWORD=pw", "KOPIA_CONFIG_PATH="+filepath.Join(base, "stock.config"),
		"KOPIA_CACHE_DIRECTORY="+filepath.Join(base, "stock-cache"), "KOPIA_CHECK_FOR_UPDATES=false")
	run := func(args ...string) string {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kopia %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("repository", "connect", "filesystem", "--path", filepath.Join(data, "repo"))
	list := run("snapshot", "list", "--all", "--tags", "rewind-id:"+m.ID, "--show-identical")
	t.Logf("%s", list)
	out := filepath.Join(base, "restored")
	run("snapshot", "restore", m.Snapshot, out)
	got := state(t, filepath.Join(out, "uploads"), false)
	want := withoutExcluded(state(t, mount, false))
	delete(got, "dir .")
	delete(want, "dir .")
	backuptest.MustEqual(t, "stock kopia restore", want, got)
	cmd := exec.Command("sha256sum", "--quiet", "-c", backup.SumsFile)
	cmd.Dir = out
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum -c: %v\n%s", err, b)
	}
}

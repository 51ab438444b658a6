package files_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/rewind/rewind/backup"
)

// TestBenchEngine is driven by bench/files.sh: it backs up REWIND_BENCH_TREE twice into a new repository under
// REWIND_BENCH_DIR and prints the timings. Skipped unless REWIND_BENCH_TREE is set; REWIND_BENCH_COMPRESSION
// names another kopia compressor for the files than the engine's default.
func TestBenchEngine(t *testing.T) {
	tree, dir := os.Getenv("REWIND_BENCH_TREE"), os.Getenv("REWIND_BENCH_DIR")
	if tree == "" || dir == "" {
		t.Skip("REWIND_BENCH_TREE and REWIND_BENCH_DIR not set")
	}
	ctx := context.Background()
	r, err := backup.OpenRepository(ctx, backup.RepositoryOptions{
		Storage: backup.FileStorage(filepath.Join(dir, "repo")), Password: "bench", ConfigDir: filepath.Join(dir, "kopia"),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	parallel, _ := strconv.Atoi(os.Getenv("REWIND_BENCH_PARALLEL"))
	e := openEngineWith(r, parallel)
	e.FilesCompression = os.Getenv("REWIND_BENCH_COMPRESSION")
	spec := backup.ServiceSpec{Name: "tree", Type: backup.TypeFiles, Path: tree}
	hold := func(context.Context) (func(), error) { return func() {}, nil }
	for _, run := range []string{"first", "second"} {
		t0 := time.Now()
		m, err := e.Backup(ctx, backup.BackupRequest{Environment: "bench", Kind: backup.KindManual, Services: []backup.ServiceSpec{spec}, Hold: hold}, nil)
		if err != nil {
			t.Fatalf("%s backup: %v", run, err)
		}
		fmt.Printf("rewind %s seconds=%.3f bytes=%d pause_ms=%.1f\n", run, time.Since(t0).Seconds(), m.Bytes, float64(m.Pause.Microseconds())/1000)
	}
}

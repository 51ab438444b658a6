package postgres

import (
	"context"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/backuptest"
)

// TestCompareWithPgDump times the source against plain pg_dump -Fc / pg_restore on the database named by
// REWIND_BENCH_PG_URL (a superuser URL; bench/pg.sh sets it up with pgbench data). Skipped without it.
func TestCompareWithPgDump(t *testing.T) {
	url := os.Getenv("REWIND_BENCH_PG_URL")
	if url == "" {
		t.Skip("REWIND_BENCH_PG_URL not set (see bench/pg.sh)")
	}
	ctx := context.Background()
	src, err := NewWithOptions(backup.ServiceSpec{Name: "db", URL: url}, Options{SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	pgDump, err := src.findTool("pg_dump", 0)
	if err != nil {
		t.Fatal(err)
	}
	pgRestore, _ := src.findTool("pg_restore", 0)
	work := t.TempDir()
	size := func(p string) int64 { st, _ := os.Stat(p); return st.Size() }

	// Plain tools: pg_dump -Fc (default compression) to a file, pg_restore --jobs into a new database.
	plainFile := filepath.Join(work, "plain.pgc")
	start := time.Now()
	if out, err := osexec.Command(pgDump, "-Fc", "-f", plainFile, "--dbname="+url).CombinedOutput(); err != nil {
		t.Fatalf("pg_dump: %v: %s", err, out)
	}
	plainDump := time.Since(start)
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	target := "bench_plain_restore"
	c.Exec(ctx, "DROP DATABASE IF EXISTS "+target)
	start = time.Now()
	if _, err := c.Exec(ctx, "CREATE DATABASE "+target); err != nil {
		t.Fatal(err)
	}
	if out, err := osexec.Command(pgRestore, "--jobs", fmt.Sprint(src.opts.Jobs), "--no-owner", "--dbname="+src.connURL(target, false), plainFile).CombinedOutput(); err != nil {
		t.Fatalf("pg_restore: %v: %s", err, out)
	}
	plainRestore := time.Since(start)
	c.Exec(ctx, "DROP DATABASE "+target)

	// Rewind: Pin + stream the folder to disk; Prepare (spooling, as from the repository) + Switch.
	start = time.Now()
	cp, err := src.Pin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pin := time.Since(start)
	dir := filepath.Join(work, "rewind")
	if err := backuptest.StreamErr(ctx, cp, backup.NopProgress, dir); err != nil {
		t.Fatal(err)
	}
	cp.Close()
	rewindDump := time.Since(start)
	start = time.Now()
	prep, err := src.Prepare(ctx, remoteDir{backuptest.Dir(t, dir)}, backup.NopProgress)
	if err != nil {
		t.Fatal(err)
	}
	prepare := time.Since(start)
	sw := time.Now()
	rep, err := prep.Switch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	switchTime := time.Since(sw)
	rewindRestore := time.Since(start)
	if err := rep.Revert(ctx); err != nil {
		t.Fatal(err)
	}

	fmt.Printf("plain pg_dump -Fc:      %8.2fs  %6d MB\n", plainDump.Seconds(), size(plainFile)>>20)
	fmt.Printf("rewind pin+stream:      %8.2fs  %6d MB (pin %s, uncompressed: the repository compresses)\n",
		rewindDump.Seconds(), size(filepath.Join(dir, DumpFile))>>20, pin.Round(time.Millisecond))
	fmt.Printf("plain pg_restore -j%d:    %8.2fs\n", src.opts.Jobs, plainRestore.Seconds())
	fmt.Printf("rewind prepare+switch:  %8.2fs (prepare incl. spool %.2fs, switch %s)\n",
		rewindRestore.Seconds(), prepare.Seconds(), switchTime.Round(time.Millisecond))
	fmt.Printf("ratio backup  rewind/plain: %.2f\n", rewindDump.Seconds()/plainDump.Seconds())
	fmt.Printf("ratio restore rewind/plain: %.2f\n", rewindRestore.Seconds()/plainRestore.Seconds())
}

package jobs_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/rewind/rewind/backup/testserver"
	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/jobs"
)

// benchSize reads a size of the preview benchmarks from the environment, with a default.
func benchSize(b *testing.B, name string, def int) int {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatalf("%s=%q: %v", name, v, err)
		}
		return n
	}
	return def
}

// BenchmarkPreview times a restore's preview (what runs behind the restore dialog, the plan API and
// `backup:restore --dry-run`) of a backup of a sizeable files tree and of a PostgreSQL table with many rows,
// each a little changed since the backup:
//
//	go test ./jobs/ -run '^$' -bench Preview -benchtime 5x
//	REWIND_BENCH_FILES=100000 REWIND_BENCH_ROWS=10000000 go test ./jobs/ -run '^$' -bench Preview -benchtime 3x
//
// The files preview reads the backup's tree listings in the repository and stats the live tree (its cost is
// the number of files and directories, not their bytes); the table's preview reads the rows recorded in
// rewind.json and counts the live table (a count(*), about a second per GB).
func BenchmarkPreview(b *testing.B) {
	nFiles := benchSize(b, "REWIND_BENCH_FILES", 20000)
	nRows := benchSize(b, "REWIND_BENCH_ROWS", 2000000)

	b.Run(fmt.Sprintf("files=%d", nFiles), func(b *testing.B) {
		w := newWorld(b)
		mount := filepath.Join(w.dir, "files", "uploads")
		block := make([]byte, 4096)
		for i := range nFiles {
			dir := filepath.Join(mount, fmt.Sprintf("d%03d", i%200), fmt.Sprintf("e%02d", i/200%10))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				b.Fatal(err)
			}
			block[0], block[1] = byte(i), byte(i>>8)
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%06d.bin", i)), block, 0o644); err != nil {
				b.Fatal(err)
			}
		}
		env := &db.Environment{Name: "files", Type: db.EnvProduction, Status: db.StatusActive, Services: []db.Service{
			{Name: "uploads", Type: db.ServiceFiles, Path: mount},
		}}
		if err := w.catalog.CreateEnvironment(context.Background(), env); err != nil {
			b.Fatal(err)
		}
		bk := backupEnv(b, w, "files")
		writeFile(b, filepath.Join(mount, "d000", "new.txt"), "added since")
		later := time.Now().Add(time.Hour)
		if err := os.Chtimes(filepath.Join(mount, "d001", "e00", "f000001.bin"), later, later); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			p := previewOf(b, w, jobs.RestoreRequest{BackupID: bk.ID})
			f := p.Services[0].Files
			if f == nil || f.Removed.Count != 1 || f.Changed.Count != 1 || f.Same != nFiles-1 {
				b.Fatalf("preview: %s %+v", p.Services[0].Unavailable, f)
			}
		}
		b.ReportMetric(float64(nFiles), "files")
	})

	b.Run(fmt.Sprintf("rows=%d", nRows), func(b *testing.B) {
		w := newWorld(b)
		pg := testserver.StartPostgres(b)
		name := pg.CreateDatabase(b, "")
		pg.Exec(b, name, fmt.Sprintf(`CREATE TABLE events AS SELECT i AS id, md5(i::text) AS body, now() AS at
			FROM generate_series(1, %d) i; CREATE TABLE small (id int); INSERT INTO small VALUES (1)`, nRows))
		env := &db.Environment{Name: "rows", Type: db.EnvProduction, Status: db.StatusActive, Services: []db.Service{
			{Name: "db", Type: db.ServicePostgreSQL, URL: pg.URL(name)},
		}}
		if err := w.catalog.CreateEnvironment(context.Background(), env); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		bk := backupEnv(b, w, "rows")
		b.Logf("backup of %d rows: %s", nRows, time.Since(start).Round(time.Millisecond))
		pg.Exec(b, name, `INSERT INTO events VALUES (0, 'new', now()); DELETE FROM small`)
		for b.Loop() {
			p := previewOf(b, w, jobs.RestoreRequest{BackupID: bk.ID})
			tables := p.Services[0].Tables
			if len(tables) != 2 || tables[0].Now != int64(nRows)+1 || tables[0].Backup != int64(nRows) || tables[0].NowEstimated {
				b.Fatalf("preview: %s %+v", p.Services[0].Unavailable, tables)
			}
		}
		b.ReportMetric(float64(nRows), "rows")
	})
}

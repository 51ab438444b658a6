// Command enginebench drives Rewind's engine for the benchmark scripts in bench/ (it is not part of the
// server). Each mode works in a fresh local repository under -dir:
//
//	enginebench db -url postgres://postgres@127.0.0.1:PORT/bench -dir DIR      (bench/db.sh)
//	enginebench files -tree TREE -dir DIR                                     (bench/mem.sh)
//	enginebench pg -url postgres://postgres@127.0.0.1:PORT/bench -dir DIR      (bench/mem.sh with a pgbench scale)
//	enginebench pitr -url postgres://postgres@127.0.0.1:PORT/bench -dir DIR    (bench/pitr.sh)
//
// db times plain `pg_dump -Fc` against Engine.Backup, plain `pg_restore --jobs N` against Engine.Restore,
// then appends 1% more rows to pgbench_accounts and measures how much a second backup adds to the repository.
// files backs up one tree once, pg one database once (run them under /usr/bin/time -v for the peak memory).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	kfs "github.com/kopia/kopia/fs"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/files"
	"github.com/rewind/rewind/backup/postgres"
)

func main() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(backup.MemoryLimit) // the rewind binary's, so the peak memory measured here is the server's
	}
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: enginebench db|files|files-restore|pg|pitr [flags]")
		os.Exit(2)
	}
	var err error
	ctx := context.Background()
	switch os.Args[1] {
	case "db":
		err = runDB(ctx, os.Args[2:])
	case "files":
		err = runFiles(ctx, os.Args[2:])
	case "pg":
		err = runPG(ctx, os.Args[2:])
	case "files-restore":
		err = runFilesRestore(ctx, os.Args[2:])
	case "pitr":
		err = runPITR(ctx, os.Args[2:])
	default:
		err = fmt.Errorf("unknown mode %q (db, files, files-restore, pg or pitr)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "enginebench:", err)
		os.Exit(1)
	}
}

func openRepo(ctx context.Context, dir string) (*backup.Repository, error) {
	return backup.OpenRepository(ctx, backup.RepositoryOptions{
		Storage:   backup.FileStorage(filepath.Join(dir, "repo")),
		Password:  "bench",
		ConfigDir: filepath.Join(dir, "kopia"),
	})
}

// dirSize is the on-disk size of the files under dir (like du -sb).
func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	return n, err
}

func timed(what string, fn func() error) (time.Duration, error) {
	t0 := time.Now()
	if err := fn(); err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	d := time.Since(t0)
	fmt.Printf("  %-40s %8.2fs\n", what, d.Seconds())
	return d, nil
}

// startProfile starts a CPU profile into file and returns the function that ends it.
func startProfile(file string) (func(), error) {
	f, err := os.Create(file)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// watchPeakHeap writes a heap profile into file each time the heap in use after a collection reaches a new
// high (checked every 100 ms), so the file ends up holding the profile nearest the peak; the returned function
// stops it.
func watchPeakHeap(file string) func() {
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		var peak uint64
		var lastGC uint32
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.NumGC == lastGC || ms.HeapAlloc <= peak {
				continue
			}
			lastGC, peak = ms.NumGC, ms.HeapAlloc
			if f, err := os.Create(file); err == nil {
				_ = pprof.Lookup("heap").WriteTo(f, 0)
				f.Close()
			}
		}
	}()
	return func() { close(stop); <-done }
}

// best is the shorter of two durations, 0 counting as none yet.
func best(a, b time.Duration) time.Duration {
	if a == 0 || b < a {
		return b
	}
	return a
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", filepath.Base(name), err, out)
	}
	return nil
}

func runDB(ctx context.Context, args []string) error {
	fl := flag.NewFlagSet("db", flag.ExitOnError)
	url := fl.String("url", "", "superuser URL of the pgbench database")
	dir := fl.String("dir", "", "work directory (repository, dumps)")
	bin := fl.String("bin", "/usr/lib/postgresql/15/bin", "directory of pg_dump and pg_restore")
	spoolDir := fl.String("spool-dir", "", "the postgres source's SpoolDir (default: the system's temporary directory)")
	rounds := fl.Int("rounds", 3, "rounds of backups and of restores (plain and Rewind alternate; the best of each counts)")
	cpuProfile := fl.String("restore-cpuprofile", "", "write a CPU profile of the first Engine.Restore to this file")
	backupProfile := fl.String("backup-cpuprofile", "", "write a CPU profile of the first Engine.Backup to this file")
	fl.Parse(args) //nolint:errcheck
	if *url == "" || *dir == "" {
		return errors.New("-url and -dir are required")
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	jobs := min(4, runtime.NumCPU()) // postgres.Options.Jobs' default, which the engine's source uses
	// Creating and dropping databases goes through the maintenance database, so nothing of ours stays connected
	// to the database the engine's restore swaps.
	admin, err := pgx.Connect(ctx, strings.Replace(*url, "/bench?", "/postgres?", 1))
	if err != nil {
		return err
	}
	defer admin.Close(ctx)
	plainURL := func(db string) string { // same server, database db
		c := admin.Config()
		return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", c.User, c.Host, c.Port, db)
	}

	spec := backup.ServiceSpec{Name: "db", Type: backup.TypePostgreSQL, URL: *url}
	steps := &stepTimes{}
	drivers := map[string]backup.Driver{
		backup.TypePostgreSQL: func(spec backup.ServiceSpec) (backup.Source, error) {
			src, err := postgres.NewWithOptions(spec, postgres.Options{ToolDirs: []string{*bin}, SpoolDir: *spoolDir})
			return timedSource{Source: src, t: steps}, err
		},
	}
	// settle flushes what the previous step left dirty, so each timed step starts from the same state.
	settle := func() error {
		syscall.Sync()
		_, err := admin.Exec(ctx, "CHECKPOINT")
		return err
	}

	// Each backup round goes into a fresh repository (a first backup); the last one is kept for the rest.
	fmt.Printf("backup (%d rounds, alternating, best of each kept)\n", *rounds)
	plainFile := filepath.Join(*dir, "plain.pgc")
	var (
		dumpT, backupT    time.Duration
		r                 *backup.Repository
		e                 *backup.Engine
		first             *backup.Manifest
		repoDir           string
		empty, afterFirst int64
	)
	for round := 1; round <= *rounds; round++ {
		if err := settle(); err != nil {
			return err
		}
		d, err := timed("plain pg_dump -Fc", func() error {
			return run(filepath.Join(*bin, "pg_dump"), "-Fc", "-f", plainFile, "--dbname="+*url)
		})
		if err != nil {
			return err
		}
		dumpT = best(dumpT, d)
		if r != nil {
			r.Close(ctx) //nolint:errcheck
		}
		rdir := filepath.Join(*dir, fmt.Sprint("round", round))
		if r, err = openRepo(ctx, rdir); err != nil {
			return err
		}
		e = &backup.Engine{Repo: r, Drivers: drivers}
		repoDir = filepath.Join(rdir, "repo")
		if empty, err = dirSize(repoDir); err != nil {
			return err
		}
		if err := settle(); err != nil {
			return err
		}
		d, err = timed("rewind Engine.Backup (new repository)", func() error {
			if *backupProfile != "" && round == 1 {
				stop, err := startProfile(*backupProfile)
				if err != nil {
					return err
				}
				defer stop()
			}
			first, err = e.Backup(ctx, backup.BackupRequest{Environment: "bench", Kind: backup.KindManual, Services: []backup.ServiceSpec{spec}}, nil)
			return err
		})
		if err != nil {
			return err
		}
		backupT = best(backupT, d)
		if afterFirst, err = dirSize(repoDir); err != nil {
			return err
		}
	}
	defer r.Close(ctx)
	plainSize, _ := os.Stat(plainFile)
	firstStored := afterFirst - empty

	// Restores are long and the machine is shared: alternate plain and Rewind and keep each one's best.
	fmt.Printf("restore (pg_restore --jobs %d; %d rounds, alternating, best of each kept)\n", jobs, *rounds)
	const plainDB = "bench_plain_restore"
	var restoreT, rwRestoreT time.Duration
	for round := 1; round <= *rounds; round++ {
		admin.Exec(ctx, "DROP DATABASE IF EXISTS "+plainDB) //nolint:errcheck
		if err := settle(); err != nil {
			return err
		}
		d, err := timed(fmt.Sprintf("plain createdb + pg_restore -j%d", jobs), func() error {
			if _, err := admin.Exec(ctx, "CREATE DATABASE "+plainDB); err != nil {
				return err
			}
			return run(filepath.Join(*bin, "pg_restore"), "--jobs", fmt.Sprint(jobs), "--no-owner", "--exit-on-error",
				"--dbname="+plainURL(plainDB), plainFile)
		})
		if err != nil {
			return err
		}
		restoreT = best(restoreT, d)
		if _, err := admin.Exec(ctx, "DROP DATABASE "+plainDB); err != nil {
			return err
		}
		if err := settle(); err != nil {
			return err
		}
		var res *backup.RestoreResult
		sp := &spoolTimer{start: time.Now()}
		d, err = timed("rewind Engine.Restore (prepare + switch)", func() error {
			if *cpuProfile != "" && round == 1 {
				stop, err := startProfile(*cpuProfile)
				if err != nil {
					return err
				}
				defer stop()
			}
			res, err = e.Restore(ctx, backup.RestoreRequest{ID: first.ID, Services: []backup.ServiceSpec{spec}}, sp)
			return err
		})
		if err != nil {
			return err
		}
		fmt.Printf("    (before Prepare %.2fs; Prepare %.2fs, of which reading the backup and loading its tables %.2fs; Switch %.2fs)\n",
			steps.prepareStart.Sub(sp.start).Seconds(), steps.prepare.Seconds(), sp.last.Sub(steps.prepareStart).Seconds(), steps.switched.Seconds())
		rwRestoreT = best(rwRestoreT, d)
		for _, rs := range res.Replaced {
			if err := rs.Replaced.Discard(ctx); err != nil {
				return err
			}
		}
	}

	fmt.Println("append 1% to pgbench_accounts, second backup into the last round's repository")
	conn, err := pgx.Connect(ctx, *url)
	if err != nil {
		return err
	}
	var rows, maxID int64
	if err := conn.QueryRow(ctx, "SELECT count(*), max(aid) FROM pgbench_accounts").Scan(&rows, &maxID); err != nil {
		return err
	}
	tag, err := conn.Exec(ctx, `INSERT INTO pgbench_accounts (aid, bid, abalance, filler)
		SELECT aid + $1, bid, 0, filler FROM pgbench_accounts WHERE aid <= $2`, maxID, rows/100)
	if err != nil {
		return err
	}
	fmt.Printf("  inserted %d rows (had %d)\n", tag.RowsAffected(), rows)
	conn.Close(ctx)
	_, err = timed("rewind Engine.Backup (second)", func() error {
		_, err := e.Backup(ctx, backup.BackupRequest{Environment: "bench", Kind: backup.KindManual, Services: []backup.ServiceSpec{spec}}, nil)
		return err
	})
	if err != nil {
		return err
	}
	afterSecond, err := dirSize(repoDir)
	if err != nil {
		return err
	}
	added := afterSecond - afterFirst

	mb := func(n int64) float64 { return float64(n) / (1 << 20) }
	fmt.Println()
	fmt.Printf("%-44s %10s %10s %8s %8s\n", "", "rewind", "plain", "ratio", "target")
	fmt.Printf("%-44s %9.2fs %9.2fs %8.2f %8s\n", "backup vs pg_dump -Fc", backupT.Seconds(), dumpT.Seconds(), backupT.Seconds()/dumpT.Seconds(), "≤ 1.15")
	fmt.Printf("%-44s %9.2fs %9.2fs %8.2f %8s\n", fmt.Sprintf("restore vs pg_restore -j%d", jobs), rwRestoreT.Seconds(), restoreT.Seconds(), rwRestoreT.Seconds()/restoreT.Seconds(), "≤ 1.15")
	fmt.Printf("%-44s %9.1fM %9.1fM %8.2f\n", "first backup stored vs pg_dump -Fc file", mb(firstStored), mb(plainSize.Size()), float64(firstStored)/float64(plainSize.Size()))
	fmt.Printf("%-44s %9.0fK %10s %7.2f%% %8s\n", "second backup (+1% rows) adds to repository", float64(added)/1024, "", 100*float64(added)/float64(firstStored), "≤ 5%")
	fmt.Printf("(times: best of %d rounds; sizes: on-disk bytes of the repository directory; the dump is %.1fM uncompressed;\n", *rounds, mb(first.Bytes))
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf(" load average at the end: %s; other work on the machine makes single rounds vary a lot)\n", strings.Join(strings.Fields(string(load))[:3], " "))
	return nil
}

// timedSource times a source's Prepare and Switch.
type timedSource struct {
	backup.Source
	t *stepTimes
}

type stepTimes struct {
	prepareStart      time.Time
	prepare, switched time.Duration
}

func (s timedSource) Prepare(ctx context.Context, dir kfs.Directory, p backup.Progress) (backup.Prepared, error) {
	s.t.prepareStart = time.Now()
	prep, err := s.Source.Prepare(ctx, dir, p)
	s.t.prepare = time.Since(s.t.prepareStart)
	if err != nil {
		return nil, err
	}
	return timedPrepared{Prepared: prep, t: s.t}, nil
}

type timedPrepared struct {
	backup.Prepared
	t *stepTimes
}

func (p timedPrepared) Switch(ctx context.Context) (backup.Replaced, error) {
	t0 := time.Now()
	r, err := p.Prepared.Switch(ctx)
	p.t.switched = time.Since(t0)
	return r, err
}

// spoolTimer is the restore's Progress: the postgres source reports the bytes it reads from the repository as it
// loads them, so the last report marks the end of the data load (what follows is indexes and constraints).
type spoolTimer struct {
	start time.Time
	mu    sync.Mutex
	last  time.Time
}

func (s *spoolTimer) SetTotal(int64) {}

func (s *spoolTimer) Add(int64) {
	s.mu.Lock()
	s.last = time.Now()
	s.mu.Unlock()
}

func (s *spoolTimer) spooled() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last.IsZero() {
		return 0
	}
	return s.last.Sub(s.start)
}

func runFiles(ctx context.Context, args []string) error {
	fl := flag.NewFlagSet("files", flag.ExitOnError)
	tree := fl.String("tree", "", "directory tree to back up")
	dir := fl.String("dir", "", "work directory (repository)")
	parallel := fl.Int("parallel", 0, "Engine.Parallel (files read and uploaded at once; 0 is two per CPU)")
	heapProfile := fl.String("heapprofile", "", "write the heap profile nearest the peak of the heap in use to this file")
	fl.Parse(args) //nolint:errcheck
	if *tree == "" || *dir == "" {
		return errors.New("-tree and -dir are required")
	}
	if *heapProfile != "" {
		defer watchPeakHeap(*heapProfile)()
	}
	r, err := openRepo(ctx, *dir)
	if err != nil {
		return err
	}
	defer r.Close(ctx)
	e := &backup.Engine{Repo: r, Parallel: *parallel, Drivers: map[string]backup.Driver{backup.TypeFiles: files.Driver}}
	spec := backup.ServiceSpec{Name: "tree", Type: backup.TypeFiles, Path: *tree}
	t0 := time.Now()
	m, err := e.Backup(ctx, backup.BackupRequest{Environment: "bench", Kind: backup.KindManual, Services: []backup.ServiceSpec{spec}}, nil)
	if err != nil {
		return err
	}
	fmt.Printf("rewind files backup: %.1f MB in %.2fs (parallel %d, GOMAXPROCS %d)\n", float64(m.Bytes)/(1<<20),
		time.Since(t0).Seconds(), *parallel, runtime.GOMAXPROCS(0))
	return nil
}

// runFilesRestore restores the newest backup a files run made in -dir into -target (created empty), through
// the engine's prepare and switch, as a restore of a files service does.
func runFilesRestore(ctx context.Context, args []string) error {
	fl := flag.NewFlagSet("files-restore", flag.ExitOnError)
	dir := fl.String("dir", "", "work directory of a files run (repository)")
	target := fl.String("target", "", "directory to restore the tree into")
	fl.Parse(args) //nolint:errcheck
	if *dir == "" || *target == "" {
		return errors.New("-dir and -target are required")
	}
	if err := os.MkdirAll(*target, 0o755); err != nil {
		return err
	}
	r, err := openRepo(ctx, *dir)
	if err != nil {
		return err
	}
	defer r.Close(ctx)
	e := &backup.Engine{Repo: r, Drivers: map[string]backup.Driver{backup.TypeFiles: files.Driver}}
	mans, err := e.ListBackups(ctx, "bench")
	if err != nil {
		return err
	}
	if len(mans) == 0 {
		return fmt.Errorf("no backup in %s: run enginebench files first", *dir)
	}
	m := mans[0]
	for _, c := range mans {
		if c.FinishedAt.After(m.FinishedAt) {
			m = c
		}
	}
	t0 := time.Now()
	res, err := e.Restore(ctx, backup.RestoreRequest{ID: m.ID,
		Services: []backup.ServiceSpec{{Name: "tree", Type: backup.TypeFiles, Path: *target}}}, nil)
	if err != nil {
		return err
	}
	for _, rs := range res.Replaced {
		if err := rs.Replaced.Discard(ctx); err != nil {
			return err
		}
	}
	fmt.Printf("rewind files restore: %.1f MB in %.2fs (GOMAXPROCS %d)\n", float64(m.Bytes)/(1<<20),
		time.Since(t0).Seconds(), runtime.GOMAXPROCS(0))
	return nil
}

func runPG(ctx context.Context, args []string) error {
	fl := flag.NewFlagSet("pg", flag.ExitOnError)
	url := fl.String("url", "", "URL of the database")
	dir := fl.String("dir", "", "work directory (repository)")
	bin := fl.String("bin", "/usr/lib/postgresql/15/bin", "directory of pg_dump")
	fl.Parse(args) //nolint:errcheck
	if *url == "" || *dir == "" {
		return errors.New("-url and -dir are required")
	}
	r, err := openRepo(ctx, *dir)
	if err != nil {
		return err
	}
	defer r.Close(ctx)
	e := &backup.Engine{Repo: r, Drivers: map[string]backup.Driver{
		backup.TypePostgreSQL: func(spec backup.ServiceSpec) (backup.Source, error) {
			return postgres.NewWithOptions(spec, postgres.Options{ToolDirs: []string{*bin}})
		},
	}}
	spec := backup.ServiceSpec{Name: "db", Type: backup.TypePostgreSQL, URL: *url}
	t0 := time.Now()
	m, err := e.Backup(ctx, backup.BackupRequest{Environment: "bench", Kind: backup.KindManual, Services: []backup.ServiceSpec{spec}}, nil)
	if err != nil {
		return err
	}
	fmt.Printf("rewind postgresql backup: %.1f MB dump in %.2fs\n", float64(m.Bytes)/(1<<20), time.Since(t0).Seconds())
	return nil
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/pitr"
	"github.com/rewind/rewind/backup/pitr/pgwal"
	"github.com/rewind/rewind/backup/pitr/pitrtest"
)

// runPITR follows a PostgreSQL database with the point-in-time follower while pgbench loads it, measures the
// achieved recovery point (a probe commit every 500 ms until the repository holds WAL with a commit at or after
// it), then rebuilds the database at the end of the load and times it (bench/pitr.sh compares that with a plain
// restore of a pg_basebackup).
func runPITR(ctx context.Context, args []string) error {
	fl := flag.NewFlagSet("pitr", flag.ExitOnError)
	url := fl.String("url", "", "superuser URL of the pgbench database")
	dir := fl.String("dir", "", "work directory (repository, spool)")
	bin := fl.String("bin", "/usr/lib/postgresql/15/bin", "directory of pgbench")
	seconds := fl.Int("seconds", 30, "how long pgbench loads the database")
	every := fl.Duration("ship-every", time.Second, "how often the growing WAL segment is shipped")
	fl.Parse(args) //nolint:errcheck
	if *url == "" || *dir == "" {
		return errors.New("-url and -dir are required")
	}
	r, err := openRepo(ctx, *dir)
	if err != nil {
		return err
	}
	defer r.Close(ctx)
	const env, service = "bench", "db"
	k := pgwal.Kind{}
	rec := pitrtest.NewShipWatch()
	fctx, stopFollowing := context.WithCancel(ctx)
	followed := make(chan error, 1)
	spec := pitr.FollowSpec{Environment: env, Service: backup.ServiceSpec{Name: service, Type: backup.TypePostgreSQL, URL: *url},
		Repo: r, Spool: filepath.Join(*dir, "spool"), Record: rec, ShipEvery: *every}
	t0 := time.Now()
	go func() { followed <- k.Follow(fctx, spec) }()
	defer func() {
		stopFollowing()
		<-followed
		_ = k.Release(context.Background(), env, spec.Service)
	}()
	for {
		if n, _ := rec.Counts(); n > 0 {
			break
		}
		select {
		case err := <-followed:
			return fmt.Errorf("follower: %w", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	fmt.Printf("base backup shipped into the repository in %.1fs\n", time.Since(t0).Seconds())

	probe, err := pgx.Connect(ctx, *url)
	if err != nil {
		return err
	}
	defer probe.Close(ctx)
	if _, err := probe.Exec(ctx, "CREATE TABLE IF NOT EXISTS rpo_probe (n int PRIMARY KEY)"); err != nil {
		return err
	}
	load := exec.CommandContext(ctx, filepath.Join(*bin, "pgbench"), "-n", "-c", "4", "-j", "2", "-T", fmt.Sprint(*seconds), *url)
	out, err := os.CreateTemp(*dir, "pgbench-*.log")
	if err != nil {
		return err
	}
	defer out.Close()
	load.Stdout, load.Stderr = out, out
	if err := load.Start(); err != nil {
		return fmt.Errorf("start pgbench: %w", err)
	}
	loaded := make(chan error, 1)
	go func() { loaded <- load.Wait() }()
	var lags []time.Duration
probing:
	for n := 1; ; n++ {
		select {
		case err := <-loaded:
			if err != nil {
				return fmt.Errorf("pgbench: %w (see %s)", err, out.Name())
			}
			break probing
		case <-time.After(500 * time.Millisecond):
		}
		before := time.Now()
		if _, err := probe.Exec(ctx, "INSERT INTO rpo_probe VALUES ($1)", n); err != nil {
			return err
		}
		committed := time.Now()
		deadline := time.After(5 * time.Minute)
		for !rec.Shipped(before) {
			select {
			case <-rec.Wake:
			case <-deadline:
				return fmt.Errorf("probe %d not shipped after 5 minutes", n)
			case err := <-followed:
				return fmt.Errorf("follower: %w", err)
			}
		}
		lags = append(lags, time.Since(committed))
	}
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	if len(lags) == 0 {
		return errors.New("no probe ran: give pgbench more -seconds")
	}
	var sum time.Duration
	for _, l := range lags {
		sum += l
	}
	avg, p99, worst := sum/time.Duration(len(lags)), lags[len(lags)*99/100], lags[len(lags)-1]
	fmt.Printf("achieved RPO under pgbench -c 4 (%d probes, shipping every %s): avg %s, p99 %s, max %s\n",
		len(lags), *every, avg.Round(time.Millisecond), p99.Round(time.Millisecond), worst.Round(time.Millisecond))
	for _, p := range []struct {
		name string
		rpo  time.Duration
	}{{"LiteFS Cloud's 5 min", 5 * time.Minute}, {"6 h", 6 * time.Hour}, {"a daily backup's 24 h", 24 * time.Hour}} {
		fmt.Printf("  max as a share of %-24s %.6f\n", p.name+":", worst.Seconds()/p.rpo.Seconds())
	}

	// Rebuild at the end of the load: the base plus every WAL segment of it.
	at := time.Now()
	for n := -1; ; n-- { // commits after T, until the stream covers T
		if _, covered := rec.Counts(); covered.After(at) {
			break
		}
		if _, err := probe.Exec(ctx, "INSERT INTO rpo_probe VALUES ($1)", n); err != nil {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Plan and rebuild as jobs does: again when the follower replaced the growing segment meanwhile.
	var (
		choice *pitr.Choice
		rb     pitr.Rebuilt
		t1     time.Time
	)
	for attempt := 1; ; attempt++ {
		bases, segs, covered := rec.State()
		st := pitr.Stream{Bases: bases, Segments: segs, CoveredUntil: covered, Next: k.NextSegment}
		if choice, err = st.Choose(time.Time{}, at); err != nil {
			return err
		}
		scratchDir, err := os.MkdirTemp("", "rewind-pitr-bench-") // the scratch server's user reaches it, as in jobs
		if err != nil {
			return err
		}
		if err = choice.Exact(ctx, r); err == nil {
			t1 = time.Now()
			rb, err = k.Rebuild(ctx, pitr.RebuildSpec{Repo: r, Service: spec.Service, Choice: choice, Target: at,
				Dir: scratchDir})
		}
		if err == nil {
			break
		}
		os.RemoveAll(scratchDir) //nolint:errcheck
		if !errors.Is(err, pitr.ErrReplaced) || attempt == 3 {
			return err
		}
		fmt.Printf("(attempt %d: %v; planning again)\n", attempt, err)
	}
	took := time.Since(t1)
	rb.Close() //nolint:errcheck
	replayed := map[string]bool{}
	for _, id := range choice.Segments {
		replayed[id] = true
	}
	var walBytes int64
	for _, s := range rec.Segments() {
		if replayed[s.Snapshot] {
			walBytes += s.Bytes
		}
	}
	fmt.Printf("restore to T (rebuild: the base of %.0f MB and %d WAL segments of %.0f MB replayed): %.2fs\n",
		float64(choice.Base.Bytes)/(1<<20), len(choice.Segments), float64(walBytes)/(1<<20), took.Seconds())
	fmt.Printf("REBUILD_SECONDS=%.3f\n", took.Seconds())
	return nil
}

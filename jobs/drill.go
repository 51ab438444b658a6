package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/hooks"
	"github.com/rewind/rewind/backup/postgres"
	"github.com/rewind/rewind/backup/scratch"
	"github.com/rewind/rewind/db"
)

// TypeDrill is the activity type of a restore drill. A drill that fails is a failed activity of this type: the
// hook for notifications.
const TypeDrill = "backup.drill"

// smokePhase names the smoke command in its log and errors ("smoke hook failed with exit code 1").
const smokePhase = "smoke"

// DrillRequest asks for a restore drill of an environment's latest complete backup.
type DrillRequest struct {
	Environment string
	Actor       string
	// Latest drills the latest complete backup when the drill runs, not when it is queued: the scheduler queues
	// drills behind the slot's automated backups, which they then restore.
	Latest bool
}

// StartDrill queues a restore drill of the environment's latest complete backup and returns its activity. The
// drill restores into throwaway private servers and directories: the environment itself is never touched.
func (o *Operations) StartDrill(ctx context.Context, req DrillRequest) (*db.Activity, error) {
	env, err := o.Catalog.FindEnvironmentByName(ctx, req.Environment)
	if err != nil {
		return nil, err
	}
	backupID, summary := "", "Restore drill of the latest backup of "+env.Name
	if !req.Latest {
		b, err := o.latestRestorable(ctx, env.Name)
		if err != nil {
			return nil, err
		}
		if b == nil {
			return nil, fmt.Errorf("environment %q has no complete backup to drill: take a backup first: %w", env.Name,
				ErrRefused)
		}
		backupID, summary = b.ID, drillSummary(b)
	}
	// A random scratch name: two installations on one machine never share a drill directory, so neither sweeps
	// the other's.
	params, _ := json.Marshal(drillParams{Scratch: backup.NewID()})
	a := &db.Activity{Type: TypeDrill, Environment: env.Name, Actor: req.Actor, State: db.ActivityQueued,
		BackupID: backupID, Params: string(params), Summary: summary}
	if err := o.Catalog.CreateActivity(ctx, a); err != nil {
		return nil, err
	}
	if err := o.Runner.Enqueue(a.ID); err != nil {
		return nil, err
	}
	return a, nil
}

func drillSummary(b *db.Backup) string {
	return fmt.Sprintf("Restore drill of backup %s of %s", b.ID, b.Environment)
}

// latestRestorable returns the environment's newest complete backup of the whole environment (not the
// pre-restore backup of a partial restore), nil when it has none. It is brief (see
// db.BackupFilter.Brief): its services are not read.
func (o *Operations) latestRestorable(ctx context.Context, env string) (*db.Backup, error) {
	complete := db.BackupComplete
	backups, _, err := o.Catalog.FindBackups(ctx, db.BackupFilter{Environment: &env, Status: &complete, Limit: 1,
		CountUpTo: 1, Brief: true, Whole: true}) // the newest only: no count of them all
	if err != nil || len(backups) == 0 {
		return nil, err
	}
	return backups[0], nil
}

// drillParams are the params of a drill activity.
type drillParams struct {
	Scratch string `json:"scratch"` // random; names the drill's scratch state
}

// drillScratch names the scratch state of drill activity a: its directory and what the engine makes on the
// scratch servers.
func drillScratch(a *db.Activity) string {
	var p drillParams
	if json.Unmarshal([]byte(a.Params), &p) != nil || p.Scratch == "" {
		return fmt.Sprintf("drill activity %d", a.ID)
	}
	return "drill " + p.Scratch
}

// drillDir is the directory of drill activity a's scratch servers and files, named after its scratch id so
// that a restart finds what a crash left (Interrupted).
func (o *Operations) drillDir(a *db.Activity) string {
	base := o.ScratchDir
	if base == "" {
		base = os.TempDir()
	}
	id := backup.ScratchID(backup.WithScratch(context.Background(), drillScratch(a)))
	return filepath.Join(base, "rewind-drill-"+id)
}

// drillJob restores a backup into scratch targets, verifies every file, runs the smoke command and tears it all
// down; the drill's row records the result.
type drillJob struct {
	o        *Operations
	activity *db.Activity
}

func (j *drillJob) Run(ctx context.Context, p *Progress) error {
	o := j.o
	row := &db.Drill{Environment: j.activity.Environment, BackupID: j.activity.BackupID, ActivityID: j.activity.ID}
	b, err := j.backup(ctx)
	if b != nil {
		row.BackupID, row.SizeBytes = b.ID, b.SizeBytes
	}
	// The row is recorded even when there is nothing to drill, so the Backups tab and the schedule see the failure.
	if cerr := o.Catalog.CreateDrill(ctx, row); cerr != nil {
		return errors.Join(err, cerr)
	}
	var res drillResult
	if err == nil {
		res, err = j.drill(ctx, p, b)
	}
	msg := ""
	if err != nil {
		msg = err.Error()
		if errors.Is(err, context.Canceled) {
			msg = "cancelled"
		}
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, ferr := o.Catalog.FinishDrill(fctx, row.ID, res.restore, res.files, msg); ferr != nil {
		p.Logf("warning: could not record the drill's result: %v", ferr)
	}
	return err
}

// backup returns the backup the drill restores: the activity's, or for DrillRequest.Latest the latest complete
// one now, which the activity then names.
func (j *drillJob) backup(ctx context.Context) (*db.Backup, error) {
	o := j.o
	if j.activity.BackupID == "" {
		latest, err := o.latestRestorable(ctx, j.activity.Environment)
		if err != nil {
			return nil, err
		}
		if latest == nil {
			return nil, fmt.Errorf("environment %q has no complete backup to drill: take a backup first", j.activity.Environment)
		}
		summary := drillSummary(latest)
		if _, err := o.Catalog.UpdateActivity(ctx, j.activity.ID, db.ActivityUpdate{BackupID: &latest.ID, Summary: &summary}); err != nil {
			return nil, err
		}
		j.activity.BackupID = latest.ID
	}
	b, err := o.Catalog.FindBackupByID(ctx, j.activity.BackupID)
	if err != nil {
		return nil, fmt.Errorf("backup %s: %w", j.activity.BackupID, err)
	}
	return b, nil
}

// drillResult is what a drill measured.
type drillResult struct {
	restore time.Duration
	files   int
}

func (j *drillJob) drill(ctx context.Context, p *Progress, b *db.Backup) (drillResult, error) {
	var res drillResult
	o := j.o
	if !b.Restorable() {
		return res, fmt.Errorf("backup %s is %s: only complete backups can be drilled; start a new drill", b.ID, b.Status)
	}
	// The environment gives names to the targets and the smoke command; it may have been deleted since.
	env, err := o.Catalog.FindEnvironmentByName(ctx, b.Environment)
	if err != nil && !errors.Is(err, db.ErrNotFound) {
		return res, err
	}
	dir := o.drillDir(j.activity)
	site := &drillSite{dir: dir}
	defer func() {
		if err := site.close(); err != nil {
			p.Logf("warning: %v", err)
		} else {
			p.Logf("removed the scratch servers and %s", dir)
		}
	}()
	p.Logf("restore drill of backup %s of %s (%s): scratch servers and files in %s; the environment is not touched",
		b.ID, b.Environment, db.FormatBytes(b.SizeBytes), dir)
	if err := checkSpace(filepath.Dir(dir), b.SizeBytes); err != nil {
		return res, err
	}
	targets, err := site.targets(b, env, p)
	if err != nil {
		return res, err
	}
	t0 := time.Now()
	rr, err := o.drillEngine().Restore(ctx, backup.RestoreRequest{ID: b.ID, Services: targets, Scratch: drillScratch(j.activity),
		VerifyAll: true}, p)
	res.restore = time.Since(t0)
	switch {
	case errors.Is(err, backup.ErrDamaged), errors.Is(err, backup.ErrChecksum):
		return res, fmt.Errorf("backup %s could not be restored: %w; its data in the repository is damaged: check the "+
			"storage (Settings → Storage), take a new backup, and drill the older backups", b.ID, err)
	case err != nil:
		return res, fmt.Errorf("backup %s could not be restored into the drill's private servers: %w", b.ID, err)
	}
	res.files = rr.Verified
	for _, r := range rr.Replaced { // the scratch targets' empty state before the restore
		r.Replaced.Discard(context.WithoutCancel(ctx)) //nolint:errcheck
	}
	p.Logf("restored and verified %d files of %d services in %s", rr.Verified, len(targets),
		res.restore.Round(time.Millisecond))
	if env != nil && strings.TrimSpace(env.Drill.Smoke) != "" {
		runner := hooks.Runner{}
		if o.Hooks != nil {
			runner = *o.Hooks
		}
		runner.Env = append(append([]string(nil), runner.Env...), site.env...)
		p.Logf("running the smoke command")
		if _, err := runner.Run(ctx, hooks.Run{Phase: smokePhase, Command: env.Drill.Smoke, Environment: env.Name,
			Operation: "drill", BackupID: b.ID}, p); err != nil {
			return res, fmt.Errorf("the restore worked but the smoke command failed: %w", err)
		}
	}
	p.Logf("drill passed: backup %s restores in %s", b.ID, res.restore.Round(time.Millisecond))
	return res, nil
}

// drillEngine is the engine whose PostgreSQL driver restores without the dump's GRANTs and REVOKEs: the scratch
// server has only its superuser, not the live server's roles they name (ownership is never restored anyway:
// pg_restore --no-owner).
func (o *Operations) drillEngine() *backup.Engine {
	e := *o.Engine
	e.Drivers = maps.Clone(o.Engine.Drivers)
	if _, ok := e.Drivers[backup.TypePostgreSQL]; ok {
		e.Drivers[backup.TypePostgreSQL] = func(spec backup.ServiceSpec) (backup.Source, error) {
			return postgres.NewWithOptions(spec, postgres.Options{NoPrivileges: true})
		}
	}
	return &e
}

// checkSpace refuses a drill whose restored copy would not fit in dir's filesystem: it needs about the backup's
// size, and half as much again for what the servers add (indexes, logs) and the restore stages.
func checkSpace(dir string, size int64) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return nil // unknown: let the restore find out
	}
	free, need := int64(st.Bavail)*int64(st.Bsize), size+size/2+64<<20
	if free < need {
		return fmt.Errorf("the drill needs about %s free in %s to restore this backup (%s), and there is %s: free "+
			"space there, or start rewind serve with TMPDIR set to a larger disk", db.FormatBytes(need), dir,
			db.FormatBytes(size), db.FormatBytes(free))
	}
	return nil
}

// drillSite is a drill's throwaway world: one private server per database type the backup needs and
// directories for SQLite files and mounts, all under dir.
type drillSite struct {
	dir   string
	pg    *scratch.Postgres
	my    *scratch.MariaDB
	redis *scratch.Redis
	env   []string // REWIND_DRILL_* variables of the smoke command
}

// targets starts the servers the backup's services need and returns a target for each service: a database
// named like the live one (one of its own on each server), a Redis database number, a path under dir.
func (s *drillSite) targets(b *db.Backup, env *db.Environment, p *Progress) ([]backup.ServiceSpec, error) {
	if err := os.MkdirAll(s.dir, 0o711); err != nil { // the postgres user must reach its directory
		return nil, fmt.Errorf("create drill directory: %w", err)
	}
	if err := os.Chmod(s.dir, 0o711); err != nil {
		return nil, fmt.Errorf("create drill directory: %w", err)
	}
	if err := s.startServers(b, p); err != nil {
		return nil, err
	}
	used, nextRedis := map[string]bool{}, 0
	var out []backup.ServiceSpec
	for _, svc := range b.Services {
		var live *db.Service
		if env != nil {
			live = env.Service(svc.Name)
		}
		spec := backup.ServiceSpec{Name: svc.Name, Type: svc.Type}
		if live != nil && live.Type == svc.Type {
			spec.Exclude = live.Exclude
		}
		switch svc.Type {
		case db.ServicePostgreSQL, db.ServiceMySQL:
			name := databaseName(live, svc.Name)
			if used[svc.Type+" "+name] {
				name += "_" + strings.ReplaceAll(svc.Name, "-", "_")
			}
			used[svc.Type+" "+name] = true
			port := 0
			if svc.Type == db.ServicePostgreSQL {
				spec.URL, port = s.pg.URL(name), s.pg.Port
			} else {
				spec.URL, port = s.my.URL(name), s.my.Port
			}
			s.setAddress(svc.Name, spec.URL, port, name)
		case db.ServiceRedis:
			n := nextRedis
			nextRedis++
			spec.URL = s.redis.URL(n)
			s.setAddress(svc.Name, spec.URL, s.redis.Port, strconv.Itoa(n))
		case db.ServiceSQLite, db.ServiceFiles:
			parent := filepath.Join(s.dir, svc.Type, svc.Name)
			if err := os.MkdirAll(parent, 0o755); err != nil {
				return nil, fmt.Errorf("create drill directory for service %q: %w", svc.Name, err)
			}
			base := svc.Name
			if live != nil && live.Path != "" {
				base = filepath.Base(live.Path)
			}
			spec.Path = filepath.Join(parent, base)
			s.setEnv(svc.Name, "PATH", spec.Path)
		default:
			return nil, fmt.Errorf("service %q: a drill cannot restore type %q", svc.Name, svc.Type)
		}
		out = append(out, spec)
	}
	return out, nil
}

// startServers starts, at the same time, one private server of each database type the backup's services have.
func (s *drillSite) startServers(b *db.Backup, p *Progress) error {
	count := map[string]int{}
	for _, svc := range b.Services {
		count[svc.Type]++
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	start := func(what string, fn func() error) {
		wg.Go(func() {
			t0 := time.Now()
			err := fn()
			mu.Lock()
			defer mu.Unlock()
			if errors.Is(err, scratch.ErrNotInstalled) {
				err = fmt.Errorf("%w: a drill starts its own %s server from the binaries on the Rewind machine; "+
					"install the server package there", err, what)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("start a private %s server for the drill: %w", what, err))
				return
			}
			p.Logf("started a private %s server in %s", what, time.Since(t0).Round(time.Millisecond))
		})
	}
	if count[db.ServicePostgreSQL] > 0 {
		start("PostgreSQL", func() (err error) {
			s.pg, err = scratch.StartPostgres(filepath.Join(s.dir, "postgresql"), scratch.PostgresOptions{})
			return err
		})
	}
	if count[db.ServiceMySQL] > 0 {
		start("MariaDB", func() (err error) {
			s.my, err = scratch.StartMariaDB(filepath.Join(s.dir, "mariadb"), scratch.MariaDBOptions{})
			return err
		})
	}
	if n := count[db.ServiceRedis]; n > 0 {
		start("Redis", func() (err error) {
			s.redis, err = scratch.StartRedis(filepath.Join(s.dir, "redis"), scratch.RedisOptions{Databases: max(16, n)})
			return err
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// setAddress adds the REWIND_DRILL_<SERVICE>_* variables of a database service: URL, HOST, PORT, DATABASE.
func (s *drillSite) setAddress(service, url string, port int, database string) {
	s.setEnv(service, "URL", url)
	s.setEnv(service, "HOST", "127.0.0.1")
	s.setEnv(service, "PORT", strconv.Itoa(port))
	s.setEnv(service, "DATABASE", database)
}

// setEnv adds REWIND_DRILL_<SERVICE>_<KEY>=value for the smoke command; SERVICE is the service's name in upper
// case with every other character than letters and digits made an underscore.
func (s *drillSite) setEnv(service, key, value string) {
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			return r
		}
		return '_'
	}, service)
	s.env = append(s.env, "REWIND_DRILL_"+name+"_"+key+"="+value)
}

// close stops the servers and removes the drill's directory, whatever happened before.
func (s *drillSite) close() error {
	var errs []error
	if s.pg != nil {
		errs = append(errs, s.pg.Stop())
	}
	if s.my != nil {
		errs = append(errs, s.my.Stop())
	}
	if s.redis != nil {
		errs = append(errs, s.redis.Stop())
	}
	errs = append(errs, scratch.Sweep(s.dir))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("tear down the drill: %w", err)
	}
	return nil
}

// databaseName is the database name of a live PostgreSQL or MySQL service's URL, or fallback.
func databaseName(live *db.Service, fallback string) string {
	if live == nil || live.URL == "" {
		return fallback
	}
	u, err := url.Parse(live.URL)
	if err != nil {
		return fallback
	}
	if name := strings.Trim(u.Path, "/"); name != "" {
		return name
	}
	return fallback
}

// interruptedDrill finishes a drill a stop of Rewind cut off: its scratch servers died with Rewind; their
// directory is removed here, and the drill is recorded as failed.
func (o *Operations) interruptedDrill(a *db.Activity) error {
	dir := o.drillDir(a)
	left := ""
	if err := scratch.Sweep(dir); err != nil {
		left = fmt.Sprintf("; could not remove its scratch directory %s (%v): remove it by hand", dir, err)
	}
	msg := "interrupted: Rewind stopped during this restore drill" + left + "; start the drill again"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id := a.ID
	if drills, err := o.Catalog.FindDrills(ctx, db.DrillFilter{ActivityID: &id, Limit: 1}); err == nil && len(drills) > 0 {
		o.Catalog.FinishDrill(ctx, drills[0].ID, 0, 0, msg) //nolint:errcheck
	}
	return interrupted("%s", msg)
}

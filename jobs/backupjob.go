package jobs

import (
	"context"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/hooks"
	"github.com/rewind/rewind/backup/redis"
	"github.com/rewind/rewind/db"
)

// backupJob takes one backup of an environment: the engine pins every service (inside the pause for a
// consistent backup) and streams them into one snapshot; the catalog row follows the work and becomes
// restorable only once the snapshot is saved.
type backupJob struct {
	o        *Operations
	activity *db.Activity
	params   backupParams
}

func (j *backupJob) Run(ctx context.Context, p *Progress) error {
	o, id := j.o, j.activity.BackupID
	env, err := o.Catalog.FindEnvironmentByName(ctx, j.activity.Environment)
	if err != nil {
		return j.fail(p, fmt.Errorf("environment %q: %w", j.activity.Environment, err))
	}
	running := db.BackupRunning
	if _, err := o.Catalog.UpdateBackup(ctx, id, db.BackupUpdate{Status: &running}); err != nil {
		return err
	}
	p.OnPercent(func(ctx context.Context, pct int) { o.Catalog.UpdateBackup(ctx, id, db.BackupUpdate{Progress: &pct}) }) //nolint:errcheck
	commit := ""
	if env.GitDir != "" {
		if commit, err = headCommit(ctx, env.GitDir); err != nil {
			p.Logf("warning: %v: the backup records no code commit", err)
		}
	}
	req := backup.BackupRequest{
		ID: id, Environment: env.Name, Kind: j.params.Kind, Live: j.params.Live, Commit: commit,
		Services: specs(env),
	}
	if !j.params.Live {
		req.Hold = o.hold(env, "backup", id, p)
	}
	p.Logf("backing up %d services of %s (%s)", len(req.Services), env.Name, liveWord(j.params.Live))
	m, err := o.Engine.Backup(ctx, req, p)
	if err != nil {
		return j.fail(p, err)
	}
	return j.complete(ctx, p, m)
}

func (j *backupJob) fail(p *Progress, err error) error {
	p.OnPercent(nil)
	failed, msg := db.BackupFailed, err.Error()
	if errors.Is(err, context.Canceled) {
		msg = "cancelled"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, uerr := j.o.Catalog.UpdateBackup(ctx, j.activity.BackupID, db.BackupUpdate{Status: &failed, Error: &msg}); uerr != nil {
		p.Logf("warning: could not mark backup failed: %v", uerr)
	}
	return err
}

func (j *backupJob) complete(ctx context.Context, p *Progress, m *backup.Manifest) error {
	p.OnPercent(nil) // from here on the row says 100
	if err := recordComplete(ctx, j.o.Catalog, m); err != nil {
		return err
	}
	p.Logf("backup %s complete: %s of data, %s new in the repository, paused %s", m.ID, db.FormatBytes(m.Bytes),
		db.FormatBytes(m.StoredBytes), m.Pause.Round(time.Millisecond))
	for _, s := range m.Services {
		p.Logf("  %s (%s %s): %s, pinned in %s", s.Name, s.Type, s.Version, db.FormatBytes(s.Bytes),
			s.PinDuration.Round(time.Millisecond))
	}
	if j.o.AfterBackup != nil {
		j.o.AfterBackup(context.WithoutCancel(ctx), j.activity.Environment, p)
	}
	return nil
}

// recordComplete copies what the engine saved into the backup's catalog row and marks it complete.
func recordComplete(ctx context.Context, c Catalog, m *backup.Manifest) error {
	services := make([]db.BackupService, 0, len(m.Services))
	for _, s := range m.Services {
		services = append(services, db.BackupService{Name: s.Name, Type: s.Type, Version: s.Version, Size: s.Bytes, Path: s.Path, Entry: s.Entry})
	}
	complete, progress, size, stored := db.BackupComplete, 100, m.Bytes, m.StoredBytes
	_, err := c.UpdateBackup(ctx, m.ID, db.BackupUpdate{Status: &complete, Progress: &progress, SizeBytes: &size,
		NewBytes: &stored, Pause: &m.Pause, Services: &services, Commit: &m.Commit})
	return err
}

func liveWord(live bool) string {
	if live {
		return "live, no pause"
	}
	return "consistent, requests held during the pins"
}

// restoreJob restores a backup into an environment: prepare beside the live data, pause, switch, release, then
// capture what the switch replaced as the pre-restore backup (undo = restore it).
type restoreJob struct {
	o        *Operations
	activity *db.Activity
	params   restoreParams
}

func (j *restoreJob) Run(ctx context.Context, p *Progress) error {
	o := j.o
	b, err := o.Catalog.FindBackupByID(ctx, j.activity.BackupID)
	if err != nil {
		return err
	}
	if !b.Restorable() {
		return fmt.Errorf("backup %s is %s: only complete backups can be restored", b.ID, b.Status)
	}
	env, err := o.Catalog.FindEnvironmentByName(ctx, j.params.Target)
	if err != nil {
		return fmt.Errorf("target environment %q: %w", j.params.Target, err)
	}
	// Map by name: the backup's services into the target's services of the same name (checked again here,
	// since the target may have changed while the restore waited in the queue).
	scoped := map[string]bool{}
	for _, name := range j.params.Services {
		scoped[name] = true
	}
	var targets []backup.ServiceSpec
	for _, s := range b.Services {
		if len(scoped) > 0 && !scoped[s.Name] {
			continue // a partial restore: the target's other services are not touched
		}
		ts := env.Service(s.Name)
		if ts == nil || ts.Type != s.Type {
			return fmt.Errorf("environment %q has no %s service %q to restore into: nothing was changed", env.Name,
				s.Type, s.Name)
		}
		targets = append(targets, backup.ServiceSpec{Name: ts.Name, Type: ts.Type, URL: ts.URL, Path: ts.Path,
			Exclude: ts.Exclude})
	}
	if b.Commit != "" && env.GitDir != "" {
		if head, err := headCommit(ctx, env.GitDir); err == nil && head != b.Commit {
			p.Logf("note: the backup was taken at commit %s; %s is at %s. Rewind does not change code: run "+
				"`git -C %s checkout %s` to align it", short(b.Commit), env.Name, short(head), env.GitDir, short(b.Commit))
		}
	}
	what := "backup " + b.ID
	if scope := (&RestorePlan{Services: j.params.Services, Path: j.params.Path}).Scope(); scope != "" {
		what += " (" + scope + ")"
	}
	return j.restoreInto(ctx, p, env, b, targets, what)
}

// restoreInto restores backup b into the target services of env (prepare, pause, switch, release, post_restore
// hook) and keeps what the switch replaced as the pre-restore backup. what names the restored state in the log.
func (j *restoreJob) restoreInto(ctx context.Context, p *Progress, env *db.Environment, b *db.Backup,
	targets []backup.ServiceSpec, what string,
) error {
	o := j.o
	p.Logf("preparing %d services of %s beside the live data of %s", len(targets), what, env.Name)
	hold := o.hold(env, "restore", b.ID, p)
	res, err := o.Engine.Restore(ctx, backup.RestoreRequest{ID: b.ID, Services: targets, Scratch: restoreScratch(j.activity),
		Only: j.params.Services, Path: j.params.Path,
		Hold: func(ctx context.Context) (func(), error) {
			// Saved before the first switch can happen: a restore cut off without this line changed nothing,
			// so what it prepared can be removed on restart (see Interrupted).
			p.Logf("%s %s: every service is prepared", switchingMarker, env.Name)
			p.Flush()
			return hold(ctx)
		}}, p)
	if err != nil {
		return fmt.Errorf("%w (the live data of %s was not changed)", err, env.Name)
	}
	p.Logf("%s %s to %s; requests were held %s", switchedMarker, env.Name, what, res.Pause.Round(time.Millisecond))
	p.Flush()
	// From here on the restore has happened: what remains must not undo it.
	ctx = context.WithoutCancel(ctx)
	if err := o.runHook(ctx, hooks.PostRestore, env.Hooks.PostRestore, env.Name, "restore", b.ID, p); err != nil {
		p.Logf("warning: %v", err)
	}
	return j.keepReplaced(ctx, p, env, b, res)
}

// switchingMarker starts the log line a restore writes (and saves) once every service is prepared, before its
// pause; switchedMarker the one it writes once every service is switched.
const (
	switchingMarker = "switching"
	switchedMarker  = "switched"
)

// restoreScratch names the scratch state of restore activity a (backup.RestoreRequest.Scratch).
func restoreScratch(a *db.Activity) string { return fmt.Sprintf("restore activity %d", a.ID) }

// Interrupted says what an activity cut off by a stop of Rewind left behind: it is the Runner's Interrupted.
// It returns nil when the work had in fact finished (the stop fell between its last write and the runner's): the
// activity is then recorded as succeeded. What a backup, or a restore that had not started switching, left
// beside the live data (a stage of changed files, prepared databases and directories) is removed here.
func (o *Operations) Interrupted(a *db.Activity) error {
	switch a.Type {
	case TypeBackup:
		if o.backupComplete(a.BackupID) {
			return nil
		}
		return interrupted("interrupted: Rewind stopped before this backup completed; no snapshot was saved, so it "+
			"is not restorable%s; start a new backup", o.sweep(a.Environment, a.BackupID))
	case TypeRestore:
		o.dropTransient(a)
		if o.backupComplete(PreRestoreBackupID(a)) {
			return nil // switched, and the replaced state saved: only the runner's last write was missing
		}
		if logged(a.Log, switchedMarker) {
			return interrupted("interrupted after the switch: %s runs the restored data; the state it replaced is "+
				"kept beside the live data (renamed databases, .rewind-* directories and files) but was not saved as "+
				"a pre-restore backup, so there is no undo: take a backup now", a.Environment)
		}
		if logged(a.Log, switchingMarker) {
			return interrupted("interrupted during the switch: some services of %s may run the restored data and "+
				"others the data they had; what a switch replaced is kept beside the live data (renamed databases, "+
				".rewind-* directories and files): restore this backup again to finish", a.Environment)
		}
		return interrupted("interrupted before the switch: Rewind stopped while preparing; the live data of %s was "+
			"not changed%s; start the restore again", a.Environment, o.sweep(a.Environment, restoreScratch(a), o.restoredSubs(a)...))
	case TypeDrill:
		return o.interruptedDrill(a)
	}
	return ErrInterrupted
}

// interruption is an ErrInterrupted that says what was left behind.
type interruption struct{ msg string }

func (e *interruption) Error() string { return e.msg }
func (e *interruption) Unwrap() error { return ErrInterrupted }

func interrupted(format string, args ...any) error {
	return &interruption{msg: fmt.Sprintf(format, args...)}
}

// logged reports whether a line of log starts with marker and a space.
func logged(log, marker string) bool {
	return strings.HasPrefix(log, marker+" ") || strings.Contains(log, "\n"+marker+" ")
}

// restoredSubs are the sub-trees a partial restore activity prepared beside the live ones, as service specs
// for Sweep (its name and Sub; sweep fills in the rest from the environment).
func (o *Operations) restoredSubs(a *db.Activity) []backup.ServiceSpec {
	p, _ := paramsOf[restoreParams](a, TypeRestore)
	if p.Path == "" || len(p.Services) != 1 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := o.Catalog.FindBackupByID(ctx, a.BackupID)
	if err != nil || b.Service(p.Services[0]) == nil {
		return nil
	}
	sub := path.Join(b.Service(p.Services[0]).Path, p.Path)
	// A single file's scratch directory is inside its directory: sweep there too.
	subs := []backup.ServiceSpec{{Name: p.Services[0], Sub: sub}}
	if dir := path.Dir(sub); dir != "." {
		subs = append(subs, backup.ServiceSpec{Name: p.Services[0], Sub: dir})
	}
	return subs
}

// sweep removes what the cut-off operation left beside the live data of environment env and says so, as the
// end of a sentence. subs adds, for services of env, the sub-trees a partial restore prepared.
func (o *Operations) sweep(env, operation string, subs ...backup.ServiceSpec) string {
	if o.Engine == nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e, err := o.Catalog.FindEnvironmentByName(ctx, env)
	if err != nil {
		return "" // deleted since: nothing of it to clean
	}
	services := specs(e)
	for _, sub := range subs {
		for _, s := range services {
			if s.Name == sub.Name {
				s.Sub = sub.Sub
				services = append(services, s)
				break
			}
		}
	}
	removed, err := o.Engine.Sweep(ctx, operation, services)
	msg := ""
	if len(removed) > 0 {
		msg = "; removed what it had left beside the live data: " + strings.Join(removed, ", ")
	}
	if err != nil {
		msg += fmt.Sprintf("; could not remove all it left beside the live data (%v): look for names with "+
			"_rewind_ or .rewind- there", err)
	}
	return msg
}

// backupComplete reports whether the catalog lists backup id as complete.
func (o *Operations) backupComplete(id string) bool {
	if id == "" {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := o.Catalog.FindBackupByID(ctx, id)
	return err == nil && b.Status == db.BackupComplete
}

// keepReplaced captures the replaced states as the pre-restore backup, then drops them. If the capture fails
// the replaced states are kept where the switch moved them, and the error says so.
func (j *restoreJob) keepReplaced(ctx context.Context, p *Progress, env *db.Environment, b *db.Backup, res *backup.RestoreResult) error {
	o, id := j.o, j.params.PreRestoreID
	restoredFrom := b.ID
	if j.params.At != "" {
		restoredFrom = "" // a restore to a moment: the backup it restored was transient, and is gone
	}
	row := &db.Backup{ID: id, Environment: env.Name, Kind: db.BackupPreRestore, Live: true, RestoredFrom: restoredFrom,
		ActivityID: j.activity.ID, Partial: j.params.Path != "" || len(res.Replaced) < len(env.Services)}
	if err := o.Catalog.CreateBackup(ctx, row); err != nil {
		return fmt.Errorf("record pre-restore backup: %w (the replaced data is kept beside the live data)", err)
	}
	p.Logf("saving the replaced state as pre-restore backup %s (undo restores it)", id)
	m, err := o.Engine.BackupReplaced(ctx, backup.BackupRequest{ID: id, Environment: env.Name,
		Kind: backup.KindPreRestore, RestoredFrom: restoredFrom}, res.Replaced, backup.NopProgress)
	if err != nil {
		failed, msg := db.BackupFailed, err.Error()
		o.Catalog.UpdateBackup(ctx, id, db.BackupUpdate{Status: &failed, Error: &msg}) //nolint:errcheck
		return fmt.Errorf("the restore switched, but saving the replaced state failed: %w; the replaced data "+
			"is kept beside the live data", err)
	}
	if err := recordComplete(ctx, o.Catalog, m); err != nil {
		return err
	}
	for _, r := range res.Replaced {
		if err := r.Replaced.Discard(ctx); err != nil {
			p.Logf("warning: could not remove the replaced state of %s: %v", r.Spec.Name, err)
		}
	}
	return nil
}

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}

var nonSlug = regexp.MustCompile(`[^a-z0-9_]+`)

// branchEnvironment derives a new environment named name from parent: same services, each with its own
// database, file or directory derived from the parent's by a suffix, so the branch never shares data with its
// parent. Redis databases are numbered, not named: redisDB picks the branch's (see Operations.freeRedisDB).
func branchEnvironment(parent *db.Environment, name string, redisDB func(s db.Service) (string, error)) (*db.Environment, error) {
	suffix := nonSlug.ReplaceAllString(strings.ToLower(name), "_")
	env := &db.Environment{Name: name, Title: name, Type: db.EnvDevelopment, Parent: parent.Name,
		Status: db.StatusActive}
	for _, s := range parent.Services {
		c := s
		c.Exclude = append([]string(nil), s.Exclude...)
		switch s.Type {
		case db.ServicePostgreSQL, db.ServiceMySQL:
			c.URL = withDatabaseSuffix(s.URL, "_"+suffix)
		case db.ServiceSQLite:
			ext := filepath.Ext(s.Path)
			c.Path = strings.TrimSuffix(s.Path, ext) + "-" + suffix + ext
		case db.ServiceFiles:
			c.Path = strings.TrimRight(s.Path, "/") + "-" + suffix
		case db.ServiceRedis:
			u, err := redisDB(s)
			if err != nil {
				return nil, fmt.Errorf("service %q of %q: %w", s.Name, parent.Name, err)
			}
			c.URL = u
		}
		env.Services = append(env.Services, c)
	}
	return env, nil
}

// freeRedisDB picks the branch's databases for the Redis services of its parent: on each service's server, the
// lowest numbered one that holds no keys and that no service of any environment uses, nor one picked earlier
// for the same branch. StartRestore holds o.branch from the picks until the branch is in the catalog, so two
// branches never pick the same.
func (o *Operations) freeRedisDB(ctx context.Context) func(s db.Service) (string, error) {
	var taken map[string][]int // server address → databases in use; read from the catalog once
	return func(s db.Service) (string, error) {
		addr, _, err := redis.Database(s.URL)
		if err != nil {
			return "", err
		}
		if taken == nil {
			envs, err := o.Catalog.FindEnvironments(ctx, db.EnvironmentFilter{})
			if err != nil {
				return "", err
			}
			taken = map[string][]int{}
			for _, e := range envs {
				for _, es := range e.Services {
					if es.Type != db.ServiceRedis {
						continue
					}
					if a, n, err := redis.Database(es.URL); err == nil {
						taken[a] = append(taken[a], n)
					}
				}
			}
		}
		u, err := redis.FreeDatabase(ctx, s.URL, taken[addr])
		if err != nil {
			return "", err
		}
		_, n, _ := redis.Database(u)
		taken[addr] = append(taken[addr], n)
		return u, nil
	}
}

// withDatabaseSuffix appends suffix to the database name (the URL path) of a database URL.
func withDatabaseSuffix(raw, suffix string) string {
	u, q, _ := strings.Cut(raw, "?")
	i := strings.LastIndex(u, "/")
	if i < 0 || i < strings.Index(u, "://")+3 {
		return raw
	}
	out := u + suffix
	if u[i+1:] == "" {
		out = u + "rewind" + suffix
	}
	if q != "" {
		out += "?" + q
	}
	return out
}

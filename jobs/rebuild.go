package jobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/storage"
	"github.com/rewind/rewind/db"
)

// rebuildResult counts what rebuildCatalog did.
type rebuildResult struct {
	FromCopy     time.Time // when the restored catalog copy was saved; zero without one
	Environments int       // environments created from backups
	Added        int       // backups added from the repository
	Expired      int       // catalog backups no longer in the repository
	Backups      int       // backups in the repository
}

// RebuildCatalog fills the new, empty data directory dataDir from the repository on the storage rawStorage
// alone (catalog:rebuild): the newest catalog copy CatalogSaver saved there and its secret.key, the repository
// password (REWIND_REPO_PASSWORD, which it needs), then every backup in the repository the copy does not know,
// from its rewind.json. It reports what it did on out.
func RebuildCatalog(ctx context.Context, dataDir, rawStorage string, getenv func(string) string, out io.Writer) error {
	password := getenv("REWIND_REPO_PASSWORD")
	if password == "" {
		return errors.New("set REWIND_REPO_PASSWORD to the repository password (shown when the repository was created)")
	}
	if dataDir == "" {
		return errors.New("no data directory: pass --data DIR")
	}
	for _, name := range []string{db.CatalogFileName, db.SecretFileName} {
		if _, err := os.Stat(filepath.Join(dataDir, name)); err == nil {
			return fmt.Errorf("%s already has a %s: catalog:rebuild fills a new data directory; move the old one away first", dataDir, name)
		}
	}
	opener, where, err := storage.Open(rawStorage, dataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	if err := storage.RequireRepository(ctx, opener, where); err != nil {
		return err
	}
	repo, err := backup.OpenRepository(ctx, backup.RepositoryOptions{
		Storage: opener, Password: password, ConfigDir: filepath.Join(dataDir, "kopia"),
	})
	if errors.Is(err, backup.ErrWrongPassword) {
		return fmt.Errorf("the repository at %s does not open with REWIND_REPO_PASSWORD: %w", where, err)
	}
	if err != nil {
		return fmt.Errorf("open the repository at %s: %w", where, err)
	}
	defer repo.Close(context.WithoutCancel(ctx)) //nolint:errcheck

	res := &rebuildResult{}
	files, savedAt, err := repo.LoadCatalog(ctx)
	switch {
	case err == nil:
		res.FromCopy = savedAt
	case errors.Is(err, backup.ErrNotFound):
	default:
		return err
	}
	if err := db.RestoreDataDir(dataDir, files[db.CatalogFileName], files[db.SecretFileName], password); err != nil {
		return err
	}
	catalog, _, err := db.OpenDataDir(ctx, dataDir)
	if err != nil {
		return err
	}
	defer catalog.Close()
	engine := &backup.Engine{Repo: repo}
	if err := reconcileBackups(ctx, catalog, engine, res); err != nil {
		return err
	}
	if t, err := LoadCopyTarget(ctx, catalog); err == nil && t != nil && t.URL == where {
		// rebuilt from the copy, which is now the primary: it must not be its own copy
		if err := clearCopyTarget(ctx, catalog); err != nil {
			return err
		}
		fmt.Fprintln(out, "The repository was the copy target; it is now the primary storage: add a new copy target on the Storage page.")
	}
	summary := fmt.Sprintf("Rebuilt the catalog from %s: %d backups in the repository", where, res.Backups)
	if !res.FromCopy.IsZero() {
		summary += fmt.Sprintf("; users, settings and environments from the catalog copy of %s", res.FromCopy.UTC().Format(time.RFC3339))
	} else {
		summary += "; no catalog copy found, so no users: the server prints a setup link on start"
	}
	summary += fmt.Sprintf("; %d backups added, %d environments created from backups, %d backups gone from the repository marked expired",
		res.Added, res.Environments, res.Expired)
	if err := catalog.CreateActivity(ctx, &db.Activity{Type: "catalog.rebuild", Actor: "rewind catalog:rebuild", Summary: summary}); err != nil {
		return err
	}
	fmt.Fprintln(out, summary+".")
	if res.Environments > 0 {
		fmt.Fprintln(out, "Environments created from backups are inactive and have no services: set them with `rewind apply` before restoring.")
	}
	fmt.Fprintf(out, "Start the server with: rewind serve --data %s --storage '%s'\n", dataDir, where)
	return nil
}

// reconcileBackups makes the catalog's backups match the repository's: every backup in the repository is in
// the catalog (complete), and complete catalog backups missing from the repository are marked expired.
func reconcileBackups(ctx context.Context, catalog *db.DB, engine *backup.Engine, res *rebuildResult) error {
	mans, err := engine.ListBackups(ctx, "")
	if err != nil {
		return err
	}
	res.Backups = len(mans)
	inRepo := map[string]bool{}
	for _, m := range mans {
		inRepo[m.ID] = true
		if b, err := catalog.FindBackupByID(ctx, m.ID); err == nil {
			if b.Status != db.BackupComplete { // the catalog copy was taken while it ran
				complete, progress, size, stored, none := db.BackupComplete, 100, m.Bytes, m.StoredBytes, ""
				if _, err := catalog.UpdateBackup(ctx, m.ID, db.BackupUpdate{Status: &complete, Progress: &progress,
					SizeBytes: &size, NewBytes: &stored, Services: refOf(backupServices(m)), Error: &none}); err != nil {
					return fmt.Errorf("complete backup %s: %w", m.ID, err)
				}
				res.Added++
			}
			continue
		} else if !errors.Is(err, db.ErrNotFound) {
			return err
		}
		if _, err := catalog.FindEnvironmentByName(ctx, m.Environment); errors.Is(err, db.ErrNotFound) {
			env := &db.Environment{Name: m.Environment, Title: m.Environment, Type: db.EnvProduction, Status: db.StatusInactive}
			if err := catalog.CreateEnvironment(ctx, env); err != nil {
				return fmt.Errorf("create environment %s: %w", m.Environment, err)
			}
			res.Environments++
		} else if err != nil {
			return err
		}
		b := &db.Backup{
			ID: m.ID, Environment: m.Environment, Kind: m.Kind, Live: m.Live, Status: db.BackupComplete,
			Progress: 100, RestoredFrom: m.RestoredFrom, Commit: m.Commit, SizeBytes: m.Bytes, NewBytes: m.StoredBytes,
			Pause: m.Pause,
		}
		finished := m.FinishedAt
		b.CompletedAt = &finished
		b.Services = backupServices(m)
		started := m.StartedAt
		now := catalog.Now
		catalog.Now = func() time.Time { return started }
		err := catalog.CreateBackup(ctx, b)
		catalog.Now = now
		if err != nil {
			return fmt.Errorf("add backup %s: %w", m.ID, err)
		}
		res.Added++
	}
	if err := endUnfinished(ctx, catalog, inRepo); err != nil {
		return err
	}
	complete, expired := db.BackupComplete, db.BackupExpired
	var gone []string
	for offset := 0; ; offset += 500 {
		rows, _, err := catalog.FindBackups(ctx, db.BackupFilter{Status: &complete, Offset: offset, Limit: 500})
		if err != nil {
			return err
		}
		for _, b := range rows {
			if !inRepo[b.ID] {
				gone = append(gone, b.ID)
			}
		}
		if len(rows) < 500 {
			break
		}
	}
	for _, id := range gone {
		if _, err := catalog.UpdateBackup(ctx, id, db.BackupUpdate{Status: &expired}); err != nil {
			return err
		}
		res.Expired++
	}
	return nil
}

func backupServices(m *backup.Manifest) []db.BackupService {
	var out []db.BackupService
	for _, s := range m.Services {
		out = append(out, db.BackupService{Name: s.Name, Type: s.Type, Version: s.Version, Size: s.Bytes, Path: s.Path, Entry: s.Entry})
	}
	return out
}

func refOf[T any](v T) *T { return &v }

// endUnfinished ends the activities a catalog copy caught while they ran: the lost server will not finish them,
// and the new one must not run them again. A backup whose snapshot made it into the repository succeeded; every
// other one failed, and so did its backup row.
func endUnfinished(ctx context.Context, catalog *db.DB, inRepo map[string]bool) error {
	acts, err := catalog.FindUnfinishedActivities(ctx)
	if err != nil {
		return err
	}
	for _, a := range acts {
		state, note := db.ActivityFailed, "\nthe server was lost before this finished (catalog rebuilt from the repository)"
		if a.BackupID != "" && inRepo[a.BackupID] && a.Type == TypeBackup {
			state, note = db.ActivitySucceeded, "\nthe backup reached the repository before the server was lost (catalog rebuilt from the repository)"
		}
		if _, err := catalog.UpdateActivity(ctx, a.ID, db.ActivityUpdate{State: &state, AppendLog: &note}); err != nil {
			return fmt.Errorf("end activity %d: %w", a.ID, err)
		}
		if state == db.ActivityFailed && a.BackupID != "" && !inRepo[a.BackupID] {
			if b, err := catalog.FindBackupByID(ctx, a.BackupID); err == nil && (b.Status == db.BackupPending || b.Status == db.BackupRunning) {
				failed, msg := db.BackupFailed, "the server was lost before this backup completed"
				if _, err := catalog.UpdateBackup(ctx, b.ID, db.BackupUpdate{Status: &failed, Error: &msg}); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/kopia/kopia/repo/blob"
	"github.com/spf13/cobra"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/jobs"
)

// The catalog copy in the repository: the catalog (users, settings, environments, backups, activities) and
// secret.key (the catalog key that decrypts the service URLs, and the session keys). Both are encrypted by
// kopia with the repository password, so whoever holds the password and the storage can bring the server
// back; nobody else can read them.
const (
	catalogCopyDB     = catalogFileName
	catalogCopySecret = secretFileName
)

// catalogSaver saves the catalog into the repository after it changes: every Interval it takes a consistent
// copy of rewind.db (VACUUM INTO) and uploads it with secret.key when either differs from the last upload.
// So writes are debounced to at most one upload per Interval, and a quiet catalog uploads nothing.
type catalogSaver struct {
	Catalog  *db.DB
	Repo     *backup.Repository
	DataDir  string
	Interval time.Duration
	Logger   *slog.Logger
	Now      func() time.Time

	mu   sync.Mutex // one Save at a time
	last [sha256.Size]byte

	statusMu  sync.Mutex
	lastSaved time.Time
	lastErr   error

	stop chan struct{}
	done chan struct{}
}

// Start runs the saver until Close.
func (s *catalogSaver) Start() {
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(s.done)
		t := time.NewTicker(s.Interval)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				if err := s.Save(ctx); err != nil {
					s.Logger.Error("save the catalog into the repository", "err", err)
				}
				cancel()
			}
		}
	}()
}

// Close stops the saver and saves a last time.
func (s *catalogSaver) Close(ctx context.Context) error {
	if s.stop != nil {
		close(s.stop)
		<-s.done
		s.stop = nil
	}
	return s.Save(ctx)
}

// LastSaved returns when the catalog was last saved into the repository by this server, and the last error.
func (s *catalogSaver) LastSaved() (time.Time, error) {
	s.statusMu.Lock()
	defer s.statusMu.Unlock()
	return s.lastSaved, s.lastErr
}

func (s *catalogSaver) record(saved time.Time, err error) {
	s.statusMu.Lock()
	defer s.statusMu.Unlock()
	if err == nil {
		s.lastSaved = saved
	}
	s.lastErr = err
}

// Save uploads the catalog and secret.key when they changed since the last upload.
func (s *catalogSaver) Save(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	files, err := catalogFiles(ctx, s.Catalog, s.DataDir)
	if err != nil {
		s.record(time.Time{}, err)
		return err
	}
	h := sha256.New()
	for _, name := range []string{catalogCopyDB, catalogCopySecret} {
		fmt.Fprintf(h, "%s %d\n", name, len(files[name]))
		h.Write(files[name])
	}
	var sum [sha256.Size]byte
	copy(sum[:], h.Sum(nil))
	if sum == s.last {
		return nil
	}
	if err := s.Repo.SaveCatalog(ctx, files); err != nil {
		s.record(time.Time{}, err)
		return err
	}
	s.last = sum
	s.record(s.now(), nil)
	return nil
}

func (s *catalogSaver) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// catalogFiles returns a consistent copy of the catalog and the secret.key of dataDir.
func catalogFiles(ctx context.Context, catalog *db.DB, dataDir string) (map[string][]byte, error) {
	tmp, err := os.MkdirTemp(dataDir, ".catalog-copy-*")
	if err != nil {
		return nil, fmt.Errorf("copy catalog: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := catalog.CopyTo(ctx, filepath.Join(tmp, catalogFileName)); err != nil {
		return nil, err
	}
	dbBytes, err := os.ReadFile(filepath.Join(tmp, catalogFileName))
	if err != nil {
		return nil, fmt.Errorf("copy catalog: %w", err)
	}
	secret, err := os.ReadFile(filepath.Join(dataDir, secretFileName))
	if err != nil {
		return nil, fmt.Errorf("copy secret.key: %w", err)
	}
	return map[string][]byte{catalogCopyDB: dbBytes, catalogCopySecret: secret}, nil
}

func newCatalogRebuildCommand() *cobra.Command {
	var dataDir, storage string
	cmd := &cobra.Command{
		Use:   "catalog:rebuild --data DIR --storage URL",
		Short: "Recreate the catalog of a new data directory from the backup repository alone (offline)",
		Long: `Recreate the catalog (users, settings, environments, backups) of a new, empty data directory
from the backup repository alone, e.g. after the server was lost. The repository password is read from
REWIND_REPO_PASSWORD. The newest catalog copy the server saved into the repository is restored with its
secret.key (it decrypts the services' URLs); backups made after that copy, or all backups when there is no
copy, are added from their rewind.json. Then start the server on the same data directory and storage:

  REWIND_REPO_PASSWORD=... rewind catalog:rebuild --data ./rewind-data --storage s3://bucket/rewind?region=eu-west-1
  rewind serve --data ./rewind-data --storage s3://bucket/rewind?region=eu-west-1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return rebuildCatalog(cmd.Context(), dataDir, storage, os.Getenv, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&dataDir, "data", defaultDataDir, "the new data directory")
	cmd.Flags().StringVar(&storage, "storage", "", "where the backups are: file:///path or s3://BUCKET/PREFIX?endpoint=URL&region=REGION&path_style=true (default: <data>/repo)")
	return withEnv(cmd)
}

// rebuildResult counts what rebuildCatalog did.
type rebuildResult struct {
	FromCopy     time.Time // when the restored catalog copy was saved; zero without one
	Environments int       // environments created from backups
	Added        int       // backups added from the repository
	Expired      int       // catalog backups no longer in the repository
	Backups      int       // backups in the repository
}

func rebuildCatalog(ctx context.Context, dataDir, storage string, getenv func(string) string, out io.Writer) error {
	password := getenv("REWIND_REPO_PASSWORD")
	if password == "" {
		return errors.New("set REWIND_REPO_PASSWORD to the repository password (shown when the repository was created)")
	}
	if dataDir == "" {
		return errors.New("no data directory: pass --data DIR")
	}
	for _, name := range []string{catalogFileName, secretFileName} {
		if _, err := os.Stat(filepath.Join(dataDir, name)); err == nil {
			return fmt.Errorf("%s already has a %s: catalog:rebuild fills a new data directory; move the old one away first", dataDir, name)
		}
	}
	opener, where, err := storageFor(storage, dataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	if err := requireRepository(ctx, opener, where); err != nil {
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
		if err := writeFileExclusive(filepath.Join(dataDir, secretFileName), files[catalogCopySecret], 0o600); err != nil {
			return fmt.Errorf("restore %s: %w", secretFileName, err)
		}
		if err := writeFileExclusive(filepath.Join(dataDir, catalogFileName), files[catalogCopyDB], 0o600); err != nil {
			return fmt.Errorf("restore %s: %w", catalogFileName, err)
		}
	case errors.Is(err, backup.ErrNotFound):
	default:
		return err
	}
	if err := writeFileExclusive(filepath.Join(dataDir, repoPasswordFile), []byte(password+"\n"), 0o600); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("store repository password: %w", err)
	}
	catalog, _, err := openCatalog(ctx, dataDir)
	if err != nil {
		return err
	}
	defer catalog.Close()
	engine := &backup.Engine{Repo: repo}
	if err := reconcileBackups(ctx, catalog, engine, res); err != nil {
		return err
	}
	if t, err := loadCopyTarget(ctx, catalog); err == nil && t != nil && t.URL == where {
		// rebuilt from the copy, which is now the primary: it must not be its own copy
		for _, k := range []string{settingCopyURL, settingCopyKey, settingCopySecret, settingCopySyncedAt, settingCopyError} {
			if err := catalog.SetSetting(ctx, k, ""); err != nil {
				return err
			}
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

// requireRepository refuses a storage that holds no kopia repository (a wrong bucket or prefix), instead of
// creating an empty one.
func requireRepository(ctx context.Context, opener backup.StorageOpener, where string) error {
	st, err := opener(ctx, false)
	if err != nil {
		return err
	}
	defer st.Close(ctx) //nolint:errcheck
	if _, err := st.GetMetadata(ctx, "kopia.repository"); errors.Is(err, blob.ErrBlobNotFound) {
		return fmt.Errorf("%s holds no backup repository: check the bucket, prefix or path", where)
	} else if err != nil {
		return fmt.Errorf("read %s: %w", where, err)
	}
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
		out = append(out, db.BackupService{Name: s.Name, Type: s.Type, Version: s.Version, Size: s.Bytes})
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
		if a.BackupID != "" && inRepo[a.BackupID] && a.Type == jobs.TypeBackup {
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

package jobs

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/db"
)

// CatalogSaver saves the catalog into the repository after it changes: every Interval it takes a consistent
// copy of rewind.db (VACUUM INTO) and uploads it with secret.key when either differs from the last upload.
// So writes are debounced to at most one upload per Interval, and a quiet catalog uploads nothing.
//
// The catalog copy holds the catalog (users, settings, environments, backups, activities) and secret.key (the
// catalog key that decrypts the service URLs, and the session keys). Both are encrypted by kopia with the
// repository password, so whoever holds the password and the storage can bring the server back (see
// RebuildCatalog); nobody else can read them.
type CatalogSaver struct {
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
func (s *CatalogSaver) Start() {
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

// Stop stops the saver's ticker; a Save running now finishes first.
func (s *CatalogSaver) Stop() {
	if s.stop != nil {
		close(s.stop)
		<-s.done
		s.stop = nil
	}
}

// Close stops the saver and saves a last time.
func (s *CatalogSaver) Close(ctx context.Context) error {
	s.Stop()
	return s.Save(ctx)
}

// LastSaved returns when the catalog was last saved into the repository by this server, and the last error.
func (s *CatalogSaver) LastSaved() (time.Time, error) {
	s.statusMu.Lock()
	defer s.statusMu.Unlock()
	return s.lastSaved, s.lastErr
}

func (s *CatalogSaver) record(saved time.Time, err error) {
	s.statusMu.Lock()
	defer s.statusMu.Unlock()
	if err == nil {
		s.lastSaved = saved
	}
	s.lastErr = err
}

// Save uploads the catalog and secret.key when they changed since the last upload.
func (s *CatalogSaver) Save(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	files, err := db.CatalogFiles(ctx, s.Catalog, s.DataDir)
	if err != nil {
		s.record(time.Time{}, err)
		return err
	}
	h := sha256.New()
	for _, name := range []string{db.CatalogFileName, db.SecretFileName} {
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

func (s *CatalogSaver) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

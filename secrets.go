package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/rewind/rewind/db"
)

// secretFileName is the name of the keys file in the data directory.
const secretFileName = "secret.key"

// Secrets are the keys kept in <data>/secret.key (mode 0600). They are
// generated on first use and never printed.
type Secrets struct {
	// SessionKey authenticates session cookies (64 bytes, HMAC-SHA256).
	SessionKey []byte `json:"session_key"`
	// SessionEncryptionKey encrypts session cookies (32 bytes, AES-256).
	SessionEncryptionKey []byte `json:"session_encryption_key"`
	// CatalogKey encrypts service URLs in the catalog (32 bytes, AES-256-GCM).
	CatalogKey []byte `json:"catalog_key"`
}

// secretFileVersion is the format version of secret.key this rewind writes.
const secretFileVersion = 1

type secretFile struct {
	Version int `json:"version"`
	Secrets
}

func (s *Secrets) validate() error {
	switch {
	case len(s.SessionKey) != 64:
		return fmt.Errorf("session_key has %d bytes, want 64", len(s.SessionKey))
	case len(s.SessionEncryptionKey) != 32:
		return fmt.Errorf("session_encryption_key has %d bytes, want 32", len(s.SessionEncryptionKey))
	case len(s.CatalogKey) != db.KeySize:
		return fmt.Errorf("catalog_key has %d bytes, want %d", len(s.CatalogKey), db.KeySize)
	}
	return nil
}

// loadSecrets reads <dataDir>/secret.key, creating it (and dataDir) on first
// use. Creation is atomic: the keys are written to a temporary file, synced
// and linked into place, so a concurrent first start reads the same keys
// and a crash never leaves a half-written file.
func loadSecrets(dataDir string) (*Secrets, error) {
	path := filepath.Join(dataDir, secretFileName)
	s, err := readSecrets(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return s, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	s = &Secrets{
		SessionKey:           randomBytes(64),
		SessionEncryptionKey: randomBytes(32),
		CatalogKey:           randomBytes(db.KeySize),
	}
	b, err := json.MarshalIndent(secretFile{Version: secretFileVersion, Secrets: *s}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode secrets: %w", err)
	}
	if err := writeFileExclusive(path, append(b, '\n'), 0o600); errors.Is(err, fs.ErrExist) {
		return readSecrets(path) // another process won the race
	} else if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	return s, nil
}

func readSecrets(path string) (*Secrets, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s is readable by other users (mode %04o): run chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f secretFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("read %s: not a rewind secret.key: %w", path, err)
	}
	if f.Version > secretFileVersion {
		return nil, fmt.Errorf("%s has format version %d, newer than this rewind knows (%d): upgrade rewind", path, f.Version, secretFileVersion)
	}
	if err := f.Secrets.validate(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return &f.Secrets, nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return b
}

// writeTemp writes data with mode to a new temporary file beside path and syncs it; the caller moves it into
// place and removes it (a no-op once moved).
func writeTemp(path string, data []byte, mode os.FileMode) (string, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", err
	}
	err = tmp.Chmod(mode)
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", err
	}
	return tmp.Name(), nil
}

// writeFileExclusive atomically creates path with data and mode: temp file
// in the same directory, fsync, hard link into place (failing with
// fs.ErrExist if path exists, never overwriting), fsync the directory.
func writeFileExclusive(path string, data []byte, mode os.FileMode) error {
	tmp, err := writeTemp(path, data, mode)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fs.ErrExist
		}
		// Filesystems without hard links: fall back to rename when path is
		// still absent (a tiny race window, acceptable there).
		if _, statErr := os.Stat(path); statErr == nil {
			return fs.ErrExist
		}
		if err := os.Rename(tmp, path); err != nil {
			return err
		}
	}
	return syncDir(filepath.Dir(path))
}

// writeFileAtomic replaces path with data: temp file, fsync, rename, fsync dir.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := writeTemp(path, data, mode)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// catalogFileName is the catalog's name in the data directory.
const catalogFileName = "rewind.db"

// openCatalog creates dataDir if needed, loads (or creates) its secrets and
// opens <dataDir>/rewind.db. The caller closes the catalog.
func openCatalog(ctx context.Context, dataDir string) (*db.DB, *Secrets, error) {
	if dataDir == "" {
		return nil, nil, errors.New("no data directory: pass --data DIR or set REWIND_DATA")
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("create data directory: %w", err)
	}
	secrets, err := loadSecrets(dataDir)
	if err != nil {
		return nil, nil, err
	}
	catalog, err := db.Open(ctx, filepath.Join(dataDir, catalogFileName), secrets.CatalogKey)
	if err != nil {
		return nil, nil, err
	}
	return catalog, secrets, nil
}

package db

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// The data directory (--data) holds the catalog, the keys that decrypt it and sign sessions, and the
// repository password; this file owns those files. kopia's config and cache, and repo/ when the storage is
// local, are the engine's.
const (
	// CatalogFileName is the catalog's name in the data directory.
	CatalogFileName = "rewind.db"
	// SecretFileName is the keys file (mode 0600).
	SecretFileName = "secret.key"
	// RepoPasswordFile holds the generated repository password (0600). Whoever has it (or
	// REWIND_REPO_PASSWORD) and the storage can read every backup, with Rewind or the stock kopia tool.
	RepoPasswordFile = "repo.password"
)

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
	case len(s.CatalogKey) != KeySize:
		return fmt.Errorf("catalog_key has %d bytes, want %d", len(s.CatalogKey), KeySize)
	}
	return nil
}

// LoadSecrets reads <dataDir>/secret.key, creating it (and dataDir) on first
// use. Creation is atomic: the keys are written to a temporary file, synced
// and linked into place, so a concurrent first start reads the same keys
// and a crash never leaves a half-written file.
func LoadSecrets(dataDir string) (*Secrets, error) {
	path := filepath.Join(dataDir, SecretFileName)
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
		CatalogKey:           randomBytes(KeySize),
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

// OpenDataDir creates dataDir if needed, loads (or creates) its secrets and
// opens <dataDir>/rewind.db. The caller closes the catalog.
func OpenDataDir(ctx context.Context, dataDir string) (*DB, *Secrets, error) {
	if dataDir == "" {
		return nil, nil, errors.New("no data directory: pass --data DIR or set REWIND_DATA")
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("create data directory: %w", err)
	}
	secrets, err := LoadSecrets(dataDir)
	if err != nil {
		return nil, nil, err
	}
	catalog, err := Open(ctx, filepath.Join(dataDir, CatalogFileName), secrets.CatalogKey)
	if err != nil {
		return nil, nil, err
	}
	return catalog, secrets, nil
}

// RepoPassword returns REWIND_REPO_PASSWORD, or the password stored in the data directory, or a new one it
// generates, stores and prints once on console.
func RepoPassword(dataDir string, getenv func(string) string, console io.Writer) (string, error) {
	if p := getenv("REWIND_REPO_PASSWORD"); p != "" {
		return p, nil
	}
	path := filepath.Join(dataDir, RepoPasswordFile)
	b, err := os.ReadFile(path)
	if err == nil {
		p := strings.TrimSpace(string(b))
		if p == "" {
			return "", fmt.Errorf("%s is empty: put the repository password in it or set REWIND_REPO_PASSWORD", path)
		}
		return p, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read repository password: %w", err)
	}
	var raw [20]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	p := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(raw[:]))
	if err := writeFileExclusive(path, []byte(p+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("store repository password: %w", err)
	}
	fmt.Fprintf(console, "\nA new backup repository was set up. Its password, needed to read the backups anywhere "+
		"else, is:\n\n    %s\n\nIt is stored in %s; keep a copy somewhere safe.\n\n", p, path)
	return p, nil
}

// RestoreDataDir fills a new data directory with a catalog copy and its secret.key (either may be nil: not
// restored) and stores the repository password, as catalog:rebuild does. It never overwrites: an existing
// catalog or secret.key is an error, an existing password file is kept.
func RestoreDataDir(dataDir string, catalog, secret []byte, password string) error {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{SecretFileName, secret}, {CatalogFileName, catalog}} {
		if f.data == nil {
			continue
		}
		if err := writeFileExclusive(filepath.Join(dataDir, f.name), f.data, 0o600); err != nil {
			return fmt.Errorf("restore %s: %w", f.name, err)
		}
	}
	err := writeFileExclusive(filepath.Join(dataDir, RepoPasswordFile), []byte(password+"\n"), 0o600)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("store repository password: %w", err)
	}
	return nil
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

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// CatalogFiles returns a consistent copy of the catalog (VACUUM INTO a temporary file in dataDir) and the
// secret.key of dataDir, by file name (CatalogFileName, SecretFileName).
func CatalogFiles(ctx context.Context, catalog *DB, dataDir string) (map[string][]byte, error) {
	tmp, err := os.MkdirTemp(dataDir, ".catalog-copy-*")
	if err != nil {
		return nil, fmt.Errorf("copy catalog: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := catalog.CopyTo(ctx, filepath.Join(tmp, CatalogFileName)); err != nil {
		return nil, err
	}
	dbBytes, err := os.ReadFile(filepath.Join(tmp, CatalogFileName))
	if err != nil {
		return nil, fmt.Errorf("copy catalog: %w", err)
	}
	secret, err := os.ReadFile(filepath.Join(dataDir, SecretFileName))
	if err != nil {
		return nil, fmt.Errorf("copy secret.key: %w", err)
	}
	return map[string][]byte{CatalogFileName: dbBytes, SecretFileName: secret}, nil
}

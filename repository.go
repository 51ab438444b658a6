package main

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/kopia/kopia/repo/blob"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/files"
	"github.com/rewind/rewind/backup/mysql"
	"github.com/rewind/rewind/backup/postgres"
	"github.com/rewind/rewind/backup/redis"
	"github.com/rewind/rewind/backup/s3"
	"github.com/rewind/rewind/backup/sqlite"
)

// repoPasswordFile holds the generated repository password in the data directory (0600). Whoever has it (or
// REWIND_REPO_PASSWORD) and the storage can read every backup, with Rewind or the stock kopia tool.
const repoPasswordFile = "repo.password"

// drivers are the engine's service types.
func drivers() map[string]backup.Driver {
	return map[string]backup.Driver{
		backup.TypePostgreSQL: postgres.New,
		backup.TypeMySQL:      mysql.New,
		backup.TypeRedis:      redis.New,
		backup.TypeSQLite:     sqlite.Driver,
		backup.TypeFiles: func(s backup.ServiceSpec) (backup.Source, error) {
			return files.New(s.Path, s.Exclude)
		},
	}
}

// storageFor parses --storage: "" (the data directory's repo/), file:///path or
// s3://BUCKET/PREFIX?endpoint=URL&region=REGION&path_style=true (credentials from the AWS chain). The returned
// description never holds credentials.
func storageFor(raw, dataDir string) (backup.StorageOpener, string, error) {
	if raw == "" {
		dir := filepath.Join(dataDir, "repo")
		return backup.FileStorage(dir), "file://" + dir, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, "", fmt.Errorf("--storage %q: %w", raw, err)
	}
	switch u.Scheme {
	case "file":
		if u.Path == "" || !filepath.IsAbs(u.Path) {
			return nil, "", fmt.Errorf("--storage %q: want file:///absolute/path", raw)
		}
		return backup.FileStorage(u.Path), "file://" + u.Path, nil
	case "s3":
		opts, err := s3.ParseURL(raw)
		if err != nil {
			return nil, "", fmt.Errorf("--storage: %w", err)
		}
		s3.Register() // so kopia can reopen the storage from its config
		return func(ctx context.Context, _ bool) (blob.Storage, error) { return s3.New(ctx, opts) }, opts.URL(), nil
	}
	return nil, "", fmt.Errorf("--storage %q: unknown scheme %q: use file:///path or s3://BUCKET/PREFIX", raw, u.Scheme)
}

// repoPassword returns REWIND_REPO_PASSWORD, or the password stored in the data directory, or a new one it
// generates, stores and prints once on console.
func repoPassword(dataDir string, getenv func(string) string, console io.Writer) (string, error) {
	if p := getenv("REWIND_REPO_PASSWORD"); p != "" {
		return p, nil
	}
	path := filepath.Join(dataDir, repoPasswordFile)
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

// openRepository opens (creating on first start) the backup repository of the data directory. wrap, when not
// nil, wraps the storage (Main reads from the copy target when the primary is down).
func openRepository(ctx context.Context, dataDir, storage string, getenv func(string) string, console io.Writer,
	wrap func(backup.StorageOpener) backup.StorageOpener,
) (*backup.Repository, string, error) {
	opener, where, err := storageFor(storage, dataDir)
	if err != nil {
		return nil, "", err
	}
	if wrap != nil {
		opener = wrap(opener)
	}
	password, err := repoPassword(dataDir, getenv, console)
	if err != nil {
		return nil, "", err
	}
	r, err := backup.OpenRepository(ctx, backup.RepositoryOptions{
		Storage: opener, Password: password, ConfigDir: filepath.Join(dataDir, "kopia"),
	})
	if err != nil {
		if errors.Is(err, backup.ErrWrongPassword) {
			return nil, "", fmt.Errorf("open the backup repository at %s: %w: set REWIND_REPO_PASSWORD to the "+
				"password shown when it was created", where, err)
		}
		return nil, "", fmt.Errorf("open the backup repository at %s: %w", where, err)
	}
	return r, where, nil
}

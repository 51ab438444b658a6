package backup_test

import (
	"context"
	"testing"

	"github.com/kopia/kopia/repo"

	"github.com/rewind/rewind/backup"
)

// contentHash is the content hash function of r's repository format.
func contentHash(t *testing.T, r *backup.Repository) string {
	t.Helper()
	dr, ok := r.Kopia().(repo.DirectRepository)
	if !ok {
		t.Fatalf("repository %T is not direct", r.Kopia())
	}
	return dr.FormatManager().GetHashFunction()
}

// TestRepositoryCreatedByOlderRewind: a repository created with kopia's default format (as Rewind did before)
// keeps it, and restores backups written before and after it is reopened.
func TestRepositoryCreatedByOlderRewind(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	const password = "correct horse battery staple"
	st, err := backup.FileStorage(dir+"/repo")(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.Initialize(ctx, st, &repo.NewRepositoryOptions{}, password); err != nil {
		t.Fatalf("Initialize: %v", err)
	}
	st.Close(ctx) //nolint:errcheck

	env := newMemEnv()
	open := func() *backup.Engine {
		t.Helper()
		r, err := backup.OpenRepository(ctx, backup.RepositoryOptions{
			Storage: backup.FileStorage(dir + "/repo"), Password: password, ConfigDir: dir + "/kopia",
		})
		if err != nil {
			t.Fatalf("OpenRepository: %v", err)
		}
		return &backup.Engine{Repo: r, Drivers: map[string]backup.Driver{"mem": env.driver}}
	}
	backupOf := func(e *backup.Engine, value string) *backup.Manifest {
		t.Helper()
		env.set("db", value)
		m, err := e.Backup(ctx, backup.BackupRequest{Environment: "main", Kind: backup.KindManual, Services: memSpecs("db")}, nil)
		if err != nil {
			t.Fatalf("Backup: %v", err)
		}
		return m
	}

	first := open()
	before := randomString(1 << 20)
	m1 := backupOf(first, before)
	if err := first.Repo.Close(ctx); err != nil {
		t.Fatal(err)
	}

	e := open()
	t.Cleanup(func() { e.Repo.Close(context.Background()) })
	if got, want := contentHash(t, e.Repo), "BLAKE2B-256-128"; got != want {
		t.Fatalf("content hash of the older repository = %q, want %q (kept)", got, want)
	}
	after := randomString(1 << 20)
	m2 := backupOf(e, after)
	for _, c := range []struct {
		m    *backup.Manifest
		want string
	}{{m1, before}, {m2, after}} {
		if err := e.VerifyBackup(ctx, c.m.ID, nil); err != nil {
			t.Fatalf("VerifyBackup %s: %v", c.m.ID, err)
		}
		env.set("db", "")
		if _, err := e.Restore(ctx, backup.RestoreRequest{ID: c.m.ID, Services: memSpecs("db")}, nil); err != nil {
			t.Fatalf("Restore %s: %v", c.m.ID, err)
		}
		if got := env.get("db"); got != c.want {
			t.Fatalf("restored %d bytes, want the %d backed up", len(got), len(c.want))
		}
	}
}

package backup_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	mathrand "math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/files"
)

// encodedText is n bytes of base64 of random bytes: text with no repeated strings, which only entropy coding
// compresses (to 3/4).
func encodedText(n int) string {
	b := make([]byte, n*3/4)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)[:n]
}

// TestFilesCompression: the files of a files service are entropy-coded (base64 stored at about 3/4 of its
// size), database streams keep the repository's faster zstd (which stores such text as is), and both restore.
func TestFilesCompression(t *testing.T) {
	ctx := context.Background()
	const size = 2 << 20
	mount := t.TempDir()
	text := encodedText(size)
	if err := os.WriteFile(filepath.Join(mount, "mail.eml"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	env := newMemEnv()
	dump := encodedText(size)
	env.set("db", dump)
	e := &backup.Engine{Repo: openTestRepo(t, t.TempDir()), Drivers: map[string]backup.Driver{
		backup.TypeFiles: files.Driver, "mem": env.driver,
	}}
	backupOf := func(spec backup.ServiceSpec) *backup.Manifest {
		t.Helper()
		m, err := e.Backup(ctx, backup.BackupRequest{Environment: "main", Kind: backup.KindManual,
			Services: []backup.ServiceSpec{spec}}, nil)
		if err != nil {
			t.Fatalf("Backup %s: %v", spec.Name, err)
		}
		return m
	}

	filesSpec := backup.ServiceSpec{Name: "uploads", Type: backup.TypeFiles, Path: mount}
	mf := backupOf(filesSpec)
	if got, most := mf.StoredBytes, int64(size*3/4+storedSlack); got > most {
		t.Fatalf("stored %d bytes for %d bytes of base64 in a files service, want at most %d", got, size, most)
	}
	md := backupOf(memSpecs("db")[0])
	if got, least := md.StoredBytes, int64(size); got < least {
		// If kopia's zstd now codes it, DefaultFilesCompression may no longer be worth its CPU time.
		t.Fatalf("stored %d bytes for %d bytes of base64 in a database stream, want the whole (zstd)", got, size)
	}

	if err := os.Remove(filepath.Join(mount, "mail.eml")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Restore(ctx, backup.RestoreRequest{ID: mf.ID, Services: []backup.ServiceSpec{filesSpec}}, nil); err != nil {
		t.Fatalf("Restore files: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(mount, "mail.eml")); err != nil || string(got) != text {
		t.Fatalf("restored file: %d bytes (%v), want the %d backed up", len(got), err, len(text))
	}
	env.set("db", "")
	if _, err := e.Restore(ctx, backup.RestoreRequest{ID: md.ID, Services: memSpecs("db")}, nil); err != nil {
		t.Fatalf("Restore db: %v", err)
	}
	if got := env.get("db"); got != dump {
		t.Fatalf("restored %d bytes of the stream, want the %d backed up", len(got), len(dump))
	}
}

// TestFilesSplitter: the files of a files service are cut into contents of at most 2 MiB (FilesSplitter), so a
// one-byte change in the middle of a large file uploads one such content again, not the up to 8 MiB of the
// repository's splitter.
func TestFilesSplitter(t *testing.T) {
	ctx := context.Background()
	mount := t.TempDir()
	data := make([]byte, 16<<20)
	mathrand.New(mathrand.NewSource(7)).Read(data) //nolint:gosec // seeded: the same chunks every run
	path := filepath.Join(mount, "video.bin")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	e := &backup.Engine{Repo: openTestRepo(t, t.TempDir()), Drivers: map[string]backup.Driver{backup.TypeFiles: files.Driver}}
	spec := backup.ServiceSpec{Name: "uploads", Type: backup.TypeFiles, Path: mount}
	req := backup.BackupRequest{Environment: "main", Kind: backup.KindManual, Services: []backup.ServiceSpec{spec}}
	if _, err := e.Backup(ctx, req, nil); err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := e.Backup(ctx, req, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, most := m.StoredBytes, int64(2<<20+storedSlack); got > most {
		t.Fatalf("a one-byte change in a 16 MiB file stored %d bytes, want at most %d (one content of at most 2 MiB)", got, most)
	}
}

package storagetest_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kopia/kopia/fs"
	"github.com/kopia/kopia/repo"
	"github.com/kopia/kopia/repo/blob"
	kopias3 "github.com/kopia/kopia/repo/blob/s3"
	"github.com/kopia/kopia/snapshot"
	"github.com/kopia/kopia/snapshot/snapshotfs"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/files"
	"github.com/rewind/rewind/backup/s3"
	"github.com/rewind/rewind/backup/storagetest"
)

// TestKopiaOpensRewindBucket: a bucket Rewind wrote through its S3 storage opens with kopia's own S3 storage
// (minio-go, what `kopia repository connect s3` uses) and the repository password, and its snapshot holds the
// backup's rewind.json.
func TestKopiaOpensRewindBucket(t *testing.T) {
	s3.Register()
	srv := storagetest.StartS3(t)
	opts := srv.Bucket(t, "rewind/")
	ctx := storagetest.Context(t)
	const password = "kopia compatibility"
	tree := t.TempDir()
	if err := os.WriteFile(filepath.Join(tree, "hello.txt"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := backup.OpenRepository(ctx, backup.RepositoryOptions{
		Storage:  func(ctx context.Context, _ bool) (blob.Storage, error) { return s3.New(ctx, opts) },
		Password: password, ConfigDir: filepath.Join(t.TempDir(), "rewind"),
	})
	if err != nil {
		t.Fatal(err)
	}
	e := &backup.Engine{Repo: r, Drivers: map[string]backup.Driver{
		backup.TypeFiles: func(s backup.ServiceSpec) (backup.Source, error) { return files.New(s.Path, s.Exclude) },
	}}
	m, err := e.Backup(ctx, backup.BackupRequest{Environment: "main", Kind: backup.KindManual, Live: true,
		Services: []backup.ServiceSpec{{Name: "uploads", Type: backup.TypeFiles, Path: tree}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Close(ctx) //nolint:errcheck

	st, err := kopias3.New(ctx, &kopias3.Options{
		BucketName: opts.Bucket, Prefix: opts.Prefix, Endpoint: strings.TrimPrefix(srv.Endpoint, "http://"),
		DoNotUseTLS: true, AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey, Region: "us-east-1",
	}, false)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "kopia.config")
	if err := repo.Connect(ctx, cfg, st, password, &repo.ConnectOptions{}); err != nil {
		t.Fatalf("kopia's s3 storage cannot connect to the bucket Rewind wrote: %v", err)
	}
	kr, err := repo.Open(ctx, cfg, password, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer kr.Close(ctx) //nolint:errcheck
	srcs, err := snapshot.ListSources(ctx, kr)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, src := range srcs {
		if src.Path != "/rewind/main" {
			continue
		}
		mans, err := snapshot.ListSnapshots(ctx, kr, src)
		if err != nil || len(mans) != 1 {
			t.Fatalf("snapshots of %v = %d, %v", src, len(mans), err)
		}
		root := snapshotfs.EntryFromDirEntry(kr, mans[0].RootEntry).(fs.Directory)
		ent, err := root.Child(ctx, backup.ManifestFile)
		if err != nil {
			t.Fatalf("%s not in the snapshot kopia reads: %v", backup.ManifestFile, err)
		}
		rd, err := ent.(fs.File).Open(ctx)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1<<16)
		n, _ := rd.Read(buf)
		rd.Close()
		if !strings.Contains(string(buf[:n]), m.ID) {
			t.Fatalf("rewind.json read by kopia does not name backup %s", m.ID)
		}
		found = true
	}
	if !found {
		t.Fatalf("kopia lists no snapshot of rewind@rewind:/rewind/main among %v", srcs)
	}
}

package storagetest_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/kopia/kopia/repo/blob"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/files"
	"github.com/rewind/rewind/backup/s3"
	"github.com/rewind/rewind/backup/storagetest"
)

// benchTree writes mb MiB of incompressible files (a few large, many small) under dir.
func benchTree(b *testing.B, dir string, mb int) int64 {
	rnd := rand.New(rand.NewPCG(42, 1))
	var total int64
	for i := 0; total < int64(mb)<<20; i++ {
		n := 4<<10 + rnd.IntN(60<<10)
		if i%40 == 0 {
			n = 4<<20 + rnd.IntN(4<<20)
		}
		buf := make([]byte, n)
		for j := range buf {
			buf[j] = byte(rnd.Uint32())
		}
		p := filepath.Join(dir, fmt.Sprintf("d%d", i%9), fmt.Sprintf("f%05d", i))
		os.MkdirAll(filepath.Dir(p), 0o755) //nolint:errcheck
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			b.Fatal(err)
		}
		total += int64(n)
	}
	return total
}

// BenchmarkThroughput backs up and restores one generated tree (REWIND_BENCH_MB MiB, default 64) through the
// engine into a new repository on local disk and on a local versitygw, so the two can be compared in one run
// (bench/storage.sh prints the ratios). Each iteration uses a fresh repository: nothing is deduplicated
// against an earlier iteration.
func BenchmarkThroughput(b *testing.B) {
	mb := 64
	if v, err := strconv.Atoi(os.Getenv("REWIND_BENCH_MB")); err == nil && v > 0 {
		mb = v
	}
	s3.Register()
	outer := b // repositories live until the restores are done
	tree := filepath.Join(b.TempDir(), "tree")
	size := benchTree(b, tree, mb)
	srv := storagetest.StartS3(b)
	storages := []struct {
		name string
		open func() backup.StorageOpener
	}{
		{"local", func() backup.StorageOpener { return backup.FileStorage(filepath.Join(outer.TempDir(), "repo")) }},
		{"s3", func() backup.StorageOpener {
			opts := srv.Bucket(outer, "repo/")
			return func(ctx context.Context, _ bool) (blob.Storage, error) { return s3.New(ctx, opts) }
		}},
	}
	services := []backup.ServiceSpec{{Name: "files", Type: backup.TypeFiles, Path: tree}}
	drivers := map[string]backup.Driver{
		backup.TypeFiles: func(s backup.ServiceSpec) (backup.Source, error) { return files.New(s.Path, s.Exclude) },
	}
	for _, st := range storages {
		var ids []string
		var engines []*backup.Engine
		b.Run(st.name+"/backup", func(b *testing.B) {
			b.SetBytes(size)
			for range b.N {
				b.StopTimer()
				ctx := context.Background()
				r, err := backup.OpenRepository(ctx, backup.RepositoryOptions{Storage: st.open(), Password: "bench",
					ConfigDir: filepath.Join(outer.TempDir(), "kopia")})
				if err != nil {
					b.Fatal(err)
				}
				outer.Cleanup(func() { r.Close(context.Background()) }) //nolint:errcheck // restores use it later
				e := &backup.Engine{Repo: r, Drivers: drivers}
				b.StartTimer()
				m, err := e.Backup(ctx, backup.BackupRequest{Environment: "bench", Kind: backup.KindManual, Live: true, Services: services}, nil)
				if err != nil {
					b.Fatal(err)
				}
				ids, engines = append(ids, m.ID), append(engines, e)
			}
		})
		b.Run(st.name+"/restore", func(b *testing.B) {
			b.SetBytes(size)
			for i := range b.N {
				e, id := engines[i%len(engines)], ids[i%len(ids)]
				res, err := e.Restore(context.Background(), backup.RestoreRequest{ID: id, Services: services}, nil)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				for _, r := range res.Replaced {
					r.Replaced.Discard(context.Background()) //nolint:errcheck
				}
				b.StartTimer()
			}
		})
	}
}

package filesnap

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/files"
	"github.com/rewind/rewind/backup/pitr"
	"github.com/rewind/rewind/backup/pitr/pitrtest"
)

// BenchmarkUnchangedTick is the cost of one snapshot of an unchanged mount of 10,000 files (100 MB) in 100
// directories: what following a quiet mount costs every minute (the target: about 0.1 s).
func BenchmarkUnchangedTick(b *testing.B) {
	root := filepath.Join(b.TempDir(), "mount")
	buf := make([]byte, 10<<10)
	for d := range 100 {
		dir := filepath.Join(root, fmt.Sprintf("d%03d", d))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := range 100 {
			buf[0], buf[1] = byte(d), byte(f)
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d", f)), buf, 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	dir := b.TempDir()
	rep, err := backup.OpenRepository(context.Background(), backup.RepositoryOptions{
		Storage: backup.FileStorage(filepath.Join(dir, "repo")), Password: "pw", ConfigDir: filepath.Join(dir, "kopia"),
	})
	if err != nil {
		b.Fatal(err)
	}
	defer rep.Close(context.Background())
	src, err := files.New(root, nil)
	if err != nil {
		b.Fatal(err)
	}
	rec := &pitrtest.Record{}
	f := &follower{spec: pitr.FollowSpec{Environment: "main", Service: backup.ServiceSpec{Name: "m", Type: "files", Path: root},
		Repo: rep, Record: rec}, src: src, run: 1, now: time.Now}
	ctx := backup.WithScratch(context.Background(), "pitr")
	if err := f.tick(ctx); err != nil { // the first tree reads everything
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if err := f.tick(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if n := len(rec.Segments()); n != 1 {
		b.Fatalf("%d trees saved, want 1: an unchanged mount saves none", n)
	}
}

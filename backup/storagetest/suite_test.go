package storagetest_test

import (
	"testing"

	"github.com/kopia/kopia/repo/blob"
	"github.com/kopia/kopia/repo/blob/filesystem"

	"github.com/rewind/rewind/backup/s3"
	"github.com/rewind/rewind/backup/storagetest"
)

func TestFilesystemStorage(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) blob.Storage {
		st, err := filesystem.New(storagetest.Context(t), &filesystem.Options{Path: t.TempDir()}, true)
		if err != nil {
			t.Fatal(err)
		}
		return st
	})
}

func TestS3Storage(t *testing.T) {
	s3.Register()
	srv := storagetest.StartS3(t)
	for _, prefix := range []string{"", "team/repo/"} {
		t.Run("prefix="+prefix, func(t *testing.T) {
			storagetest.Run(t, func(t *testing.T) blob.Storage {
				opts := srv.Bucket(t, prefix)
				opts.ListPageSize = 7 // exercise pagination
				st, err := s3.New(storagetest.Context(t), opts)
				if err != nil {
					t.Fatal(err)
				}
				return st
			})
		})
	}
}

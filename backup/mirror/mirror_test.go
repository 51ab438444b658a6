package mirror_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/kopia/kopia/repo/blob"
	"github.com/kopia/kopia/repo/blob/filesystem"

	"github.com/rewind/rewind/backup/mirror"
	"github.com/rewind/rewind/backup/storagetest"
)

func fsStorage(t *testing.T) blob.Storage {
	st, err := filesystem.New(context.Background(), &filesystem.Options{Path: t.TempDir()}, true)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestSync(t *testing.T) {
	ctx := context.Background()
	src, dst := fsStorage(t), fsStorage(t)
	put := func(st blob.Storage, id blob.ID, data string) {
		if err := st.PutBlob(ctx, id, storagetest.Bytes(data), blob.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	put(src, "kopia.repository", "format")
	put(src, "p0001", "pack one")
	put(src, "q0002", "meta pack")
	put(src, "xn0_0003", "index")
	put(dst, "p0001", "pack one")     // already there
	put(dst, "zz-stale", "collected") // gone from the source

	var order []string
	st, err := mirror.Sync(ctx, src, recorder{dst, &order}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Blobs != 4 || st.Copied != 3 || st.Deleted != 1 {
		t.Fatalf("Sync = %+v, want 4 blobs, 3 copied, 1 deleted", st)
	}
	if got := order; len(got) != 3 || got[0] != "q0002" || got[2] != "kopia.repository" {
		t.Fatalf("copy order = %v, want packs first and the format blob last", got)
	}
	for _, id := range []blob.ID{"kopia.repository", "p0001", "q0002", "xn0_0003"} {
		a, _ := storagetest.Get(ctx, src, id)
		b, err := storagetest.Get(ctx, dst, id)
		if err != nil || !bytes.Equal(a, b) {
			t.Fatalf("%s in the copy = %q, %v; want %q", id, b, err, a)
		}
	}
	if ids, _ := storagetest.List(ctx, dst, "zz"); len(ids) != 0 {
		t.Fatalf("stale blob still in the copy: %v", ids)
	}
	// nothing new: nothing copied
	if st, err := mirror.Sync(ctx, src, dst, 2, nil); err != nil || st.Copied != 0 || st.Deleted != 0 {
		t.Fatalf("second Sync = %+v, %v; want nothing to do", st, err)
	}
}

type recorder struct {
	blob.Storage
	order *[]string
}

func (r recorder) PutBlob(ctx context.Context, id blob.ID, data blob.Bytes, opts blob.PutOptions) error {
	*r.order = append(*r.order, string(id))
	return r.Storage.PutBlob(ctx, id, data, opts)
}

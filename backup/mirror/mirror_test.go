package mirror_test

import (
	"bytes"
	"context"
	"errors"
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
	put(dst, "p0001", "pack one") // already there (an interrupted first sync)

	var order []string
	st, err := mirror.Sync(ctx, src, recorder{dst, &order}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Blobs != 4 || st.Copied != 3 || st.Deleted != 0 {
		t.Fatalf("Sync = %+v, want 4 blobs, 3 copied", st)
	}
	// maintenance collects a blob in the primary: the next sync removes it from the copy
	put(dst, "zz-stale", "collected")
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
	if st, err := mirror.Sync(ctx, src, dst, 2, nil); err != nil || st.Deleted != 1 {
		t.Fatalf("Sync after a blob was collected = %+v, %v; want 1 deleted", st, err)
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

func TestSyncRefusesAnotherRepository(t *testing.T) {
	ctx := context.Background()
	src, dst := fsStorage(t), fsStorage(t)
	src.PutBlob(ctx, "kopia.repository", storagetest.Bytes("repository A"), blob.PutOptions{}) //nolint:errcheck
	dst.PutBlob(ctx, "kopia.repository", storagetest.Bytes("repository B"), blob.PutOptions{}) //nolint:errcheck
	dst.PutBlob(ctx, "p0001", storagetest.Bytes("B's data"), blob.PutOptions{})                //nolint:errcheck
	if _, err := mirror.Sync(ctx, src, dst, 2, nil); !errors.Is(err, mirror.ErrOtherRepository) {
		t.Fatalf("Sync onto another repository = %v, want ErrOtherRepository", err)
	}
	if got, _ := storagetest.Get(ctx, dst, "p0001"); string(got) != "B's data" {
		t.Fatal("Sync deleted the other repository's data")
	}
}

// TestFailoverReadsTheCopy: reads go to the copy when the primary fails (not when a blob is missing), writes
// never do.
func TestFailoverReadsTheCopy(t *testing.T) {
	ctx := context.Background()
	primary, cp := fsStorage(t), fsStorage(t)
	cp.PutBlob(ctx, "p1", storagetest.Bytes("from the copy"), blob.PutOptions{})         //nolint:errcheck
	primary.PutBlob(ctx, "p1", storagetest.Bytes("from the primary"), blob.PutOptions{}) //nolint:errcheck
	down := &broken{Storage: primary}
	f := mirror.NewFailover(down, cp)
	if got, _ := storagetest.Get(ctx, f, "p1"); string(got) != "from the primary" {
		t.Fatalf("read with the primary up = %q", got)
	}
	if _, err := storagetest.Get(ctx, f, "p2"); !errors.Is(err, blob.ErrBlobNotFound) {
		t.Fatalf("missing blob = %v, want not found (from the primary, no fallback)", err)
	}
	down.fail = true
	if got, err := storagetest.Get(ctx, f, "p1"); err != nil || string(got) != "from the copy" {
		t.Fatalf("read with the primary down = %q, %v; want the copy's", got, err)
	}
	if ids, err := storagetest.List(ctx, f, ""); err != nil || len(ids) != 1 {
		t.Fatalf("list with the primary down = %v, %v", ids, err)
	}
	if err := f.PutBlob(ctx, "p3", storagetest.Bytes("x"), blob.PutOptions{}); err == nil {
		t.Fatal("write with the primary down succeeded")
	}
	if _, err := cp.GetMetadata(ctx, "p3"); !errors.Is(err, blob.ErrBlobNotFound) {
		t.Fatal("a write went to the copy")
	}
}

type broken struct {
	blob.Storage
	fail bool
}

var errDown = errors.New("connection refused")

func (b *broken) GetBlob(ctx context.Context, id blob.ID, off, n int64, out blob.OutputBuffer) error {
	if b.fail {
		return errDown
	}
	return b.Storage.GetBlob(ctx, id, off, n, out)
}

func (b *broken) ListBlobs(ctx context.Context, p blob.ID, cb func(blob.Metadata) error) error {
	if b.fail {
		return errDown
	}
	return b.Storage.ListBlobs(ctx, p, cb)
}

func (b *broken) PutBlob(ctx context.Context, id blob.ID, d blob.Bytes, o blob.PutOptions) error {
	if b.fail {
		return errDown
	}
	return b.Storage.PutBlob(ctx, id, d, o)
}

func TestSyncRefusesOtherData(t *testing.T) {
	ctx := context.Background()
	src, dst := fsStorage(t), fsStorage(t)
	src.PutBlob(ctx, "kopia.repository", storagetest.Bytes("repository A"), blob.PutOptions{}) //nolint:errcheck
	dst.PutBlob(ctx, "someone-elses-file", storagetest.Bytes("keep me"), blob.PutOptions{})    //nolint:errcheck
	if _, err := mirror.Sync(ctx, src, dst, 2, nil); !errors.Is(err, mirror.ErrOtherRepository) {
		t.Fatalf("Sync onto other data = %v, want ErrOtherRepository", err)
	}
	if got, _ := storagetest.Get(ctx, dst, "someone-elses-file"); string(got) != "keep me" {
		t.Fatal("Sync deleted data it did not write")
	}
}

// Package storagetest is the contract suite every repository storage (a kopia blob.Storage) runs, restic-style:
// one suite, every storage; plus helpers that start a real S3-compatible server (versitygw) on a free loopback
// port and put faults (5xx, timeouts, truncated reads) between a client and it.
package storagetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kopia/kopia/repo/blob"
)

// Bytes is a blob.Bytes over a byte slice.
type Bytes []byte

// Length implements blob.Bytes.
func (b Bytes) Length() int { return len(b) }

// Reader implements blob.Bytes.
func (b Bytes) Reader() io.ReadSeekCloser { return nopCloser{bytes.NewReader(b)} }

// WriteTo implements blob.Bytes.
func (b Bytes) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(b)
	return int64(n), err
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

// Buffer is a blob.OutputBuffer.
type Buffer struct{ bytes.Buffer }

// Length implements blob.OutputBuffer.
func (b *Buffer) Length() int { return b.Len() }

// Context returns a context for one test with a generous deadline.
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// Get reads a whole blob.
func Get(ctx context.Context, st blob.Storage, id blob.ID) ([]byte, error) {
	var b Buffer
	err := st.GetBlob(ctx, id, 0, -1, &b)
	return b.Bytes(), err
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b) //nolint:errcheck
	return b
}

// List returns the ids with prefix, sorted.
func List(ctx context.Context, st blob.Storage, prefix blob.ID) ([]blob.ID, error) {
	var mu sync.Mutex
	var ids []blob.ID
	err := st.ListBlobs(ctx, prefix, func(md blob.Metadata) error {
		mu.Lock()
		ids = append(ids, md.BlobID)
		mu.Unlock()
		return nil
	})
	slices.Sort(ids)
	return ids, err
}

// Run runs the contract on a fresh, empty storage made by open. open is called more than once (the suite
// checks that ConnectionInfo reopens the same storage with blob.NewStorage, so the storage type must be
// registered).
//
// The contract, as kopia relies on it:
//   - GetBlob and GetMetadata of a missing blob fail with blob.ErrBlobNotFound (wrapped is fine), and GetBlob
//     leaves the output empty;
//   - GetBlob(id, 0, -1) reads the whole blob, (id, off, n) exactly n bytes from off, (id, 0, 0) nothing but
//     checks existence; a negative offset or a range past the end fails (blob.ErrInvalidRange);
//   - PutBlob replaces an existing blob; blobs of 0 bytes and of several MiB round-trip;
//   - ListBlobs reports every blob whose id starts with the prefix, once, with its length and a timestamp
//     near the write; an error from the callback stops it and is returned;
//   - DeleteBlob removes a blob, and succeeds for a missing one.
func Run(t *testing.T, open func(t *testing.T) blob.Storage) {
	st := open(t)
	ctx := Context(t)

	blobs := map[blob.ID][]byte{
		"abcdef0001":       {},
		"abcdef0002":       {1},
		"abxyz0003":        random(1000),
		"q0004":            random(3 << 20),
		"kopia.repository": bytes.Repeat([]byte{2}, 100),
	}
	ids := make([]blob.ID, 0, len(blobs))
	for id := range blobs {
		ids = append(ids, id)
	}
	slices.Sort(ids)

	t.Run("NotFound", func(t *testing.T) {
		for _, id := range ids {
			var b Buffer
			if err := st.GetBlob(ctx, id, 0, -1, &b); !errors.Is(err, blob.ErrBlobNotFound) || b.Len() != 0 {
				t.Fatalf("GetBlob(%s) on empty storage = %d bytes, %v; want ErrBlobNotFound", id, b.Len(), err)
			}
			if err := st.GetBlob(ctx, id, 1, 1, &b); !errors.Is(err, blob.ErrBlobNotFound) {
				t.Fatalf("GetBlob(%s, 1, 1) on empty storage = %v; want ErrBlobNotFound", id, err)
			}
			if _, err := st.GetMetadata(ctx, id); !errors.Is(err, blob.ErrBlobNotFound) {
				t.Fatalf("GetMetadata(%s) on empty storage = %v; want ErrBlobNotFound", id, err)
			}
		}
		if err := st.DeleteBlob(ctx, "no-such-blob"); err != nil {
			t.Fatalf("DeleteBlob(missing) = %v, want nil", err)
		}
		if got, err := List(ctx, st, ""); err != nil || len(got) != 0 {
			t.Fatalf("List on empty storage = %v, %v; want nothing", got, err)
		}
	})

	before := time.Now()
	t.Run("Put", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, len(ids))
		for _, id := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := st.PutBlob(ctx, id, Bytes(blobs[id]), blob.PutOptions{}); err != nil {
					errs <- fmt.Errorf("PutBlob(%s): %w", id, err)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	})

	t.Run("Get", func(t *testing.T) {
		for _, id := range ids {
			want := blobs[id]
			got, err := Get(ctx, st, id)
			if err != nil {
				t.Fatalf("GetBlob(%s) = %v", id, err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("GetBlob(%s) = %d bytes, want the %d written", id, len(got), len(want))
			}
		}
	})

	t.Run("GetRange", func(t *testing.T) {
		for _, id := range ids {
			want := blobs[id]
			n := int64(len(want))
			var b Buffer
			if err := st.GetBlob(ctx, id, 0, 0, &b); err != nil || b.Len() != 0 {
				t.Fatalf("GetBlob(%s, 0, 0) = %d bytes, %v; want 0, nil", id, b.Len(), err)
			}
			if n < 2 {
				continue
			}
			for _, r := range [][2]int64{{0, n / 2}, {n / 2, n - n/2}, {1, n - 2}, {n - 1, 1}} {
				if err := st.GetBlob(ctx, id, r[0], r[1], &b); err != nil {
					t.Fatalf("GetBlob(%s, %d, %d) = %v", id, r[0], r[1], err)
				}
				if !bytes.Equal(b.Bytes(), want[r[0]:r[0]+r[1]]) {
					t.Fatalf("GetBlob(%s, %d, %d) returned other bytes", id, r[0], r[1])
				}
			}
			for _, r := range [][2]int64{{-3, 1}, {n, 3}, {n - 1, 3}, {n + 1, 3}} {
				if err := st.GetBlob(ctx, id, r[0], r[1], &b); err == nil {
					t.Fatalf("GetBlob(%s, %d, %d) past the end of %d bytes succeeded", id, r[0], r[1], n)
				}
			}
		}
	})

	t.Run("Metadata", func(t *testing.T) {
		for _, id := range ids {
			md, err := st.GetMetadata(ctx, id)
			if err != nil {
				t.Fatalf("GetMetadata(%s) = %v", id, err)
			}
			if md.BlobID != id || md.Length != int64(len(blobs[id])) {
				t.Fatalf("GetMetadata(%s) = %v, want id %s length %d", id, md, id, len(blobs[id]))
			}
			if d := md.Timestamp.Sub(before); d < -time.Minute || d > 5*time.Minute {
				t.Fatalf("GetMetadata(%s).Timestamp = %v, want near %v", id, md.Timestamp, before)
			}
		}
	})

	t.Run("List", func(t *testing.T) {
		for prefix, want := range map[blob.ID][]blob.ID{
			"":     ids,
			"ab":   {"abcdef0001", "abcdef0002", "abxyz0003"},
			"abcd": {"abcdef0001", "abcdef0002"},
			"q":    {"q0004"},
			"zz":   nil,
		} {
			lengths := map[blob.ID]int64{}
			err := st.ListBlobs(ctx, prefix, func(md blob.Metadata) error {
				if _, dup := lengths[md.BlobID]; dup {
					return fmt.Errorf("blob %s listed twice", md.BlobID)
				}
				lengths[md.BlobID] = md.Length
				return nil
			})
			if err != nil {
				t.Fatalf("ListBlobs(%q) = %v", prefix, err)
			}
			var got []blob.ID
			for id, n := range lengths {
				got = append(got, id)
				if n != int64(len(blobs[id])) {
					t.Fatalf("ListBlobs(%q) reports %s with %d bytes, want %d", prefix, id, n, len(blobs[id]))
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("ListBlobs(%q) = %v, want %v", prefix, got, want)
			}
		}
		stop := errors.New("stop here")
		calls := 0
		if err := st.ListBlobs(ctx, "", func(blob.Metadata) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
			t.Fatalf("ListBlobs with a failing callback = %v after %d calls, want the callback's error after 1", err, calls)
		}
	})

	t.Run("Overwrite", func(t *testing.T) {
		for _, id := range ids[:2] {
			next := random(777)
			if err := st.PutBlob(ctx, id, Bytes(next), blob.PutOptions{}); err != nil {
				t.Fatalf("PutBlob(%s) over an existing blob = %v", id, err)
			}
			if got, err := Get(ctx, st, id); err != nil || !bytes.Equal(got, next) {
				t.Fatalf("GetBlob(%s) after overwrite = %d bytes, %v; want the new 777", id, len(got), err)
			}
			blobs[id] = next
		}
	})

	t.Run("GetModTime", func(t *testing.T) {
		var mt time.Time
		if err := st.PutBlob(ctx, "mtime", Bytes("x"), blob.PutOptions{GetModTime: &mt}); err != nil {
			t.Fatal(err)
		}
		md, err := st.GetMetadata(ctx, "mtime")
		if err != nil {
			t.Fatal(err)
		}
		if mt.IsZero() || md.Timestamp.Sub(mt).Abs() > 2*time.Second {
			t.Fatalf("PutBlob GetModTime = %v, GetMetadata = %v; want the same time", mt, md.Timestamp)
		}
		if err := st.DeleteBlob(ctx, "mtime"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		for _, id := range []blob.ID{"abcdef0001", "abcdef0001", "q0004"} {
			if err := st.DeleteBlob(ctx, id); err != nil {
				t.Fatalf("DeleteBlob(%s) = %v", id, err)
			}
		}
		if _, err := Get(ctx, st, "q0004"); !errors.Is(err, blob.ErrBlobNotFound) {
			t.Fatalf("GetBlob after DeleteBlob = %v, want ErrBlobNotFound", err)
		}
		got, err := List(ctx, st, "")
		if err != nil {
			t.Fatal(err)
		}
		if want := []blob.ID{"abcdef0002", "abxyz0003", "kopia.repository"}; !slices.Equal(got, want) {
			t.Fatalf("List after deletes = %v, want %v", got, want)
		}
	})

	t.Run("Reopen", func(t *testing.T) {
		ci := st.ConnectionInfo()
		again, err := blob.NewStorage(ctx, ci, false)
		if err != nil {
			t.Fatalf("blob.NewStorage(%s ConnectionInfo) = %v (is the type registered?)", ci.Type, err)
		}
		defer again.Close(ctx) //nolint:errcheck
		if got, err := Get(ctx, again, "abxyz0003"); err != nil || !bytes.Equal(got, blobs["abxyz0003"]) {
			t.Fatalf("reopened storage reads %d bytes, %v; want the blob", len(got), err)
		}
		if name := again.DisplayName(); name == "" {
			t.Fatal("DisplayName is empty")
		}
	})

	t.Run("Many", func(t *testing.T) {
		// more blobs than a small list page, so listing must follow pagination
		var want []blob.ID
		for i := range 120 {
			id := blob.ID(fmt.Sprintf("m%04d", i))
			want = append(want, id)
			if err := st.PutBlob(ctx, id, Bytes{byte(i)}, blob.PutOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		got, err := List(ctx, st, "m")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("List(m) = %d ids, want %d", len(got), len(want))
		}
	})

	t.Run("Canceled", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := Get(cctx, st, "abxyz0003"); err == nil {
			t.Skip("storage does not look at the context for reads (a local filesystem need not)")
		} else if !errors.Is(err, context.Canceled) && !strings.Contains(err.Error(), "canceled") {
			t.Fatalf("GetBlob with a canceled context = %v, want context.Canceled", err)
		}
	})
}

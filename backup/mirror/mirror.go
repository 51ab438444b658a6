// Package mirror keeps a second copy of the repository in another storage by syncing blobs.
//
// Why blobs and not snapshots: kopia's blobs are immutable once written (packs and indexes are named by content
// or by a unique id), so a blob present in the copy under the same name and length is the same blob. Syncing
// them makes the copy a byte-identical kopia repository: it opens with the same password, with Rewind
// (`--storage` pointing at it) or the stock kopia tool, and each sync costs one listing of each side plus the new
// blobs only; deduplication is kept, nothing is decrypted or encrypted again. Copying snapshots between two
// repositories instead would re-read and re-write every file of every backup through a second repository.
package mirror

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/kopia/kopia/repo/blob"
)

// Stats counts what a Sync did.
type Stats struct {
	Blobs   int   // blobs in the source
	Copied  int   // blobs copied
	Bytes   int64 // bytes copied
	Deleted int   // blobs deleted from the destination (gone from the source)
}

// Progress is told about copied bytes; nil means none.
type Progress func(copied, total int64)

// Sync makes dst hold exactly the blobs of src. Blobs missing in dst (or of another length) are copied:
// content packs first, then the indexes and manifests, and the repository's format blobs last, so that a
// reader of dst never finds an index naming a pack that is not there and an interrupted first sync does not
// look like a repository. Then the blobs src no longer has (collected by maintenance) are deleted from dst.
// parallel blobs are copied at once (each held in memory: kopia's blobs are at most a few tens of MiB).
func Sync(ctx context.Context, src blob.Reader, dst blob.Storage, parallel int, progress Progress) (Stats, error) {
	var st Stats
	if parallel < 1 {
		parallel = 4
	}
	have, err := list(ctx, dst)
	if err != nil {
		return st, fmt.Errorf("list the copy: %w", err)
	}
	want, err := list(ctx, src)
	if err != nil {
		return st, fmt.Errorf("list the primary: %w", err)
	}
	if err := sameRepository(ctx, src, dst, have, want); err != nil {
		return st, err
	}
	st.Blobs = len(want)
	var todo []blob.Metadata
	var total int64
	for id, md := range want {
		if h, ok := have[id]; !ok || h.Length != md.Length {
			todo = append(todo, md)
			total += md.Length
		}
	}
	sort.Slice(todo, func(i, j int) bool {
		if a, b := phase(todo[i].BlobID), phase(todo[j].BlobID); a != b {
			return a < b
		}
		return todo[i].BlobID < todo[j].BlobID
	})
	var done int64
	var mu sync.Mutex
	for start := 0; start < len(todo); {
		end := start
		for end < len(todo) && phase(todo[end].BlobID) == phase(todo[start].BlobID) {
			end++
		}
		err := parallelEach(ctx, todo[start:end], parallel, func(md blob.Metadata) error {
			if err := copyBlob(ctx, src, dst, md.BlobID); err != nil {
				return err
			}
			mu.Lock()
			st.Copied++
			st.Bytes += md.Length
			done += md.Length
			if progress != nil {
				progress(done, total)
			}
			mu.Unlock()
			return nil
		})
		if err != nil {
			return st, err
		}
		start = end
	}
	for id := range have {
		if _, ok := want[id]; ok {
			continue
		}
		if err := dst.DeleteBlob(ctx, id); err != nil && !errors.Is(err, blob.ErrBlobNotFound) {
			return st, fmt.Errorf("delete %s from the copy: %w", id, err)
		}
		st.Deleted++
	}
	return st, nil
}

// formatBlob identifies a kopia repository (its unique id, encryption and format parameters).
const formatBlob blob.ID = "kopia.repository"

// ErrOtherRepository is returned by Sync when the destination holds another repository or other data: syncing
// would delete it.
var ErrOtherRepository = errors.New("the copy target holds another backup repository or other data")

// sameRepository refuses a destination that holds a repository other than the source's, or other data: Sync
// would delete it. A destination without a repository may only hold blobs of the source (an interrupted first
// sync).
func sameRepository(ctx context.Context, src blob.Reader, dst blob.Storage, have, want map[blob.ID]blob.Metadata) error {
	if _, ok := have[formatBlob]; !ok {
		for id := range have {
			if _, ok := want[id]; !ok {
				return fmt.Errorf("%w: it holds %s, which is not part of this repository: nothing was copied or "+
					"deleted; choose an empty bucket, prefix or directory", ErrOtherRepository, id)
			}
		}
		return nil
	}
	var a, b buffer
	if err := src.GetBlob(ctx, formatBlob, 0, -1, &a); err != nil {
		return fmt.Errorf("read the primary's %s: %w", formatBlob, err)
	}
	if err := dst.GetBlob(ctx, formatBlob, 0, -1, &b); err != nil {
		return fmt.Errorf("read the copy's %s: %w", formatBlob, err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		return fmt.Errorf("%w (a copy of an earlier repository?): nothing was copied or deleted; choose an empty "+
			"bucket, prefix or directory", ErrOtherRepository)
	}
	return nil
}

// phase orders the copy: content packs (p, q) first, then everything else, the format blobs last.
func phase(id blob.ID) int {
	switch {
	case strings.HasPrefix(string(id), "p"), strings.HasPrefix(string(id), "q"):
		return 0
	case strings.HasPrefix(string(id), "kopia."):
		return 2
	}
	return 1
}

func list(ctx context.Context, st blob.Lister) (map[blob.ID]blob.Metadata, error) {
	out := map[blob.ID]blob.Metadata{}
	var mu sync.Mutex
	err := st.ListBlobs(ctx, "", func(md blob.Metadata) error {
		mu.Lock()
		out[md.BlobID] = md
		mu.Unlock()
		return nil
	})
	return out, err
}

func parallelEach(ctx context.Context, mds []blob.Metadata, n int, fn func(blob.Metadata) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	work := make(chan blob.Metadata)
	var wg sync.WaitGroup
	for range min(n, len(mds)) {
		wg.Go(func() {
			for md := range work {
				if err := fn(md); err != nil {
					cancel(err)
				}
			}
		})
	}
feed:
	for _, md := range mds {
		select {
		case work <- md:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

func copyBlob(ctx context.Context, src blob.Reader, dst blob.Storage, id blob.ID) error {
	var buf buffer
	if err := src.GetBlob(ctx, id, 0, -1, &buf); err != nil {
		if errors.Is(err, blob.ErrBlobNotFound) {
			return nil // deleted by maintenance since the listing
		}
		return fmt.Errorf("read %s from the primary: %w", id, err)
	}
	if err := dst.PutBlob(ctx, id, bytesOf(buf.Bytes()), blob.PutOptions{}); err != nil {
		return fmt.Errorf("write %s to the copy: %w", id, err)
	}
	return nil
}

type buffer struct{ bytes.Buffer }

func (b *buffer) Length() int { return b.Len() }

type bytesOf []byte

func (b bytesOf) Length() int                        { return len(b) }
func (b bytesOf) Reader() io.ReadSeekCloser          { return readSeekNopCloser{bytes.NewReader(b)} }
func (b bytesOf) WriteTo(w io.Writer) (int64, error) { n, err := w.Write(b); return int64(n), err }

type readSeekNopCloser struct{ *bytes.Reader }

func (readSeekNopCloser) Close() error { return nil }

package mirror

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kopia/kopia/repo/blob"
)

// FailoverType is the storage type of a primary storage with a copy to read from when it is down.
const FailoverType = "rewind-failover"

// FailoverOptions are the ConnectionInfos of the two storages, so kopia can rebuild the pair from its config.
type FailoverOptions struct {
	Primary blob.ConnectionInfo `json:"primary"`
	Copy    blob.ConnectionInfo `json:"copy"`
}

var registerOnce sync.Once

// RegisterFailover makes the failover storage known to kopia (blob.AddSupportedStorage); the types of both
// storages must be registered too. Later calls do nothing.
func RegisterFailover() {
	registerOnce.Do(func() {
		blob.AddSupportedStorage(FailoverType, FailoverOptions{}, func(ctx context.Context, o *FailoverOptions, create bool) (blob.Storage, error) {
			cp, err := blob.NewStorage(ctx, o.Copy, false)
			if err != nil {
				return nil, fmt.Errorf("open the copy: %w", err)
			}
			primary, err := blob.NewStorage(ctx, o.Primary, create)
			if err != nil {
				primary = nil // read from the copy only; writes fail until the primary is back
			}
			return NewFailover(primary, cp), nil
		})
	})
}

// downFor is how long the primary is not asked again after it failed a read.
const downFor = 2 * time.Minute

// NewFailover returns a storage that writes to primary and reads from it, but reads from cp (a copy kept by
// Sync) when the primary fails for any reason other than a missing blob or a bad range: unreachable, 5xx after
// the retries, wrong credentials. After such a failure the primary is skipped for reads for a while. Writes
// and deletes only ever go to the primary: the copy must stay a copy. primary may be nil (it could not be
// opened): then every read goes to the copy and every write fails.
func NewFailover(primary, cp blob.Storage) blob.Storage {
	return &failover{primary: primary, copy: cp}
}

type failover struct {
	primary blob.Storage
	copy    blob.Storage

	mu        sync.Mutex
	downUntil time.Time
	lastErr   error
}

var errNoPrimary = errors.New("the primary storage could not be opened")

func (f *failover) up() bool {
	if f.primary == nil {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return time.Now().After(f.downUntil)
}

// fallBack reports whether a primary read error should be answered from the copy, and marks the primary down.
func (f *failover) fallBack(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil || errors.Is(err, blob.ErrBlobNotFound) || errors.Is(err, blob.ErrInvalidRange) {
		return false
	}
	f.mu.Lock()
	f.downUntil, f.lastErr = time.Now().Add(downFor), err
	f.mu.Unlock()
	return true
}

func (f *failover) GetBlob(ctx context.Context, id blob.ID, offset, length int64, output blob.OutputBuffer) error {
	if f.up() {
		err := f.primary.GetBlob(ctx, id, offset, length, output)
		if !f.fallBack(ctx, err) {
			return err
		}
	}
	output.Reset()
	return f.copy.GetBlob(ctx, id, offset, length, output)
}

func (f *failover) GetMetadata(ctx context.Context, id blob.ID) (blob.Metadata, error) {
	if f.up() {
		md, err := f.primary.GetMetadata(ctx, id)
		if !f.fallBack(ctx, err) {
			return md, err
		}
	}
	return f.copy.GetMetadata(ctx, id)
}

type cbError struct{ err error }

func (e *cbError) Error() string { return e.err.Error() }

func (f *failover) ListBlobs(ctx context.Context, prefix blob.ID, cb func(blob.Metadata) error) error {
	seen := map[blob.ID]bool{}
	var mu sync.Mutex
	once := func(md blob.Metadata) error {
		mu.Lock()
		dup := seen[md.BlobID]
		seen[md.BlobID] = true
		mu.Unlock()
		if dup {
			return nil
		}
		if err := cb(md); err != nil {
			return &cbError{err}
		}
		return nil
	}
	if f.up() {
		err := f.primary.ListBlobs(ctx, prefix, once)
		var ce *cbError
		if errors.As(err, &ce) {
			return ce.err
		}
		if !f.fallBack(ctx, err) {
			return err
		}
	}
	err := f.copy.ListBlobs(ctx, prefix, once)
	var ce *cbError
	if errors.As(err, &ce) {
		return ce.err
	}
	return err
}

func (f *failover) PutBlob(ctx context.Context, id blob.ID, data blob.Bytes, opts blob.PutOptions) error {
	if f.primary == nil {
		return errNoPrimary
	}
	return f.primary.PutBlob(ctx, id, data, opts)
}

func (f *failover) DeleteBlob(ctx context.Context, id blob.ID) error {
	if f.primary == nil {
		return errNoPrimary
	}
	return f.primary.DeleteBlob(ctx, id)
}

func (f *failover) ExtendBlobRetention(ctx context.Context, id blob.ID, opts blob.ExtendOptions) error {
	if f.primary == nil {
		return errNoPrimary
	}
	return f.primary.ExtendBlobRetention(ctx, id, opts)
}

func (f *failover) GetCapacity(ctx context.Context) (blob.Capacity, error) {
	if f.primary == nil {
		return blob.Capacity{}, blob.ErrNotAVolume
	}
	return f.primary.GetCapacity(ctx)
}

func (f *failover) IsReadOnly() bool { return f.primary == nil }

func (f *failover) FlushCaches(ctx context.Context) error {
	if f.primary == nil {
		return nil
	}
	return f.primary.FlushCaches(ctx)
}

func (f *failover) Close(ctx context.Context) error {
	var err error
	if f.primary != nil {
		err = f.primary.Close(ctx)
	}
	return errors.Join(err, f.copy.Close(ctx))
}

func (f *failover) ConnectionInfo() blob.ConnectionInfo {
	o := FailoverOptions{Copy: f.copy.ConnectionInfo()}
	if f.primary != nil {
		o.Primary = f.primary.ConnectionInfo()
	}
	return blob.ConnectionInfo{Type: FailoverType, Config: &o}
}

func (f *failover) DisplayName() string {
	name := "(primary not open)"
	if f.primary != nil {
		name = f.primary.DisplayName()
	}
	return name + ", reading from " + f.copy.DisplayName() + " when it is down"
}

// PrimaryDown returns the primary's last read failure while it is skipped, else nil.
func PrimaryDown(st blob.Storage) error {
	f, ok := st.(*failover)
	if !ok {
		return nil
	}
	if f.primary == nil {
		return errNoPrimary
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if time.Now().Before(f.downUntil) {
		return f.lastErr
	}
	return nil
}

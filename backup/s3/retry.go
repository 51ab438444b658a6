package s3

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/kopia/kopia/repo/blob"
)

// Retry wraps st so that each blob operation that fails with a transient error is tried again, up to attempts
// times in all, waiting b.Delay between tries. Transient is everything but a missing blob, a bad range, an
// unsupported option, a client error of the server (4xx other than 408 and 429: wrong credentials, missing
// bucket, access denied), a request the SDK already retried to its limit, and the context's end. A listing that fails midway is listed again from the start and
// already reported blobs are not reported twice; an error returned by the callback is never retried.
//
// It works on any blob.Storage (the tests wrap kopia's filesystem storage and a fault-injecting one with it).
func Retry(st blob.Storage, b Backoff, attempts int) blob.Storage {
	if attempts < 1 {
		attempts = 1
	}
	return &retrying{Storage: st, backoff: b, attempts: attempts}
}

type retrying struct {
	blob.Storage
	backoff  Backoff
	attempts int
}

// Unwrap returns the decorated storage.
func (r *retrying) Unwrap() blob.Storage { return r.Storage }

func (r *retrying) do(ctx context.Context, op func() error) error {
	var err error
	for n := 1; ; n++ {
		if err = op(); err == nil || !Transient(err) || n >= r.attempts {
			return err
		}
		t := time.NewTimer(r.backoff.Delay(n))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (after: %v)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

func (r *retrying) GetBlob(ctx context.Context, id blob.ID, offset, length int64, output blob.OutputBuffer) error {
	return r.do(ctx, func() error {
		output.Reset()
		return r.Storage.GetBlob(ctx, id, offset, length, output)
	})
}

func (r *retrying) GetMetadata(ctx context.Context, id blob.ID) (blob.Metadata, error) {
	var md blob.Metadata
	err := r.do(ctx, func() error {
		var err error
		md, err = r.Storage.GetMetadata(ctx, id)
		return err
	})
	return md, err
}

func (r *retrying) PutBlob(ctx context.Context, id blob.ID, data blob.Bytes, opts blob.PutOptions) error {
	return r.do(ctx, func() error { return r.Storage.PutBlob(ctx, id, data, opts) })
}

func (r *retrying) DeleteBlob(ctx context.Context, id blob.ID) error {
	return r.do(ctx, func() error { return r.Storage.DeleteBlob(ctx, id) })
}

// callbackError marks an error of ListBlobs' callback, which is the caller's and never retried.
type callbackError struct{ err error }

func (e *callbackError) Error() string { return e.err.Error() }

func (r *retrying) ListBlobs(ctx context.Context, prefix blob.ID, cb func(blob.Metadata) error) error {
	seen := map[blob.ID]bool{}
	err := r.do(ctx, func() error {
		return r.Storage.ListBlobs(ctx, prefix, func(md blob.Metadata) error {
			if seen[md.BlobID] {
				return nil
			}
			seen[md.BlobID] = true
			if err := cb(md); err != nil {
				return &callbackError{err}
			}
			return nil
		})
	})
	var ce *callbackError
	if errors.As(err, &ce) {
		return ce.err
	}
	return err
}

// Transient reports whether err may go away when the operation is tried again.
func Transient(err error) bool {
	var ce *callbackError
	var re *awshttp.ResponseError
	var mae *retry.MaxAttemptsError
	switch {
	case err == nil,
		errors.As(err, &ce),
		errors.Is(err, context.Canceled),
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, blob.ErrBlobNotFound),
		errors.Is(err, blob.ErrInvalidRange),
		errors.Is(err, blob.ErrSetTimeUnsupported),
		errors.Is(err, blob.ErrUnsupportedPutBlobOption),
		errors.Is(err, blob.ErrUnsupportedObjectLock),
		errors.Is(err, blob.ErrBlobAlreadyExists),
		errors.Is(err, blob.ErrInvalidCredentials):
		return false
	case errors.As(err, &mae):
		return false // the SDK already tried this request MaxAttempts times, with backoff
	case errors.As(err, &re):
		c := re.HTTPStatusCode()
		return c >= 500 || c == http.StatusRequestTimeout || c == http.StatusTooManyRequests
	}
	return true
}

// Package s3 is the repository's S3 storage: a kopia blob.Storage written on aws-sdk-go-v2 that works with any
// S3-compatible endpoint (AWS, MinIO, Ceph, R2, versitygw, ...).
//
// Objects are named Prefix + blob id, flat, exactly as kopia's own s3 storage names them, so
// `kopia repository connect s3 --bucket=BUCKET --prefix=PREFIX` opens a bucket Rewind writes and the other way
// round.
//
// Retries happen at two levels, each where it can see the failure:
//   - every HTTP request is retried by the SDK's standard retryer (throttling codes such as SlowDown and 429,
//     500/502/503/504, connection errors and timeouts) with exponential backoff and full jitter. The SDK knows
//     the S3 error codes and rewinds request bodies, and a ListObjectsV2 page is retried without restarting the
//     whole listing. Its client-side retry quota is disabled: a backup must not start failing fast because an
//     earlier burst of errors used the quota up.
//   - the Retry decorator (retry.go) retries whole blob operations on what the SDK cannot see: a GetObject body
//     that ends early (a truncated read) or an operation whose request retries ran out.
//
// Bodies are streamed: PutBlob sends kopia's in-memory blob (it already holds it) without copying it, and GetBlob
// copies the response body into kopia's output buffer, which is the blob (or the range) being read.
package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
	"github.com/kopia/kopia/repo/blob"
)

// Type is the storage type recorded in kopia's config (ConnectionInfo). It differs from kopia's "s3" so both can
// be registered in one process; the bucket layout is the same.
const Type = "rewind-s3"

// configName is kopia's optional storage-class config object: not a blob, never listed.
const configName = ".storageconfig"

// Options say where the bucket is and how to reach it. They are stored in kopia's config file (0600) so the
// repository can be reopened; secrets are only there when given explicitly (the AWS chain is the default).
type Options struct {
	Bucket string `json:"bucket"`
	// Prefix is prepended to every blob id ("" or ending in "/").
	Prefix string `json:"prefix,omitempty"`
	// Endpoint is the S3 endpoint URL (http://host:port or https://host); "" means AWS.
	Endpoint string `json:"endpoint,omitempty"`
	// Region signs the requests; "" takes the AWS chain's region, else us-east-1.
	Region string `json:"region,omitempty"`
	// PathStyle addresses the bucket as endpoint/bucket instead of bucket.endpoint (MinIO, versitygw, Ceph).
	PathStyle bool `json:"pathStyle,omitempty"`
	// Profile names a profile of the shared AWS config files.
	Profile string `json:"profile,omitempty"`
	// AccessKeyID and SecretAccessKey (and SessionToken) set explicit credentials instead of the AWS chain.
	AccessKeyID     string `json:"accessKeyID,omitempty"`
	SecretAccessKey string `json:"secretAccessKey,omitempty" kopia:"sensitive"`
	SessionToken    string `json:"sessionToken,omitempty" kopia:"sensitive"`

	// Timeout bounds the wait for a response's headers and each read of a response body (a stalled
	// connection); 0 means 60s. The request is then retried.
	Timeout time.Duration `json:"timeout,omitempty"`
	// MaxAttempts is the number of tries of each HTTP request; 0 means 8.
	MaxAttempts int `json:"maxAttempts,omitempty"`
	// RetryBase and RetryMax bound the jittered exponential backoff between tries; 0 means 200ms and 20s.
	RetryBase time.Duration `json:"retryBase,omitempty"`
	RetryMax  time.Duration `json:"retryMax,omitempty"`
	// ListPageSize is the number of keys per ListObjectsV2 page; 0 means the server's default (1000).
	ListPageSize int32 `json:"listPageSize,omitempty"`
}

// String describes the location without secrets: s3://bucket/prefix (endpoint).
func (o Options) String() string {
	s := "s3://" + o.Bucket + "/" + o.Prefix
	if o.Endpoint != "" {
		s += " at " + o.Endpoint
	}
	return s
}

func (o Options) timeout() time.Duration {
	if o.Timeout > 0 {
		return o.Timeout
	}
	return 60 * time.Second
}

func (o Options) backoff() Backoff {
	b := Backoff{Base: o.RetryBase, Max: o.RetryMax}
	if b.Base <= 0 {
		b.Base = 200 * time.Millisecond
	}
	if b.Max <= 0 {
		b.Max = 20 * time.Second
	}
	return b
}

// Backoff is an exponential backoff with full jitter: the n-th retry (from 1) waits a uniformly random time in
// [0, min(Max, Base·2ⁿ⁻¹)], so clients that failed together do not retry together.
type Backoff struct {
	Base, Max time.Duration
}

// Delay returns the wait before retry n (n ≥ 1).
func (b Backoff) Delay(n int) time.Duration {
	d := b.Max
	if n < 32 {
		if e := b.Base << (n - 1); e > 0 && e < b.Max {
			d = e
		}
	}
	return time.Duration(rand.Int64N(int64(d) + 1))
}

// BackoffDelay implements the SDK's retry.BackoffDelayer.
func (b Backoff) BackoffDelay(attempt int, _ error) (time.Duration, error) {
	return b.Delay(attempt), nil
}

var registerOnce sync.Once

// Register makes the S3 storage known to kopia (blob.AddSupportedStorage), so repo.Open can rebuild it from the
// config file. Call it once at program start, before opening a repository; later calls do nothing.
func Register() {
	registerOnce.Do(func() {
		blob.AddSupportedStorage(Type, Options{}, func(ctx context.Context, o *Options, _ bool) (blob.Storage, error) {
			return New(ctx, *o)
		})
	})
}

// Storage is the S3 blob.Storage without the Retry decorator (New adds it).
type Storage struct {
	blob.DefaultProviderImplementation
	opts   Options
	client *s3.Client
}

var _ blob.Storage = (*Storage)(nil)

// New returns the storage of the bucket in opts, with retries (the SDK's per request, Retry's per operation).
// It does not contact the endpoint: Check does.
func New(ctx context.Context, opts Options) (blob.Storage, error) {
	st, err := NewUnretried(ctx, opts)
	if err != nil {
		return nil, err
	}
	return Retry(st, opts.backoff(), 4), nil
}

// NewUnretried returns the storage without the Retry decorator (the SDK's request retries stay).
func NewUnretried(ctx context.Context, opts Options) (*Storage, error) {
	if opts.Bucket == "" {
		return nil, errors.New("s3 storage: no bucket")
	}
	if opts.Prefix != "" && !strings.HasSuffix(opts.Prefix, "/") {
		opts.Prefix += "/"
	}
	attempts := opts.MaxAttempts
	if attempts <= 0 {
		attempts = 8
	}
	backoff := opts.backoff()
	httpClient := awshttp.NewBuildableClient().
		WithTimeout(0).
		WithReadTimeout(opts.timeout()).
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = min(opts.timeout(), 30*time.Second) }).
		WithTransportOptions(func(tr *http.Transport) {
			tr.ResponseHeaderTimeout = opts.timeout()
			tr.MaxIdleConnsPerHost = 64
		})
	load := []func(*config.LoadOptions) error{
		config.WithHTTPClient(httpClient),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = attempts
				o.MaxBackoff = backoff.Max
				o.Backoff = backoff
				o.RateLimiter = ratelimit.None
			})
		}),
		// Many S3-compatible servers do not return (or compute) the CRC checksums the SDK asks for by default,
		// and never for ranged reads: only checksum when the operation requires it.
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
		config.WithAppID("rewind"),
		// The SDK logs warnings (e.g. a body it could not drain after a dropped connection) to stderr; the
		// failures that matter are returned, and retried.
		config.WithLogger(logging.Nop{}),
	}
	if opts.Region != "" {
		load = append(load, config.WithRegion(opts.Region))
	}
	if opts.Profile != "" {
		load = append(load, config.WithSharedConfigProfile(opts.Profile))
	}
	if opts.AccessKeyID != "" || opts.SecretAccessKey != "" {
		load = append(load, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(opts.AccessKeyID, opts.SecretAccessKey, opts.SessionToken)))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("s3 storage: load AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
		o.UsePathStyle = opts.PathStyle
	})
	return &Storage{opts: opts, client: client}, nil
}

func (s *Storage) key(id blob.ID) string { return s.opts.Prefix + string(id) }

// GetBlob reads length bytes of blob id from offset into output (length < 0: to the end; length 0: only checks
// that the blob exists). A missing blob is blob.ErrBlobNotFound; a range beyond the blob is blob.ErrInvalidRange.
func (s *Storage) GetBlob(ctx context.Context, id blob.ID, offset, length int64, output blob.OutputBuffer) error {
	output.Reset()
	if offset < 0 {
		return fmt.Errorf("%w: offset %d", blob.ErrInvalidRange, offset)
	}
	if length == 0 {
		_, err := s.GetMetadata(ctx, id)
		return err
	}
	in := &s3.GetObjectInput{Bucket: &s.opts.Bucket, Key: aws.String(s.key(id))}
	switch {
	case length > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", offset, offset+length-1))
	case offset > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", offset))
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		return translate(err, "get blob "+string(id))
	}
	defer out.Body.Close() //nolint:errcheck
	n, err := io.Copy(output, out.Body)
	if err != nil {
		return fmt.Errorf("read blob %s: %w", id, err)
	}
	if out.ContentLength != nil && n != *out.ContentLength {
		return fmt.Errorf("read blob %s: got %d bytes of %d: %w", id, n, *out.ContentLength, io.ErrUnexpectedEOF)
	}
	if length > 0 && n != length {
		return fmt.Errorf("%w: blob %s: read %d bytes at %d, want %d", blob.ErrInvalidRange, id, n, offset, length)
	}
	return nil
}

// GetMetadata returns blob id's length and modification time, or blob.ErrBlobNotFound.
func (s *Storage) GetMetadata(ctx context.Context, id blob.ID) (blob.Metadata, error) {
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.opts.Bucket, Key: aws.String(s.key(id))})
	if err != nil {
		return blob.Metadata{}, translate(err, "stat blob "+string(id))
	}
	return blob.Metadata{BlobID: id, Length: aws.ToInt64(out.ContentLength), Timestamp: aws.ToTime(out.LastModified)}, nil
}

// PutBlob writes blob id, replacing it when it exists (kopia's blob ids are content-derived or unique, so an
// overwrite writes the same bytes or is intended). Retention, DoNotRecreate and SetModTime are not supported.
func (s *Storage) PutBlob(ctx context.Context, id blob.ID, data blob.Bytes, opts blob.PutOptions) error {
	switch {
	case opts.HasRetentionOptions():
		return fmt.Errorf("s3 storage: %w", blob.ErrUnsupportedObjectLock)
	case opts.DoNotRecreate:
		return fmt.Errorf("s3 storage: do-not-recreate: %w", blob.ErrUnsupportedPutBlobOption)
	case !opts.SetModTime.IsZero():
		return blob.ErrSetTimeUnsupported
	}
	body := data.Reader()
	defer body.Close() //nolint:errcheck
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        &s.opts.Bucket,
		Key:           aws.String(s.key(id)),
		Body:          body,
		ContentLength: aws.Int64(int64(data.Length())),
		ContentType:   aws.String("application/x-kopia"),
	})
	if err != nil {
		return translate(err, "put blob "+string(id))
	}
	if opts.GetModTime != nil {
		md, err := s.GetMetadata(ctx, id)
		if err != nil {
			return err
		}
		*opts.GetModTime = md.Timestamp
	}
	return nil
}

// DeleteBlob deletes blob id; deleting a missing blob succeeds.
func (s *Storage) DeleteBlob(ctx context.Context, id blob.ID) error {
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.opts.Bucket, Key: aws.String(s.key(id))})
	if err = translate(err, "delete blob "+string(id)); errors.Is(err, blob.ErrBlobNotFound) {
		return nil
	}
	return err
}

// ListBlobs calls cb for every blob whose id starts with prefix, page by page, in key order. An error from cb
// stops the listing and is returned as is.
func (s *Storage) ListBlobs(ctx context.Context, prefix blob.ID, cb func(blob.Metadata) error) error {
	in := &s3.ListObjectsV2Input{Bucket: &s.opts.Bucket, Prefix: aws.String(s.key(prefix))}
	if s.opts.ListPageSize > 0 {
		in.MaxKeys = aws.Int32(s.opts.ListPageSize)
	}
	pages := s3.NewListObjectsV2Paginator(s.client, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return translate(err, "list blobs")
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			if !strings.HasPrefix(key, s.opts.Prefix) {
				continue
			}
			id := blob.ID(key[len(s.opts.Prefix):])
			if id == configName {
				continue
			}
			if err := cb(blob.Metadata{BlobID: id, Length: aws.ToInt64(o.Size), Timestamp: aws.ToTime(o.LastModified)}); err != nil {
				return err
			}
		}
	}
	return nil
}

// ConnectionInfo lets kopia reopen the storage (Register must have been called).
func (s *Storage) ConnectionInfo() blob.ConnectionInfo {
	o := s.opts
	return blob.ConnectionInfo{Type: Type, Config: &o}
}

// DisplayName names the bucket without secrets.
func (s *Storage) DisplayName() string { return "S3: " + s.opts.String() }

// Options returns the storage's options.
func (s *Storage) Options() Options { return s.opts }

// translate maps S3 errors to kopia's: a missing object is blob.ErrBlobNotFound, an unsatisfiable range
// blob.ErrInvalidRange; everything else is wrapped with what was being done.
func translate(err error, what string) error {
	if err == nil {
		return nil
	}
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	if errors.As(err, &nsk) || errors.As(err, &nf) {
		return fmt.Errorf("%s: %w", what, blob.ErrBlobNotFound)
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchKey", "NotFound":
			return fmt.Errorf("%s: %w", what, blob.ErrBlobNotFound)
		case "InvalidRange":
			return fmt.Errorf("%s: %w", what, blob.ErrInvalidRange)
		}
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusRequestedRangeNotSatisfiable {
		return fmt.Errorf("%s: %w", what, blob.ErrInvalidRange)
	}
	return &Error{Op: what, Err: err}
}

// Error is a failed S3 operation that is not a missing blob or a bad range. Diagnose explains it.
type Error struct {
	Op  string
	Err error
}

func (e *Error) Error() string { return e.Op + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

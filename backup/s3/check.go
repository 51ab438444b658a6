package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// Problem is what a failed connection check found.
type Problem string

// The problems Check tells apart.
const (
	ProblemCredentials  Problem = "credentials"   // unknown access key, wrong secret, expired token, none found
	ProblemAccessDenied Problem = "access-denied" // the key is valid but may not use the bucket
	ProblemNoBucket     Problem = "no-bucket"     // the bucket does not exist
	ProblemClockSkew    Problem = "clock-skew"    // this machine's clock is too far from the server's
	ProblemUnreachable  Problem = "unreachable"   // no answer: DNS, refused connection, timeout, TLS
	ProblemOther        Problem = "other"
)

// CheckError is a failed connection check: the Problem, a message that says what to do, and the cause.
type CheckError struct {
	Problem Problem
	Message string
	Err     error
}

func (e *CheckError) Error() string { return e.Message }
func (e *CheckError) Unwrap() error { return e.Err }

// Check tests that the bucket in opts can be listed, written, read and deleted under its prefix, trying each
// request at most twice so an unreachable endpoint fails within the context's deadline. A failure is a
// *CheckError. Credentials never appear in its message.
func Check(ctx context.Context, opts Options) error {
	opts.MaxAttempts = 2
	if opts.Timeout <= 0 || opts.Timeout > 10*time.Second {
		opts.Timeout = 10 * time.Second
	}
	opts.RetryBase, opts.RetryMax = 100*time.Millisecond, 500*time.Millisecond
	st, err := NewUnretried(ctx, opts)
	if err != nil {
		return &CheckError{Problem: ProblemOther, Message: err.Error(), Err: err}
	}
	key := aws.String(opts.Prefix + blobIDForCheck())
	steps := []func() error{
		func() error {
			_, err := st.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &opts.Bucket, Prefix: aws.String(opts.Prefix), MaxKeys: aws.Int32(1)})
			return err
		},
		func() error {
			body := []byte("rewind connection check\n")
			_, err := st.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &opts.Bucket, Key: key, Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body)))})
			return err
		},
		func() error {
			out, err := st.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &opts.Bucket, Key: key})
			if err != nil {
				return err
			}
			defer out.Body.Close() //nolint:errcheck
			_, err = io.Copy(io.Discard, out.Body)
			return err
		},
		func() error {
			_, err := st.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &opts.Bucket, Key: key})
			return err
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return Diagnose(opts, err)
		}
	}
	return nil
}

func blobIDForCheck() string {
	return fmt.Sprintf(".rewind-check-%d", time.Now().UnixNano())
}

// Diagnose explains an S3 error as a *CheckError for the operator of the bucket in opts.
func Diagnose(opts Options, err error) *CheckError {
	where := opts.String()
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code := ae.ErrorCode()
		if strings.Contains(code, "AccessKey") || strings.Contains(code, "Signature") ||
			strings.Contains(code, "Credential") || strings.HasSuffix(code, "UserNotFound") {
			code = "InvalidAccessKeyId" // servers name an unknown key in their own ways (versitygw: XAdminUserNotFound)
		}
		switch code {
		case "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "TokenRefreshRequired", "InvalidSecurity":
			return &CheckError{ProblemCredentials, fmt.Sprintf("%s refused the credentials (%s): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the profile) of the Rewind server", where, ae.ErrorCode()), err}
		case "AccessDenied", "AllAccessDisabled":
			return &CheckError{ProblemAccessDenied, fmt.Sprintf("%s denied access (%s): the credentials are valid but may not list, write, read and delete objects in the bucket; grant s3:ListBucket, s3:GetObject, s3:PutObject and s3:DeleteObject", where, ae.ErrorCode()), err}
		case "NoSuchBucket":
			return &CheckError{ProblemNoBucket, fmt.Sprintf("bucket %q does not exist at %s: create it, or fix the bucket name", opts.Bucket, endpointName(opts)), err}
		case "RequestTimeTooSkewed", "RequestExpired":
			return &CheckError{ProblemClockSkew, fmt.Sprintf("%s refused the request because this machine's clock differs too much from the server's (%s): sync the clock (NTP), then test again", where, ae.ErrorCode()), err}
		}
	}
	var ne net.Error
	var oe *net.OpError
	var de *net.DNSError
	msg := err.Error()
	switch {
	case errors.As(err, &de), errors.As(err, &oe), errors.As(err, &ne) && ne.Timeout(),
		strings.Contains(msg, "connection refused"), strings.Contains(msg, "no such host"),
		strings.Contains(msg, "timeout awaiting response headers"), strings.Contains(msg, "tls:"):
		return &CheckError{ProblemUnreachable, fmt.Sprintf("cannot reach %s: %s: check the endpoint address and that the server is up and reachable from this machine", endpointName(opts), rootCause(err)), err}
	case strings.Contains(msg, "failed to retrieve credentials"), strings.Contains(msg, "no EC2 IMDS role found"),
		strings.Contains(msg, "failed to refresh cached credentials"):
		return &CheckError{ProblemCredentials, "no S3 credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) for the Rewind server", err}
	}
	return &CheckError{ProblemOther, fmt.Sprintf("%s failed: %s", where, rootCause(err)), err}
}

func endpointName(o Options) string {
	if o.Endpoint != "" {
		return o.Endpoint
	}
	return "AWS S3"
}

// rootCause returns the innermost error's text (the SDK's errors repeat the operation and attempt count).
func rootCause(err error) string {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err.Error()
		}
		err = u
	}
}

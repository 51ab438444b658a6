package s3_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rewind/rewind/backup/s3"
	"github.com/rewind/rewind/backup/storagetest"
)

func checkProblem(t *testing.T, opts s3.Options) (s3.Problem, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := s3.Check(ctx, opts)
	if err == nil {
		return "", ""
	}
	var ce *s3.CheckError
	if !errors.As(err, &ce) {
		t.Fatalf("Check = %v, want a *CheckError", err)
	}
	if opts.SecretAccessKey != "" && strings.Contains(ce.Message, opts.SecretAccessKey) {
		t.Fatalf("Check message shows the secret key: %s", ce.Message)
	}
	return ce.Problem, ce.Message
}

// TestCheck tells the operator what is wrong, against a real S3 server.
func TestCheck(t *testing.T) {
	srv := storagetest.StartS3(t)
	good := srv.Bucket(t, "rewind/")
	if p, msg := checkProblem(t, good); p != "" {
		t.Fatalf("Check(good) = %s: %s", p, msg)
	}

	wrongSecret := good
	wrongSecret.SecretAccessKey = "not-the-secret"
	unknownKey := good
	unknownKey.AccessKeyID = "nobody"
	noBucket := good
	noBucket.Bucket = "no-such-bucket"
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := l.Addr().String()
	l.Close()
	unreachable := good
	unreachable.Endpoint = "http://" + closed
	for name, tc := range map[string]struct {
		opts s3.Options
		want s3.Problem
		says string
	}{
		"wrong secret":   {wrongSecret, s3.ProblemCredentials, "refused the credentials"},
		"unknown key":    {unknownKey, s3.ProblemCredentials, "refused the credentials"},
		"missing bucket": {noBucket, s3.ProblemNoBucket, `bucket "no-such-bucket" does not exist`},
		"unreachable":    {unreachable, s3.ProblemUnreachable, "cannot reach http://" + closed},
	} {
		t.Run(name, func(t *testing.T) {
			p, msg := checkProblem(t, tc.opts)
			if p != tc.want || !strings.Contains(msg, tc.says) {
				t.Fatalf("Check = %s: %q; want %s saying %q", p, msg, tc.want, tc.says)
			}
		})
	}
}

// TestCheckClockSkew: a server that refuses the request time (what S3 answers to a clock more than 15 minutes
// off) is reported as clock skew. versitygw cannot be made to see a skewed clock, so this one server is a
// stand-in that answers exactly as S3 does.
func TestCheckClockSkew(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>RequestTimeTooSkewed</Code>`+
			`<Message>The difference between the request time and the current time is too large.</Message></Error>`)
	}))
	defer ts.Close()
	p, msg := checkProblem(t, s3.Options{Bucket: "b", Endpoint: ts.URL, PathStyle: true, Region: "us-east-1",
		AccessKeyID: "k", SecretAccessKey: "s3cr3t-value"})
	if p != s3.ProblemClockSkew || !strings.Contains(msg, "clock") {
		t.Fatalf("Check = %s: %q; want clock skew", p, msg)
	}
}

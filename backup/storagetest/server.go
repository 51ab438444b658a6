package storagetest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/rewind/rewind/backup/s3"
)

// VersityGW is the version of the S3 server the tests run; .ci/run installs it.
const VersityGW = "github.com/versity/versitygw/cmd/versitygw@v1.8.0"

// S3Server is a private versitygw serving a temporary directory on a loopback port.
type S3Server struct {
	Endpoint  string // http://127.0.0.1:PORT
	AccessKey string
	SecretKey string
	Dir       string
	cmd       *exec.Cmd
	exited    chan struct{}
	buckets   atomic.Int64
}

// Stop kills the server (a storage outage); the test's cleanup calls it too.
func (s *S3Server) Stop() {
	s.cmd.Process.Kill() //nolint:errcheck
	<-s.exited
}

// versitygwPath finds the versitygw binary on PATH or in $(go env GOPATH)/bin.
func versitygwPath() string {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	var dirs []string
	if gp := os.Getenv("GOPATH"); gp != "" {
		dirs = append(dirs, strings.Split(gp, string(os.PathListSeparator))...)
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		dirs = append(dirs, strings.TrimSpace(string(out)))
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "bin", "versitygw")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	return ""
}

// StartS3 starts a versitygw for the test (stopped at cleanup), or skips the test when it is not installed.
func StartS3(t testing.TB) *S3Server {
	t.Helper()
	bin := versitygwPath()
	if bin == "" {
		t.Skipf("versitygw is not installed (no S3-compatible server to test against): go install %s", VersityGW)
	}
	dir := t.TempDir()
	srv := &S3Server{AccessKey: "rewindtest", SecretKey: "rewind-test-secret-key", Dir: filepath.Join(dir, "root")}
	if err := os.MkdirAll(srv.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for attempt := 0; ; attempt++ {
		port := freePort(t)
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		cmd := exec.Command(bin, "--port", addr, "--access", srv.AccessKey, "--secret", srv.SecretKey, "--quiet",
			"posix", srv.Dir)
		logf, err := os.Create(filepath.Join(dir, "versitygw.log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatalf("start versitygw: %v", err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); logf.Close(); close(exited) }() //nolint:errcheck
		srv.cmd, srv.Endpoint = cmd, "http://"+addr
		if waitHTTP(srv.Endpoint, exited, 15*time.Second) {
			srv.exited = exited
			t.Cleanup(srv.Stop)
			return srv
		}
		cmd.Process.Kill() //nolint:errcheck
		<-exited
		if attempt == 2 {
			log, _ := os.ReadFile(filepath.Join(dir, "versitygw.log"))
			t.Fatalf("versitygw did not start on %s: %s", addr, log)
		}
	}
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitHTTP(endpoint string, exited <-chan struct{}, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		resp, err := http.Get(endpoint + "/") //nolint:noctx
		if err == nil {
			resp.Body.Close()
			return true
		}
		time.Sleep(30 * time.Millisecond)
	}
	return false
}

// Options returns the storage options for bucket on this server (path-style, explicit test credentials).
func (s *S3Server) Options(bucket, prefix string) s3.Options {
	return s3.Options{
		Bucket: bucket, Prefix: prefix, Endpoint: s.Endpoint, Region: "us-east-1", PathStyle: true,
		AccessKeyID: s.AccessKey, SecretAccessKey: s.SecretKey,
	}
}

// Bucket creates a new bucket and returns its options with prefix.
func (s *S3Server) Bucket(t testing.TB, prefix string) s3.Options {
	t.Helper()
	name := fmt.Sprintf("rewind-test-%d", s.buckets.Add(1))
	s.CreateBucket(t, name)
	return s.Options(name, prefix)
}

// CreateBucket creates bucket name.
func (s *S3Server) CreateBucket(t testing.TB, name string) {
	t.Helper()
	client := awss3.New(awss3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(s.Endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := client.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
}

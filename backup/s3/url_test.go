package s3_test

import (
	"strings"
	"testing"

	"github.com/rewind/rewind/backup/s3"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want s3.Options
	}{
		{"s3://bucket", s3.Options{Bucket: "bucket"}},
		{"s3://bucket/", s3.Options{Bucket: "bucket"}},
		{"s3://bucket/rewind", s3.Options{Bucket: "bucket", Prefix: "rewind/"}},
		{"s3://b/team/prod/?endpoint=http://127.0.0.1:9000&region=eu-west-1&path_style=true",
			s3.Options{Bucket: "b", Prefix: "team/prod/", Endpoint: "http://127.0.0.1:9000", Region: "eu-west-1", PathStyle: true}},
		{"s3://b/p?profile=backup", s3.Options{Bucket: "b", Prefix: "p/", Profile: "backup"}},
		{"s3://b/p?max_attempts=3", s3.Options{Bucket: "b", Prefix: "p/", MaxAttempts: 3}},
	} {
		got, err := s3.ParseURL(tc.raw)
		if err != nil {
			t.Fatalf("ParseURL(%q) = %v", tc.raw, err)
		}
		if got != tc.want {
			t.Fatalf("ParseURL(%q) = %+v, want %+v", tc.raw, got, tc.want)
		}
		again, err := s3.ParseURL(got.URL())
		if err != nil || again != got {
			t.Fatalf("ParseURL(%q.URL() = %q) = %+v, %v; want the same options", tc.raw, got.URL(), again, err)
		}
	}
	for raw, msg := range map[string]string{
		"s3://key:secret@bucket/p":          "credentials do not belong",
		"s3:///p":                           "no bucket",
		"s3://b/p?endpoint=127.0.0.1:9000":  "want http://host:port",
		"s3://b/p?path_style=maybe":         "path_style",
		"s3://b/p?access_key=AKIA":          "unknown parameter",
		"s3://b/p?endpoint=http://k:s@h:1/": "credentials do not belong",
		"file:///x":                         "not s3",
	} {
		_, err := s3.ParseURL(raw)
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Fatalf("ParseURL(%q) = %v, want an error about %q", raw, err, msg)
		}
		if err != nil && strings.Contains(err.Error(), "secret") && !strings.Contains(msg, "credentials") {
			t.Fatalf("ParseURL(%q) error shows a secret: %v", raw, err)
		}
	}
}

func TestBackoffIsJitteredAndBounded(t *testing.T) {
	b := s3.Backoff{Base: 100, Max: 1000}
	distinct := map[int64]bool{}
	for n := 1; n < 70; n++ {
		for range 20 {
			d := b.Delay(n)
			limit := int64(b.Max)
			if n < 4 {
				limit = int64(b.Base) << (n - 1)
			}
			if d < 0 || int64(d) > limit {
				t.Fatalf("Delay(%d) = %d, want within [0, %d]", n, d, limit)
			}
			distinct[int64(d)] = true
		}
	}
	if len(distinct) < 50 {
		t.Fatalf("only %d distinct delays: not jittered", len(distinct))
	}
}

package db

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// FuzzParseTime checks that parseTime's fast path reads every string exactly as time.Parse does: the same
// instant, or an error for the same strings.
func FuzzParseTime(f *testing.F) {
	for _, s := range []string{
		"2026-03-14T15:09:26.535897932Z", "2026-03-14T15:09:26Z", "2026-03-14T15:09:26.5Z", "2026-03-14T15:09:26.123Z",
		"2024-02-29T00:00:00.000000000Z", "2023-02-29T00:00:00.000000000Z", "2026-13-01T00:00:00Z",
		"2026-03-14T24:00:00Z", "2026-03-14T23:59:60Z", "2026-03-14T15:09:26.Z", "2026-03-14T15:09:26.1234567891Z",
		"2026-03-14T15:09:26+02:00", "2026-03-14 15:09:26Z", "0000-01-01T00:00:00Z", "2026-03-14T15:09:26,5Z",
		"2026-0a-14T15:09:26Z", "", "Z",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, wantErr := time.Parse(timeLayout, s)
		if wantErr != nil {
			want, wantErr = time.Parse(time.RFC3339Nano, s)
		}
		got, err := parseTime(s)
		if (err != nil) != (wantErr != nil) || !got.Equal(want) || (err == nil && got.Location() != time.UTC) {
			t.Fatalf("parseTime(%q) = %v, %v; time.Parse: %v, %v", s, got, err, want.UTC(), wantErr)
		}
	})
}

func TestParseTimeRoundTrip(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(2026, 3, 14, 15, 9, 26, 535897932, time.UTC), time.Date(1999, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(2024, 2, 29, 0, 0, 0, 1, time.FixedZone("x", 3600)),
	} {
		got, err := parseTime(formatTime(tm))
		if err != nil || !got.Equal(tm) || got.Location() != time.UTC {
			t.Errorf("parseTime(formatTime(%v)) = %v, %v", tm, got, err)
		}
	}
}

func TestQueryKey(t *testing.T) {
	keys := map[string][]any{}
	for _, args := range [][]any{{}, {"1"}, {1}, {int64(1)}, {"a\x00b"}, {"a", "b"}, {"a", 1}, {"a", "1"}, {nil}} {
		k := queryKey("SELECT ?", args)
		if prev, ok := keys[k]; ok {
			t.Errorf("queryKey: %#v and %#v share the key %q", prev, args, k)
		}
		keys[k] = args
	}
}

// Callers missing the same recent entry at once share one read; a caller after a write, or after a failed
// read, reads again.
func TestRecentCacheSharesReads(t *testing.T) {
	var writes atomic.Uint64
	c := &recentCache{writes: writes.Load}
	var loads atomic.Int32
	release := make(chan struct{})
	slow := func() (any, error) {
		loads.Add(1)
		<-release
		return "v", nil
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if v, err := c.get("k", slow); v != "v" || err != nil {
				t.Errorf("get = %v, %v", v, err)
			}
		}()
	}
	for { // every caller is in get: one reads, the others wait for it
		c.mu.Lock()
		l := c.loading["k"]
		c.mu.Unlock()
		if l != nil && loads.Load() == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	close(release)
	wg.Wait()
	if got := loads.Load(); got != 1 {
		t.Fatalf("20 concurrent gets read %d times, want 1", got)
	}

	writes.Add(1) // a write: the next get reads again
	if v, _ := c.get("k", func() (any, error) { return "after write", nil }); v != "after write" {
		t.Fatalf("get after a write = %v, want a new read", v)
	}

	failed := make(chan struct{})
	go c.get("f", func() (any, error) { <-failed; return nil, errors.New("cancelled") })
	for {
		c.mu.Lock()
		_, ok := c.loading["f"]
		c.mu.Unlock()
		if ok {
			break
		}
		time.Sleep(time.Millisecond)
	}
	go func() { time.Sleep(20 * time.Millisecond); close(failed) }()
	if v, err := c.get("f", func() (any, error) { return "own", nil }); v != "own" || err != nil {
		t.Fatalf("get after a shared read failed = %v, %v; want its own read", v, err)
	}
}

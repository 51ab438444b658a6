package pitrtest

import (
	"context"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"
)

// RedisWriter appends marker 1, 2, … to the list "marker" of the Redis database at url every 50 ms (every
// fifth one inside MULTI … EXEC, beside a counter, so a replay must keep blocks whole) until stop is closed; the
// returned function waits for the writer and returns the markers written.
func RedisWriter(t testing.TB, url string, stop <-chan struct{}) func() []Marker {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	ctx := context.Background()
	return Markers(t, stop, func(n int) error {
		if n%5 != 0 {
			return c.RPush(ctx, "marker", n).Err()
		}
		_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.RPush(ctx, "marker", n)
			p.Incr(ctx, "fifths")
			return nil
		})
		return err
	}, func() { c.Close() })
}

// RedisCount returns how many markers the Redis database at url holds, failing t when they are not exactly
// 1..n in order, or when the counter of the MULTI blocks does not match them.
func RedisCount(t testing.TB, url string) int {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	ctx := context.Background()
	got, err := c.LRange(ctx, "marker", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range got {
		if v != strconv.Itoa(i+1) {
			t.Fatalf("markers %v: position %d holds %s, want exactly 1..n", got, i+1, v)
		}
	}
	fifths, err := c.Get(ctx, "fifths").Int()
	if err != nil && err != redis.Nil {
		t.Fatal(err)
	}
	if fifths != len(got)/5 {
		t.Fatalf("%d markers but counter %d: a MULTI block was cut", len(got), fifths)
	}
	return len(got)
}

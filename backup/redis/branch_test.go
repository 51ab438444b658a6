package redis

import (
	"context"
	"strings"
	"testing"

	"github.com/rewind/rewind/backup/internal/testserver"
)

// TestFreeDatabase picks, on a real server, the lowest database that holds no keys and is not taken, and
// refuses when none is left.
func TestFreeDatabase(t *testing.T) {
	ctx := context.Background()
	srv := testserver.StartRedis(t)
	a, b, c := srv.CreateDatabase(t), srv.CreateDatabase(t), srv.CreateDatabase(t)
	if b != a+1 || c != b+1 {
		t.Fatalf("reserved databases %d, %d, %d are not consecutive", a, b, c)
	}
	cb := srv.Client(b)
	defer cb.Close()
	if err := cb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	var taken []int
	for n := 0; n <= a; n++ {
		taken = append(taken, n) // every database below b: given to other tests or services
	}
	got, err := FreeDatabase(ctx, srv.URL(a), taken)
	if err != nil {
		t.Fatal(err)
	}
	if want := srv.URL(c); got != want {
		t.Fatalf("FreeDatabase = %q, want %q (database %d holds a key)", got, want, b)
	}

	for n := a + 1; n < 1000; n++ {
		taken = append(taken, n)
	}
	if _, err := FreeDatabase(ctx, srv.URL(a), taken); err == nil || !strings.Contains(err.Error(), "every one of the 1000 databases") {
		t.Fatalf("FreeDatabase with every database taken = %v, want a refusal", err)
	}
	if _, err := FreeDatabase(ctx, "redis://127.0.0.1:1/0", nil); err == nil {
		t.Fatal("FreeDatabase of an unreachable server succeeded")
	}
}

func TestWithDatabase(t *testing.T) {
	for in, want := range map[string]string{
		"redis://127.0.0.1:6379/0":                           "redis://127.0.0.1:6379/5",
		"redis://127.0.0.1:6379":                             "redis://127.0.0.1:6379/5",
		"rediss://app:s%40cret@cache:6380/2?dial_timeout=3s": "rediss://app:s%40cret@cache:6380/5?dial_timeout=3s",
		"redis://:pw@127.0.0.1:6379?db=3&protocol=3":         "redis://:pw@127.0.0.1:6379?db=5&protocol=3",
	} {
		got, err := withDatabase(in, 5)
		if err != nil || got != want {
			t.Errorf("withDatabase(%q, 5) = %q, %v; want %q", in, got, err, want)
		}
		if _, n, err := Database(got); err != nil || n != 5 {
			t.Errorf("Database(%q) = %d, %v; want 5", got, n, err)
		}
	}
}

package web

import (
	"strconv"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

func TestLimiterMapStaysBounded(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := &limiterMap{limit: rate.Every(time.Minute), burst: 2, max: 100, m: map[string]*limiterEntry{}}
	for i := range 1000 {
		l.allow("10.0.0."+strconv.Itoa(i), now.Add(time.Duration(i)*time.Millisecond))
	}
	if got := len(l.m); got > 100 {
		t.Fatalf("the map holds %d keys, want at most 100", got)
	}
	// A key under attack keeps its empty bucket while others come and go.
	l.allow("attacker", now)
	l.allow("attacker", now)
	if l.allow("attacker", now) {
		t.Fatal("third attempt allowed with burst 2")
	}
	if !l.allow("attacker", now.Add(time.Minute)) {
		t.Fatal("bucket did not refill after a minute")
	}
}

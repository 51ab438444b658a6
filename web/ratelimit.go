package web

import (
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/rewind/rewind/handlers"
)

// LoginLimits bounds sign-in attempts. Each attempt takes a token from the
// client address's bucket and the account's bucket.
type LoginLimits struct {
	PerIP        rate.Limit
	IPBurst      int
	PerAccount   rate.Limit
	AccountBurst int
	// MaxKeys bounds the memory of each map; the idlest keys go first.
	MaxKeys int
}

// DefaultLoginLimits: 20 attempts at once then one every 3 s per address;
// 5 at once then one every 12 s per account.
func DefaultLoginLimits() LoginLimits {
	return LoginLimits{PerIP: rate.Every(3 * time.Second), IPBurst: 20,
		PerAccount: rate.Every(12 * time.Second), AccountBurst: 5, MaxKeys: 10000}
}

// loginLimiter implements handlers.LoginLimiter.
type loginLimiter struct {
	ips, accounts *limiterMap
	now           func() time.Time
}

var _ handlers.LoginLimiter = (*loginLimiter)(nil)

func newLoginLimiter(l LoginLimits, now func() time.Time) *loginLimiter {
	return &loginLimiter{
		ips:      &limiterMap{limit: l.PerIP, burst: l.IPBurst, max: l.MaxKeys, m: map[string]*limiterEntry{}},
		accounts: &limiterMap{limit: l.PerAccount, burst: l.AccountBurst, max: l.MaxKeys, m: map[string]*limiterEntry{}},
		now:      now,
	}
}

func (l *loginLimiter) Allow(ip, account string) bool {
	now := l.now()
	if !l.ips.allow(ip, now) {
		return false
	}
	return account == "" || l.accounts.allow(account, now)
}

type limiterMap struct {
	mu    sync.Mutex
	limit rate.Limit
	burst int
	max   int
	m     map[string]*limiterEntry
}

type limiterEntry struct {
	lim  *rate.Limiter
	last time.Time
}

func (l *limiterMap) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.m[key]
	if !ok {
		if len(l.m) >= max(l.max, 1) {
			l.evict(now)
		}
		e = &limiterEntry{lim: rate.NewLimiter(l.limit, l.burst)}
		l.m[key] = e
	}
	e.last = now
	return e.lim.AllowN(now, 1)
}

// evict forgets the buckets that have refilled (forgetting them loses
// nothing); if none has, it forgets the idlest one.
func (l *limiterMap) evict(now time.Time) {
	var oldestKey string
	var oldest time.Time
	for k, e := range l.m {
		if e.lim.TokensAt(now) >= float64(l.burst) {
			delete(l.m, k)
			continue
		}
		if oldestKey == "" || e.last.Before(oldest) {
			oldestKey, oldest = k, e.last
		}
	}
	if len(l.m) >= l.max && oldestKey != "" {
		delete(l.m, oldestKey)
	}
}

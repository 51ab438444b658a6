package notify

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rewind/rewind/db"
)

// Store is what the notifier needs of the catalog.
type Store interface {
	FindNotificationChannels(ctx context.Context) ([]*db.NotificationChannel, error)
	CreateNotificationDelivery(ctx context.Context, d *db.NotificationDelivery) error
}

// Defaults of a Notifier's zero fields.
const (
	DefaultAttempts  = 4
	DefaultBackoff   = 20 * time.Second // then about 40 s and 80 s: four attempts over about two and a half minutes
	DefaultTimeout   = 10 * time.Second
	DefaultQueueSize = 256
	workers          = 2
)

// Notifier delivers events to the channels that subscribe to them. Notify and ActivityEnded only queue: they
// never block the job that produced the event. Each delivery is tried up to Attempts times, with exponential
// backoff and jitter between tries, each try bounded by Timeout and recorded in the catalog's delivery log.
// Set the fields, then Start; Close stops it.
type Notifier struct {
	Store Store
	// BaseURL is the dashboard's address, for the links in the messages ("http://127.0.0.1:8080"); SetBaseURL
	// changes it once the server listens.
	BaseURL string
	Log     *slog.Logger
	Now     func() time.Time
	// Attempts per delivery, Backoff before the second (doubled before each next, ±50% jitter), Timeout of
	// one attempt, QueueSize the bound on deliveries waiting or retrying (beyond it events are dropped and
	// logged).
	Attempts  int
	Backoff   time.Duration
	Timeout   time.Duration
	QueueSize int
	// TLS is the base TLS configuration of HTTPS and SMTP connections (nil: the system's roots); tests give
	// their own roots.
	TLS *tls.Config

	// Watch, when set, is checked every WatchInterval (5 minutes when 0) for RPO and storage events.
	Watch         *Watch
	WatchInterval time.Duration

	mu      sync.Mutex
	queue   chan item
	pending int // items in queue plus retries waiting on a timer
	timers  map[*time.Timer]struct{}
	closed  bool
	drain   bool // Close is delivering what is queued: no new events, no more retries
	ctx     context.Context
	stop    context.CancelFunc
	wg      sync.WaitGroup
	http    *http.Client
}

// item is an event on its way: to every channel that wants it (ch nil), or to one channel, attempt n.
type item struct {
	ev      Event
	ch      *db.NotificationChannel
	attempt int
}

// Start starts the delivery workers and the watch.
func (n *Notifier) Start() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.queue = make(chan item, n.queueSize())
	n.timers = map[*time.Timer]struct{}{}
	n.ctx, n.stop = context.WithCancel(context.Background())
	n.http = &http.Client{Timeout: n.timeout(), Transport: &http.Transport{
		Proxy: http.ProxyFromEnvironment, TLSClientConfig: n.tlsConfig(""), ForceAttemptHTTP2: true,
		MaxIdleConns: 10, IdleConnTimeout: time.Minute, TLSHandshakeTimeout: n.timeout(),
	}}
	for range workers {
		n.wg.Add(1)
		go n.work()
	}
	if n.Watch != nil {
		n.wg.Add(1)
		go n.watch()
	}
}

// Close stops taking events, makes one last attempt at each delivery already queued (for at most one attempt's
// Timeout: a failure just before a shutdown is still reported), drops the retries that were waiting, and stops.
func (n *Notifier) Close() {
	n.mu.Lock()
	if n.closed || n.drain || n.stop == nil {
		n.closed = true
		n.mu.Unlock()
		return
	}
	n.drain = true
	for t := range n.timers {
		if t.Stop() {
			n.pending-- // a retry that will not come
		}
		delete(n.timers, t)
	}
	n.mu.Unlock()
	for deadline := time.Now().Add(n.timeout()); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		n.mu.Lock()
		idle := n.pending == 0
		n.mu.Unlock()
		if idle {
			break
		}
	}
	n.mu.Lock()
	n.closed = true
	n.mu.Unlock()
	n.stop()
	n.wg.Wait()
}

// Notify queues ev for every channel that subscribes to it. It never blocks; when the queue is full the event
// is dropped and logged.
func (n *Notifier) Notify(ev Event) {
	if ev.At.IsZero() {
		ev.At = n.now()
	}
	if !n.push(item{ev: ev}, true) {
		n.log().Warn("notification dropped: the queue is full or closed", "event", ev.Kind, "environment", ev.Environment)
	}
}

// ActivityEnded is the runner's OnActivityEnd: it queues the events the end of a makes.
func (n *Notifier) ActivityEnded(_ context.Context, a db.Activity, err error) {
	for _, ev := range ActivityEvents(a, err, n.base()) {
		n.Notify(ev)
	}
}

// Test sends a test event to ch now, once, records the attempt and returns it: "Send test".
func (n *Notifier) Test(ctx context.Context, ch *db.NotificationChannel, actor string) *db.NotificationDelivery {
	ev := Event{Kind: db.EventTest, Title: "Test notification from Rewind", At: n.now().UTC(),
		Detail: fmt.Sprintf("Sent with “Send test” by %s to check channel %q.", actor, ch.Name),
		URL:    n.base() + "/settings/notifications"}
	return n.deliver(ctx, item{ev: ev, ch: ch, attempt: 1}, true)
}

// SetBaseURL sets the dashboard's address for the links of the events from now on.
func (n *Notifier) SetBaseURL(u string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.BaseURL = u
}

func (n *Notifier) base() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return strings.TrimSuffix(n.BaseURL, "/")
}

// push queues it unless the queue is full or closed; a new event (not the fan-out of a queued one) is refused
// once Close began.
func (n *Notifier) push(it item, event bool) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed || event && n.drain || n.queue == nil || n.pending >= cap(n.queue) {
		return false
	}
	n.pending++
	n.queue <- it // never blocks: pending counts what the queue holds
	return true
}

func (n *Notifier) work() {
	defer n.wg.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case it := <-n.queue:
			n.handle(it)
		}
	}
}

// handle fans an event out to its channels, or makes one attempt and schedules the next one if it failed.
func (n *Notifier) handle(it item) {
	if it.ch == nil {
		n.done()
		chs, err := n.Store.FindNotificationChannels(n.ctx)
		if err != nil {
			n.log().Error("notification channels could not be read; event dropped", "event", it.ev.Kind, "err", err)
			return
		}
		for _, ch := range chs {
			if ch.Wants(it.ev.Kind, it.ev.Environment) {
				if !n.push(item{ev: it.ev, ch: ch, attempt: 1}, false) {
					n.log().Warn("notification dropped: the queue is full", "event", it.ev.Kind, "channel", ch.Name)
				}
			}
		}
		return
	}
	n.mu.Lock()
	last := it.attempt >= n.attempts() || n.drain
	n.mu.Unlock()
	d := n.deliver(n.ctx, it, last)
	if d.Status != db.DeliveryRetrying {
		n.done()
		return
	}
	next := it
	next.attempt++
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed || n.drain {
		n.pending--
		return
	}
	var t *time.Timer
	t = time.AfterFunc(n.backoff(it.attempt), func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		delete(n.timers, t)
		if n.closed {
			n.pending--
			return
		}
		n.queue <- next // its place was kept in pending
	})
	n.timers[t] = struct{}{}
}

func (n *Notifier) done() {
	n.mu.Lock()
	n.pending--
	n.mu.Unlock()
}

// deliver makes one attempt and records it; last says no attempt follows a failure.
func (n *Notifier) deliver(ctx context.Context, it item, last bool) *db.NotificationDelivery {
	ctx, cancel := context.WithTimeout(ctx, n.timeout())
	err := n.send(ctx, it.ch, it.ev)
	cancel()
	d := &db.NotificationDelivery{ChannelID: it.ch.ID, ChannelName: it.ch.Name, Event: it.ev.Kind,
		Environment: it.ev.Environment, ActivityID: it.ev.ActivityID, Attempt: it.attempt, Status: db.DeliveryDelivered}
	if err != nil {
		d.Status, d.Error = db.DeliveryFailed, redact(err.Error(), it.ch)
		if !last {
			d.Status = db.DeliveryRetrying
		}
		n.log().Warn("notification not delivered", "channel", it.ch.Name, "kind", it.ch.Kind, "event", it.ev.Kind,
			"attempt", it.attempt, "err", d.Error)
	}
	// Recorded even when the notifier is closing: the attempt happened.
	lctx, lcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer lcancel()
	if err := n.Store.CreateNotificationDelivery(lctx, d); err != nil {
		n.log().Error("record notification delivery", "channel", it.ch.Name, "err", err)
	}
	return d
}

// backoff is the wait after failed attempt n (1-based): Backoff·2^(n-1), ±50%.
func (n *Notifier) backoff(attempt int) time.Duration {
	b := n.Backoff
	if b <= 0 {
		b = DefaultBackoff
	}
	d := b << (attempt - 1)
	return d/2 + rand.N(d)
}

func (n *Notifier) attempts() int {
	if n.Attempts > 0 {
		return n.Attempts
	}
	return DefaultAttempts
}

func (n *Notifier) timeout() time.Duration {
	if n.Timeout > 0 {
		return n.Timeout
	}
	return DefaultTimeout
}

func (n *Notifier) queueSize() int {
	if n.QueueSize > 0 {
		return n.QueueSize
	}
	return DefaultQueueSize
}

func (n *Notifier) log() *slog.Logger {
	if n.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return n.Log
}

func (n *Notifier) now() time.Time {
	if n.Now != nil {
		return n.Now()
	}
	return time.Now()
}

func (n *Notifier) tlsConfig(serverName string) *tls.Config {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if n.TLS != nil {
		cfg = n.TLS.Clone()
	}
	if serverName != "" {
		cfg.ServerName = serverName
	}
	return cfg
}

// redact removes the channel's secrets from a message (a transport error may quote the URL it was sent to).
func redact(msg string, ch *db.NotificationChannel) string {
	for _, s := range ch.Secrets() {
		msg = strings.ReplaceAll(msg, s, db.MaskedPassword)
	}
	return msg
}

// errStatus is a receiver that answered, but not with success.
var errStatus = errors.New("receiver refused the notification")

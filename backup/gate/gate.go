// Package gate is the request gate Rewind puts in front of an environment's app: a reverse proxy
// (Config.Listen → Config.Upstream) that can hold the app's traffic for the short pause of a consistent
// backup or of a restore's switch.
//
// A hold stops dispatching new requests: they wait in the gate, in arrival order, with their bodies still
// unread in the client's connection; they are never dropped or answered with an error while the hold lasts.
// Hold returns once the requests already in flight have been answered by the app (bounded by
// Config.DrainTimeout), and the caller does its pause work (pin, switch) and calls Release, which dispatches
// the waiting requests in arrival order. A hold that is not released within Config.HoldTimeout releases
// itself, so no request waits forever.
//
// "In flight" means sent to the app and not answered yet: the drain ends when the app has sent the response
// headers of every request it was given, and does not wait for bodies to reach slow clients (a large
// download does not block a backup; an app that keeps working after sending its headers should mark such
// requests with Config.Streaming). WebSocket connections and streaming responses (server-sent events, chunked
// or close-delimited bodies) pass through the gate and keep working during a hold.
//
// Requests released together are sent upstream one after another in arrival order: each is written to the
// app's connection before the next one goes (or after a few milliseconds, if writing it is slow). The app
// then serves them concurrently, so the order its handlers start in is its own scheduler's.
//
// One hold at a time per gate: a second Hold while one is active fails with ErrHeld. The job runner's
// per-environment lock already serializes backups and restores; the refusal makes a bug in that lock loud
// rather than letting two operations release each other's pause.
package gate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Defaults used when the corresponding Config field is zero.
const (
	DefaultDrainTimeout    = 10 * time.Second
	DefaultHoldTimeout     = 60 * time.Second
	DefaultShutdownTimeout = 10 * time.Second
)

// dispatchStep bounds how long a released request may keep the next waiting one from being dispatched
// while the gate sends waiting requests upstream one after another, in arrival order (see dispatchLocked).
const dispatchStep = 5 * time.Millisecond

// Errors returned by Hold and Release. They may be wrapped: test with errors.Is.
var (
	// ErrHeld: the gate is already held; one backup or restore at a time per environment.
	ErrHeld = errors.New("gate already held")
	// ErrClosed: the gate is closed.
	ErrClosed = errors.New("gate closed")
	// ErrDrainTimeout: requests were still in flight when the drain timeout expired. The gate has released
	// its hold (the waiting requests are dispatched); the caller decides whether to go on without a pause
	// (a live backup) or abort.
	ErrDrainTimeout = errors.New("drain timeout: requests still in flight")
	// ErrHoldExpired: the hold outlived Config.HoldTimeout and released itself before Release was called; the
	// pause work was not covered by the hold until its end.
	ErrHoldExpired = errors.New("hold expired")
)

// Config configures a Gate.
type Config struct {
	// Name identifies the gate (the environment's name) in logs and metrics.
	Name string
	// Listen is the address Start listens on, e.g. "127.0.0.1:8081".
	Listen string
	// Upstream is the app's base URL, e.g. "http://127.0.0.1:3000".
	Upstream string

	// DrainTimeout bounds how long Hold waits for in-flight requests (DefaultDrainTimeout when zero).
	DrainTimeout time.Duration
	// HoldTimeout bounds a hold, drain included: a hold still active after it releases itself
	// (DefaultHoldTimeout when zero).
	HoldTimeout time.Duration
	// ShutdownTimeout bounds how long Close waits for in-flight requests (DefaultShutdownTimeout when zero).
	ShutdownTimeout time.Duration

	// Streaming, when set, marks requests whose responses are streams before they are sent upstream (e.g. a
	// long-poll path that answers nothing until it has news): draining does not wait for them. Upgrade
	// requests and requests accepting only text/event-stream are streams without it.
	Streaming func(*http.Request) bool

	// PreserveHost sends the client's Host header upstream instead of the upstream's host. X-Forwarded-Host
	// always carries the client's Host.
	PreserveHost bool
	// TrustForwarded keeps the X-Forwarded-For header a client sent and appends to it (the gate sits behind
	// another proxy). Otherwise X-Forwarded-For is just the client's address.
	TrustForwarded bool

	// ObserveHold, when set, is called with the duration of every hold once it ends (released, expired, or
	// given up at a drain timeout), from the goroutine that ended it. It must not call back into the gate.
	ObserveHold func(time.Duration)

	// Transport sends requests upstream; a clone of http.DefaultTransport with a larger idle pool when nil.
	Transport http.RoundTripper
	// Logger receives upstream errors and expired holds; slog.Default() when nil.
	Logger *slog.Logger
}

// Stats are a gate's counters since it was created.
type Stats struct {
	Holds          uint64        // holds taken (Hold returned nil)
	DrainTimeouts  uint64        // Hold calls given up at the drain timeout
	Expired        uint64        // holds released by the hold timeout
	HoldTime       time.Duration // total time requests were held, over every hold
	LastHold       time.Duration // duration of the last hold
	MaxHold        time.Duration // longest hold
	HeldRequests   uint64        // requests that waited for a release
	UpstreamErrors uint64        // requests answered 502
	InFlight       int           // requests sent upstream and not answered yet (streams excepted): what Hold drains
	Streams        int           // WebSocket connections and streaming responses open now
	Waiting        int           // requests waiting for a release now
	Holding        bool          // a hold is active
}

// Gate is a reverse proxy that can hold its traffic. Create it with New; it serves either through Start (its
// own listener) or as an http.Handler. Its methods are safe for concurrent use.
type Gate struct {
	cfg      Config
	upstream *url.URL
	proxy    *httputil.ReverseProxy
	log      *slog.Logger

	mu          sync.Mutex
	closed      bool
	hold        *Hold         // the active hold, nil when none
	queue       []*waiter     // requests waiting, in arrival order
	dispatching bool          // a released queue is being dispatched one request after another
	chain       uint64        // generation of the dispatching; a hold starts a new one
	inFlight    int           // dispatched requests that are not streams
	drained     chan struct{} // closed when inFlight reaches 0 during a hold
	streams     map[*flight]struct{}
	stats       Stats

	srv      *http.Server
	listener net.Listener
	serveErr chan error
}

// New checks cfg and returns a gate; call Start to serve on cfg.Listen.
func New(cfg Config) (*Gate, error) {
	u, err := url.Parse(cfg.Upstream)
	if err != nil {
		return nil, fmt.Errorf("gate %q: upstream: %w", cfg.Name, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("gate %q: upstream %q: want an http:// or https:// URL with a host", cfg.Name, cfg.Upstream)
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = DefaultDrainTimeout
	}
	if cfg.HoldTimeout <= 0 {
		cfg.HoldTimeout = DefaultHoldTimeout
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = DefaultShutdownTimeout
	}
	if cfg.Transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		// Requests released together reach the upstream together: keep their connections for the next pause
		// instead of dialing again.
		t.MaxIdleConns = 512
		t.MaxIdleConnsPerHost = 256
		cfg.Transport = t
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	g := &Gate{
		cfg:      cfg,
		upstream: u,
		log:      log.With("gate", cfg.Name),
		streams:  make(map[*flight]struct{}),
	}
	g.proxy = &httputil.ReverseProxy{
		Rewrite:        g.rewrite,
		Transport:      &stepTransport{g: g, rt: cfg.Transport},
		ModifyResponse: g.modifyResponse,
		ErrorHandler:   g.errorHandler,
		ErrorLog:       slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
	}
	return g, nil
}

// Start listens on Config.Listen and serves in the background until Close.
func (g *Gate) Start() error {
	l, err := net.Listen("tcp", g.cfg.Listen)
	if err != nil {
		return fmt.Errorf("gate %q: listen: %w", g.cfg.Name, err)
	}
	return g.Serve(l)
}

// Serve serves on l in the background until Close, which closes l.
func (g *Gate) Serve(l net.Listener) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		l.Close()
		return fmt.Errorf("gate %q: %w", g.cfg.Name, ErrClosed)
	}
	if g.srv != nil {
		l.Close()
		return fmt.Errorf("gate %q: already serving on %s", g.cfg.Name, g.listener.Addr())
	}
	g.srv = &http.Server{
		Handler:           g,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
	}
	g.listener = l
	g.serveErr = make(chan error, 1)
	go func(srv *http.Server, errc chan<- error) {
		err := srv.Serve(l)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		} else {
			g.log.Error("gate stopped serving", "err", err)
			err = fmt.Errorf("gate %q: serve: %w", g.cfg.Name, err)
		}
		errc <- err
	}(g.srv, g.serveErr)
	return nil
}

// Addr is the address the gate listens on, nil before Start.
func (g *Gate) Addr() net.Addr {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.listener == nil {
		return nil
	}
	return g.listener.Addr()
}

// Close stops the gate gracefully. An active hold is released first, so requests waiting in the gate are
// dispatched and served rather than dropped; the listener stops accepting; WebSocket connections and
// streaming responses are cut; then Close waits up to Config.ShutdownTimeout for the other requests to
// finish before closing their connections. A later Hold fails with ErrClosed. Close is idempotent.
func (g *Gate) Close() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	h := g.hold
	srv, errc := g.srv, g.serveErr
	g.mu.Unlock()

	if h != nil {
		h.end(endClose)
	}
	if srv == nil {
		g.cutStreams()
		return nil
	}
	// Shutdown stops the listener first; streams never end by themselves, so cut them before waiting.
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.ShutdownTimeout)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(ctx) }()
	g.cutStreams()
	err := <-shut
	if err != nil {
		err = fmt.Errorf("gate %q: shutdown: %w", g.cfg.Name, err)
		srv.Close()
		g.cutStreams()
	}
	return errors.Join(err, <-errc)
}

func (g *Gate) cutStreams() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for f := range g.streams {
		f.cancel()
	}
}

// Stats returns the gate's counters.
func (g *Gate) Stats() Stats {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.stats
	s.InFlight = g.inFlight
	s.Streams = len(g.streams)
	s.Waiting = g.waitingLocked()
	s.Holding = g.hold != nil
	return s
}

func (g *Gate) waitingLocked() int {
	n := 0
	for _, w := range g.queue {
		if !w.gone {
			n++
		}
	}
	return n
}

// waiter is a request waiting in the queue. Its fields are guarded by Gate.mu.
type waiter struct {
	ready  chan struct{} // closed when dispatched
	f      *flight       // set when dispatched
	gone   bool          // the client went away while waiting
	held   bool          // it waited for a hold (not only behind other waiters)
	stream bool          // see Gate.isStreamRequest
	cancel context.CancelFunc
}

// flight is a dispatched request. Its counted and stream fields are guarded by Gate.mu.
type flight struct {
	counted bool // counted in Gate.inFlight: sent upstream, response headers not in yet
	stream  bool // in Gate.streams: an upgraded connection or a streaming response
	cancel  context.CancelFunc
	next    func()      // dispatches the next waiter; set while a released queue is dispatched
	once    sync.Once   // guards next
	step    *time.Timer // calls next after dispatchStep; guarded by Gate.mu
}

type flightKey struct{}

// ServeHTTP proxies r upstream, after the active hold (if any) is released.
func (g *Gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	stream := g.isStreamRequest(r)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	g.mu.Lock()
	var f *flight
	if g.hold == nil && len(g.queue) == 0 && !g.dispatching {
		f = g.admitLocked(stream, cancel)
		g.mu.Unlock()
	} else {
		wt := &waiter{ready: make(chan struct{}), held: g.hold != nil, stream: stream, cancel: cancel}
		g.queue = append(g.queue, wt)
		g.mu.Unlock()
		select {
		case <-wt.ready:
		case <-r.Context().Done():
			g.mu.Lock()
			if wt.f == nil {
				// Nobody will answer: the client is gone. Leave the slot for the dispatcher to skip.
				wt.gone = true
				g.mu.Unlock()
				return
			}
			g.mu.Unlock() // dispatched at the same moment: serve it (the proxy notices the client is gone)
		}
		f = wt.f
	}
	defer g.finish(f)

	ctx = context.WithValue(ctx, flightKey{}, f)
	if f.next != nil {
		// Dispatch the next waiting request once this one is written upstream (or dispatchStep after it started
		// upstream), so the upstream gets released requests in their arrival order.
		next := g.advance(f)
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
			WroteRequest: func(httptrace.WroteRequestInfo) { next() },
		})
	}
	g.proxy.ServeHTTP(w, r.WithContext(ctx))
}

// admitLocked counts a request being dispatched now.
func (g *Gate) admitLocked(stream bool, cancel context.CancelFunc) *flight {
	f := &flight{stream: stream, counted: !stream, cancel: cancel}
	if stream {
		g.streams[f] = struct{}{}
	} else {
		g.inFlight++
	}
	return f
}

// finish uncounts f once its response is done (or failed).
func (g *Gate) finish(f *flight) {
	g.advance(f)()
	g.mu.Lock()
	defer g.mu.Unlock()
	if f.stream {
		delete(g.streams, f)
	}
	g.uncountLocked(f)
}

// responded notes that f's response headers are in: the app has answered, so draining no longer waits for
// it, however long its body takes to reach the client; a streaming response joins the streams.
func (g *Gate) responded(f *flight, stream bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if stream && !f.stream {
		f.stream = true
		g.streams[f] = struct{}{}
	}
	g.uncountLocked(f)
}

func (g *Gate) uncountLocked(f *flight) {
	if !f.counted {
		return
	}
	f.counted = false
	g.inFlight--
	if g.drained != nil && g.inFlight == 0 {
		close(g.drained)
		g.drained = nil
	}
}

// advance returns the function that lets the waiter after f go (once), if f was dispatched from a released
// queue.
func (g *Gate) advance(f *flight) func() {
	return func() {
		if f.next != nil {
			f.once.Do(f.next)
		}
	}
}

// dispatchLocked dispatches the oldest waiting request, unless a hold is active. The dispatched request lets
// the next one go when it is written upstream, when it ends, or dispatchStep after it started upstream,
// whichever comes first: arrival order is kept at the upstream while a slow dial or a large body cannot stall
// the queue.
func (g *Gate) dispatchLocked(chain uint64) {
	if chain != g.chain {
		return // a hold interrupted this dispatching; its release started a new one
	}
	for len(g.queue) > 0 && g.hold == nil {
		wt := g.queue[0]
		g.queue[0] = nil
		g.queue = g.queue[1:]
		if wt.gone {
			continue
		}
		if wt.held {
			g.stats.HeldRequests++
		}
		f := g.admitLocked(wt.stream, wt.cancel)
		f.next = func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			if f.step != nil {
				f.step.Stop()
			}
			g.dispatchLocked(chain)
		}
		wt.f = f
		close(wt.ready)
		g.dispatching = true
		return
	}
	if len(g.queue) == 0 {
		g.queue = nil
	}
	g.dispatching = false
}

// stepTransport starts the dispatchStep timer of a released request when it starts upstream.
type stepTransport struct {
	g  *Gate
	rt http.RoundTripper
}

func (t *stepTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if f, _ := r.Context().Value(flightKey{}).(*flight); f != nil && f.next != nil {
		t.g.mu.Lock()
		if f.step == nil {
			f.step = time.AfterFunc(dispatchStep, t.g.advance(f))
		}
		t.g.mu.Unlock()
	}
	return t.rt.RoundTrip(r)
}

func (g *Gate) isStreamRequest(r *http.Request) bool {
	if r.Header.Get("Upgrade") != "" && headerHasToken(r.Header, "Connection", "upgrade") {
		return true
	}
	if accept := r.Header.Get("Accept"); accept != "" {
		if mt, _, err := mime.ParseMediaType(accept); err == nil && mt == "text/event-stream" {
			return true
		}
	}
	return g.cfg.Streaming != nil && g.cfg.Streaming(r)
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

func (g *Gate) rewrite(pr *httputil.ProxyRequest) {
	if g.cfg.TrustForwarded {
		pr.Out.Header["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
	}
	pr.SetURL(g.upstream)
	pr.SetXForwarded()
	if g.cfg.PreserveHost {
		pr.Out.Host = pr.In.Host
	}
}

// modifyResponse runs once the upstream's response headers are in.
func (g *Gate) modifyResponse(res *http.Response) error {
	if f, _ := res.Request.Context().Value(flightKey{}).(*flight); f != nil {
		g.responded(f, isStreamResponse(res))
	}
	return nil
}

// isStreamResponse: server-sent events, protocol switches, and bodies of unknown length (chunked long polls,
// close-delimited streams). Close cuts them rather than waiting for their end.
func isStreamResponse(res *http.Response) bool {
	if res.StatusCode == http.StatusSwitchingProtocols {
		return true
	}
	if mt, _, err := mime.ParseMediaType(res.Header.Get("Content-Type")); err == nil && mt == "text/event-stream" {
		return true
	}
	return res.ContentLength < 0 && res.Request.Method != http.MethodHead &&
		res.StatusCode != http.StatusNoContent && res.StatusCode != http.StatusNotModified
}

func (g *Gate) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		// The client went away (or Close cut the stream): nobody reads the answer.
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	g.mu.Lock()
	g.stats.UpstreamErrors++
	g.mu.Unlock()
	g.log.Warn("upstream request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusBadGateway)
	fmt.Fprintln(w, "502 bad gateway: the app behind Rewind's gate did not answer")
}

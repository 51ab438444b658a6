package gate_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rewind/rewind/backup/gate"
)

// TestHoldUnderLoad drives a steady load through the gate while it takes 20 hold/release cycles: no request
// fails or is lost, every answer is right, the app is untouched between the end of the drain and the
// release, and no request gains more latency than the hold it waited for.
func TestHoldUnderLoad(t *testing.T) {
	a := newApp(t)
	var observed []time.Duration
	var obsMu sync.Mutex
	g, base := startGate(t, gate.Config{
		Upstream: a.srv.URL,
		ObserveHold: func(d time.Duration) {
			obsMu.Lock()
			defer obsMu.Unlock()
			observed = append(observed, d)
		},
	})
	client := newClient(t)

	type sample struct {
		id         string
		start, end time.Time
		err        error
	}
	const clients = 6
	stop := make(chan struct{})
	samples := make([][]sample, clients)
	var wg sync.WaitGroup
	// The machine is shared: a probe measures how late a sleeping goroutine wakes, so a stall of the whole
	// process is not blamed on the gate.
	var stalls []stall
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			start := time.Now()
			time.Sleep(time.Millisecond)
			if late := time.Since(start) - time.Millisecond; late > time.Millisecond {
				stalls = append(stalls, stall{start, late})
			}
		}
	})
	for c := range clients {
		wg.Go(func() {
			for n := 1; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				s := sample{id: fmt.Sprintf("%d-%d", c, n), start: time.Now()}
				s.err = incr(client, base, c, s.id, n)
				s.end = time.Now()
				samples[c] = append(samples[c], s)
				if s.err != nil {
					return
				}
			}
		})
	}

	type pause struct {
		start, drained, released time.Time
		dur                      time.Duration
	}
	var pauses []pause
	for range 20 {
		time.Sleep(15 * time.Millisecond)
		h := hold(t, g)
		p := pause{start: h.Started(), drained: time.Now()}
		time.Sleep(5 * time.Millisecond) // the pins
		p.released = time.Now()
		d, err := h.Release()
		if err != nil {
			t.Fatalf("Release: %v", err)
		}
		p.dur = d
		pauses = append(pauses, p)
	}
	time.Sleep(10 * time.Millisecond)
	close(stop)
	wg.Wait()

	// Every request succeeded with the right answer (incr checks the counter).
	var all []sample
	for c := range clients {
		for _, s := range samples[c] {
			if s.err != nil {
				t.Fatalf("request %s: %v", s.id, s.err)
			}
			all = append(all, s)
		}
	}
	// The app saw each request exactly once.
	events := a.Events()
	if got, want := len(events), len(all); got != want {
		t.Fatalf("app handled %d requests, clients sent %d", got, want)
	}
	// Nothing reached the app, or was still in it, between the end of a drain and its release.
	for _, p := range pauses {
		for _, e := range events {
			if e.start.Before(p.released) && e.end.After(p.drained) {
				t.Fatalf("request %s was in the app (%s..%s) during a hold (%s..%s)", e.id,
					e.start.Format(time.StampMicro), e.end.Format(time.StampMicro),
					p.drained.Format(time.StampMicro), p.released.Format(time.StampMicro))
			}
		}
	}
	// Added latency: a request overlapping holds takes at most those holds plus what an unheld request takes.
	var worstFree time.Duration
	held := 0
	for _, s := range all {
		if overlapped(s.start, s.end, pauses, func(p pause) (time.Time, time.Time) { return p.start, p.released }) == 0 {
			worstFree = max(worstFree, s.end.Sub(s.start))
		}
	}
	const allowance = 10 * time.Millisecond // scheduling on a shared machine
	var worstStall time.Duration
	for _, st := range stalls {
		worstStall = max(worstStall, st.late)
	}
	var worstExcess time.Duration
	for _, s := range all {
		var holds time.Duration
		for _, p := range pauses {
			if s.start.Before(p.start.Add(p.dur)) && s.end.After(p.start) {
				holds += p.dur
			}
		}
		if holds == 0 {
			continue
		}
		held++
		lat := s.end.Sub(s.start)
		var stalled time.Duration // process stalls seen by the probe during the request
		for _, st := range stalls {
			if st.start.Before(s.end) && st.start.Add(st.late).After(s.start) {
				stalled += st.late
			}
		}
		worstExcess = max(worstExcess, lat-holds)
		if lat > holds+worstFree+stalled+allowance {
			t.Errorf("request %s took %s, overlapping holds of %s (unheld requests take up to %s, stalls %s)", s.id, lat, holds, worstFree, stalled)
		}
	}
	st := g.Stats()
	t.Logf("%d requests, %d overlapping a hold, %d held by the gate; holds %s max %s; worst unheld latency %s; worst latency beyond its holds %s; %d stalls, worst %s",
		len(all), held, st.HeldRequests, st.HoldTime, st.MaxHold, worstFree, worstExcess, len(stalls), worstStall)
	if st.HeldRequests == 0 {
		t.Fatalf("no request was held: the load did not meet the holds")
	}
	if got, want := st.Holds, uint64(20); got != want {
		t.Fatalf("Stats().Holds = %d, want %d", got, want)
	}
	if st.Waiting != 0 || st.InFlight != 0 {
		t.Fatalf("after the load: %d waiting, %d in flight, want none", st.Waiting, st.InFlight)
	}
	obsMu.Lock()
	defer obsMu.Unlock()
	for i, p := range pauses {
		if got, want := observed[i], p.dur; got != want {
			t.Fatalf("observed hold %d = %s, Release said %s", i, got, want)
		}
	}
}

type stall struct {
	start time.Time
	late  time.Duration
}

func overlapped[P any](start, end time.Time, ps []P, span func(P) (time.Time, time.Time)) int {
	n := 0
	for _, p := range ps {
		if ps, pe := span(p); start.Before(pe) && end.After(ps) {
			n++
		}
	}
	return n
}

// incr sends client c's nth increment and checks the answer is n.
func incr(client *http.Client, base string, c int, id string, n int) error {
	req, err := http.NewRequest("POST", base+"/incr?c="+strconv.Itoa(c), strings.NewReader("+1"))
	if err != nil {
		return err
	}
	req.Header.Set("X-Req", id)
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %s", res.StatusCode, body)
	}
	if got, want := string(body), strconv.Itoa(n); got != want {
		return fmt.Errorf("counter = %s, want %s", got, want)
	}
	return nil
}

// orderTransport records the order in which the gate sends requests upstream.
type orderTransport struct {
	rt  http.RoundTripper
	mu  sync.Mutex
	ids []string
}

func (o *orderTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	o.mu.Lock()
	o.ids = append(o.ids, r.Header.Get("X-Req"))
	o.mu.Unlock()
	return o.rt.RoundTrip(r)
}

func (o *orderTransport) Since(i int) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.ids[i:]...)
}

func (o *orderTransport) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.ids)
}

// TestReleaseKeepsArrivalOrder: requests that arrived during a hold are sent upstream in their arrival order,
// each one written before the next is sent. (The app then serves them concurrently: the order its handlers
// start in is its scheduler's business.)
func TestReleaseKeepsArrivalOrder(t *testing.T) {
	a := newApp(t)
	tr := &orderTransport{rt: &http.Transport{MaxIdleConnsPerHost: 64}}
	g, base := startGate(t, gate.Config{Upstream: a.srv.URL, Transport: tr})
	client := newClient(t)
	// Warm the client's and the gate's connection pools, as a running app's would be.
	var warm sync.WaitGroup
	for i := range 12 {
		warm.Go(func() {
			if err := incr(client, base, 100+i, "warm", 1); err != nil {
				t.Error(err)
			}
		})
	}
	warm.Wait()

	for round := range 3 {
		h := hold(t, g)
		const n = 12
		errs := make(chan error, n)
		var want []string
		for i := range n {
			id := fmt.Sprintf("r%d-%02d", round, i)
			want = append(want, id)
			go func() { errs <- incr(client, base, i, id, round+1) }()
			waitFor(t, "request to wait", func() bool { return g.Stats().Waiting == i+1 })
		}
		before := tr.Len()
		if _, err := h.Release(); err != nil {
			t.Fatal(err)
		}
		for range n {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		if got := tr.Since(before); !slices.Equal(got, want) {
			t.Fatalf("round %d: sent upstream in order %v, want arrival order %v", round, got, want)
		}
	}
}

// TestHoldWaitsForInFlight: Hold returns only once a slow in-flight request has finished; requests arriving
// meanwhile wait.
func TestHoldWaitsForInFlight(t *testing.T) {
	a := newApp(t)
	g, base := startGate(t, gate.Config{Upstream: a.srv.URL})
	client := newClient(t)

	slow := make(chan string, 1)
	go func() { _, body := get(t, client, base+"/slow"); slow <- body }()
	<-a.slowEntered

	held := make(chan *gate.Hold, 1)
	go func() { held <- hold(t, g) }()
	waitFor(t, "hold to start", func() bool { return g.Stats().Holding })
	later := make(chan error, 1)
	go func() { later <- incr(client, base, 1, "later", 1) }()
	waitFor(t, "request to wait", func() bool { return g.Stats().Waiting == 1 })

	select {
	case <-held:
		t.Fatal("Hold returned while a request was in flight")
	case <-time.After(50 * time.Millisecond):
	}
	released := time.Now()
	close(a.slowRelease)
	h := <-held
	if got, want := <-slow, "slow done"; got != want {
		t.Fatalf("slow body = %q, want %q", got, want)
	}
	if h.Drain() < released.Sub(h.Started()) {
		t.Fatalf("Drain() = %s, but the slow request ran %s into the hold", h.Drain(), released.Sub(h.Started()))
	}
	if got, want := len(a.Events()), 0; got != want {
		t.Fatalf("app handled %d increments during the hold, want %d", got, want)
	}
	if _, err := h.Release(); err != nil {
		t.Fatal(err)
	}
	if err := <-later; err != nil {
		t.Fatal(err)
	}
}

// TestDrainTimeout: a request in flight beyond the drain timeout makes Hold fail and release, so the requests
// that waited are served while the slow one goes on.
func TestDrainTimeout(t *testing.T) {
	a := newApp(t)
	g, base := startGate(t, gate.Config{Upstream: a.srv.URL, DrainTimeout: 100 * time.Millisecond})
	client := newClient(t)

	slow := make(chan string, 1)
	go func() { _, body := get(t, client, base+"/slow"); slow <- body }()
	<-a.slowEntered

	errc := make(chan error, 1)
	go func() { _, err := g.Hold(context.Background()); errc <- err }()
	waitFor(t, "hold to start", func() bool { return g.Stats().Holding })
	later := make(chan error, 1)
	go func() { later <- incr(client, base, 1, "later", 1) }()

	if err := <-errc; !errors.Is(err, gate.ErrDrainTimeout) {
		t.Fatalf("Hold = %v, want ErrDrainTimeout", err)
	}
	if err := <-later; err != nil {
		t.Fatalf("request waiting at the drain timeout: %v", err)
	}
	st := g.Stats()
	if got, want := st.DrainTimeouts, uint64(1); got != want {
		t.Fatalf("DrainTimeouts = %d, want %d", got, want)
	}
	if st.Holding {
		t.Fatalf("still holding after a drain timeout")
	}
	close(a.slowRelease)
	if got, want := <-slow, "slow done"; got != want {
		t.Fatalf("slow body = %q, want %q", got, want)
	}
	// The gate can be held again.
	if _, err := hold(t, g).Release(); err != nil {
		t.Fatal(err)
	}
}

// TestHoldCanceled: a caller that gives up while Hold drains gets its context's error and the gate releases.
func TestHoldCanceled(t *testing.T) {
	a := newApp(t)
	g, base := startGate(t, gate.Config{Upstream: a.srv.URL})
	client := newClient(t)
	slow := make(chan string, 1)
	go func() { _, body := get(t, client, base+"/slow"); slow <- body }()
	<-a.slowEntered

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := g.Hold(ctx); errc <- err }()
	waitFor(t, "hold to start", func() bool { return g.Stats().Holding })
	later := make(chan error, 1)
	go func() { later <- incr(client, base, 1, "later", 1) }()
	waitFor(t, "request to wait", func() bool { return g.Stats().Waiting == 1 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Hold = %v, want context.Canceled", err)
	}
	if err := <-later; err != nil {
		t.Fatalf("request waiting when the hold was canceled: %v", err)
	}
	if g.Stats().Holding {
		t.Fatal("still holding after a canceled Hold")
	}
	close(a.slowRelease)
	<-slow
}

// TestHoldTimeoutReleases: a hold nobody releases ends by itself; waiting requests are then served, the
// expiry is logged, and Release reports it.
func TestHoldTimeoutReleases(t *testing.T) {
	a := newApp(t)
	var logs syncBuffer
	const timeout = 150 * time.Millisecond
	g, base := startGate(t, gate.Config{
		Upstream:     a.srv.URL,
		HoldTimeout:  timeout,
		DrainTimeout: 50 * time.Millisecond,
		Logger:       slog.New(slog.NewTextHandler(&logs, nil)),
	})
	client := newClient(t)

	h := hold(t, g)
	if err := incr(client, base, 1, "waits", 1); err != nil {
		t.Fatalf("request during a forgotten hold: %v", err)
	}
	<-h.Done()
	d, err := h.Release()
	if !errors.Is(err, gate.ErrHoldExpired) {
		t.Fatalf("Release after expiry = %v, want ErrHoldExpired", err)
	}
	if d < timeout {
		t.Fatalf("expired hold lasted %s, want at least the hold timeout %s", d, timeout)
	}
	if got, want := g.Stats().Expired, uint64(1); got != want {
		t.Fatalf("Expired = %d, want %d", got, want)
	}
	if !strings.Contains(logs.String(), "hold expired") {
		t.Fatalf("log %q does not mention the expired hold", logs.String())
	}
	// Release again: same answer.
	if d2, err2 := h.Release(); d2 != d || !errors.Is(err2, gate.ErrHoldExpired) {
		t.Fatalf("second Release = %s, %v; want %s, ErrHoldExpired", d2, err2, d)
	}
}

// TestWebSocketPassesThrough: an upgraded connection keeps working during a hold and does not delay it.
func TestWebSocketPassesThrough(t *testing.T) {
	a := newApp(t)
	g, base := startGate(t, gate.Config{Upstream: a.srv.URL, DrainTimeout: 5 * time.Second})
	conn, br := dialEcho(t, strings.TrimPrefix(base, "http://"))
	echo(t, conn, br, "before")
	if got, want := g.Stats().Streams, 1; got != want {
		t.Fatalf("Streams = %d, want %d", got, want)
	}

	h := hold(t, g) // would fail with ErrDrainTimeout after 5s if it waited for the connection
	echo(t, conn, br, "during")
	if _, err := h.Release(); err != nil {
		t.Fatal(err)
	}
	echo(t, conn, br, "after")
	conn.Close()
	waitFor(t, "stream to end", func() bool { return g.Stats().Streams == 0 })
}

// TestStreamingPassesThrough: server-sent events and a chunked long poll go on during a hold and do not
// delay it.
func TestStreamingPassesThrough(t *testing.T) {
	a := newApp(t)
	g, base := startGate(t, gate.Config{Upstream: a.srv.URL, DrainTimeout: 5 * time.Second})
	client := newClient(t)

	res, err := client.Get(base + "/sse")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	events := bufio.NewReader(res.Body)
	nextEvent := func() string {
		t.Helper()
		line, err := events.ReadString('\n')
		if err != nil {
			t.Fatalf("read event: %v", err)
		}
		if _, err := events.ReadString('\n'); err != nil {
			t.Fatalf("read event: %v", err)
		}
		return line
	}
	nextEvent()

	poll, err := client.Get(base + "/poll")
	if err != nil {
		t.Fatal(err)
	}
	defer poll.Body.Close()
	waitFor(t, "responses to stream", func() bool { return g.Stats().Streams == 2 })

	h := hold(t, g)
	for range 3 {
		nextEvent()
	}
	close(a.pollRelease)
	body, err := io.ReadAll(poll.Body)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(body), "news"; got != want {
		t.Fatalf("poll = %q, want %q", got, want)
	}
	if g.Stats().Holding == false {
		t.Fatal("hold ended while streaming")
	}
	if _, err := h.Release(); err != nil {
		t.Fatal(err)
	}
}

// TestOneHoldAtATime: a second Hold is refused while the first is active.
func TestOneHoldAtATime(t *testing.T) {
	a := newApp(t)
	g, _ := startGate(t, gate.Config{Upstream: a.srv.URL})
	h := hold(t, g)
	if _, err := g.Hold(context.Background()); !errors.Is(err, gate.ErrHeld) {
		t.Fatalf("second Hold = %v, want ErrHeld", err)
	}
	if _, err := h.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := hold(t, g).Release(); err != nil {
		t.Fatal(err)
	}
}

// TestCloseDuringHold: Close releases the hold and serves the waiting requests before shutting down.
func TestCloseDuringHold(t *testing.T) {
	a := newApp(t)
	g, err := gate.New(gate.Config{Name: "main", Listen: "127.0.0.1:0", Upstream: a.srv.URL,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	base := "http://" + g.Addr().String()
	client := newClient(t)
	conn, br := dialEcho(t, g.Addr().String())
	echo(t, conn, br, "open")

	h := hold(t, g)
	waiting := make(chan error, 1)
	go func() { waiting <- incr(client, base, 1, "waiting", 1) }()
	waitFor(t, "request to wait", func() bool { return g.Stats().Waiting == 1 })
	if err := g.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-waiting; err != nil {
		t.Fatalf("request waiting at Close: %v", err)
	}
	if _, err := h.Release(); !errors.Is(err, gate.ErrClosed) {
		t.Fatalf("Release after Close = %v, want ErrClosed", err)
	}
	if _, err := g.Hold(context.Background()); !errors.Is(err, gate.ErrClosed) {
		t.Fatalf("Hold after Close = %v, want ErrClosed", err)
	}
	if _, err := br.ReadString('\n'); err == nil {
		t.Fatalf("upgraded connection still open after Close")
	}
}

// TestClientGoneWhileWaiting: a client that gives up while its request waits leaves the queue.
func TestClientGoneWhileWaiting(t *testing.T) {
	a := newApp(t)
	g, base := startGate(t, gate.Config{Upstream: a.srv.URL})
	client := newClient(t)
	h := hold(t, g)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/hello", nil)
	done := make(chan error, 1)
	go func() {
		res, err := client.Do(req)
		if err == nil {
			res.Body.Close()
		}
		done <- err
	}()
	waitFor(t, "request to wait", func() bool { return g.Stats().Waiting == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled request = %v, want context.Canceled", err)
	}
	waitFor(t, "queue to empty", func() bool { return g.Stats().Waiting == 0 })
	if _, err := h.Release(); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, client, base+"/hello"); code != 200 || body != "hello" {
		t.Fatalf("GET /hello = %d %q, want 200 \"hello\"", code, body)
	}
}

// TestForwardedHeaders: the app learns the client's address, scheme and host.
func TestForwardedHeaders(t *testing.T) {
	a := newApp(t)
	_, base := startGate(t, gate.Config{Upstream: a.srv.URL})
	client := newClient(t)
	req, _ := http.NewRequest("GET", base+"/headers", nil)
	req.Header.Set("X-Forwarded-For", "6.6.6.6") // not trusted by default
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	want := fmt.Sprintf("host=%s xff=127.0.0.1 proto=http xhost=%s",
		strings.TrimPrefix(a.srv.URL, "http://"), strings.TrimPrefix(base, "http://"))
	if got := string(body); got != want {
		t.Fatalf("app saw %q, want %q", got, want)
	}
}

// TestUpstreamDown: an app that does not answer gives a short 502.
func TestUpstreamDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	g, base := startGate(t, gate.Config{Upstream: "http://" + addr})
	code, body := get(t, newClient(t), base+"/")
	if got, want := code, http.StatusBadGateway; got != want {
		t.Fatalf("status = %d, want %d", got, want)
	}
	if !strings.Contains(body, "did not answer") {
		t.Fatalf("body = %q, want a short explanation", body)
	}
	if got, want := g.Stats().UpstreamErrors, uint64(1); got != want {
		t.Fatalf("UpstreamErrors = %d, want %d", got, want)
	}
}

func TestNewRefusesBadUpstream(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:3000", "ftp://x", "http://"} {
		if _, err := gate.New(gate.Config{Upstream: u}); err == nil {
			t.Errorf("New(upstream %q) = nil error, want an error", u)
		}
	}
}

func TestWritePrometheus(t *testing.T) {
	a := newApp(t)
	g1, _ := startGate(t, gate.Config{Name: "main", Upstream: a.srv.URL})
	g2, _ := startGate(t, gate.Config{Name: "staging", Upstream: a.srv.URL})
	if _, err := hold(t, g1).Release(); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := gate.WritePrometheus(&b, g1, g2); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		`rewind_gate_holds_total{gate="main"} 1`,
		`rewind_gate_holds_total{gate="staging"} 0`,
		"# TYPE rewind_gate_hold_seconds_total counter",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %q:\n%s", want, out)
		}
	}
	if got, want := strings.Count(out, "# TYPE rewind_gate_holds_total"), 1; got != want {
		t.Errorf("TYPE lines for holds_total = %d, want %d", got, want)
	}
}

// countingReader is an endless-looking request body that counts what the client pulled from it.
type countingReader struct {
	left   int64
	pulled atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.left == 0 {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), c.left))
	clear(p[:n])
	c.left -= int64(n)
	c.pulled.Add(int64(n))
	return n, nil
}

// TestHeldBodyStaysWithClient: the gate does not read a waiting request's body: the client is held back by
// the connection once its buffers are full, and the whole body arrives after the release.
func TestHeldBodyStaysWithClient(t *testing.T) {
	a := newApp(t)
	g, base := startGate(t, gate.Config{Upstream: a.srv.URL})
	client := newClient(t)
	const size = 24 << 20
	body := &countingReader{left: size}

	h := hold(t, g)
	done := make(chan string, 1)
	go func() {
		res, err := client.Post(base+"/upload", "application/octet-stream", body)
		if err != nil {
			done <- err.Error()
			return
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		done <- string(b)
	}()
	waitFor(t, "request to wait", func() bool { return g.Stats().Waiting == 1 })
	// Let the client push what the connection takes.
	for last := int64(-1); last != body.pulled.Load(); {
		last = body.pulled.Load()
		time.Sleep(20 * time.Millisecond)
	}
	if pulled := body.pulled.Load(); pulled > size/2 {
		t.Fatalf("client sent %d of %d bytes during the hold: the gate is reading held bodies", pulled, size)
	}
	t.Logf("client pushed %d KiB into the connection during the hold", body.pulled.Load()>>10)
	if _, err := h.Release(); err != nil {
		t.Fatal(err)
	}
	if got, want := <-done, strconv.Itoa(size); got != want {
		t.Fatalf("app received %s bytes, want %s", got, want)
	}
}

// TestStreamingRequests: requests Config.Streaming marks (a long poll that answers late) are not waited for.
func TestStreamingRequests(t *testing.T) {
	a := newApp(t)
	g, base := startGate(t, gate.Config{
		Upstream:     a.srv.URL,
		DrainTimeout: 5 * time.Second,
		Streaming:    func(r *http.Request) bool { return r.URL.Path == "/slow" },
	})
	client := newClient(t)
	slow := make(chan string, 1)
	go func() { _, body := get(t, client, base+"/slow"); slow <- body }()
	<-a.slowEntered
	h := hold(t, g) // would fail with ErrDrainTimeout after 5s if it waited for /slow
	close(a.slowRelease)
	if got, want := <-slow, "slow done"; got != want {
		t.Fatalf("slow body = %q, want %q", got, want)
	}
	if _, err := h.Release(); err != nil {
		t.Fatal(err)
	}
}

// TestSlowDownloadDoesNotBlockHold: a large answer still being copied to a client that reads slowly is not
// in flight any more: the app has answered.
func TestSlowDownloadDoesNotBlockHold(t *testing.T) {
	a := newApp(t)
	g, base := startGate(t, gate.Config{Upstream: a.srv.URL, DrainTimeout: 5 * time.Second})
	res, err := newClient(t).Get(base + "/big")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	h := hold(t, g) // would fail with ErrDrainTimeout after 5s if it waited for the body to be read
	n, err := io.Copy(io.Discard, res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := n, int64(16<<20); got != want {
		t.Fatalf("downloaded %d bytes, want %d", got, want)
	}
	if _, err := h.Release(); err != nil {
		t.Fatal(err)
	}
}

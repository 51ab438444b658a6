package gate_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rewind/rewind/backup/gate"
)

// app is a small real HTTP app with state, put behind the gate by the tests.
type app struct {
	srv *httptest.Server

	mu       sync.Mutex
	counters map[string]int
	events   []event // every /incr, in the order the app started handling them

	slowEntered chan struct{} // receives when /slow starts
	slowRelease chan struct{} // /slow answers once this is closed
	pollRelease chan struct{} // /poll sends its answer once this is closed
}

type event struct {
	id         string // the request's X-Req header
	start, end time.Time
}

func newApp(t testing.TB) *app {
	t.Helper()
	a := &app{
		counters:    make(map[string]int),
		slowEntered: make(chan struct{}, 16),
		slowRelease: make(chan struct{}),
		pollRelease: make(chan struct{}),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /incr", a.incr)
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") })
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		a.slowEntered <- struct{}{}
		<-a.slowRelease
		io.WriteString(w, "slow done")
	})
	mux.HandleFunc("GET /headers", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "host=%s xff=%s proto=%s xhost=%s", r.Host, r.Header.Get("X-Forwarded-For"),
			r.Header.Get("X-Forwarded-Proto"), r.Header.Get("X-Forwarded-Host"))
	})
	mux.HandleFunc("POST /upload", func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprint(w, n)
	})
	mux.HandleFunc("GET /big", func(w http.ResponseWriter, r *http.Request) {
		const size = 16 << 20
		w.Header().Set("Content-Length", strconv.Itoa(size))
		w.Write(make([]byte, size))
	})
	mux.HandleFunc("GET /sse", sse)
	mux.HandleFunc("GET /poll", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush() // headers now, answer later: a chunked long poll
		select {
		case <-a.pollRelease:
			io.WriteString(w, "news")
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("GET /ws", echoUpgrade)
	a.srv = httptest.NewServer(mux)
	t.Cleanup(a.srv.Close)
	return a
}

// incr adds one to the caller's counter (?c=) and answers its new value; the body must be "+1".
func (a *app) incr(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	i := len(a.events) // events are in the order the app started handling them
	a.events = append(a.events, event{id: r.Header.Get("X-Req"), start: time.Now()})
	a.mu.Unlock()
	body, err := io.ReadAll(r.Body)
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil || string(body) != "+1" {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	c := r.URL.Query().Get("c")
	a.counters[c]++
	a.events[i].end = time.Now()
	io.WriteString(w, strconv.Itoa(a.counters[c]))
}

func (a *app) Events() []event {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]event(nil), a.events...)
}

// sse sends an event every 5ms until the client goes away.
func sse(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/event-stream")
	rc := http.NewResponseController(w)
	for i := 0; ; i++ {
		if _, err := fmt.Fprintf(w, "data: %d\n\n", i); err != nil {
			return
		}
		rc.Flush()
		select {
		case <-r.Context().Done():
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// echoUpgrade switches to a line echo protocol over the hijacked connection: the smallest WebSocket-like
// upgrade.
func echoUpgrade(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Upgrade") != "echo" {
		http.Error(w, "want Upgrade: echo", http.StatusBadRequest)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
	brw.Flush()
	for {
		line, err := brw.ReadString('\n')
		if err != nil {
			return
		}
		brw.WriteString("echo " + line)
		brw.Flush()
	}
}

// dialEcho opens an upgraded echo connection through addr.
func dialEcho(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: app\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	if got, want := res.StatusCode, http.StatusSwitchingProtocols; got != want {
		t.Fatalf("upgrade status = %d, want %d", got, want)
	}
	return conn, br
}

func echo(t *testing.T, conn net.Conn, br *bufio.Reader, msg string) {
	t.Helper()
	if _, err := io.WriteString(conn, msg+"\n"); err != nil {
		t.Fatalf("echo write: %v", err)
	}
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("echo read: %v", err)
	}
	if got, want := line, "echo "+msg+"\n"; got != want {
		t.Fatalf("echo = %q, want %q", got, want)
	}
}

// startGate starts a gate in front of upstream on a loopback port; it is closed at the end of the test.
func startGate(t testing.TB, cfg gate.Config) (*gate.Gate, string) {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	if cfg.Name == "" {
		cfg.Name = "main"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	g, err := gate.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := g.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return g, "http://" + g.Addr().String()
}

// newClient is an HTTP client with enough idle connections for the tests' concurrency.
func newClient(t testing.TB) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	res, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("GET %s: read: %v", url, err)
	}
	return res.StatusCode, string(b)
}

// waitFor polls cond until it holds, failing the test after a few seconds.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writes, for captured logs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// hold takes a hold, failing the test on error.
func hold(t testing.TB, g *gate.Gate) *gate.Hold {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h, err := g.Hold(ctx)
	if err != nil {
		t.Fatalf("Hold: %v", err)
	}
	return h
}

package storagetest

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Faults says how often a FaultProxy misbehaves, per request.
type Faults struct {
	Errors   float64 // answer 500 InternalError or 503 SlowDown without forwarding
	Timeouts float64 // answer nothing until the client gives up (or Hang passes)
	Truncate float64 // forward a GET, then cut its body halfway and drop the connection
	// Hang bounds a timeout's silence (10s when 0); clients should time out well before.
	Hang time.Duration
	Seed uint64
}

// FaultStats counts what a FaultProxy did.
type FaultStats struct {
	Requests, Errors, Timeouts, Truncated atomic.Int64
}

func (s *FaultStats) String() string {
	return fmt.Sprintf("%d requests: %d 5xx, %d timeouts, %d truncated reads", s.Requests.Load(), s.Errors.Load(),
		s.Timeouts.Load(), s.Truncated.Load())
}

// FaultProxy is an HTTP proxy in front of an S3 server that injects faults. It forwards the Host header as
// the client sent it, so SigV4 signatures made for the proxy's address verify at the server.
type FaultProxy struct {
	URL   string
	Stats FaultStats

	mu     sync.Mutex
	rnd    *rand.Rand
	faults Faults
	target string
	tr     *http.Transport
}

// StartFaultProxy starts a proxy to target (http://host:port) for the test.
func StartFaultProxy(t testing.TB, target string, f Faults) *FaultProxy {
	if f.Hang <= 0 {
		f.Hang = 10 * time.Second
	}
	p := &FaultProxy{faults: f, target: strings.TrimSuffix(target, "/"), rnd: rand.New(rand.NewPCG(f.Seed, 7)),
		tr: &http.Transport{MaxIdleConnsPerHost: 64, DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}}
	srv := httptest.NewServer(p)
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		p.tr.CloseIdleConnections()
	})
	p.URL = srv.URL
	return p
}

// SetFaults changes the fault rates (e.g. to none while a test sets up).
func (p *FaultProxy) SetFaults(f Faults) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if f.Hang <= 0 {
		f.Hang = 10 * time.Second
	}
	p.faults = f
}

func (p *FaultProxy) roll() (f Faults, x float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.faults, p.rnd.Float64()
}

var hopHeaders = map[string]bool{"Connection": true, "Keep-Alive": true, "Proxy-Connection": true,
	"Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true}

// ServeHTTP implements http.Handler.
func (p *FaultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.Stats.Requests.Add(1)
	f, x := p.roll()
	switch {
	case x < f.Errors:
		p.Stats.Errors.Add(1)
		io.Copy(io.Discard, r.Body) //nolint:errcheck
		code, status := "InternalError", http.StatusInternalServerError
		if int(x*1e6)%2 == 1 {
			code, status = "SlowDown", http.StatusServiceUnavailable
		}
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(status)
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>injected fault</Message></Error>`, code)
		return
	case x < f.Errors+f.Timeouts:
		p.Stats.Timeouts.Add(1)
		select {
		case <-r.Context().Done():
		case <-time.After(f.Hang):
		}
		panic(http.ErrAbortHandler)
	}
	truncate := r.Method == http.MethodGet && x < f.Errors+f.Timeouts+f.Truncate

	out, err := http.NewRequestWithContext(r.Context(), r.Method, p.target+r.URL.RequestURI(), r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	for k, vs := range r.Header {
		if !hopHeaders[k] {
			out.Header[k] = vs
		}
	}
	out.Host = r.Host
	out.ContentLength = r.ContentLength
	if r.ContentLength == 0 {
		out.Body = http.NoBody
	}
	resp, err := p.tr.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		if !hopHeaders[k] {
			w.Header()[k] = vs
		}
	}
	w.WriteHeader(resp.StatusCode)
	ok := resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusPartialContent
	if truncate && ok && resp.ContentLength > 1 {
		p.Stats.Truncated.Add(1)
		io.CopyN(w, resp.Body, resp.ContentLength/2) //nolint:errcheck
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
		panic(http.ErrAbortHandler) // drop the connection mid-body
	}
	io.Copy(w, resp.Body) //nolint:errcheck
}

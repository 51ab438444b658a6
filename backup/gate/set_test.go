package gate_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rewind/rewind/backup/gate"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestSetSyncHoldAndMetrics(t *testing.T) {
	app := func(name string) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, name) }))
		t.Cleanup(s.Close)
		return s
	}
	a, b := app("a"), app("b")
	set := gate.NewSet(gate.Config{}, nil)
	defer set.Close()
	addr := freeAddr(t)
	if err := set.Sync([]gate.Endpoint{{Environment: "main", Listen: addr, Upstream: a.URL}, {Environment: "nogate"}}); err != nil {
		t.Fatal(err)
	}
	get := func() string {
		res, err := http.Get("http://" + addr)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return string(body)
	}
	if got, want := get(), "a"; got != want {
		t.Fatalf("through the gate: %q, want %q", got, want)
	}

	// A request during a hold waits for the release.
	release, err := set.Hold(context.Background(), "main")
	if err != nil || release == nil {
		t.Fatalf("Hold = %v", err)
	}
	got := make(chan string)
	go func() { got <- get() }()
	select {
	case s := <-got:
		t.Fatalf("a request went through a hold: %q", s)
	case <-time.After(50 * time.Millisecond):
	}
	release()
	if s := <-got; s != "a" {
		t.Fatalf("held request answered %q", s)
	}
	if r, err := set.Hold(context.Background(), "nogate"); r != nil || err != nil {
		t.Fatalf("Hold of an environment without a gate = %t, %v; want no release, no error", r != nil, err)
	}

	// A changed upstream restarts the gate.
	if err := set.Sync([]gate.Endpoint{{Environment: "main", Listen: addr, Upstream: b.URL}}); err != nil {
		t.Fatal(err)
	}
	if got, want := get(), "b"; got != want {
		t.Fatalf("after Sync: %q, want %q", got, want)
	}
	var m strings.Builder
	if err := set.WritePrometheus(&m); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.String(), `rewind_gate_holds_total{gate="main"}`) {
		t.Fatalf("metrics lack the gate:\n%s", m.String())
	}
	// A gate that cannot listen is reported; the set keeps running.
	if err := set.Sync([]gate.Endpoint{{Environment: "main", Listen: addr, Upstream: b.URL}, {Environment: "bad", Listen: addr, Upstream: a.URL}}); err == nil {
		t.Fatal("Sync with a taken address succeeded")
	}
	if set.Gate("bad") != nil || set.Gate("main") == nil {
		t.Fatal("a failed gate replaced a running one")
	}
}

package gate_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"

	"github.com/rewind/rewind/backup/gate"
)

// A consistent backup pauses the environment's traffic only while it pins its services.
func Example() {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer app.Close()

	g, err := gate.New(gate.Config{Name: "main", Listen: "127.0.0.1:0", Upstream: app.URL,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		panic(err)
	}
	if err := g.Start(); err != nil {
		panic(err)
	}
	defer g.Close()

	h, err := g.Hold(context.Background())
	if errors.Is(err, gate.ErrDrainTimeout) {
		fmt.Println("requests still in flight: back up live or give up")
		return
	} else if err != nil {
		panic(err)
	}
	defer h.Release() // on every path; a second Release is a no-op

	// ... pin every source here ...

	pause, err := h.Release()
	if err != nil { // ErrHoldExpired: the pins outlived the hold timeout
		panic(err)
	}
	fmt.Println("paused:", pause > 0, "holds:", g.Stats().Holds)
	// Output: paused: true holds: 1
}

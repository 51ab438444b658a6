package gate

import (
	"context"
	"fmt"
	"time"
)

// Hold is an active pause of a gate's traffic, returned by Gate.Hold. The caller that took it calls Release
// exactly once, when its pause work is done (defer it so an error path cannot forget); later calls return the
// same result. If nobody calls Release, the hold releases itself after Config.HoldTimeout, and Close releases
// it too: requests never wait forever.
type Hold struct {
	g     *Gate
	start time.Time
	drain time.Duration // set before Hold returns
	timer *time.Timer   // the hold timeout
	done  chan struct{} // closed when the hold ends

	// Guarded by g.mu.
	ended  bool
	reason endReason
	dur    time.Duration
}

type endReason int

const (
	endRelease endReason = iota
	endExpire
	endClose
	endDrainTimeout
	endCanceled
)

// Hold pauses the gate: new requests wait (in arrival order, their bodies unread) instead of being sent
// upstream; then Hold waits until the app has answered every request already sent to it and returns the
// active hold. WebSocket connections and streaming responses are not waited for (see the package doc).
//
// If requests are still in flight after Config.DrainTimeout, Hold releases the gate (the waiting requests are
// dispatched) and returns an error wrapping ErrDrainTimeout: the caller decides whether to go on without a
// pause or give up. If ctx ends first, Hold releases and returns ctx's error. Hold fails at once with ErrHeld
// while another hold is active and with ErrClosed after Close. The duration of a failed attempt counts as a
// hold in Stats and ObserveHold, since requests did wait.
func (g *Gate) Hold(ctx context.Context) (*Hold, error) {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil, fmt.Errorf("gate %q: %w", g.cfg.Name, ErrClosed)
	}
	if other := g.hold; other != nil {
		g.mu.Unlock()
		return nil, fmt.Errorf("gate %q: %w since %s", g.cfg.Name, ErrHeld, other.start.Format(time.RFC3339))
	}
	h := &Hold{g: g, start: time.Now(), done: make(chan struct{})}
	h.timer = time.AfterFunc(g.cfg.HoldTimeout, func() { h.end(endExpire) })
	g.hold = h
	g.chain++ // a dispatching in progress stops; Release resumes the queue from its head
	g.dispatching = false
	for _, w := range g.queue {
		w.held = true
	}
	var drained chan struct{}
	if g.inFlight > 0 {
		drained = make(chan struct{})
		g.drained = drained
	}
	g.mu.Unlock()

	if drained != nil {
		t := time.NewTimer(g.cfg.DrainTimeout)
		defer t.Stop()
		select {
		case <-drained:
		case <-t.C:
			n := g.Stats().InFlight
			h.end(endDrainTimeout)
			return nil, fmt.Errorf("gate %q: %w (%d after %s); released", g.cfg.Name, ErrDrainTimeout, n, g.cfg.DrainTimeout)
		case <-ctx.Done():
			h.end(endCanceled)
			return nil, fmt.Errorf("gate %q: hold: %w", g.cfg.Name, ctx.Err())
		case <-h.done:
			_, err := h.Release()
			return nil, err
		}
	}
	h.drain = time.Since(h.start)
	g.mu.Lock()
	g.stats.Holds++
	g.mu.Unlock()
	return h, nil
}

// Release ends the hold and dispatches the waiting requests in their arrival order. It returns how long the
// gate held requests: from the start of Hold (drain included) to now, an upper bound of the latency any
// request gained. If the hold had already ended — the hold timeout expired (error wrapping ErrHoldExpired) or
// the gate was closed (ErrClosed) — it returns that hold's duration and the error: the pause work was not
// covered until its end. Release is safe to call more than once and from any goroutine.
func (h *Hold) Release() (time.Duration, error) {
	d, reason := h.end(endRelease)
	switch reason {
	case endExpire:
		return d, fmt.Errorf("gate %q: %w after %s", h.g.cfg.Name, ErrHoldExpired, h.g.cfg.HoldTimeout)
	case endClose:
		return d, fmt.Errorf("gate %q: %w during the hold", h.g.cfg.Name, ErrClosed)
	}
	return d, nil
}

// Done is closed when the hold ends, by Release, the hold timeout or Close. Pause work can select on it to
// stop early when the hold expired.
func (h *Hold) Done() <-chan struct{} { return h.done }

// Started is when the hold began: from then on new requests waited.
func (h *Hold) Started() time.Time { return h.start }

// Drain is how long Hold waited for in-flight requests.
func (h *Hold) Drain() time.Duration { return h.drain }

// end ends the hold once and returns its duration and how it ended.
func (h *Hold) end(reason endReason) (time.Duration, endReason) {
	g := h.g
	g.mu.Lock()
	if h.ended {
		defer g.mu.Unlock()
		return h.dur, h.reason
	}
	h.ended, h.reason, h.dur = true, reason, time.Since(h.start)
	h.timer.Stop()
	g.hold = nil
	g.drained = nil
	g.stats.HoldTime += h.dur
	g.stats.LastHold = h.dur
	g.stats.MaxHold = max(g.stats.MaxHold, h.dur)
	switch reason {
	case endExpire:
		g.stats.Expired++
	case endDrainTimeout:
		g.stats.DrainTimeouts++
	}
	g.dispatchLocked(g.chain)
	waiting := g.waitingLocked()
	g.mu.Unlock()
	defer close(h.done) // after the log and the observer: whoever waits on Done sees them done

	switch reason {
	case endExpire:
		g.log.Warn("hold expired: released by the hold timeout; its caller did not release in time",
			"timeout", g.cfg.HoldTimeout, "held", h.dur, "waiting", waiting)
	case endDrainTimeout:
		g.log.Warn("drain timed out: released without pausing", "drain_timeout", g.cfg.DrainTimeout, "held", h.dur)
	}
	if g.cfg.ObserveHold != nil {
		g.cfg.ObserveHold(h.dur)
	}
	return h.dur, reason
}

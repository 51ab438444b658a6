package gate

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

// WritePrometheus writes the counters of gates in the Prometheus text exposition format, one sample per
// gate labelled with its name, for the server's /metrics handler.
func WritePrometheus(w io.Writer, gates ...*Gate) error {
	stats := make([]Stats, len(gates))
	for i, g := range gates {
		stats[i] = g.Stats()
	}
	families := []struct {
		name, typ, help string
		value           func(Stats) float64
	}{
		{"rewind_gate_holds_total", "counter", "Holds taken.", func(s Stats) float64 { return float64(s.Holds) }},
		{"rewind_gate_hold_seconds_total", "counter", "Time requests were held, over every hold.", func(s Stats) float64 { return s.HoldTime.Seconds() }},
		{"rewind_gate_last_hold_seconds", "gauge", "Duration of the last hold.", func(s Stats) float64 { return s.LastHold.Seconds() }},
		{"rewind_gate_max_hold_seconds", "gauge", "Longest hold.", func(s Stats) float64 { return s.MaxHold.Seconds() }},
		{"rewind_gate_drain_timeouts_total", "counter", "Holds given up because requests were still in flight.", func(s Stats) float64 { return float64(s.DrainTimeouts) }},
		{"rewind_gate_expired_holds_total", "counter", "Holds released by the hold timeout.", func(s Stats) float64 { return float64(s.Expired) }},
		{"rewind_gate_held_requests_total", "counter", "Requests that waited for a release.", func(s Stats) float64 { return float64(s.HeldRequests) }},
		{"rewind_gate_upstream_errors_total", "counter", "Requests answered 502.", func(s Stats) float64 { return float64(s.UpstreamErrors) }},
		{"rewind_gate_in_flight", "gauge", "Requests being served (streams excepted).", func(s Stats) float64 { return float64(s.InFlight) }},
		{"rewind_gate_streams", "gauge", "WebSocket connections and streaming responses open.", func(s Stats) float64 { return float64(s.Streams) }},
		{"rewind_gate_waiting", "gauge", "Requests waiting for a release.", func(s Stats) float64 { return float64(s.Waiting) }},
	}
	var b strings.Builder
	for _, f := range families {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", f.name, f.help, f.name, f.typ)
		for i, g := range gates {
			fmt.Fprintf(&b, "%s{gate=%s} %s\n", f.name, labelValue(g.cfg.Name), strconv.FormatFloat(f.value(stats[i]), 'g', -1, 64))
		}
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write gate metrics: %w", err)
	}
	return nil
}

// labelValue quotes v as a Prometheus label value.
func labelValue(v string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v) + `"`
}

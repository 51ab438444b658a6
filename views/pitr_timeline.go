package views

import (
	"fmt"
	"strconv"
	"time"
)

// The timeline's geometry, in SVG user units.
const (
	timelineWidth = 600
	timelineLeft  = 4
	timelineRight = 596
)

// TimeSpan is a span of moments a service can be restored to.
type TimeSpan struct {
	From, To time.Time
}

// PITRTimeline is one service's restorable spans and the gaps between them over the window.
type PITRTimeline struct {
	Service          string
	From, To         time.Time // the window: its start and now
	Bars             []TimelineBar
	Gaps             int
	FromText, ToText string
	Desc             string
}

// TimelineBar is a restorable span (or a gap, with Gap set) laid out on the timeline.
type TimelineBar struct {
	X, W  string
	Gap   bool
	Title string
}

// NewPITRTimeline lays out spans (oldest first, within [from, to]) on the window [from, to]; what lies between
// two spans, after the newest or before the oldest is drawn as a gap. Moments are shown in loc.
func NewPITRTimeline(service string, spans []TimeSpan, from, to time.Time, loc *time.Location) PITRTimeline {
	t := PITRTimeline{Service: service, From: from, To: to, FromText: from.In(loc).Format("Jan 2 15:04"),
		ToText: "now"}
	total := to.Sub(from)
	if total <= 0 {
		return t
	}
	x := func(m time.Time) float64 {
		f := float64(m.Sub(from)) / float64(total)
		return timelineLeft + min(max(f, 0), 1)*(timelineRight-timelineLeft)
	}
	add := func(a, b time.Time, gap bool) {
		x0, x1 := x(a), x(b)
		w := max(x1-x0, 1) // a span of a moment is still visible
		title := fmt.Sprintf("restorable %s – %s", fmtMoment(a, loc), fmtMoment(b, loc))
		if gap {
			title = fmt.Sprintf("gap: not restorable %s – %s", fmtMoment(a, loc), fmtMoment(b, loc))
			t.Gaps++
		}
		t.Bars = append(t.Bars, TimelineBar{X: strconv.FormatFloat(x0, 'f', 1, 64),
			W: strconv.FormatFloat(w, 'f', 1, 64), Gap: gap, Title: title})
	}
	prev := from
	for _, s := range spans {
		if s.To.Before(from) || s.From.After(to) {
			continue
		}
		a, b := maxTime(s.From, from), minTime(s.To, to)
		if a.After(prev) {
			add(prev, a, true)
		}
		add(a, b, false)
		prev = b
	}
	// What the newest span does not reach is the time it takes to ship the newest changes (or a stopped
	// follower): a gap only once it is longer than a few seconds.
	if to.Sub(prev) > 5*time.Second {
		add(prev, to, true)
	}
	restorable := len(t.Bars) - t.Gaps
	t.Desc = fmt.Sprintf("%s: %d restorable %s and %d %s between %s and now", service, restorable,
		pluralWord(restorable, "span", "spans"), t.Gaps, pluralWord(t.Gaps, "gap", "gaps"), t.FromText)
	return t
}

func fmtMoment(m time.Time, loc *time.Location) string {
	return m.In(loc).Format("2006-01-02 15:04:05")
}

func pluralWord(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

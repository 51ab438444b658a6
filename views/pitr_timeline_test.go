package views

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestNewPITRTimeline(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	from := now.Add(-10 * time.Hour)
	spans := []TimeSpan{
		{From: now.Add(-8 * time.Hour), To: now.Add(-6 * time.Hour)},
		{From: now.Add(-5 * time.Hour), To: now.Add(-2 * time.Second)},
	}
	tl := NewPITRTimeline("db", spans, from, now, time.UTC)
	// Before the first span (8 h ago) and between the two (6 h – 5 h ago) are gaps; the 2 s not shipped yet is not.
	var kinds []string
	for _, b := range tl.Bars {
		if b.Gap {
			kinds = append(kinds, "gap@"+b.X+"+"+b.W)
		} else {
			kinds = append(kinds, "span@"+b.X+"+"+b.W)
		}
	}
	want := []string{"gap@4.0+118.4", "span@122.4+118.4", "gap@240.8+59.2", "span@300.0+296.0"}
	if strings.Join(kinds, " ") != strings.Join(want, " ") || tl.Gaps != 2 {
		t.Fatalf("bars = %v (gaps %d), want %v (2)", kinds, tl.Gaps, want)
	}
	if !strings.Contains(tl.Bars[2].Title, "gap: not restorable 2026-12-04 06:00:00 – 2026-12-04 07:00:00") {
		t.Errorf("gap title = %q", tl.Bars[2].Title)
	}
	// A stopped follower: the time since its last span is a gap; no span at all is one gap.
	if tl := NewPITRTimeline("db", spans[:1], from, now, time.UTC); tl.Gaps != 2 || !tl.Bars[len(tl.Bars)-1].Gap {
		t.Errorf("stopped stream: %+v, want a trailing gap", tl.Bars)
	}
	if tl := NewPITRTimeline("db", nil, from, now, time.UTC); tl.Gaps != 1 || len(tl.Bars) != 1 {
		t.Errorf("no span: %+v, want one gap over the window", tl.Bars)
	}
	var b strings.Builder
	if err := pitrTimeline(tl).Render(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	if got := b.String(); strings.Count(got, `data-testid="pitr-gap"`) != 2 || strings.Count(got, `data-testid="pitr-span"`) != 2 ||
		!strings.Contains(got, `aria-label="db: 2 restorable spans and 2 gaps between Dec 4 02:00 and now"`) {
		t.Errorf("rendered:\n%s", got)
	}
}

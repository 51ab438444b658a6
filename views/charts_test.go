package views

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/rewind/rewind/db"
)

// The chart's SVG parses, has one size and one duration point per backup, oldest left, each at the height of
// its value against the largest, and says what it shows in its title and desc.
func TestHistoryChartSVG(t *testing.T) {
	start := time.Date(2026, 12, 1, 4, 0, 0, 0, time.UTC)
	var points []db.BackupPoint // newest first, as the catalog returns them
	for i := 9; i >= 0; i-- {
		at := start.Add(time.Duration(i) * 24 * time.Hour)
		if i == 5 {
			at = at.Add(12 * time.Hour) // uneven spacing: x follows time, not the index
		}
		points = append(points, db.BackupPoint{ID: fmt.Sprintf("%020x", i+1), SizeBytes: int64(1000 * (i + 1)),
			CreatedAt: at, CompletedAt: at.Add(time.Duration(i%4+1) * time.Second)})
	}
	var buf bytes.Buffer
	if err := historyChart(NewHistoryChart(points)).Render(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	var svg struct {
		Title   string `xml:"title"`
		Desc    string `xml:"desc"`
		Label   string `xml:"aria-labelledby,attr"`
		Role    string `xml:"role,attr"`
		Circles []struct {
			Series string  `xml:"data-series,attr"`
			ID     string  `xml:"data-id,attr"`
			X      float64 `xml:"cx,attr"`
			Y      float64 `xml:"cy,attr"`
			Title  string  `xml:"title"`
		} `xml:"circle"`
	}
	dec := xml.NewDecoder(&buf)
	for { // skip to the <svg> inside the <figure>
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("no svg element: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "svg" {
			if err := dec.DecodeElement(&svg, &se); err != nil {
				t.Fatalf("the chart is not well-formed SVG: %v", err)
			}
			break
		}
	}
	if svg.Role != "img" || svg.Label != "history-title history-desc" || svg.Title == "" || svg.Desc == "" {
		t.Fatalf("svg role %q, labelled by %q, title %q, desc %q: want an accessible image", svg.Role, svg.Label, svg.Title, svg.Desc)
	}
	if got, want := len(svg.Circles), 2*len(points); got != want {
		t.Fatalf("%d points, want %d", got, want)
	}
	const maxSize, maxTook = 10000.0, 4.0 // the largest size and run in the data
	span := points[0].CreatedAt.Sub(points[len(points)-1].CreatedAt)
	near := func(a, b float64) bool { return math.Abs(a-b) < 0.06 }
	seen := map[string]int{}
	for _, c := range svg.Circles {
		i := seen[c.Series]
		seen[c.Series]++
		p := points[len(points)-1-i] // oldest first
		if c.ID != p.ID {
			t.Fatalf("%s point %d is backup %s, want %s", c.Series, i, c.ID, p.ID)
		}
		wantX := 64 + 526*float64(p.CreatedAt.Sub(points[len(points)-1].CreatedAt))/float64(span)
		var wantY float64
		switch c.Series {
		case "size":
			wantY = 14 + 60 - 60*float64(p.SizeBytes)/maxSize
		case "took":
			wantY = 100 + 60 - 60*p.Took().Seconds()/maxTook
		default:
			t.Fatalf("unknown series %q", c.Series)
		}
		if !near(c.X, wantX) || !near(c.Y, wantY) {
			t.Errorf("%s of %s at (%v, %v), want (%.1f, %.1f)", c.Series, p.ID, c.X, c.Y, wantX, wantY)
		}
		if c.Title == "" {
			t.Errorf("%s of %s has no title", c.Series, p.ID)
		}
	}
	if svg.Circles[0].X != 64 || svg.Circles[len(points)-1].X != 590 {
		t.Errorf("the oldest is at x %v and the newest at %v, want 64 and 590", svg.Circles[0].X, svg.Circles[len(points)-1].X)
	}
	if got := strconv.Itoa(len(points)); !bytes.Contains([]byte(svg.Title), []byte(got)) {
		t.Errorf("title %q does not say how many backups", svg.Title)
	}
}

// Without backups there is no chart; one backup sits in the middle.
func TestHistoryChartEdges(t *testing.T) {
	var buf bytes.Buffer
	if err := historyChart(NewHistoryChart(nil)).Render(context.Background(), &buf); err != nil || buf.Len() != 0 {
		t.Fatalf("empty chart rendered %q, %v", buf.String(), err)
	}
	c := NewHistoryChart([]db.BackupPoint{{ID: "a", SizeBytes: 0, CreatedAt: time.Unix(0, 0), CompletedAt: time.Unix(0, 0)}})
	if len(c.Points) != 1 || c.Points[0].X != "327.0" || c.Points[0].SizeY != "74.0" {
		t.Fatalf("one zero-size backup: %+v", c.Points)
	}
}

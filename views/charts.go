package views

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/a-h/templ"

	"github.com/rewind/rewind/db"
)

// The history chart's geometry, in SVG user units: two panels (size above, duration below) over one time axis.
const (
	chartWidth  = 600
	chartLeft   = 64 // room for the value labels
	chartRight  = 590
	chartPanelH = 60
	chartSizeY  = 14  // top of the size panel
	chartTookY  = 100 // top of the duration panel
	chartHeight = 184
)

// HistoryChart is the Backups tab's chart of the newest complete backups: size and duration over time. Its
// coordinates are computed once (NewHistoryChart) so rendering only writes strings.
type HistoryChart struct {
	Points           []ChartPoint // oldest first
	MaxSize          int64
	MaxTook          time.Duration
	SizeLine         string // polyline points
	TookLine         string
	From, To         time.Time
	Title, Desc      string
	MaxSizeText      string
	MaxTookText      string
	FromText, ToText string
	// HTML is the chart rendered once (historyChart): the tab shows the same chart to everyone until a backup
	// changes it, and rendering its 60 points per view doubled the tab's CPU (BenchmarkBackupsTab).
	HTML string
}

// Component writes the rendered chart.
func (c HistoryChart) Component() templ.Component {
	return templ.ComponentFunc(func(_ context.Context, w io.Writer) error {
		_, err := io.WriteString(w, c.HTML)
		return err
	})
}

// ChartPoint is one backup of the chart.
type ChartPoint struct {
	Backup                    db.BackupPoint
	X, SizeY, TookY           string // circle centres
	SizeTitle, TookTitle, Ago string
}

// NewHistoryChart lays out points (newest first, as the catalog returns them) on a time axis: x by creation
// time between the oldest and the newest, y from zero to the largest size and the longest run in each panel.
// A single backup sits in the middle.
func NewHistoryChart(points []db.BackupPoint) HistoryChart {
	c := HistoryChart{}
	if len(points) == 0 {
		return c
	}
	c.To, c.From = points[0].CreatedAt, points[len(points)-1].CreatedAt
	minSize, minTook := points[0].SizeBytes, points[0].Took()
	for _, p := range points {
		c.MaxSize, c.MaxTook = max(c.MaxSize, p.SizeBytes), max(c.MaxTook, p.Took())
		minSize, minTook = min(minSize, p.SizeBytes), min(minTook, p.Took())
	}
	span := c.To.Sub(c.From)
	var size, took strings.Builder
	for i := len(points) - 1; i >= 0; i-- {
		p := points[i]
		x := float64(chartLeft+chartRight) / 2
		if span > 0 {
			x = chartLeft + float64(chartRight-chartLeft)*float64(p.CreatedAt.Sub(c.From))/float64(span)
		}
		sy := chartY(chartSizeY, float64(p.SizeBytes), float64(c.MaxSize))
		ty := chartY(chartTookY, float64(p.Took()), float64(c.MaxTook))
		cp := ChartPoint{Backup: p, X: chartNum(x), SizeY: chartNum(sy), TookY: chartNum(ty),
			SizeTitle: fmt.Sprintf("%s, %s: %s", short8(p.ID), fmtTime(p.CreatedAt), db.FormatBytes(p.SizeBytes)),
			TookTitle: fmt.Sprintf("%s, %s: took %s", short8(p.ID), fmtTime(p.CreatedAt), seconds(p.Took()))}
		c.Points = append(c.Points, cp)
		for _, l := range []struct {
			b *strings.Builder
			y string
		}{{&size, cp.SizeY}, {&took, cp.TookY}} {
			if l.b.Len() > 0 {
				l.b.WriteByte(' ')
			}
			l.b.WriteString(cp.X + "," + l.y)
		}
	}
	c.SizeLine, c.TookLine = size.String(), took.String()
	c.MaxSizeText, c.MaxTookText = db.FormatBytes(c.MaxSize), seconds(c.MaxTook)
	c.FromText, c.ToText = c.From.Local().Format("Jan 2 15:04"), c.To.Local().Format("Jan 2 15:04")
	c.Title = fmt.Sprintf("Size and duration of the last %d complete backups", len(points))
	c.Desc = fmt.Sprintf("From %s to %s: size between %s and %s, duration between %s and %s; the newest is %s and took %s.",
		fmtTime(c.From), fmtTime(c.To), db.FormatBytes(minSize), c.MaxSizeText, seconds(minTook), c.MaxTookText,
		db.FormatBytes(points[0].SizeBytes), seconds(points[0].Took()))
	var html strings.Builder
	if err := historyChart(c).Render(context.Background(), &html); err == nil { // writing to memory fails never
		c.HTML = html.String()
	}
	return c
}

// chartY is the y of value v in a panel whose top is top and whose largest value is maxV (at the top; zero at
// the bottom).
func chartY(top int, v, maxV float64) float64 {
	if maxV <= 0 {
		return float64(top + chartPanelH)
	}
	return float64(top+chartPanelH) - chartPanelH*v/maxV
}

// chartNum writes a coordinate with one decimal, enough at this size.
func chartNum(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }

package pitr

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/rewind/rewind/backup"
)

// Shipped is what the catalog knows of one shipped segment.
type Shipped struct {
	Name                    string
	Snapshot                string
	Partial                 bool
	FirstCommit, LastCommit *time.Time
}

// Range is a span of moments a stream can be restored to: every moment from From to To.
type Range struct {
	From, To time.Time
}

// Choice is how a restore to T rebuilds one service: from Base, replaying Segments (snapshot ids, in WAL
// order) up to T, or to their end when no commit after T is in them.
type Choice struct {
	Base     Base
	Segments []string
	ToEnd    bool
	// Reached is the newest commit at or before T in the WAL replayed (nil: none since the base, so the state
	// is the base's); exact once Exact has read the commit list of the segment holding T.
	Reached *time.Time
	exactIn string // snapshot of the segment whose commits straddle T
	target  time.Time
}

// GapError refuses a moment the stream cannot restore to; Before and After are the nearest moments it can
// (nil when there is none on that side).
type GapError struct {
	At            time.Time
	Reason        string
	Before, After *time.Time
}

func (e *GapError) Error() string {
	msg := fmt.Sprintf("%s is %s", e.At.UTC().Format(time.RFC3339Nano), e.Reason)
	switch {
	case e.Before != nil && e.After != nil:
		msg += fmt.Sprintf("; the nearest restorable moments are %s and %s", fmtT(*e.Before), fmtT(*e.After))
	case e.Before != nil:
		msg += fmt.Sprintf("; the newest restorable moment is %s", fmtT(*e.Before))
	case e.After != nil:
		msg += fmt.Sprintf("; the oldest restorable moment is %s", fmtT(*e.After))
	}
	return msg
}

func fmtT(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// Stream is what the catalog knows of one followed service: its bases, its shipped segments and how far it is
// covered (every change before CoveredUntil is shipped), with its kind's segment order (Kind.NextSegment).
type Stream struct {
	Bases        []Base
	Segments     []Shipped
	CoveredUntil time.Time
	Next         func(name string) (string, error)
}

// run is one base with the contiguous segments after it.
type run struct {
	base Base
	segs []Shipped
	rng  Range
}

// runs pairs every base with the unbroken sequence of shipped segments from its start segment; the stream's
// CoveredUntil ends the run reaching the newest segment.
func (st Stream) runs() []run {
	bases, coveredUntil := st.Bases, st.CoveredUntil
	segs := append([]Shipped(nil), st.Segments...)
	sort.Slice(segs, func(i, j int) bool { return segs[i].Name < segs[j].Name })
	var out []run
	for _, b := range bases {
		r := run{base: b, rng: Range{From: b.FinishedAt, To: b.FinishedAt}}
		i := sort.Search(len(segs), func(i int) bool { return segs[i].Name >= b.StartWAL })
		want := b.StartWAL
		for ; i < len(segs) && segs[i].Name == want; i++ {
			r.segs = append(r.segs, segs[i])
			next, err := st.Next(want)
			if err != nil {
				break
			}
			want = next
		}
		if len(r.segs) == 0 {
			continue // its WAL is not shipped yet
		}
		if i == len(segs) && coveredUntil.After(r.rng.To) {
			r.rng.To = coveredUntil // the run reaches the newest segment: covered as far as the stream is
		} else {
			for _, s := range r.segs {
				if s.LastCommit != nil && s.LastCommit.After(r.rng.To) {
					r.rng.To = *s.LastCommit // a gap follows: nothing after its last commit is known
				}
			}
		}
		out = append(out, r)
	}
	return out
}

// Ranges are the moments a stream can be restored to, oldest first, merged where they overlap, and cut to
// notBefore (the start of the window).
func (st Stream) Ranges(notBefore time.Time) []Range {
	var rs []Range
	for _, r := range st.runs() {
		if r.rng.To.Before(notBefore) {
			continue
		}
		if r.rng.From.Before(notBefore) {
			r.rng.From = notBefore
		}
		rs = append(rs, r.rng)
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].From.Before(rs[j].From) })
	var merged []Range
	for _, r := range rs {
		if n := len(merged); n > 0 && !r.From.After(merged[n-1].To) {
			if r.To.After(merged[n-1].To) {
				merged[n-1].To = r.To
			}
			continue
		}
		merged = append(merged, r)
	}
	return merged
}

// Choose picks how to rebuild the stream at t: the newest base finished at or before t whose WAL reaches t.
// A moment outside every range of Ranges (with the same notBefore) is a *GapError.
func (st Stream) Choose(notBefore, t time.Time) (*Choice, error) {
	if t.Before(notBefore) {
		rs := st.Ranges(notBefore)
		e := &GapError{At: t, Reason: fmt.Sprintf("before the point-in-time window, which starts at %s", fmtT(notBefore))}
		if len(rs) > 0 {
			e.After = &rs[0].From
		}
		return nil, e
	}
	var best *run
	all := st.runs()
	for i := range all {
		r := &all[i]
		if !r.rng.From.After(t) && !r.rng.To.Before(t) && (best == nil || r.base.FinishedAt.After(best.base.FinishedAt)) {
			best = r
		}
	}
	if best == nil {
		rs := st.Ranges(notBefore)
		e := &GapError{At: t, Reason: "in a gap of the point-in-time stream"}
		for i := range rs {
			if !rs[i].To.After(t) {
				e.Before = &rs[i].To
			}
			if rs[i].From.After(t) && e.After == nil {
				e.After = &rs[i].From
			}
		}
		switch {
		case len(rs) == 0:
			e.Reason = "not restorable yet: no base backup and WAL have been shipped"
		case e.After == nil:
			e.Reason = "after the newest change shipped into the repository"
		case e.Before == nil:
			e.Reason = "before the first base backup"
		}
		return nil, e
	}
	c := &Choice{Base: best.base, ToEnd: true, target: t}
	for _, s := range best.segs {
		c.Segments = append(c.Segments, s.Snapshot)
		if s.LastCommit != nil && !s.LastCommit.After(t) && (c.Reached == nil || s.LastCommit.After(*c.Reached)) {
			lc := *s.LastCommit
			c.Reached = &lc
		}
		if s.LastCommit != nil && s.LastCommit.After(t) {
			c.ToEnd = false
			if s.FirstCommit != nil && !s.FirstCommit.After(t) {
				c.exactIn = s.Snapshot // T falls among this segment's commits
			}
			break // replay stops at its first commit after T: later segments are not needed
		}
	}
	return c, nil
}

// Exact makes Reached the exact newest commit at or before T, reading the commit list of the segment holding T.
func (c *Choice) Exact(ctx context.Context, repo *backup.Repository) error {
	if c.exactIn == "" {
		return nil
	}
	data, err := ReadShipped(ctx, repo, c.exactIn, "commits")
	if err != nil {
		return err
	}
	ts, err := ParseCommits(data)
	if err != nil {
		return err
	}
	for _, t := range ts {
		if !t.After(c.target) && (c.Reached == nil || t.After(*c.Reached)) {
			tt := t
			c.Reached = &tt
		}
	}
	c.exactIn = ""
	return nil
}

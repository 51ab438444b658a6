package pitrtest

import (
	"context"
	"sync"
	"time"

	"github.com/rewind/rewind/backup/pitr"
)

// Recorder is the catalog of one stream, kept in memory: what a follower under test shipped.
type Recorder struct {
	mu      sync.Mutex
	bases   []pitr.Base
	segs    map[string]pitr.Segment
	covered time.Time
	reports []pitr.Report
	gaps    []string
}

// LatestBase is the newest base's system and finish time.
func (r *Recorder) LatestBase(context.Context) (string, time.Time, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.bases) == 0 {
		return "", time.Time{}, false, nil
	}
	b := r.bases[len(r.bases)-1]
	return b.SystemID, b.FinishedAt, true, nil
}

// BaseShipped records b.
func (r *Recorder) BaseShipped(_ context.Context, b pitr.Base) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bases = append(r.bases, b)
	return nil
}

// SegmentShipped records s, replacing the segment of the same name.
func (r *Recorder) SegmentShipped(_ context.Context, s pitr.Segment) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.segs == nil {
		r.segs = map[string]pitr.Segment{}
	}
	old := r.segs[s.Name].Snapshot
	r.segs[s.Name] = s
	return old, nil
}

// Report records rep.
func (r *Recorder) Report(_ context.Context, rep pitr.Report) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !rep.CoveredUntil.IsZero() {
		r.covered = rep.CoveredUntil
	}
	r.reports = append(r.reports, rep)
	return nil
}

// Gap records reason.
func (r *Recorder) Gap(_ context.Context, reason string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gaps = append(r.gaps, reason)
	return nil
}

// Stream is what was shipped, to plan with (next: the kind's NextSegment).
func (r *Recorder) Stream(next func(string) (string, error)) pitr.Stream {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := pitr.Stream{Bases: append([]pitr.Base(nil), r.bases...), CoveredUntil: r.covered, Next: next}
	for _, s := range r.segs {
		sh := pitr.Shipped{Name: s.Name, Snapshot: s.Snapshot, Partial: s.Partial}
		if n := len(s.Commits); n > 0 {
			sh.FirstCommit, sh.LastCommit = &s.Commits[0], &s.Commits[n-1]
		}
		st.Segments = append(st.Segments, sh)
	}
	return st
}

// Segments returns the shipped segments by name.
func (r *Recorder) Segments() map[string]pitr.Segment {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]pitr.Segment, len(r.segs))
	for k, v := range r.segs {
		out[k] = v
	}
	return out
}

// Reports returns every report, oldest first.
func (r *Recorder) Reports() []pitr.Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]pitr.Report(nil), r.reports...)
}

// Gaps returns the reasons of every gap recorded.
func (r *Recorder) Gaps() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.gaps...)
}

// Covered is the stream's coverage: every change before it is shipped.
func (r *Recorder) Covered() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.covered
}

package pitrtest

import (
	"context"
	"sync"
	"time"

	"github.com/rewind/rewind/backup/pitr"
)

// Record is a pitr.Recorder keeping the catalog of one stream in memory, for a kind's tests.
type Record struct {
	mu      sync.Mutex
	bases   []pitr.Base
	segs    map[string]pitr.Segment
	covered time.Time
	reports []pitr.Report
	gaps    []string
}

var _ pitr.Recorder = (*Record)(nil)

// LatestBase is the newest base's system and finish time.
func (r *Record) LatestBase(context.Context) (string, time.Time, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.bases) == 0 {
		return "", time.Time{}, false, nil
	}
	b := r.bases[len(r.bases)-1]
	return b.SystemID, b.FinishedAt, true, nil
}

// BaseShipped records b.
func (r *Record) BaseShipped(_ context.Context, b pitr.Base) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bases = append(r.bases, b)
	return nil
}

// SegmentShipped records s, replacing the segment of the same name.
func (r *Record) SegmentShipped(_ context.Context, s pitr.Segment) (string, error) {
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
func (r *Record) Report(_ context.Context, rep pitr.Report) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !rep.CoveredUntil.IsZero() {
		r.covered = rep.CoveredUntil
	}
	r.reports = append(r.reports, rep)
	return nil
}

// Gap records reason.
func (r *Record) Gap(_ context.Context, reason string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gaps = append(r.gaps, reason)
	return nil
}

// State is what was recorded: the bases, the segments as the catalog lists them, and how far the stream is
// covered.
func (r *Record) State() ([]pitr.Base, []pitr.Shipped, time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var segs []pitr.Shipped
	for _, s := range r.segs {
		sh := pitr.Shipped{Name: s.Name, Snapshot: s.Snapshot, Partial: s.Partial}
		if n := len(s.Commits); n > 0 {
			sh.FirstCommit, sh.LastCommit = &s.Commits[0], &s.Commits[n-1]
		}
		segs = append(segs, sh)
	}
	return append([]pitr.Base(nil), r.bases...), segs, r.covered
}

// Stream is what was recorded as the planner reads it, with the kind's segment order.
func (r *Record) Stream(next func(string) (string, error)) pitr.Stream {
	bases, segs, covered := r.State()
	return pitr.Stream{Bases: bases, Segments: segs, CoveredUntil: covered, Next: next}
}

// Segments returns the shipped segments by name.
func (r *Record) Segments() map[string]pitr.Segment {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]pitr.Segment, len(r.segs))
	for k, v := range r.segs {
		out[k] = v
	}
	return out
}

// Reports returns every report, oldest first.
func (r *Record) Reports() []pitr.Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]pitr.Report(nil), r.reports...)
}

// Gaps returns the reasons of every gap recorded.
func (r *Record) Gaps() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.gaps...)
}

// Covered is the stream's coverage: every change before it is shipped.
func (r *Record) Covered() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.covered
}

package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/rewind/rewind/db"
)

// DrillStatus is what an environment's Backups tab says about its proven recoverability.
type DrillStatus struct {
	// Last is the newest drill (running, passed or failed); nil when none ran.
	Last *db.Drill
	// Active is a drill activity queued or running now; nil when none is.
	Active *db.Activity
	// Verified is the newest passed drill: the last verified restore. Nil when none passed.
	Verified *db.Drill
	// RTO is the predicted restore time of the newest complete backup (zero when nothing was measured);
	// Basis says from what.
	RTO   time.Duration
	Basis string
}

// rtoSamples is how many of the newest measured restores and passed drills the prediction uses.
const rtoSamples = 10

// DrillStatus returns env's drill status and predicted RTO, as read up to a second ago if nothing was written
// since (every view of the Backups tab shows it, and reading it takes six queries: 60% of the tab's CPU under
// load). The status is shared: never modify it.
func (o *Operations) DrillStatus(ctx context.Context, env string) (*DrillStatus, error) {
	v, err := o.Catalog.Recent("drill status\x00"+env, func() (any, error) { return o.drillStatus(ctx, env) })
	if err != nil {
		return nil, err
	}
	return v.(*DrillStatus), nil
}

func (o *Operations) drillStatus(ctx context.Context, env string) (*DrillStatus, error) {
	drills, err := o.Catalog.FindDrills(ctx, db.DrillFilter{Environment: &env, Limit: 1})
	if err != nil {
		return nil, err
	}
	st := &DrillStatus{}
	if len(drills) > 0 {
		st.Last = drills[0]
	}
	typ := TypeDrill
	for _, state := range []string{db.ActivityRunning, db.ActivityQueued} {
		acts, _, err := o.Catalog.FindActivities(ctx, db.ActivityFilter{Environment: &env, Type: &typ, State: &state, Limit: 1})
		if err != nil {
			return nil, err
		}
		if len(acts) > 0 && st.Active == nil {
			st.Active = acts[0]
		}
	}
	passed := db.DrillPassed
	verified, err := o.Catalog.FindDrills(ctx, db.DrillFilter{Environment: &env, State: &passed, Limit: rtoSamples})
	if err != nil {
		return nil, err
	}
	if len(verified) > 0 {
		st.Verified = verified[0]
	}
	var samples []RestoreSample
	for _, d := range verified {
		samples = append(samples, RestoreSample{Bytes: d.SizeBytes, Took: d.Restore})
	}
	restores, err := o.measuredRestores(ctx, env)
	if err != nil {
		return nil, err
	}
	samples = append(samples, restores...)
	latest, err := o.latestRestorable(ctx, env)
	if err != nil || latest == nil {
		return st, err
	}
	if rto, ok := PredictRTO(samples, latest.SizeBytes); ok {
		st.RTO = rto
		st.Basis = fmt.Sprintf("for the newest backup (%s), from %d measured restores and drills", db.FormatBytes(latest.SizeBytes),
			len(samples))
	}
	return st, nil
}

// measuredRestores are the newest succeeded restores into env: their backup's size and the activity's run time
// (prepare, switch and saving the pre-restore backup: an upper bound of the time to get the data back).
func (o *Operations) measuredRestores(ctx context.Context, env string) ([]RestoreSample, error) {
	typ, state := TypeRestore, db.ActivitySucceeded
	acts, _, err := o.Catalog.FindActivities(ctx, db.ActivityFilter{Environment: &env, Type: &typ, State: &state,
		Limit: rtoSamples})
	if err != nil {
		return nil, err
	}
	var out []RestoreSample
	for _, a := range acts {
		b, err := o.Catalog.FindBackupByID(ctx, a.BackupID)
		if err != nil || a.StartedAt == nil || a.FinishedAt == nil {
			continue // the backup was deleted since, or the restore was never timed
		}
		out = append(out, RestoreSample{Bytes: b.SizeBytes, Took: a.FinishedAt.Sub(*a.StartedAt)})
	}
	return out, nil
}

// RestoreSample is one measured restore: how much data, how long.
type RestoreSample struct {
	Bytes int64
	Took  time.Duration
}

// PredictRTO predicts how long restoring size bytes takes from measured restores, as a fixed cost plus a cost per
// byte: with samples of at least two sizes, the least-squares line through them (never below zero in either
// term); with one size, that restore's time scaled by size over its size, but never below it (a smaller
// backup still pays the fixed cost of starting). It reports false without samples.
func PredictRTO(samples []RestoreSample, size int64) (time.Duration, bool) {
	var n, sx, sy, sxx, sxy float64
	var minB, maxB int64 = -1, 0
	for _, s := range samples {
		if s.Took <= 0 {
			continue
		}
		x, y := float64(s.Bytes), s.Took.Seconds()
		n, sx, sy, sxx, sxy = n+1, sx+x, sy+y, sxx+x*x, sxy+x*y
		if minB < 0 || s.Bytes < minB {
			minB = s.Bytes
		}
		maxB = max(maxB, s.Bytes)
	}
	if n == 0 {
		return 0, false
	}
	x := float64(size)
	var secs float64
	if maxB == minB { // one size: scale
		mean := sy / n
		secs = mean
		if maxB > 0 && x > float64(maxB) {
			secs = mean * x / float64(maxB)
		}
	} else {
		slope := (n*sxy - sx*sy) / (n*sxx - sx*sx)
		intercept := (sy - slope*sx) / n
		switch {
		case slope < 0: // bigger restores were not slower: the fixed cost is all there is
			slope, intercept = 0, sy/n
		case intercept < 0: // through the origin
			slope, intercept = sxy/sxx, 0
		}
		secs = intercept + slope*x
	}
	return time.Duration(secs * float64(time.Second)).Round(time.Millisecond), true
}

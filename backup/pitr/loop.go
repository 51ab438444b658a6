package pitr

import (
	"context"
	"time"
)

// Loop is the main loop of a follower whose changes a receiver (a tool streaming from the server) writes into
// its spool: every ShipEvery a Round ships what arrived, and whenever the newest base is older than BaseEvery a
// new one is taken in the background while shipping goes on.
type Loop struct {
	ShipEvery, BaseEvery time.Duration
	Now                  func() time.Time
	// Base takes and ships a base; Round ships what the receiver wrote since the last round.
	Base, Round func(ctx context.Context) error
	// Received gets the receiver's end (buffered: Run puts it back for the caller's deferred wait); Stopped says
	// what that means (the error to return).
	Received chan error
	Stopped  func(err error) error
}

// Run loops until ctx ends (then it returns nil), the receiver stops, or a base or a round fails (a base still
// running then ends with the caller's ctx). lastBase is when the newest base finished; baseNow takes one at once.
func (l Loop) Run(ctx context.Context, baseNow bool, lastBase time.Time) error {
	baseDone := make(chan error, 1)
	baseRunning := false
	startBase := func() {
		baseRunning = true
		go func() { baseDone <- l.Base(ctx) }()
	}
	if baseNow || l.Now().Sub(lastBase) > l.BaseEvery {
		startBase()
	}
	tick := time.NewTicker(l.ShipEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-l.Received:
			l.Received <- err // for the caller's deferred wait
			if ctx.Err() != nil {
				return nil
			}
			return l.Stopped(err)
		case err := <-baseDone:
			baseRunning = false
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			lastBase = l.Now()
		case <-tick.C:
		}
		if !baseRunning && l.Now().Sub(lastBase) > l.BaseEvery {
			startBase()
		}
		if err := l.Round(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

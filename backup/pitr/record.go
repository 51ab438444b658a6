// Package pitr is what Rewind's point-in-time protection of every service type shares: the Kind seam each type
// implements (backup/pitr/pgwal for PostgreSQL, backup/pitr/redisrepl for Redis, ...), what a follower ships
// (Base, Segment) and tells its Recorder, planning a restore to a moment from what was shipped (Stream, Choose),
// and the snapshots bases and segments are shipped as (ShipDir, FetchDir, ReadShipped).
package pitr

import (
	"context"
	"time"
)

// Base is a base backup (a full copy of the service) shipped into the repository.
type Base struct {
	Snapshot string
	// SystemID names the history the base belongs to (PostgreSQL's system identifier, Redis's replication id).
	SystemID         string
	Timeline         int
	StartLSN, EndLSN string // the kind's positions of the base (an LSN, a replication offset)
	StartWAL         string // the segment replay starts at: a restore needs every segment from here
	StartedAt        time.Time
	FinishedAt       time.Time // restorable from here on
	Bytes            int64
}

// Segment is a segment of the change stream shipped into the repository.
type Segment struct {
	Name     string
	Snapshot string
	Partial  bool        // still being written: shipped again as it grows
	Commits  []time.Time // the times of its changes, in stream order
	LastLSN  string      // position of its last change
	ReadAt   time.Time   // when it was read for shipping
	Bytes    int64       // what the snapshot holds
}

// Report is the state of a running follower after a round of shipping.
type Report struct {
	CoveredUntil time.Time // every change before this is in the repository (zero: unchanged)
	LastCommit   time.Time // newest change shipped (zero: unchanged)
	LagBytes     int64     // what the server wrote that the follower has not flushed yet
	WALStatus    string    // PostgreSQL: the slot's pg_replication_slots.wal_status ("" for other kinds)
}

// Recorder is where a follower records what it shipped (the catalog). Its methods are called from the
// follower's goroutines, one call at a time.
type Recorder interface {
	// LatestBase returns the system identifier and finish time of the stream's newest base; ok is false when
	// there is none.
	LatestBase(ctx context.Context) (systemID string, finished time.Time, ok bool, err error)
	BaseShipped(ctx context.Context, b Base) error
	// SegmentShipped records s, replacing a record of the same name, and returns the snapshot of the replaced
	// record ("" for none), which the follower deletes.
	SegmentShipped(ctx context.Context, s Segment) (replaced string, err error)
	Report(ctx context.Context, r Report) error
	// Gap records that the stream lost its position (why, in a sentence a user can act on): the moments
	// between the last shipped change and the next base cannot be restored.
	Gap(ctx context.Context, reason string) error
}

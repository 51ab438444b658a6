package pitr

import (
	"context"
	"time"

	"github.com/rewind/rewind/backup"
)

// Kind is the point-in-time protection of one service type. The job runner keeps one follower per followed
// service (Follow, restarted with backoff), plans a restore to a moment from what the Recorder was told
// (Ranges and Choose, stepping through segment names with NextSegment), and rebuilds the service at that
// moment in a private scratch instance (Rebuild) which the engine then backs up like a live service.
//
// What every kind ships is the same shape, so planning, pruning and the catalog are shared: bases (a full copy
// of the service, restorable from Base.FinishedAt on, replay starting at segment Base.StartWAL) and segments
// (names that sort in stream order, each naming the next through NextSegment), one kopia snapshot each
// (ShipDir), every segment snapshot holding a "commits" file (MarshalCommits) with the time of each change in it.
type Kind interface {
	// Type is the service type followed (db.ServicePostgreSQL, db.ServiceMySQL, ...).
	Type() string
	// Slot names what the server keeps for the stream (a replication slot; "" when nothing), shown on the page.
	Slot(env, service string) string
	// Check verifies what following the service needs of its server, and says what to change for each missing
	// piece. It never changes anything on the server.
	Check(ctx context.Context, env string, svc backup.ServiceSpec) []CheckResult
	// Follow ships the service's changes until ctx ends (then it returns nil) or following fails; the next
	// Follow resumes where the last shipped segment ends, or starts again from a new base (telling the
	// Recorder of the gap) when the server lost the position.
	Follow(ctx context.Context, spec FollowSpec) error
	// NextSegment is the name of the segment after name in the stream.
	NextSegment(name string) (string, error)
	// Rebuild restores spec.Choice into a scratch instance under spec.Dir, replayed to spec.Target (or to the
	// end of its segments when Choice.ToEnd), and returns it running; on error nothing is left running.
	Rebuild(ctx context.Context, spec RebuildSpec) (Rebuilt, error)
	// Release frees what the server keeps for the stream (drops the slot) once protection is switched off.
	Release(ctx context.Context, env string, svc backup.ServiceSpec) error
}

// FollowSpec is what a follower follows and where it ships.
type FollowSpec struct {
	Environment string
	Service     backup.ServiceSpec
	Repo        *backup.Repository
	Spool       string // the follower's private directory (created; kept across restarts)
	Record      Recorder
	ShipEvery   time.Duration // how often the newest changes are shipped; default 1s
	BaseEvery   time.Duration // a new base after this long, so replay stays short; default 24h
	Now         func() time.Time
}

// RebuildSpec says what to rebuild where.
type RebuildSpec struct {
	Repo    *backup.Repository
	Service backup.ServiceSpec // the followed service (its database name and user, for the scratch instance)
	Choice  *Choice
	Target  time.Time
	Dir     string        // work directory, created; Rebuilt.Close removes it
	Timeout time.Duration // bounds the replay; default 30 minutes
}

// Rebuilt is a service rebuilt at a moment, running privately until Close.
type Rebuilt interface {
	// Spec is the service to back up in place of svc (same name and type; the scratch instance's URL or path).
	Spec(svc backup.ServiceSpec) backup.ServiceSpec
	// Reached is the newest change replayed (nil when none after the base).
	Reached() *time.Time
	// Close stops the scratch instance and removes its directory.
	Close() error
}

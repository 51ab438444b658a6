// Package redisrepl is the point-in-time protection of Redis services: Rewind follows the server as a replica
// (REPLCONF, PSYNC), keeps the RDB of a full resynchronization as a base and every command of the replication
// stream, stamped with the time it arrived, in sequential segments shipped every second; a restore to T loads
// the base into a private redis-server and replays the commands received at or before T.
//
// What the server needs (Check verifies each): a user allowed +psync +replconf (ACL), a replication backlog
// (repl-backlog-size) big enough to cover a disconnection of Rewind, and no block of replication (managed
// services usually have one). Rewind's host needs a redis-server of the same version or newer. The follower
// appears as a replica in INFO replication (listening port 0) and counts for min-replicas-to-write; Sentinel and
// Cluster setups are not tested.
package redisrepl

import (
	"context"
	"time"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/pitr"
)

// Kind is the point-in-time protection of Redis services.
type Kind struct {
	// SegmentBytes and SegmentAge bound a segment (defaults 16 MiB and 1 hour).
	SegmentBytes int64
	SegmentAge   time.Duration
}

var _ pitr.Kind = Kind{}

// Type is backup.TypeRedis.
func (Kind) Type() string { return backup.TypeRedis }

// Slot is "": the server keeps nothing for Rewind beyond its replication backlog.
func (Kind) Slot(string, string) string { return "" }

// Check verifies the server's prerequisites.
func (Kind) Check(ctx context.Context, _ string, svc backup.ServiceSpec) []pitr.CheckResult {
	return Check(ctx, svc.URL, svc.Name)
}

// Follow runs a Follower of the service until ctx ends or the stream fails.
func (k Kind) Follow(ctx context.Context, spec pitr.FollowSpec) error {
	f := &Follower{Environment: spec.Environment, Service: spec.Service.Name, URL: spec.Service.URL, Repo: spec.Repo,
		Spool: spec.Spool, Record: spec.Record, ShipEvery: spec.ShipEvery, BaseEvery: spec.BaseEvery, SegmentBytes: k.SegmentBytes, SegmentAge: k.SegmentAge, Now: spec.Now}
	return f.Run(ctx)
}

// NextSegment is the segment after name.
func (Kind) NextSegment(name string) (string, error) {
	n, err := segmentNumber(name)
	if err != nil {
		return "", err
	}
	return segmentName(n + 1), nil
}

// Rebuild rebuilds the service at spec.Target in a scratch redis-server.
func (Kind) Rebuild(ctx context.Context, spec pitr.RebuildSpec) (pitr.Rebuilt, error) {
	s, err := Rebuild(ctx, spec)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Release does nothing: the server forgets a replica once its connection is closed.
func (Kind) Release(context.Context, string, backup.ServiceSpec) error { return nil }

// Package sqlite is the point-in-time protection of SQLite services (pitr.Kind for type "sqlite"), through the
// Litestream library (github.com/benbjohnson/litestream, pinned at v0.5.18; pure Go on modernc.org/sqlite).
//
// Following. Litestream's DB runs on the service's Path, with its metadata (the local LTX files it derives from
// the WAL) in the follower's spool, not beside the database. Every second (FollowSpec.ShipEvery) the follower
// has it sync: Litestream reads the new WAL frames into one LTX file (the "sync"; the LTX header holds its time)
// and may checkpoint; its Replica then copies the new LTX files through the file replica client into the
// spool's replica directory, and the follower ships them into the repository. Litestream must run on the host
// that holds the file: it keeps a read transaction open so SQLite cannot checkpoint past frames it has not
// read, and it takes over checkpointing, so the application's own automatic checkpoints mostly find nothing to
// do. It adds two tables of its own to the database (_litestream_seq, _litestream_lock).
//
// What is shipped has the shape of every kind. A segment is a fixed run of 60 transaction ids (one LTX file per
// sync, so at most a minute of second-by-second syncs) named "<generation>-<first TXID>" in 16 hex digits each,
// so names sort in stream order and NextSegment is the first TXID plus 60. The growing segment is shipped again
// after every sync that added to it (replacing its previous snapshot); its commits file lists the time of each
// of its syncs. A base is a Litestream snapshot (the snapshot-level LTX file of the whole database at a TXID,
// read through DB.SnapshotReader), taken when the stream starts and then every FollowSpec.BaseEvery; its
// replay starts with the segment holding its TXID. The generation is the stream's identity (Base.SystemID):
// it is chosen when the spool holds no Litestream state (first start, or the spool was lost, which is then a
// gap), and keeps segment names of two streams from colliding.
//
// Compaction. Litestream's Store (which compacts L0 files into coarser levels, takes its own snapshots and
// deletes by retention) is not run: the repository keeps every sync as an L0 file and Rewind's pruning removes
// bases and segments by age, so every moment from a base on stays restorable at the precision of one sync, and
// nothing in the repository is ever rewritten behind the catalog. The follower itself deletes the LTX files of
// a segment from the spool once that segment is complete and shipped, and Litestream's local copies once its
// replica holds them (the newest of each stays: Litestream finds its positions there).
//
// Why a file replica client in the spool and not a replica client writing straight into the repository: the
// ReplicaClient interface is small (eight methods), but Litestream calls WriteLTXFile once per sync from inside
// its sync, so a direct client would make one kopia snapshot per second or rewrite the growing segment within
// Litestream's lock, its errors would go into Litestream's own backoff (up to five minutes, logged) instead of
// failing Follow to the job runner, and its LTXFiles listing (which Litestream reads to find its position after
// every error) would have to be answered from the catalog, which a follower cannot query. Local LTX files cost
// a few kilobytes per sync and let the follower batch what it ships and fail like every other follower.
//
// Rebuild fetches the base and the segments up to T into its directory (the layout of a file replica) and runs
// Litestream's restore with Timestamp T into a file there: the state at the last sync at or before T, which is
// up to one sync (1 s) before T. During a follower outage nothing is synced, so a moment in it restores to the
// last sync before the outage (Reached says so); the first sync after the restart holds every change made
// meanwhile, and the stream resumes without a gap.
//
// Rewind's own catalog database is never followed (Kind.Catalog).
package sqlite

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/superfly/ltx"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/pitr"
)

// segmentTXIDs is how many transaction ids (syncs) one segment holds. It is part of the stream format: segment
// names step by it, so changing it breaks the order of streams already shipped.
const segmentTXIDs = 60

// Kind is the point-in-time protection of SQLite services.
type Kind struct {
	// Catalog is the path of Rewind's own catalog database, which is refused (Litestream would take over its
	// checkpoints, and a restore of it would replace Rewind's memory of its backups).
	Catalog string
}

var _ pitr.Kind = (*Kind)(nil)

// New returns the SQLite kind, refusing the catalog database at catalog.
func New(catalog string) *Kind { return &Kind{Catalog: catalog} }

// Type is backup.TypeSQLite.
func (k *Kind) Type() string { return backup.TypeSQLite }

// Slot is "": SQLite keeps nothing for the stream (Litestream's read lock ends with the follower).
func (k *Kind) Slot(string, string) string { return "" }

// Release does nothing: once the follower stopped, the database keeps nothing for Rewind. Litestream's two
// small tables stay in it (dropping them under a running application would be a schema change it did not ask
// for).
func (k *Kind) Release(context.Context, string, backup.ServiceSpec) error { return nil }

// segmentName is the name of the segment holding txid in generation gen.
func segmentName(gen string, txid ltx.TXID) string {
	first := (uint64(txid)-1)/segmentTXIDs*segmentTXIDs + 1
	return gen + "-" + ltx.TXID(first).String()
}

// parseSegment splits a segment name into its generation and first TXID.
func parseSegment(name string) (gen string, first uint64, err error) {
	gen, tx, ok := strings.Cut(name, "-")
	if ok && len(gen) == 16 && len(tx) == 16 {
		_, err1 := strconv.ParseUint(gen, 16, 64)
		first, err2 := strconv.ParseUint(tx, 16, 64)
		if err1 == nil && err2 == nil && first%segmentTXIDs == 1 {
			return gen, first, nil
		}
	}
	return "", 0, fmt.Errorf("%q is not a SQLite segment name (<generation>-<first TXID>, 16 hex digits each)", name)
}

// NextSegment is the name of the segment after name: the next 60 transaction ids of the same generation.
func (k *Kind) NextSegment(name string) (string, error) {
	gen, first, err := parseSegment(name)
	if err != nil {
		return "", err
	}
	return gen + "-" + ltx.TXID(first+segmentTXIDs).String(), nil
}

package redis

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kopia/kopia/fs"
	goredis "github.com/redis/go-redis/v9"

	"github.com/rewind/rewind/backup"
)

// Prepare reads and validates dir's keys file and stages its keys in memory.
func (s *Source) Prepare(ctx context.Context, dir fs.Directory, p backup.Progress) (backup.Prepared, error) {
	db := s.opts.DB
	entry, err := dir.Child(ctx, KeysFile)
	if err != nil {
		return nil, fmt.Errorf("restore redis database %d: backup has no %s: %w", db, KeysFile, err)
	}
	file, ok := entry.(fs.File)
	if !ok {
		return nil, fmt.Errorf("restore redis database %d: %s is not a file", db, KeysFile)
	}
	rc := s.client()
	defer rc.Close()
	_, rdb, err := s.serverInfo(ctx, rc)
	if err != nil {
		return nil, s.errorf("restore redis database %d", err)
	}
	p.SetTotal(file.Size())
	r, err := file.Open(ctx)
	if err != nil {
		return nil, fmt.Errorf("restore redis database %d: open %s: %w", db, KeysFile, err)
	}
	defer r.Close()
	snap, err := decode(backup.ProgressReader(r, p))
	if err != nil {
		return nil, fmt.Errorf("restore redis database %d: read %s: %w", db, KeysFile, err)
	}
	for _, e := range snap.Entries {
		v, err := payloadVersion(e.Payload)
		if err != nil {
			return nil, fmt.Errorf("restore redis database %d: key %q: %w", db, e.Key, err)
		}
		if v > rdb {
			return nil, fmt.Errorf("restore redis database %d: key %q was dumped by a newer Redis (RDB version %d, this server reads up to %d): restore into a Redis at least as new as the backup's",
				db, e.Key, v, rdb)
		}
	}
	return &prepared{src: s, snap: snap}, nil
}

// replace atomically captures the database's keys and replaces them with snap's (MULTI: dump script,
// FLUSHDB, RESTORE...; EXEC). It returns the keys it replaced. Keys of snap already expired are skipped.
func (s *Source) replace(ctx context.Context, rc *goredis.Client, snap *snapshot) (*snapshot, error) {
	now, err := rc.Time(ctx).Result()
	if err != nil {
		return nil, err
	}
	nowMs := now.UnixMilli()
	var dump *goredis.Cmd
	var restores []*goredis.StatusCmd
	cmds, err := rc.TxPipelined(ctx, func(pipe goredis.Pipeliner) error {
		// EVAL, not EVALSHA: a NOSCRIPT error inside MULTI would not stop the FLUSHDB after it.
		dump = pipe.Eval(ctx, dumpLua, nil)
		pipe.FlushDB(ctx)
		for _, e := range snap.Entries {
			if e.ExpireAt != 0 && e.ExpireAt <= nowMs {
				continue
			}
			args := []any{"RESTORE", e.Key, e.ExpireAt, e.Payload, "REPLACE"}
			if e.ExpireAt != 0 {
				args = append(args, "ABSTTL")
			}
			c := goredis.NewStatusCmd(ctx, args...)
			_ = pipe.Process(ctx, c)
			restores = append(restores, c)
		}
		return nil
	})
	if dump == nil || dump.Err() != nil {
		if err == nil {
			err = errors.New("no reply")
		}
		return nil, fmt.Errorf("transaction failed: %w", err)
	}
	old, perr := parseDump(dump.Val())
	if perr != nil {
		return nil, perr
	}
	if err != nil {
		// Some RESTORE failed after FLUSHDB ran: put the old keys back.
		failed := err
		for _, c := range cmds {
			if c.Err() != nil {
				failed = c.Err()
				break
			}
		}
		if _, rerr := s.replace(ctx, rc, old); rerr != nil {
			return nil, fmt.Errorf("restore failed (%v) and putting the previous keys back failed too: %w", failed, rerr)
		}
		return nil, fmt.Errorf("restore failed, previous keys put back: %w", failed)
	}
	return old, nil
}

// prepared is a validated keys file staged in memory.
type prepared struct {
	src *Source

	mu   sync.Mutex
	snap *snapshot
	used bool
}

var _ backup.Prepared = (*prepared)(nil)

// Switch replaces the database's keys with the prepared ones in one MULTI/EXEC transaction.
func (prep *prepared) Switch(ctx context.Context) (backup.Replaced, error) {
	prep.mu.Lock()
	defer prep.mu.Unlock()
	s := prep.src
	if prep.used || prep.snap == nil {
		return nil, fmt.Errorf("switch redis database %d: prepared state already used", s.opts.DB)
	}
	start := time.Now()
	rc := s.client()
	defer rc.Close()
	version, _, err := s.serverInfo(ctx, rc)
	if err != nil {
		return nil, s.errorf("switch redis database %d", err)
	}
	old, err := s.replace(ctx, rc, prep.snap)
	if err != nil {
		return nil, s.errorf("switch redis database %d", err)
	}
	prep.used = true
	prep.snap = nil
	return &replaced{src: s, snap: old, version: version, took: time.Since(start)}, nil
}

// Discard drops the staged keys.
func (prep *prepared) Discard(context.Context) error {
	prep.mu.Lock()
	defer prep.mu.Unlock()
	prep.snap = nil
	return nil
}

// replaced holds the keys a Switch replaced, in memory.
type replaced struct {
	src     *Source
	version string
	took    time.Duration

	mu       sync.Mutex
	snap     *snapshot
	reverted bool
}

var _ backup.Replaced = (*replaced)(nil)

// Pin captures the replaced keys.
func (r *replaced) Pin(ctx context.Context) (backup.Capture, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.snap == nil {
		return nil, fmt.Errorf("capture replaced redis database %d: already discarded", r.src.opts.DB)
	}
	return r.src.newCapture(r.snap, r.version, r.took), nil
}

// Revert puts the replaced keys back (the restored ones are dropped).
func (r *replaced) Revert(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.snap == nil || r.reverted {
		return fmt.Errorf("revert redis database %d: already reverted or discarded", r.src.opts.DB)
	}
	rc := r.src.client()
	defer rc.Close()
	if _, err := r.src.replace(ctx, rc, r.snap); err != nil {
		return r.src.errorf("revert redis database %d", err)
	}
	r.reverted = true
	r.snap = nil
	return nil
}

// Discard drops the replaced keys.
func (r *replaced) Discard(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.snap = nil
	return nil
}

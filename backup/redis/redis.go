// Package redis is Rewind's source for one logical database of a Redis server.
//
// Capture: Pin runs one server-side Lua script that reads the server clock and returns every key of the
// database with its DUMP payload and absolute expiry. A script runs atomically, so the capture is an exact
// point-in-time image of the database (all types: strings, lists, hashes, sets, sorted sets, streams with their
// consumer groups, modules' types that support DUMP), and writes after Pin returns are never in it. The price:
// the server serves nothing else while the script runs (roughly the time to serialize the data, a few ms per
// MB) and the image is held in Rewind's memory until the capture is closed. So this is done only when the
// server's dataset is at most Options.AtomicLimit (default 256 MiB). Above it, Pin falls back to SCAN with the
// same script run on batches of 1000 keys: each batch is atomic and every key is captured whole, but the
// capture is not one point in time (a key written during the scan may or may not be in it, and keys may be
// missed or included according to SCAN's guarantees); info.json records which mode was used. (An exact image
// of a big dataset would need a replication-protocol RDB, not implemented.) Redis Cluster is not supported. The
// folder holds keys.rdmp (see format.go) and info.json.
//
// Expiry is kept as an absolute time (the server clock at the pin plus the key's TTL). Restoring puts each key
// back with that absolute expiry (RESTORE ... ABSTTL), so a key lives exactly as long as it would have; keys
// whose expiry has passed by then are skipped.
//
// Restore: Prepare reads and validates the whole keys file (container checksum, every payload's CRC-64 and
// RDB version against the server's) and stages the keys in memory; the live database is untouched. Switch runs
// one MULTI/EXEC transaction: the same dump script (capturing the keys it replaces), FLUSHDB, then a RESTORE
// per key. The replaced keys are kept in memory as the Replaced state: Pin captures them, Revert puts them back
// the same way.
package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/rewind/rewind/backup"
)

// Names of the files in a service's folder.
const (
	KeysFile = "keys.rdmp"
	InfoFile = "info.json"
)

// Source is the Redis source of one logical database.
type Source struct {
	name        string
	opts        *goredis.Options
	atomicLimit int64
}

var _ backup.Source = (*Source)(nil)

// New builds the Source of spec (a backup.Driver): spec.URL is redis://[user:password@]host:port/db or
// rediss:// for TLS.
func New(spec backup.ServiceSpec) (backup.Source, error) {
	return NewWithOptions(spec, Options{})
}

// Options tune a Source beyond its ServiceSpec.
type Options struct {
	// AtomicLimit is the largest dataset (the server's used_memory_dataset, in bytes) captured atomically by
	// one script; bigger ones are captured in atomic batches of keys. Default 256 MiB; negative: always
	// batches.
	AtomicLimit int64
}

// NewWithOptions builds the Source of spec with opts.
func NewWithOptions(spec backup.ServiceSpec, o Options) (*Source, error) {
	if o.AtomicLimit == 0 {
		o.AtomicLimit = 256 << 20
	}
	opts, err := goredis.ParseURL(spec.URL)
	if err != nil {
		// never echo the URL: it may hold a password
		return nil, fmt.Errorf("redis service %q: url must look like redis://:password@host:6379/0", spec.Name)
	}
	opts.DialTimeout = 10 * time.Second
	opts.ReadTimeout = 5 * time.Minute // the dump script and a big restore are single long commands
	opts.WriteTimeout = 5 * time.Minute
	opts.PoolSize = 2
	opts.MaxRetries = -1 // a retried MULTI or script is not what we want
	return &Source{name: spec.Name, opts: opts, atomicLimit: o.AtomicLimit}, nil
}

// client opens a client for one operation; the caller closes it. Sources live as long as the engine wants
// them and have no Close, so no connection outlives the operation that needed it.
func (s *Source) client() *goredis.Client {
	return goredis.NewClient(s.opts)
}

// dumpScript returns {now_ms, key1, expireat1, payload1, ...} for every key of the selected database (or
// for the keys given as ARGV, with a dummy KEYS[1]), atomically. expireat is the absolute expiry in Unix ms (PEXPIRETIME, Redis 7; computed from PTTL and the
// clock on older servers), -1 for persistent keys; a key whose DUMP is nil (expired meanwhile) has payload
// false.
var dumpScript = goredis.NewScript(dumpLua)

const dumpLua = `
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local out = {now}
local exact = type(redis.pcall('PEXPIRETIME', '{rewind}:probe')) == 'number'
local keys = ARGV
if #keys == 0 and KEYS[1] == nil then keys = redis.call('KEYS', '*') end
for i = 1, #keys do
  local k = keys[i]
  local exp
  if exact then
    exp = redis.call('PEXPIRETIME', k)
  else
    exp = redis.call('PTTL', k)
    if exp >= 0 then exp = now + exp end
  end
  out[#out + 1] = k
  out[#out + 1] = exp
  out[#out + 1] = redis.call('DUMP', k)
end
return out
`

// parseDump turns the dump script's reply into a snapshot.
func parseDump(v any) (*snapshot, error) {
	arr, ok := v.([]any)
	if !ok || len(arr) == 0 || (len(arr)-1)%3 != 0 {
		return nil, fmt.Errorf("unexpected dump script reply %T", v)
	}
	now, ok := arr[0].(int64)
	if !ok {
		return nil, fmt.Errorf("unexpected server time %T", arr[0])
	}
	s := &snapshot{Now: now, Entries: make([]entry, 0, (len(arr)-1)/3)}
	for i := 1; i < len(arr); i += 3 {
		if arr[i+2] == nil {
			continue // expired between KEYS and DUMP
		}
		key, ok1 := arr[i].(string)
		exp, ok2 := arr[i+1].(int64)
		payload, ok3 := arr[i+2].(string)
		if !ok1 || !ok2 || !ok3 {
			return nil, fmt.Errorf("unexpected dump script reply for key %d", (i-1)/3)
		}
		e := entry{Key: key, Payload: []byte(payload)}
		switch {
		case exp == -2:
			continue // gone
		case exp >= 0:
			e.ExpireAt = max(exp, 1)
		}
		s.Entries = append(s.Entries, e)
	}
	return s, nil
}

// errorf wraps err with the service's context, keeping a password out of it.
func (s *Source) errorf(format string, err error) error {
	msg := err.Error()
	if s.opts.Password != "" {
		msg = strings.ReplaceAll(msg, s.opts.Password, "xxxxx")
	}
	return fmt.Errorf(format+": %w", s.opts.DB, redactedError{msg: msg, err: err})
}

type redactedError struct {
	msg string
	err error
}

func (r redactedError) Error() string { return r.msg }
func (r redactedError) Unwrap() error { return r.err }

// serverInfo returns the server's version and the newest RDB version it restores.
func (s *Source) serverInfo(ctx context.Context, rc *goredis.Client) (version string, rdb int, err error) {
	info, err := rc.Info(ctx, "server").Result()
	if err != nil {
		return "", 0, err
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			version = v
		}
	}
	if version == "" {
		return "", 0, errors.New("server did not report redis_version")
	}
	return version, rdbVersion(version), nil
}

// rdbVersion maps a Redis version to the RDB version of its DUMP payloads.
func rdbVersion(v string) int {
	parts := strings.SplitN(v, ".", 3)
	major, _ := strconv.Atoi(parts[0])
	minor := 0
	if len(parts) > 1 {
		minor, _ = strconv.Atoi(parts[1])
	}
	switch {
	case major >= 8 || (major == 7 && minor >= 4):
		return 12
	case major == 7 && minor >= 2:
		return 11
	case major == 7:
		return 10
	case major >= 5:
		return 9
	default:
		return 8
	}
}

package redis

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kopia/kopia/fs"
	"github.com/kopia/kopia/fs/virtualfs"
	goredis "github.com/redis/go-redis/v9"

	"github.com/rewind/rewind/backup"
)

// Info is the content of info.json in a service's folder.
type Info struct {
	Format        string    `json:"format"`
	Database      int       `json:"database"`
	ServerVersion string    `json:"server_version"`
	Keys          int       `json:"keys"`
	Mode          string    `json:"mode"`      // "atomic" (one point in time) or "batched" (see the package doc)
	PinnedAt      time.Time `json:"pinned_at"` // the server's clock
}

// Pin takes an atomic image of every key of the database with its TTL.
func (s *Source) Pin(ctx context.Context) (backup.Capture, error) {
	start := time.Now()
	rc := s.client()
	defer rc.Close()
	version, _, err := s.serverInfo(ctx, rc)
	if err != nil {
		return nil, s.errorf("pin redis database %d", err)
	}
	dataset, err := s.datasetBytes(ctx, rc)
	if err != nil {
		return nil, s.errorf("pin redis database %d", err)
	}
	if s.atomicLimit >= 0 && dataset <= s.atomicLimit {
		v, err := dumpScript.Run(ctx, rc, nil).Result()
		if err != nil {
			return nil, s.errorf("pin redis database %d", err)
		}
		snap, err := parseDump(v)
		if err != nil {
			return nil, s.errorf("pin redis database %d", err)
		}
		return s.newCapture(snap, version, time.Since(start)), nil
	}
	snap, err := s.scanDump(ctx, rc)
	if err != nil {
		return nil, s.errorf("pin redis database %d", err)
	}
	c := s.newCapture(snap, version, time.Since(start))
	c.batched = true
	return c, nil
}

// datasetBytes returns the server's used_memory_dataset.
func (s *Source) datasetBytes(ctx context.Context, rc *goredis.Client) (int64, error) {
	info, err := rc.Info(ctx, "memory").Result()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory_dataset:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, nil
}

// scanDump captures the database with SCAN, running the dump script on each batch of keys.
func (s *Source) scanDump(ctx context.Context, rc *goredis.Client) (*snapshot, error) {
	var snap *snapshot
	seen := map[string]bool{}
	var cursor uint64
	for {
		keys, next, err := rc.Scan(ctx, cursor, "*", 1000).Result()
		if err != nil {
			return nil, err
		}
		args := make([]any, 0, len(keys))
		for _, k := range keys {
			if !seen[k] {
				seen[k] = true
				args = append(args, k)
			}
		}
		if len(args) > 0 || snap == nil {
			if len(args) == 0 {
				args = nil
			}
			v, err := dumpScript.Run(ctx, rc, []string{"{rewind}:batch"}, args...).Result()
			if err != nil {
				return nil, err
			}
			part, err := parseDump(v)
			if err != nil {
				return nil, err
			}
			if snap == nil {
				snap = part
			} else {
				snap.Entries = append(snap.Entries, part.Entries...)
			}
		}
		if next == 0 {
			return snap, nil
		}
		cursor = next
	}
}

func (s *Source) newCapture(snap *snapshot, version string, took time.Duration) *capture {
	var size int64
	for _, e := range snap.Entries {
		size += int64(len(e.Key) + len(e.Payload) + 20)
	}
	return &capture{src: s, snap: snap, keys: len(snap.Entries), info: backup.ServiceInfo{
		Version:        "Redis " + version,
		PinnedAt:       time.UnixMilli(snap.Now),
		PinDuration:    took,
		EstimatedBytes: size,
	}}
}

// capture is an in-memory image of a database.
type capture struct {
	src     *Source
	info    backup.ServiceInfo
	batched bool // captured in atomic batches, not at one point in time
	keys    int  // keys in the image

	mu     sync.Mutex
	snap   *snapshot
	pipe   *io.PipeReader
	closed bool
}

var _ backup.Capture = (*capture)(nil)

func (c *capture) Info() backup.ServiceInfo { return c.info }

// Folder returns {keys.rdmp, info.json}; keys.rdmp is encoded while it is read.
func (c *capture) Folder(ctx context.Context, p backup.Progress) (fs.Directory, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.snap == nil {
		return nil, fmt.Errorf("dump redis database %d: capture is closed", c.src.opts.DB)
	}
	if c.pipe != nil {
		return nil, fmt.Errorf("dump redis database %d: folder already taken", c.src.opts.DB)
	}
	info, err := json.MarshalIndent(Info{
		Format:        "Rewind Redis keys v1 (DUMP payloads with absolute expiry)",
		Database:      c.src.opts.DB,
		ServerVersion: c.info.Version,
		Keys:          len(c.snap.Entries),
		Mode:          map[bool]string{false: "atomic", true: "batched"}[c.batched],
		PinnedAt:      c.info.PinnedAt.UTC(),
	}, "", "  ")
	if err != nil {
		return nil, err
	}
	p.SetTotal(c.info.EstimatedBytes)
	pr, pw := io.Pipe()
	c.pipe = pr
	snap := c.snap
	go func() {
		err := encode(backup.ProgressWriter(pw, p), snap)
		if err != nil {
			err = fmt.Errorf("dump redis database %d: %w", c.src.opts.DB, err)
		}
		pw.CloseWithError(err)
	}()
	return virtualfs.NewStaticDirectory(c.src.name, []fs.Entry{
		virtualfs.StreamingFileWithModTimeFromReader(InfoFile, c.info.PinnedAt, io.NopCloser(bytes.NewReader(info))),
		virtualfs.StreamingFileWithModTimeFromReader(KeysFile, c.info.PinnedAt, pr),
	}), nil
}

// Close drops the image. Safe to call more than once.
func (c *capture) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	if c.pipe != nil {
		c.pipe.CloseWithError(fmt.Errorf("dump redis database %d: capture closed before the stream ended", c.src.opts.DB))
	}
	c.snap = nil
	return nil
}

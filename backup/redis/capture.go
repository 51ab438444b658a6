package redis

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/kopia/kopia/fs"
	"github.com/kopia/kopia/fs/virtualfs"

	"github.com/rewind/rewind/backup"
)

// Info is the content of info.json in a service's folder.
type Info struct {
	Format        string    `json:"format"`
	Database      int       `json:"database"`
	ServerVersion string    `json:"server_version"`
	Keys          int       `json:"keys"`
	PinnedAt      time.Time `json:"pinned_at"` // the server's clock
}

// Pin takes an atomic image of every key of the database with its TTL.
func (s *Source) Pin(ctx context.Context) (backup.Capture, error) {
	start := time.Now()
	version, _, err := s.serverInfo(ctx)
	if err != nil {
		return nil, s.errorf("pin redis database %d", err)
	}
	v, err := dumpScript.Run(ctx, s.conn(), nil).Result()
	if err != nil {
		return nil, s.errorf("pin redis database %d", err)
	}
	snap, err := parseDump(v)
	if err != nil {
		return nil, s.errorf("pin redis database %d", err)
	}
	return s.newCapture(snap, version, time.Since(start)), nil
}

func (s *Source) newCapture(snap *snapshot, version string, took time.Duration) *capture {
	var size int64
	for _, e := range snap.Entries {
		size += int64(len(e.Key) + len(e.Payload) + 20)
	}
	return &capture{src: s, snap: snap, info: backup.ServiceInfo{
		Version:        "Redis " + version,
		PinnedAt:       time.UnixMilli(snap.Now),
		PinDuration:    took,
		EstimatedBytes: size,
	}}
}

// capture is an in-memory image of a database.
type capture struct {
	src  *Source
	info backup.ServiceInfo

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
		err := encode(progressWriter{w: pw, p: p}, snap)
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

type progressWriter struct {
	w io.Writer
	p backup.Progress
}

func (pw progressWriter) Write(b []byte) (int, error) {
	n, err := pw.w.Write(b)
	pw.p.Add(int64(n))
	return n, err
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

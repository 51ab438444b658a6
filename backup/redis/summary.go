package redis

import (
	"context"

	"github.com/rewind/rewind/backup"
)

var (
	_ backup.Summarizer        = (*Source)(nil)
	_ backup.CaptureSummarizer = (*capture)(nil)
)

// Summarize counts the keys of the live database (DBSIZE).
func (s *Source) Summarize(ctx context.Context) (*backup.Summary, error) {
	rc := s.client()
	defer rc.Close()
	n, err := rc.DBSize(ctx).Result()
	if err != nil {
		return nil, s.errorf("count the keys of redis database %d", err)
	}
	return &backup.Summary{Keyspaces: []backup.KeyspaceSummary{{DB: s.opts.DB, Keys: n}}}, nil
}

// Summary counts the keys of the pinned image.
func (c *capture) Summary() (*backup.Summary, error) {
	return &backup.Summary{Keyspaces: []backup.KeyspaceSummary{{DB: c.src.opts.DB, Keys: int64(c.keys)}}}, nil
}

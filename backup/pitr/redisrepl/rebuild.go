package redisrepl

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/pitr"
	"github.com/rewind/rewind/backup/scratch"
)

// Scratch is a private redis-server on a free 127.0.0.1 port, without password or persistence, holding a
// service's data as it was at a moment.
type Scratch struct {
	srv     *scratch.Redis
	dir     string
	reached *time.Time
}

var _ pitr.Rebuilt = (*Scratch)(nil)

// Rebuild loads the chosen base's RDB into a scratch redis-server (the redis-server on PATH: it must read the
// RDB version of the followed server, so be the same version or newer) and replays the commands of the chosen
// segments received at or before spec.Target (all of them when spec.Choice.ToEnd). Keys whose expiry (absolute:
// SET … PXAT) passed by the time of the rebuild are gone from it, as they are from the live server.
func Rebuild(ctx context.Context, spec pitr.RebuildSpec) (s *Scratch, err error) {
	if spec.Timeout <= 0 {
		spec.Timeout = 30 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, spec.Timeout)
	defer cancel()
	base := filepath.Join(spec.Dir, "base")
	if err := os.MkdirAll(base, 0o700); err != nil {
		return nil, fmt.Errorf("create scratch directory: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(spec.Dir) //nolint:errcheck
		}
	}()
	if err := pitr.FetchDir(ctx, spec.Repo, spec.Choice.Base.Snapshot, base); err != nil {
		return nil, fmt.Errorf("read the base from the repository: %w", err)
	}
	raw, err := os.ReadFile(filepath.Join(base, "base"))
	if err != nil {
		return nil, fmt.Errorf("read the base's description: %w", err)
	}
	meta, err := parseBaseMeta(raw)
	if err != nil {
		return nil, err
	}
	srv, err := scratch.StartRedis(filepath.Join(spec.Dir, "server"), scratch.RedisOptions{
		Databases: meta.databases, RDB: filepath.Join(base, "dump.rdb")})
	if err != nil {
		if strings.Contains(err.Error(), "RDB format version") || strings.Contains(err.Error(), "Bad file format") {
			return nil, fmt.Errorf("the redis-server installed here cannot read the base (written by Redis %s): "+
				"install redis-server %s or newer: %w", meta.version, meta.version, err)
		}
		return nil, fmt.Errorf("start the scratch redis-server: %w", err)
	}
	s = &Scratch{srv: srv, dir: spec.Dir}
	defer func() {
		if err != nil {
			srv.Stop() //nolint:errcheck
		}
	}()
	if err := s.replay(ctx, spec, meta.offset); err != nil {
		return nil, err
	}
	return s, nil
}

// replay sends the records of the chosen segments after the base's offset, up to the target, and waits until the
// scratch server has answered every command.
func (s *Scratch) replay(ctx context.Context, spec pitr.RebuildSpec, baseOffset int64) error {
	c, err := server{addr: s.srv.Addr()}.dial(ctx)
	if err != nil {
		return fmt.Errorf("connect to the scratch redis-server: %w", err)
	}
	defer c.close()
	stop := context.AfterFunc(ctx, c.close)
	defer stop()
	const done = "rewind-replay-done"
	answers := make(chan error, 1)
	go func() { answers <- readReplies(c.r, done) }()
	w := bufio.NewWriterSize(c.c, 256<<10)
	segDir := filepath.Join(spec.Dir, "segment")
	sendErr := func() error {
		for _, id := range spec.Choice.Segments {
			if err := emptyDir(segDir); err != nil {
				return err
			}
			if err := pitr.FetchDir(ctx, spec.Repo, id, segDir); err != nil {
				return fmt.Errorf("read a stream segment from the repository: %w", err)
			}
			path, err := segmentIn(segDir)
			if err != nil {
				return err
			}
			past, db := false, ""
			if _, _, err := readSegment(path, func(h segmentHeader, r record) error {
				if db == "" {
					db = h.db
				}
				if r.end <= baseOffset {
					// in the base already (a base taken while the stream ran): only its database selection counts
					if sel := selected(r.raw); sel != "" {
						db = sel
					}
					if !r.at.After(spec.Target) || spec.Choice.ToEnd {
						at := r.at
						s.reached = &at // its change is in the state (the plan counts it too)
					}
					return nil
				}
				if db != "-" {
					if _, err := w.Write(command("SELECT", db)); err != nil {
						return fmt.Errorf("replay into the scratch redis-server: %w", err)
					}
					db = "-" // selected: the records select on their own from here
				}
				if !spec.Choice.ToEnd && r.at.After(spec.Target) {
					past = true
					return errStop
				}
				if _, err := w.Write(r.raw); err != nil {
					return fmt.Errorf("replay into the scratch redis-server: %w", err)
				}
				at := r.at
				s.reached = &at
				return nil
			}); err != nil {
				return err
			}
			if past {
				break
			}
		}
		if _, err := w.Write(command("ECHO", done)); err != nil {
			return fmt.Errorf("replay into the scratch redis-server: %w", err)
		}
		return w.Flush() //nolint:wrapcheck
	}()
	if sendErr != nil {
		return sendErr
	}
	select {
	case err := <-answers:
		return err
	case <-ctx.Done():
		return fmt.Errorf("replay did not finish: %w", ctx.Err())
	}
}

// readReplies reads the scratch server's replies until the one echoing done; the first error reply fails the
// replay (the master ran every command it sent, so the scratch server must too).
func readReplies(r *bufio.Reader, done string) error {
	var first error
	for {
		v, err := reply(r)
		if err != nil {
			return fmt.Errorf("read the scratch redis-server's replies: %w", err)
		}
		switch v := v.(type) {
		case serverError:
			if first == nil {
				first = fmt.Errorf("the scratch redis-server refused a replayed command: %s", v)
			}
		case string:
			if v == done {
				return first
			}
		}
	}
}

// segmentIn is the segment file among a fetched segment snapshot's files (the other is its commits file).
func segmentIn(dir string) (string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("read the segment directory: %w", err)
	}
	for _, e := range ents {
		if _, err := segmentNumber(e.Name()); err == nil {
			return filepath.Join(dir, e.Name()), nil
		}
	}
	return "", errors.New("the stream segment snapshot holds no segment file")
}

// Spec is svc's database on the scratch server.
func (s *Scratch) Spec(svc backup.ServiceSpec) backup.ServiceSpec {
	db := 0
	if p, err := parseURL(svc.URL); err == nil {
		db = p.db
	}
	return backup.ServiceSpec{Name: svc.Name, Type: svc.Type, URL: s.srv.URL(db)}
}

// URL is database db on the scratch server.
func (s *Scratch) URL(db int) string { return s.srv.URL(db) }

// Reached is the receive time of the newest command replayed (nil: none after the base).
func (s *Scratch) Reached() *time.Time { return s.reached }

// Close stops the scratch server and removes its directory.
func (s *Scratch) Close() error {
	err := s.srv.Stop()
	if rerr := os.RemoveAll(s.dir); err == nil && rerr != nil {
		err = fmt.Errorf("remove the scratch directory: %w", rerr)
	}
	return err
}

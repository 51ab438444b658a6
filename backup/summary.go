package backup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"sort"
	"sync"
	"time"

	"github.com/kopia/kopia/fs"
	"golang.org/x/sync/errgroup"
)

// Summary is what a service's data holds, in the terms a restore preview compares: the rows of every table,
// the keys of every Redis database, the files of a mount. A backup records the Summary of each database
// service in rewind.json (ServiceManifest.Summary) while it streams; the live state's comes from
// Summarizer.Summarize. Files are never recorded in rewind.json: a backup's files are read from its tree.
type Summary struct {
	Tables    []TableSummary    `json:"tables,omitempty"`    // postgresql, mysql, sqlite; sorted by name
	Keyspaces []KeyspaceSummary `json:"keyspaces,omitempty"` // redis; sorted by database
	Files     []FileStat        `json:"-"`                   // files: every file and symlink, sorted by path
}

// TableSummary is one table and its rows. Name is "schema.table" for PostgreSQL, the table's name otherwise.
type TableSummary struct {
	Name string `json:"name"`
	Rows int64  `json:"rows"`
	// Estimated rows come from the server's statistics, not a count (a live table too large to count within
	// the preview's time); Rows is -1 when not even an estimate is known.
	Estimated bool `json:"estimated,omitempty"`
}

// SortTables sorts tables by name, as a Summary lists them.
func SortTables(ts []TableSummary) {
	sort.Slice(ts, func(i, j int) bool { return ts[i].Name < ts[j].Name })
}

// KeyspaceSummary is one Redis database and its keys.
type KeyspaceSummary struct {
	DB   int   `json:"db"`
	Keys int64 `json:"keys"`
}

// FileStat is one file or symlink of a files tree, as a preview compares them: a file differs when its size,
// modification time or mode does.
type FileStat struct {
	Path    string      // slash-separated, relative to the mount
	Size    int64       // bytes (a symlink: the length of its target)
	ModTime time.Time   // as recorded, to the nanosecond
	Mode    os.FileMode // type (regular or symlink) and permission bits, setuid, setgid, sticky
}

// statModeBits are the bits of a mode a preview compares (what the repository records of an entry).
const statModeBits = os.ModeType | os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky

// NewFileStat describes a file or symlink at rel.
func NewFileStat(rel string, size int64, mtime time.Time, mode os.FileMode) FileStat {
	return FileStat{Path: rel, Size: size, ModTime: mtime, Mode: mode & statModeBits}
}

// Same reports whether two versions of a file look the same to a preview.
func (f FileStat) Same(g FileStat) bool {
	return f.Size == g.Size && f.ModTime.Equal(g.ModTime) && f.Mode == g.Mode
}

// Summarizer is optionally implemented by a Source: Summarize describes the service's live state, for a
// restore preview. It only reads (read-only queries, statistics, a stat-only walk) and must be quick: it is
// given a deadline, and past it a database source returns estimates rather than an error. A Source without
// it has no preview (ErrNoSummary).
type Summarizer interface {
	Summarize(ctx context.Context) (*Summary, error)
}

// CaptureSummarizer is optionally implemented by a Capture: Summary describes the pinned state its folder
// held. The engine calls it after the folder was uploaded completely and records it in rewind.json; an error
// only leaves the summary out (the backup is good, it just cannot be previewed).
type CaptureSummarizer interface {
	Summary() (*Summary, error)
}

// ErrNoSummary is wrapped when a service has no summary: its type has none, or its backup predates them.
var ErrNoSummary = errors.New("no preview for this service")

// LiveSummary describes the live state of one service, read-only (see Summarizer).
func (e *Engine) LiveSummary(ctx context.Context, spec ServiceSpec) (*Summary, error) {
	src, err := e.source(spec)
	if err != nil {
		return nil, err
	}
	sz, ok := src.(Summarizer)
	if !ok {
		return nil, fmt.Errorf("%w: %s services cannot be previewed", ErrNoSummary, spec.Type)
	}
	s, err := sz.Summarize(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the live state of %q: %w", spec.Name, err)
	}
	return s, nil
}

// BackupSummaries returns backup id's manifest and, per service, what it holds: the Summary recorded in
// rewind.json, or for a files service the files of its folder in the repository (read from the listings,
// never the contents). A service without one gets an error in errs instead (wrapping ErrNoSummary for a
// backup taken before summaries were recorded).
func (e *Engine) BackupSummaries(ctx context.Context, id string) (m *Manifest, sums map[string]*Summary, errs map[string]error, err error) {
	r := e.Repo.rep
	snap, err := e.findSnapshot(ctx, r, id)
	if err != nil {
		return nil, nil, nil, err
	}
	root, err := rootOf(r, snap)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("backup %s: %w", id, err)
	}
	if m, err = readManifest(ctx, root); err != nil {
		return nil, nil, nil, fmt.Errorf("backup %s: %w", id, err)
	}
	m.Snapshot = string(snap.ID)
	sums, errs = map[string]*Summary{}, map[string]error{}
	for _, s := range m.Services {
		if s.Type != TypeFiles {
			if s.Summary == nil {
				errs[s.Name] = fmt.Errorf("%w: backup %s was taken before Rewind recorded what its %s services hold",
					ErrNoSummary, id, s.Type)
				continue
			}
			sums[s.Name] = s.Summary
			continue
		}
		files, err := backupFiles(ctx, root, s.Name)
		if err != nil {
			errs[s.Name] = fmt.Errorf("read the files of %q in backup %s: %w", s.Name, id, err)
			continue
		}
		sums[s.Name] = &Summary{Files: files}
	}
	return m, sums, errs, nil
}

// listingReaders is how many directory listings backupFiles reads from the repository at once.
const listingReaders = 8

// backupFiles lists the files and symlinks of a service folder, sorted by path. Directories are read several
// at once: each listing is an object of the repository to fetch, decrypt and decode.
func backupFiles(ctx context.Context, root fs.Directory, service string) ([]FileStat, error) {
	ent, err := root.Child(ctx, service)
	if err != nil {
		return nil, err //nolint:wrapcheck
	}
	d, ok := ent.(fs.Directory)
	if !ok {
		return nil, errors.New("not a directory")
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(listingReaders)
	var mu sync.Mutex
	var out []FileStat
	var walk func(d fs.Directory, rel string) error
	walk = func(d fs.Directory, rel string) error {
		var here []FileStat
		err := fs.IterateEntries(ctx, d, func(_ context.Context, e fs.Entry) error {
			p := path.Join(rel, e.Name())
			switch {
			case e.IsDir():
				sub, ok := e.(fs.Directory)
				if !ok {
					return nil
				}
				if !g.TryGo(func() error { return walk(sub, p) }) {
					return walk(sub, p) // every reader is busy: read it here
				}
			case e.Mode().IsRegular() || e.Mode()&os.ModeSymlink != 0:
				here = append(here, NewFileStat(p, e.Size(), e.ModTime(), e.Mode()))
			}
			return nil
		})
		mu.Lock()
		out = append(out, here...)
		mu.Unlock()
		return err //nolint:wrapcheck
	}
	g.Go(func() error { return walk(d, "") })
	if err := g.Wait(); err != nil {
		return nil, err //nolint:wrapcheck
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

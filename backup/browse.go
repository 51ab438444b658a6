package backup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/kopia/kopia/fs"
)

// BrowseLimit is how many entries of one directory Browse lists; the rest are counted in Listing.More.
const BrowseLimit = 500

// ErrNotInBackup is wrapped when a service or a path asked for is not in a backup. Its messages name what is
// there instead.
var ErrNotInBackup = errors.New("not in the backup")

// Listing is one directory of a files or SQLite service of a backup, or what a database service's backup holds.
type Listing struct {
	Backup  *Manifest
	Service ServiceManifest
	Path    string        // the directory listed, clean (see SubPath); "" is the service's root
	Entries []BrowseEntry // directories first, then files and symlinks, each by name
	More    int           // entries of the directory past BrowseLimit, not listed
	// Summary is what rewind.json records of a database service (tables and rows, keys per Redis database);
	// nil for files services and for backups taken before summaries were recorded.
	Summary *Summary
}

// Entry types of a BrowseEntry.
const (
	EntryDir     = "dir"
	EntryFile    = "file"
	EntrySymlink = "symlink"
)

// BrowseEntry is one entry of a Listing, as the backup recorded it.
type BrowseEntry struct {
	Name string
	Path string // from the service's root, clean
	Type string // EntryDir, EntryFile or EntrySymlink
	// Size is a file's bytes, a symlink's target length, or, for a directory, the bytes of every file below it.
	Size    int64
	Mode    os.FileMode // permission bits (and setuid, setgid, sticky)
	ModTime time.Time
}

// Browse lists directory p (see SubPath) of service of backup id, from the repository's listings only (no file
// is read). A database service has no directories: its Listing carries the Summary recorded in rewind.json,
// and a SQLite service both (its folder holds the database file). A missing backup wraps ErrNotFound, a service
// or path not in it ErrNotInBackup, a bad path or a path of a database service ErrBadPath.
func (e *Engine) Browse(ctx context.Context, id, service, p string) (*Listing, error) {
	root, m, sm, clean, err := e.openService(ctx, id, service, p)
	if err != nil {
		return nil, err
	}
	l := &Listing{Backup: m, Service: *sm, Path: clean, Summary: sm.Summary, Entries: []BrowseEntry{}}
	switch sm.Type {
	case TypeFiles, TypeSQLite:
	default:
		if clean != "" {
			return nil, fmt.Errorf("%w: service %q is a %s database: it has tables, not paths; browse it without a path",
				ErrBadPath, sm.Name, sm.Type)
		}
		return l, nil
	}
	ent, err := lookup(ctx, root, m, sm.Name, clean)
	if err != nil {
		return nil, err
	}
	d, ok := ent.(fs.Directory)
	if !ok {
		return nil, fmt.Errorf("%w: %q of service %q is a file, not a directory: browse %q to see it",
			ErrBadPath, clean, sm.Name, "/"+path.Dir(clean))
	}
	err = fs.IterateEntries(ctx, d, func(_ context.Context, ent fs.Entry) error {
		if be, ok := browseEntry(ent, path.Join(clean, ent.Name())); ok {
			l.Entries = append(l.Entries, be)
		}
		return nil
	})
	if err != nil {
		return nil, classify(fmt.Errorf("list %q of service %q in backup %s: %w", "/"+clean, sm.Name, id, err))
	}
	sort.Slice(l.Entries, func(i, j int) bool {
		a, b := l.Entries[i], l.Entries[j]
		if (a.Type == EntryDir) != (b.Type == EntryDir) {
			return a.Type == EntryDir
		}
		return a.Name < b.Name
	})
	if len(l.Entries) > BrowseLimit {
		l.More = len(l.Entries) - BrowseLimit
		l.Entries = l.Entries[:BrowseLimit]
	}
	return l, nil
}

// browseEntry describes entry e at path p; false for types a backup does not restore.
func browseEntry(e fs.Entry, p string) (BrowseEntry, bool) {
	be := BrowseEntry{Name: e.Name(), Path: p, Size: e.Size(),
		Mode: e.Mode() & (os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky), ModTime: e.ModTime()}
	switch {
	case e.IsDir():
		be.Type = EntryDir
	case e.Mode()&os.ModeSymlink != 0:
		be.Type = EntrySymlink
	case e.Mode().IsRegular():
		be.Type = EntryFile
	default:
		return be, false
	}
	return be, true
}

// Stat describes the entry at path p (see SubPath) of files service service in backup id, with the same
// errors as Browse; p "" is the service's folder.
func (e *Engine) Stat(ctx context.Context, id, service, p string) (*BrowseEntry, error) {
	root, m, sm, clean, err := e.openService(ctx, id, service, p)
	if err != nil {
		return nil, err
	}
	if sm.Type != TypeFiles && clean != "" {
		return nil, fmt.Errorf("%w: service %q is %s, not files: it has no paths", ErrBadPath, sm.Name, sm.Type)
	}
	ent, err := lookup(ctx, root, m, sm.Name, clean)
	if err != nil {
		return nil, err
	}
	be, ok := browseEntry(ent, clean)
	if !ok {
		return nil, fmt.Errorf("%w: %q of service %q is neither a file, a symlink nor a directory", ErrBadPath, "/"+clean, sm.Name)
	}
	return &be, nil
}

// openService checks path p (SubPath) and opens backup id and its service, with Browse's errors.
func (e *Engine) openService(ctx context.Context, id, service, p string) (fs.Directory, *Manifest, *ServiceManifest,
	string, error,
) {
	clean, err := SubPath(p)
	if err != nil {
		return nil, nil, nil, "", err
	}
	root, m, err := e.openBackup(ctx, id)
	if err != nil {
		return nil, nil, nil, "", classify(err)
	}
	sm, err := backupService(m, service)
	if err != nil {
		return nil, nil, nil, "", err
	}
	return root, m, sm, clean, nil
}

// backupService returns the service of m named name, or an error naming the services it has.
func backupService(m *Manifest, name string) (*ServiceManifest, error) {
	if sm := m.Service(name); sm != nil {
		return sm, nil
	}
	names := make([]string, 0, len(m.Services))
	for _, s := range m.Services {
		names = append(names, s.Name)
	}
	return nil, fmt.Errorf("%w: backup %s has no service %q; its services: %s", ErrNotInBackup, m.ID, name,
		strings.Join(names, ", "))
}

// lookup returns the entry at clean path p (SubPath) of the folder of service in a backup's root.
func lookup(ctx context.Context, root fs.Directory, m *Manifest, service, p string) (fs.Entry, error) {
	ent, err := root.Child(ctx, service)
	if err != nil {
		return nil, classify(fmt.Errorf("read the folder of service %q in backup %s: %w", service, m.ID, err))
	}
	if p == "" {
		return ent, nil
	}
	walked := ""
	for _, el := range strings.Split(p, "/") {
		d, ok := ent.(fs.Directory)
		if !ok {
			return nil, fmt.Errorf("%w: %q of service %q in backup %s is a file, so it holds no %q", ErrNotInBackup,
				"/"+walked, service, m.ID, "/"+p)
		}
		ent, err = d.Child(ctx, el)
		if errors.Is(err, fs.ErrEntryNotFound) {
			return nil, fmt.Errorf("%w: backup %s has no %q in service %q (%q holds no %q): browse the backup to pick a path",
				ErrNotInBackup, m.ID, "/"+p, service, "/"+walked, el)
		}
		if err != nil {
			return nil, classify(fmt.Errorf("read %q of service %q in backup %s: %w", "/"+walked, service, m.ID, err))
		}
		walked = path.Join(walked, el)
	}
	return ent, nil
}

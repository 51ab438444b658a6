// Package files is the Source of a files mount: a directory tree backed up with gitignore-style excludes,
// keeping modes, modification times, owners (when run as root), symlinks (never followed) and empty
// directories. Sockets, FIFOs and device files are skipped.
//
// # The pin
//
// ext4 cannot clone a tree instantly, so the capture works in two passes. Stage (outside the pause) walks the
// tree and offers it to the repository, which reads every file that the previous backup does not already hold
// unchanged; a read only counts if the file's size, mtime, ctime and inode were the same before and after it
// (else the file is left out of the first pass). Pin (inside the pause) walks the metadata again and copies
// into a stage directory beside the mount only the files that are new, were left out, or whose
// size/mtime/ctime/inode changed since the first walk, so the pause lasts a metadata walk plus the changed
// bytes. The capture then holds exactly the tree as it was at the pin: unchanged files are already in the
// repository, changed ones come from the stage. Without Stage (Source.Pin alone) the pin copies every file.
//
// Any write changes a file's ctime, which no program can set back, so a file whose ctime is unchanged has the
// content it was read with; a file whose content changed since the first pass while its size, mtime, mode and
// owner stayed the same is reported to the engine (backup.Rereader) so the repository reads it again. (Across
// backups the repository skips re-reading files whose size, mtime, mode and owner did not change, as kopia
// and restic do.)
//
// # Restore
//
// Prepare writes the backup into a sibling directory `.rewind-restore-<random>` next to the mount, creating
// every entry itself (never following a symlink; names checked with backup.CheckEntryName). Symlinks come back
// with the target they had, even one that is absolute or leaves the mount: a link is data, the restore never
// resolves it, so no restored path and no write of the restore can end up outside the mount. Switch exchanges the two directories atomically with
// renameat2(RENAME_EXCHANGE); where the kernel or filesystem lacks it, it falls back to two renames (the mount
// path is briefly missing between them). The replaced tree stays in the sibling directory: Replaced.Pin
// captures it, Revert exchanges back, Discard removes it.
//
// A mount that is the root of its own filesystem (a bind mount or volume) cannot be renamed: there the
// restored tree is built in `.rewind-restore-<random>` inside the mount and Switch swaps the two trees entry by
// entry (each entry atomically, the whole not), keeping the replaced tree in `.rewind-replaced-<random>`
// inside the mount. Backups never capture these scratch directories.
package files

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/kopia/kopia/fs"

	"github.com/rewind/rewind/backup"
)

// Source captures and restores one mount directory.
type Source struct {
	root  string
	match *Matcher
	// mount is, for the Source of a sub-tree (Under), the mount's root; "" when root is the mount.
	mount string
	// entry is, for the Source of a single entry (UnderEntry), its name in root; "" for a whole tree.
	entry string
	// forceInside makes Prepare and Switch work as for a mount point (tests only).
	forceInside bool
}

// isMountPoint reports whether the mount is the root of its own filesystem (a bind mount, a volume): such a
// directory cannot be renamed, so restores are built inside it and swapped entry by entry.
func (s *Source) isMountPoint() bool {
	if s.forceInside {
		return true
	}
	fi, err := os.Lstat(s.root)
	if err != nil {
		return false
	}
	pfi, err := os.Lstat(filepath.Dir(s.root))
	if err != nil {
		return false
	}
	return statOf(fi).dev != statOf(pfi).dev
}

// inside returns the path of the operation's scratch directory of kind inside the mount (for mount points).
func (s *Source) inside(kind, id string) string {
	return filepath.Join(s.root, fmt.Sprintf(".rewind-%s-%s", kind, id))
}

var (
	_ backup.Source  = (*Source)(nil)
	_ backup.Stager  = (*Source)(nil)
	_ backup.Sweeper = (*Source)(nil)
	_ backup.Subtree = (*Source)(nil)
)

// Driver builds the Source of a files service (spec.Path, spec.Exclude).
func Driver(spec backup.ServiceSpec) (backup.Source, error) {
	return New(spec.Path, spec.Exclude)
}

// Subtree is Under, or UnderEntry for a single entry, for the engine (backup.Subtree).
func (s *Source) Subtree(sub string, entry bool) (backup.Source, error) {
	if entry {
		return s.UnderEntry(sub)
	}
	return s.Under(sub)
}

// UnderEntry returns the Source of the single entry sub of the mount (a file or a symlink, see backup.SubPath):
// its folders are the entry's directory holding that entry alone (or nothing, when it is absent), its restore
// prepares the entry in a scratch directory beside it and exchanges the two entries (or moves the one that
// exists: restoring an absence moves the live entry aside), and its summary is that entry alone.
func (s *Source) UnderEntry(sub string) (*Source, error) {
	clean, err := backup.SubPath(sub)
	if err != nil {
		return nil, fmt.Errorf("files: %w", err)
	}
	if clean == "" {
		return nil, errors.New("files: a single entry needs a path")
	}
	dir, name := path.Split(clean)
	parent, err := s.Under(strings.TrimSuffix(dir, "/"))
	if err != nil {
		return nil, err
	}
	if parent.mount == "" {
		parent = &Source{root: parent.root, mount: s.root, match: parent.match}
	}
	parent.entry = name
	return parent, nil
}

// Under returns the Source of the sub-tree sub of the mount (see backup.SubPath): it captures, restores and
// summarizes that directory alone, with the mount's excludes applied as below the mount. Its restore builds the
// sub-tree beside the live one, inside the mount, and exchanges the two; Prepare refuses a sub-tree whose place
// in the live mount runs through a symlink (it could lead out of the mount).
func (s *Source) Under(sub string) (*Source, error) {
	clean, err := backup.SubPath(sub)
	if err != nil {
		return nil, fmt.Errorf("files: %w", err)
	}
	if clean == "" {
		return s, nil
	}
	return &Source{root: filepath.Join(s.root, filepath.FromSlash(clean)), mount: s.root, match: s.match.Under(clean),
		forceInside: s.forceInside}, nil
}

// checkSub refuses a sub-tree source whose path below the mount passes through a symlink or a file in the live
// mount; a missing directory on the way is fine (the restore creates it).
func (s *Source) checkSub() error {
	if s.mount == "" {
		return nil
	}
	rel, err := filepath.Rel(s.mount, s.root)
	if err != nil {
		return fmt.Errorf("files: sub-tree %s: %w", s.root, err)
	}
	p := s.mount
	for _, el := range strings.Split(filepath.ToSlash(rel), "/") {
		p = filepath.Join(p, el)
		fi, err := os.Lstat(p)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("files: sub-tree %s: %w", p, err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("files: %s in the live mount is not a directory (a symlink or a file): a partial "+
				"restore never writes through it; restore the directory that holds it instead", p)
		}
	}
	if s.entry != "" {
		if fi, err := os.Lstat(filepath.Join(s.root, s.entry)); err == nil && fi.IsDir() {
			return fmt.Errorf("files: %s is a directory in the live mount, a file in the backup: restore the "+
				"directory that holds it instead", filepath.Join(s.root, s.entry))
		}
	}
	return nil
}

// New returns the Source of the mount at root with gitignore-style exclude patterns.
func New(root string, exclude []string) (*Source, error) {
	if root == "" {
		return nil, errors.New("files: empty path")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("files: path %q: %w", root, err)
	}
	m, err := NewMatcher(exclude)
	if err != nil {
		return nil, err
	}
	// A mount configured through a symlink is the directory it points to (the exchange swaps directories).
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	return &Source{root: filepath.Clean(abs), match: m}, nil
}

// sibling returns the path of the operation's scratch directory of kind next to the mount.
func (s *Source) sibling(kind, id string) string {
	return filepath.Join(filepath.Dir(s.root), fmt.Sprintf(".rewind-%s-%s-%s", kind, filepath.Base(s.root), id))
}

// Sweep removes the stage and the prepared restore directory (beside the mount, or inside a mount point) that
// the operation with scratch id left behind.
func (s *Source) Sweep(_ context.Context, id string) ([]string, error) {
	var removed []string
	for _, p := range []string{s.sibling("stage", id), s.sibling("restore", id), s.inside("restore", id)} {
		if _, err := os.Lstat(p); err != nil {
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			return removed, fmt.Errorf("remove %s: %w", p, err)
		}
		removed = append(removed, "directory "+p)
	}
	return removed, nil
}

// Pin copies the whole tree to a stage beside the mount (see the package doc; the engine uses Stage instead).
func (s *Source) Pin(ctx context.Context) (backup.Capture, error) {
	return s.pin(ctx, nil)
}

func (s *Source) pin(ctx context.Context, known map[string]statKey) (backup.Capture, error) {
	t0 := time.Now()
	w := &walker{root: s.root, match: s.match, mode: walkCopy, known: known, stage: s.sibling("stage", backup.ScratchID(ctx))}
	n, err := w.walk(ctx)
	if err != nil {
		os.RemoveAll(w.stage) //nolint:errcheck
		return nil, err
	}
	return &capture{root: n, stage: w.stage, reread: w.reread, info: backup.ServiceInfo{
		Version: "files", PinnedAt: t0.UTC(), PinDuration: time.Since(t0), EstimatedBytes: treeBytes(n),
	}}, nil
}

// Stage walks the tree for the first pass; see the package doc.
func (s *Source) Stage(ctx context.Context, _ backup.Progress) (backup.StagedSource, error) {
	w := &walker{root: s.root, match: s.match, mode: walkVerifyAll}
	n, err := w.walk(ctx)
	if err != nil {
		return nil, err
	}
	return &staged{s: s, root: n, known: newKnownSet(n)}, nil
}

type staged struct {
	s     *Source
	root  *node
	known *knownSet
}

// Folder is the live tree of the first pass.
func (st *staged) Folder(_ context.Context, p backup.Progress) (fs.Directory, error) {
	p.SetTotal(treeBytes(st.root))
	t := &tree{p: p, onDirty: st.known.dirty}
	return t.entry(st.root).(fs.Directory), nil //nolint:forcetypeassert
}

// Pin re-reads only what changed since the first pass read it.
func (st *staged) Pin(ctx context.Context) (backup.Capture, error) {
	return st.s.pin(ctx, st.known.snapshot())
}

func (st *staged) Close() error { return nil }

// capture is a pinned tree: unchanged live files plus staged copies.
type capture struct {
	root   *node
	stage  string // removed by Close; "" when nothing was staged by this capture
	info   backup.ServiceInfo
	reread []string
}

var _ backup.Rereader = (*capture)(nil)

func (c *capture) Info() backup.ServiceInfo { return c.info }

// Reread names the files that changed since the first pass without changing size, mtime, mode or owner.
func (c *capture) Reread() []string { return c.reread }

func (c *capture) Folder(_ context.Context, p backup.Progress) (fs.Directory, error) {
	p.SetTotal(c.info.EstimatedBytes)
	t := &tree{p: p}
	return t.entry(c.root).(fs.Directory), nil //nolint:forcetypeassert
}

func (c *capture) Close() error {
	if c.stage == "" {
		return nil
	}
	if err := os.RemoveAll(c.stage); err != nil {
		return fmt.Errorf("remove stage: %w", err)
	}
	return nil
}

func treeBytes(n *node) int64 {
	var sum int64
	if n.mode.IsRegular() {
		sum += n.st.size
	}
	for _, k := range n.kids {
		sum += treeBytes(k)
	}
	return sum
}

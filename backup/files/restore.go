package files

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/kopia/kopia/fs"
	"golang.org/x/sys/unix"

	"github.com/rewind/rewind/backup"
)

// Prepare writes dir into a sibling directory of the mount; the live tree is not touched. Switch carries the
// mount's excluded entries over into the restored tree, so a restore never drops what the backup did not cover.
func (s *Source) Prepare(ctx context.Context, dir fs.Directory, p backup.Progress) (backup.Prepared, error) {
	if err := s.checkSub(); err != nil {
		return nil, err
	}
	if s.entry != "" {
		return s.prepareEntry(ctx, dir, p)
	}
	id := backup.ScratchID(ctx)
	target := s.sibling("restore", id)
	inside := s.isMountPoint()
	if inside {
		target = s.inside("restore", id)
	}
	if err := os.MkdirAll(filepath.Dir(s.root), 0o755); err != nil {
		return nil, fmt.Errorf("create parent of the mount: %w", err)
	}
	mkdir := func() error { return os.Mkdir(target, 0o700) }
	if inside {
		mkdir = keepTimes(s.root, mkdir) // the live mount must not look changed
	}
	if err := mkdir(); err != nil {
		return nil, fmt.Errorf("create restore directory: %w", err)
	}
	r := &restorer{root: target, p: p, chown: os.Geteuid() == 0}
	if err := r.dir(ctx, dir, target, ""); err != nil {
		os.RemoveAll(target) //nolint:errcheck
		return nil, err
	}
	// One syncfs makes the whole restored tree durable before it can be switched in.
	if err := syncDir(target); err != nil {
		os.RemoveAll(target) //nolint:errcheck
		return nil, err
	}
	return &prepared{s: s, dir: target, inside: inside}, nil
}

type restorer struct {
	root  string
	p     backup.Progress
	chown bool
}

// dir restores the children of d into the existing directory at dst (rel below the mount), then d's own
// metadata.
func (r *restorer) dir(ctx context.Context, d fs.Directory, dst, rel string) error {
	err := fs.IterateEntries(ctx, d, func(ctx context.Context, e fs.Entry) error {
		return r.entry(ctx, e, dst, rel)
	})
	if err != nil {
		return err //nolint:wrapcheck
	}
	return r.meta(d, dst, rel, false)
}

// entry restores e into the existing directory at dst (rel below the mount).
func (r *restorer) entry(ctx context.Context, e fs.Entry, dst, rel string) error {
	name := e.Name()
	if err := backup.CheckEntryName(name); err != nil {
		return err
	}
	crel := path.Join(rel, name)
	p := filepath.Join(dst, name)
	switch e := e.(type) {
	case fs.Directory:
		if err := os.Mkdir(p, 0o700); err != nil {
			return fmt.Errorf("restore %q: %w", crel, err)
		}
		return r.dir(ctx, e, p, crel)
	case fs.Symlink:
		target, err := e.Readlink(ctx)
		if err != nil {
			return fmt.Errorf("restore %q: %w", crel, err)
		}
		if target == "" || strings.ContainsRune(target, 0) {
			return fmt.Errorf("restore %q: %w: symlink target is empty or holds NUL", crel, backup.ErrUnsafeName)
		}
		// The target is restored as it was, even when it is absolute or leaves the mount (a link to
		// shared configuration, say): it is only data here. Nothing below ever resolves a restored link:
		// every entry is created with a name in a directory this restorer made (a name that exists fails),
		// files are opened O_NOFOLLOW, times and owners set without following, and moveExcluded checks
		// each directory it descends into.
		if err := os.Symlink(target, p); err != nil {
			return fmt.Errorf("restore %q: %w", crel, err)
		}
		return r.meta(e, p, crel, true)
	case fs.File:
		return r.file(ctx, e, p, crel)
	default:
		return fmt.Errorf("restore %q: unsupported entry type %v", crel, e.Mode().Type())
	}
}

func (r *restorer) file(ctx context.Context, e fs.File, p, rel string) error {
	in, err := e.Open(ctx)
	if err != nil {
		return fmt.Errorf("read %q from backup: %w", rel, err)
	}
	defer in.Close() //nolint:errcheck
	out, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("restore %q: %w", rel, err)
	}
	n, err := io.Copy(out, backup.ProgressReader(in, r.p))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("restore %q: %w", rel, err)
	}
	if n != e.Size() {
		return fmt.Errorf("restore %q: read %d bytes, backup says %d", rel, n, e.Size())
	}
	return r.meta(e, p, rel, false)
}

// meta sets owner, mode and mtime (in that order: chown clears setuid bits).
func (r *restorer) meta(e fs.Entry, p, rel string, symlink bool) error {
	if r.chown {
		o := e.Owner()
		if err := os.Lchown(p, int(o.UserID), int(o.GroupID)); err != nil {
			return fmt.Errorf("restore owner of %q: %w", rel, err)
		}
	}
	if !symlink {
		if err := os.Chmod(p, e.Mode()&fs.ModBits); err != nil {
			return fmt.Errorf("restore mode of %q: %w", rel, err)
		}
	}
	ts := []unix.Timespec{unix.NsecToTimespec(e.ModTime().UnixNano()), unix.NsecToTimespec(e.ModTime().UnixNano())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("restore mtime of %q: %w", rel, err)
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync restored tree: %w", err)
	}
	defer f.Close() //nolint:errcheck
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("sync restored tree: %w", err)
	}
	return nil
}

// exchange swaps the directories at a and b: atomically with renameat2(RENAME_EXCHANGE), or, where the
// kernel or filesystem does not support it, with two renames through a third name (not atomic: a is briefly
// missing).
func exchange(a, b string) error {
	err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
	if err == nil {
		return syncParent(a)
	}
	if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EOPNOTSUPP) {
		return fmt.Errorf("exchange %s and %s: %w", a, b, err)
	}
	tmp := b + ".swap"
	if err := os.Rename(b, tmp); err != nil {
		return fmt.Errorf("exchange (fallback): %w", err)
	}
	if err := os.Rename(a, b); err != nil {
		os.Rename(tmp, b) //nolint:errcheck
		return fmt.Errorf("exchange (fallback): %w", err)
	}
	if err := os.Rename(tmp, a); err != nil {
		return fmt.Errorf("exchange (fallback): %w", err)
	}
	return syncParent(a)
}

func syncParent(p string) error {
	d, err := os.Open(filepath.Dir(p))
	if err != nil {
		return fmt.Errorf("sync %s: %w", filepath.Dir(p), err)
	}
	defer d.Close() //nolint:errcheck
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", filepath.Dir(p), err)
	}
	return nil
}

// prepared is a restored tree in a sibling directory (or, for a mount point, inside the mount).
type prepared struct {
	s        *Source
	dir      string
	inside   bool
	switched bool
}

func (p *prepared) Switch(context.Context) (backup.Replaced, error) {
	if p.switched {
		return nil, errors.New("already switched")
	}
	if _, err := os.Lstat(p.s.root); errors.Is(err, os.ErrNotExist) {
		// No live tree (a new environment): the restored tree simply takes its place; nothing is replaced.
		if err := os.Rename(p.dir, p.s.root); err != nil {
			return nil, fmt.Errorf("move restored tree in place: %w", err)
		}
		if err := syncParent(p.s.root); err != nil {
			return nil, err
		}
		p.switched = true
		return &replaced{s: p.s, dir: p.dir, none: true}, nil
	}
	if err := moveExcluded(p.s.root, p.dir, p.s.match); err != nil {
		return nil, err
	}
	if p.inside {
		// The restored tree's directory holds the replaced tree once their contents are swapped.
		if err := swapContents(p.s.root, p.dir); err != nil {
			return nil, err
		}
		p.switched = true
		return &replaced{s: p.s, dir: p.dir, inside: true}, nil
	}
	if err := exchange(p.dir, p.s.root); err != nil {
		return nil, err
	}
	p.switched = true
	return &replaced{s: p.s, dir: p.dir}, nil
}

// Discard removes the prepared tree; after a Switch the sibling holds the replaced tree, which Replaced owns.
func (p *prepared) Discard(context.Context) error {
	if p.switched {
		return nil
	}
	remove := func() error { return os.RemoveAll(p.dir) }
	if p.inside {
		remove = keepTimes(p.s.root, remove)
	}
	if err := remove(); err != nil {
		return fmt.Errorf("discard restored tree: %w", err)
	}
	return nil
}

// replaced is the tree a Switch moved into the sibling directory.
type replaced struct {
	s      *Source
	dir    string
	none   bool // there was no live tree: the capture is an empty directory, Revert removes the restored one
	inside bool // dir is inside the mount (a mount point): Revert swaps contents
}

// Pin captures the moved-aside tree in place: nothing writes to it any more, and every read still checks it.
func (r *replaced) Pin(ctx context.Context) (backup.Capture, error) {
	if r.none {
		n := &node{name: filepath.Base(r.s.root), mode: os.ModeDir | 0o755, mtime: time.Now()}
		return &capture{root: n, info: backup.ServiceInfo{Version: "files"}}, nil
	}
	w := &walker{root: r.dir, match: r.s.match, mode: walkVerifyAll}
	n, err := w.walk(ctx)
	if err != nil {
		return nil, err
	}
	n.name = filepath.Base(r.s.root)
	return &capture{root: n, info: backup.ServiceInfo{Version: "files", EstimatedBytes: treeBytes(n)}}, nil
}

func (r *replaced) Revert(context.Context) error {
	if r.none {
		if err := os.Rename(r.s.root, r.dir); err != nil {
			return fmt.Errorf("revert: %w", err)
		}
		return syncParent(r.s.root)
	}
	if err := moveExcluded(r.s.root, r.dir, r.s.match); err != nil {
		return err
	}
	if r.inside {
		return swapContents(r.s.root, r.dir)
	}
	return exchange(r.dir, r.s.root)
}

func (r *replaced) Discard(context.Context) error {
	remove := func() error { return os.RemoveAll(r.dir) }
	if r.inside {
		if _, err := os.Lstat(r.dir); errors.Is(err, os.ErrNotExist) {
			return nil
		}
		remove = keepTimes(r.s.root, remove)
	}
	if err := remove(); err != nil {
		return fmt.Errorf("discard replaced tree: %w", err)
	}
	return nil
}

// moveExcluded moves every excluded entry of the tree at from into the same place of the tree at to, so that a
// restore keeps what the backup never covered (caches, excluded uploads) instead of dropping it with the
// replaced tree. It runs within the pause but only reads directories (no file data). Directory times in to
// are kept; an entry whose place in to is taken, or whose parent directory is missing there, is left behind.
func moveExcluded(from, to string, m *Matcher) error {
	if m == nil || len(m.rules) == 0 {
		return nil
	}
	return moveExcludedDir(from, to, "", m)
}

func moveExcludedDir(from, to, rel string, m *Matcher) error {
	ents, err := os.ReadDir(filepath.Join(from, rel))
	if err != nil {
		return fmt.Errorf("keep excluded entries: %w", err)
	}
	for _, e := range ents {
		if isRewindScratch(e.Name()) {
			continue
		}
		crel := path.Join(rel, e.Name())
		if !m.Excluded(crel, e.IsDir()) {
			// Descend only where the other tree has a real directory too: a restored symlink in its place
			// may point anywhere, even outside the mount, and nothing may be moved through it.
			if e.IsDir() && isRealDir(filepath.Join(to, crel)) {
				if err := moveExcludedDir(from, to, crel, m); err != nil {
					return err
				}
			}
			continue
		}
		parent := filepath.Join(to, rel) // a real directory: checked before descending (or the root itself)
		pfi, err := os.Lstat(parent)
		if err != nil || !pfi.IsDir() {
			continue
		}
		dst := filepath.Join(parent, e.Name())
		if _, err := os.Lstat(dst); err == nil {
			continue
		}
		src := filepath.Join(from, rel)
		sfi, err := os.Lstat(src)
		if err != nil {
			return fmt.Errorf("keep excluded %q: %w", crel, err)
		}
		if err := os.Rename(filepath.Join(from, crel), dst); err != nil {
			return fmt.Errorf("keep excluded %q: %w", crel, err)
		}
		// both parents keep their times: neither tree looks changed by the move
		for _, d := range []struct {
			p  string
			fi os.FileInfo
		}{{parent, pfi}, {src, sfi}} {
			mt := unix.NsecToTimespec(d.fi.ModTime().UnixNano())
			if err := unix.UtimesNanoAt(unix.AT_FDCWD, d.p, []unix.Timespec{mt, mt}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return fmt.Errorf("keep excluded %q: %w", crel, err)
			}
		}
	}
	return nil
}

// isRealDir reports whether p is a directory and not a symlink to one.
func isRealDir(p string) bool {
	fi, err := os.Lstat(p)
	return err == nil && fi.IsDir()
}

// swapContents exchanges the entries (and the mode and times) of the mount root and of dir, a directory inside
// it on the same filesystem, one rename at a time. Rewind's scratch entries stay where they are.
func swapContents(root, dir string) error {
	move := func(from, to string, skipScratch bool) error {
		ents, err := os.ReadDir(from)
		if err != nil {
			return fmt.Errorf("swap: %w", err)
		}
		for _, e := range ents {
			if skipScratch && isRewindScratch(e.Name()) {
				continue
			}
			if err := os.Rename(filepath.Join(from, e.Name()), filepath.Join(to, e.Name())); err != nil {
				return fmt.Errorf("swap %s: %w", e.Name(), err)
			}
		}
		return nil
	}
	rfi, err := os.Lstat(root)
	if err != nil {
		return fmt.Errorf("swap: %w", err)
	}
	dfi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("swap: %w", err)
	}
	tmp := filepath.Join(root, ".rewind-stage-swap-"+filepath.Base(dir))
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return fmt.Errorf("swap: %w", err)
	}
	if err := move(root, tmp, true); err != nil {
		return err
	}
	if err := move(dir, root, false); err != nil {
		return err
	}
	if err := move(tmp, dir, false); err != nil {
		return err
	}
	if err := os.Remove(tmp); err != nil {
		return fmt.Errorf("swap: %w", err)
	}
	for _, x := range []struct {
		p  string
		fi os.FileInfo
	}{{root, dfi}, {dir, rfi}} {
		if err := os.Chmod(x.p, x.fi.Mode()&fs.ModBits); err != nil {
			return fmt.Errorf("swap: %w", err)
		}
		mt := unix.NsecToTimespec(x.fi.ModTime().UnixNano())
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, x.p, []unix.Timespec{mt, mt}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("swap: %w", err)
		}
	}
	return syncDir(root)
}

// keepTimes returns fn wrapped so that dir's modification time is the same after fn as before.
func keepTimes(dir string, fn func() error) func() error {
	return func() error {
		fi, err := os.Lstat(dir)
		if err != nil {
			return err //nolint:wrapcheck
		}
		if err := fn(); err != nil {
			return err
		}
		mt := unix.NsecToTimespec(fi.ModTime().UnixNano())
		return unix.UtimesNanoAt(unix.AT_FDCWD, dir, []unix.Timespec{mt, mt}, unix.AT_SYMLINK_NOFOLLOW) //nolint:wrapcheck
	}
}

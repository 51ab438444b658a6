package files

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kopia/kopia/fs"
	"golang.org/x/sys/unix"

	"github.com/rewind/rewind/backup"
)

// statKey is what identifies a version of a file: any write changes ctime, and a replaced file has a new inode.
type statKey struct {
	dev, ino     uint64
	size         int64
	mtime, ctime int64 // nanoseconds
	mode         uint32
	uid, gid     uint32
}

func statOf(fi os.FileInfo) statKey {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return statKey{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	}
	return statKey{
		dev: uint64(st.Dev), ino: st.Ino, size: st.Size, //nolint:unconvert
		mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano(), mode: st.Mode, uid: st.Uid, gid: st.Gid,
	}
}

// node is one entry of a pinned tree.
type node struct {
	name   string
	rel    string // slash-separated path below the mount; "" for the mount itself
	st     statKey
	mode   os.FileMode
	mtime  time.Time
	target string  // symlinks
	kids   []*node // directories, sorted by name
	// path is where a file's content is read: a staged copy, or the live file when verify is set (then the file
	// must still match st when it is read, else the read fails).
	path   string
	verify bool
}

// isRewindScratch reports whether name is a sibling Rewind itself creates (a stage, a restore being prepared, a
// replaced tree): another service's mount nested in this one can put them here, and they are never data.
func isRewindScratch(name string) bool {
	for _, p := range []string{".rewind-stage-", ".rewind-restore-", ".rewind-replaced-"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// walkMode says what the pin walk does with regular files.
type walkMode int

const (
	walkVerifyAll walkMode = iota // never copy: read the live files later, checking they did not change
	walkCopy                      // copy files to the stage unless known (first pass) and unchanged
)

type walker struct {
	root    string
	match   *Matcher
	mode    walkMode
	known   map[string]statKey // files read and verified by the first pass
	stage   string             // directory for copies; created on first use
	nstaged int
	copied  int64
	reread  []string // changed since the first pass, with the same size, mtime, mode and owner
}

// sameMetadata reports whether two versions of a file look the same to the repository's cache.
func sameMetadata(a, b statKey) bool {
	return a.size == b.size && a.mtime == b.mtime && a.mode == b.mode && a.uid == b.uid && a.gid == b.gid
}

func (w *walker) walk(ctx context.Context) (*node, error) {
	fi, err := os.Lstat(w.root)
	if err != nil {
		return nil, fmt.Errorf("mount: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("mount %s is not a directory", w.root)
	}
	n := &node{name: filepath.Base(w.root), st: statOf(fi), mode: fi.Mode(), mtime: fi.ModTime()}
	if err := w.walkDir(ctx, n, w.root); err != nil {
		return nil, err
	}
	return n, nil
}

func (w *walker) walkDir(ctx context.Context, n *node, dir string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("read directory %q: %w", n.rel, err)
	}
	names, err := f.Readdirnames(-1)
	f.Close() //nolint:errcheck
	if err != nil {
		return fmt.Errorf("read directory %q: %w", n.rel, err)
	}
	sort.Strings(names)
	for _, name := range names {
		rel := path.Join(n.rel, name)
		p := filepath.Join(dir, name)
		fi, err := os.Lstat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue // removed since the listing
		}
		if err != nil {
			return fmt.Errorf("stat %q: %w", rel, err)
		}
		if w.match.Excluded(rel, fi.IsDir()) || isRewindScratch(name) {
			continue
		}
		k := &node{name: name, rel: rel, st: statOf(fi), mode: fi.Mode(), mtime: fi.ModTime()}
		switch {
		case fi.IsDir():
			if err := w.walkDir(ctx, k, p); err != nil {
				return err
			}
		case fi.Mode()&os.ModeSymlink != 0:
			if k.target, err = os.Readlink(p); err != nil {
				return fmt.Errorf("read symlink %q: %w", rel, err)
			}
		case fi.Mode().IsRegular():
			if err := w.file(k, p); err != nil {
				return err
			}
		default:
			continue // sockets, fifos, devices: not data, not backed up
		}
		n.kids = append(n.kids, k)
	}
	return nil
}

func (w *walker) file(k *node, p string) error {
	if w.mode == walkVerifyAll {
		k.path, k.verify = p, true
		return nil
	}
	known, wasKnown := w.known[k.rel]
	if wasKnown && known == k.st {
		k.path, k.verify = p, true // read by the first pass, unchanged since
		return nil
	}
	if w.nstaged == 0 {
		if err := os.Mkdir(w.stage, 0o700); err != nil {
			// The mount's parent is not writable (a read-only or root mount): stage in the temp directory.
			tmp, terr := os.MkdirTemp("", filepath.Base(w.stage)+"-")
			if terr != nil {
				return fmt.Errorf("create stage: %w", errors.Join(err, terr))
			}
			w.stage = tmp
		}
	}
	w.nstaged++
	dst := filepath.Join(w.stage, strconv.Itoa(w.nstaged))
	var lastErr error
	for range 3 {
		st, fi, err := copyStable(p, dst)
		if err == nil {
			k.st, k.mode, k.mtime, k.path = st, fi.Mode(), fi.ModTime(), dst
			w.copied += st.size
			if wasKnown && sameMetadata(known, st) {
				// The repository would take the first pass's copy for this one: say it must be read again.
				w.reread = append(w.reread, k.rel)
			}
			return nil
		}
		lastErr = err
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("copy %q: removed while pinned: %w", k.rel, err)
		}
	}
	return fmt.Errorf("copy %q: %w", k.rel, lastErr)
}

var errChanged = errors.New("file changed while it was read")

// copyStable copies src to dst and fails with errChanged if src changed during the copy.
func copyStable(src, dst string) (statKey, os.FileInfo, error) {
	in, err := os.OpenFile(src, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return statKey{}, nil, err //nolint:wrapcheck
	}
	defer in.Close() //nolint:errcheck
	before, err := in.Stat()
	if err != nil {
		return statKey{}, nil, err //nolint:wrapcheck
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return statKey{}, nil, err //nolint:wrapcheck
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return statKey{}, nil, err //nolint:wrapcheck
	}
	after, err := in.Stat()
	if err != nil {
		return statKey{}, nil, err //nolint:wrapcheck
	}
	if statOf(before) != statOf(after) {
		return statKey{}, nil, errChanged
	}
	return statOf(after), after, nil
}

// tree serves a pinned node tree to kopia as an fs.Directory.
type tree struct {
	p       backup.Progress
	onDirty func(rel string) // called when a live file turns out to have changed since the walk
}

func (t *tree) entry(n *node) fs.Entry {
	e := entry{n: n}
	switch {
	case n.mode.IsDir():
		return &dirEntry{entry: e, t: t}
	case n.mode&os.ModeSymlink != 0:
		return &symlinkEntry{entry: e}
	default:
		return &fileEntry{entry: e, t: t}
	}
}

type entry struct{ n *node }

func (e entry) Name() string       { return e.n.name }
func (e entry) IsDir() bool        { return e.n.mode.IsDir() }
func (e entry) Mode() os.FileMode  { return e.n.mode }
func (e entry) ModTime() time.Time { return e.n.mtime }
func (e entry) Sys() any           { return nil }
func (e entry) Owner() fs.OwnerInfo {
	return fs.OwnerInfo{UserID: e.n.st.uid, GroupID: e.n.st.gid}
}
func (e entry) Device() fs.DeviceInfo       { return fs.DeviceInfo{} }
func (e entry) LocalFilesystemPath() string { return "" }
func (e entry) Close()                      {}
func (e entry) Size() int64 {
	switch {
	case e.n.mode.IsRegular():
		return e.n.st.size
	case e.n.mode&os.ModeSymlink != 0:
		return int64(len(e.n.target))
	}
	return 0
}

type dirEntry struct {
	entry
	t *tree
}

func (d *dirEntry) Child(_ context.Context, name string) (fs.Entry, error) {
	i := sort.Search(len(d.n.kids), func(i int) bool { return d.n.kids[i].name >= name })
	if i < len(d.n.kids) && d.n.kids[i].name == name {
		return d.t.entry(d.n.kids[i]), nil
	}
	return nil, fs.ErrEntryNotFound
}

func (d *dirEntry) Iterate(context.Context) (fs.DirectoryIterator, error) {
	ents := make([]fs.Entry, len(d.n.kids))
	for i, k := range d.n.kids {
		ents[i] = d.t.entry(k)
	}
	return fs.StaticIterator(ents, nil), nil
}

func (d *dirEntry) SupportsMultipleIterations() bool { return true }

type symlinkEntry struct{ entry }

func (s *symlinkEntry) Readlink(context.Context) (string, error) { return s.n.target, nil }
func (s *symlinkEntry) Resolve(context.Context) (fs.Entry, error) {
	return nil, errors.New("symlinks of a backup are never followed")
}

type fileEntry struct {
	entry
	t *tree
}

func (f *fileEntry) Open(context.Context) (fs.Reader, error) {
	flags := os.O_RDONLY
	if f.n.verify {
		flags |= unix.O_NOFOLLOW
	}
	file, err := os.OpenFile(f.n.path, flags, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", f.n.rel, err)
	}
	if f.n.verify {
		fi, err := file.Stat()
		if err != nil || statOf(fi) != f.n.st {
			file.Close() //nolint:errcheck
			if f.t.onDirty != nil {
				f.t.onDirty(f.n.rel)
			}
			return nil, fmt.Errorf("%s: %w after the pin; back up again", f.n.rel, errChanged)
		}
	}
	return &fileReader{f: file, e: f}, nil
}

type fileReader struct {
	f   *os.File
	e   *fileEntry
	pos int64
}

func (r *fileReader) Read(b []byte) (int, error) {
	n, err := r.f.Read(b)
	r.pos += int64(n)
	if n > 0 {
		r.e.t.p.Add(int64(n))
	}
	if errors.Is(err, io.EOF) && r.e.n.verify {
		fi, serr := r.f.Stat()
		if serr != nil || statOf(fi) != r.e.n.st || r.pos != r.e.n.st.size {
			if r.e.t.onDirty != nil {
				r.e.t.onDirty(r.e.n.rel)
			}
			return n, fmt.Errorf("%s: %w", r.e.n.rel, errChanged)
		}
	}
	return n, err //nolint:wrapcheck
}

func (r *fileReader) Seek(off int64, whence int) (int64, error) {
	pos, err := r.f.Seek(off, whence)
	r.pos = pos
	return pos, err //nolint:wrapcheck
}

func (r *fileReader) Close() error             { return r.f.Close() } //nolint:wrapcheck
func (r *fileReader) Entry() (fs.Entry, error) { return r.e, nil }

// knownSet holds the files of a first pass that did not change while it read them.
type knownSet struct {
	mu sync.Mutex
	m  map[string]statKey
}

func newKnownSet(n *node) *knownSet {
	k := &knownSet{m: map[string]statKey{}}
	var walk func(n *node)
	walk = func(n *node) {
		if n.mode.IsRegular() {
			k.m[n.rel] = n.st
		}
		for _, c := range n.kids {
			walk(c)
		}
	}
	walk(n)
	return k
}

func (k *knownSet) dirty(rel string) {
	k.mu.Lock()
	delete(k.m, rel)
	k.mu.Unlock()
}

func (k *knownSet) snapshot() map[string]statKey {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make(map[string]statKey, len(k.m))
	for p, s := range k.m {
		out[p] = s
	}
	return out
}

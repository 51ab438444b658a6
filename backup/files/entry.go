package files

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kopia/kopia/fs"

	"github.com/rewind/rewind/backup"
)

// The Source of a single entry (UnderEntry) restores one file or symlink of a directory: Prepare writes the
// backup's entry, if the backup has one, into a scratch directory `.rewind-restore-<id>` inside that directory;
// Switch swaps the prepared entry and the live one (renameat2(RENAME_EXCHANGE) when both exist, a rename of the
// one that does otherwise), so the scratch directory then holds the replaced entry, or nothing. Swapping again
// reverts it; the scratch directory is the replaced state's folder.

// prepareEntry writes the entry s.entry of dir (its directory in a backup) into a scratch directory beside the
// live entry. A dir without it prepares its absence: the switch moves the live entry aside.
func (s *Source) prepareEntry(ctx context.Context, dir fs.Directory, p backup.Progress) (backup.Prepared, error) {
	if err := os.MkdirAll(s.root, 0o755); err != nil {
		return nil, fmt.Errorf("create the directory of %s: %w", s.entry, err)
	}
	scratch := s.inside("restore", backup.ScratchID(ctx))
	if err := os.Mkdir(scratch, 0o700); err != nil {
		return nil, fmt.Errorf("create restore directory: %w", err)
	}
	e, err := dir.Child(ctx, s.entry)
	switch {
	case errors.Is(err, fs.ErrEntryNotFound):
	case err != nil:
		os.RemoveAll(scratch) //nolint:errcheck
		return nil, fmt.Errorf("read %s from backup: %w", s.entry, err)
	case e.IsDir():
		os.RemoveAll(scratch) //nolint:errcheck
		return nil, fmt.Errorf("%s is a directory in the backup: restore it as a directory", s.entry)
	default:
		r := &restorer{root: scratch, p: p, chown: os.Geteuid() == 0}
		if err := r.entry(ctx, e, scratch, ""); err != nil {
			os.RemoveAll(scratch) //nolint:errcheck
			return nil, err
		}
	}
	if err := syncDir(scratch); err != nil {
		os.RemoveAll(scratch) //nolint:errcheck
		return nil, err
	}
	return &preparedEntry{s: s, dir: scratch}, nil
}

// swapEntry swaps the entries named name of directories a and b: exchanged when both exist, moved when one
// does. It is its own inverse.
func swapEntry(a, b, name string) error {
	pa, pb := filepath.Join(a, name), filepath.Join(b, name)
	_, errA := os.Lstat(pa)
	_, errB := os.Lstat(pb)
	switch {
	case errA == nil && errB == nil:
		return exchange(pa, pb)
	case errA == nil:
		if err := os.Rename(pa, pb); err != nil {
			return fmt.Errorf("move %s: %w", name, err)
		}
	case errB == nil:
		if err := os.Rename(pb, pa); err != nil {
			return fmt.Errorf("move %s: %w", name, err)
		}
	default:
		return nil
	}
	if err := syncParent(pa); err != nil {
		return err
	}
	return syncParent(pb)
}

type preparedEntry struct {
	s        *Source
	dir      string
	switched bool
}

func (p *preparedEntry) Switch(context.Context) (backup.Replaced, error) {
	if p.switched {
		return nil, errors.New("already switched")
	}
	if err := swapEntry(p.dir, p.s.root, p.s.entry); err != nil {
		return nil, err
	}
	p.switched = true
	return &replacedEntry{s: p.s, dir: p.dir}, nil
}

func (p *preparedEntry) Discard(context.Context) error {
	if p.switched {
		return nil
	}
	if err := os.RemoveAll(p.dir); err != nil {
		return fmt.Errorf("discard restored entry: %w", err)
	}
	return nil
}

// replacedEntry is the scratch directory holding the entry a Switch replaced (or nothing, when there was none).
type replacedEntry struct {
	s   *Source
	dir string
}

// Pin captures the scratch directory: the entry's directory holding the replaced entry alone.
func (r *replacedEntry) Pin(ctx context.Context) (backup.Capture, error) {
	w := &walker{root: r.dir, match: r.s.match, mode: walkVerifyAll}
	n, err := w.walk(ctx)
	if err != nil {
		return nil, err
	}
	n.name = filepath.Base(r.s.root)
	return &capture{root: n, info: backup.ServiceInfo{Version: "files", EstimatedBytes: treeBytes(n)}}, nil
}

func (r *replacedEntry) Revert(context.Context) error { return swapEntry(r.dir, r.s.root, r.s.entry) }

func (r *replacedEntry) Discard(context.Context) error {
	if err := os.RemoveAll(r.dir); err != nil {
		return fmt.Errorf("discard replaced entry: %w", err)
	}
	return nil
}

// summarizeEntry is the live entry alone, as Summarize lists files.
func (s *Source) summarizeEntry() (*backup.Summary, error) {
	out := &backup.Summary{Files: []backup.FileStat{}}
	p := filepath.Join(s.root, s.entry)
	fi, err := os.Lstat(p)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return out, nil
	case err != nil:
		return nil, fmt.Errorf("stat %s: %w", p, err)
	case s.match.Excluded(s.entry, fi.IsDir()):
		return out, nil
	case fi.Mode().IsRegular():
		out.Files = append(out.Files, backup.NewFileStat(s.entry, fi.Size(), fi.ModTime(), fi.Mode()))
	case fi.Mode()&os.ModeSymlink != 0:
		target, err := os.Readlink(p)
		if err != nil {
			return nil, fmt.Errorf("read link %s: %w", p, err)
		}
		out.Files = append(out.Files, backup.NewFileStat(s.entry, int64(len(target)), fi.ModTime(), fi.Mode()))
	}
	return out, nil
}

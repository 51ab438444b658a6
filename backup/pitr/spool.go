package pitr

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// CopyFile copies src into a new file dst (0600): a follower stages a copy of a spool file its tool is still
// writing, every byte of it read at once. A missing src is an error wrapping os.ErrNotExist.
func CopyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", filepath.Base(src), err)
	}
	defer in.Close() //nolint:errcheck
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("copy %s: %w", filepath.Base(src), err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close() //nolint:errcheck
		return fmt.Errorf("copy %s: %w", filepath.Base(src), err)
	}
	return out.Close()
}

// WriteFileAtomic replaces path with data durably: a temporary file beside it, synced, renamed over it, and the
// directory synced, so a crash leaves the old content or the new, never a part (a follower's position).
func WriteFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		var d *os.File
		if d, err = os.Open(filepath.Dir(path)); err == nil {
			err = d.Sync()
			d.Close() //nolint:errcheck
		}
	}
	if err != nil {
		os.Remove(tmp) //nolint:errcheck
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}

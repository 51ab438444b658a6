package backup

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"path"

	"github.com/kopia/kopia/fs"
)

// WriteTar writes backup id as a tar stream to w: rewind.json, SHA256SUMS and each service's folder, with
// modes, modification times and symlinks as captured (this is `backup:download`). Names are checked with
// CheckEntryName so the archive extracts safely. A missing backup wraps ErrNotFound before anything is
// written.
func (e *Engine) WriteTar(ctx context.Context, id string, w io.Writer) error {
	return classify(e.writeTar(ctx, id, w))
}

func (e *Engine) writeTar(ctx context.Context, id string, w io.Writer) error {
	root, m, err := e.openBackup(ctx, id)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	// rewind.json and SHA256SUMS first, so a reader learns what the archive holds before the data.
	for _, name := range []string{ManifestFile, SumsFile} {
		ent, err := root.Child(ctx, name)
		if err != nil {
			return fmt.Errorf("backup %s: %w", id, err)
		}
		if err := tarEntry(ctx, tw, name, ent); err != nil {
			return err
		}
	}
	for _, s := range m.Services {
		ent, err := root.Child(ctx, s.Name)
		if err != nil {
			return fmt.Errorf("backup %s: folder of service %q: %w", id, s.Name, err)
		}
		if err := tarEntry(ctx, tw, s.Name, ent); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("write tar: %w", err)
	}
	return nil
}

func tarEntry(ctx context.Context, tw *tar.Writer, name string, ent fs.Entry) error {
	if err := CheckEntryName(ent.Name()); err != nil && name != ent.Name() {
		return err
	}
	hdr := &tar.Header{
		Name:    name,
		Mode:    int64(ent.Mode().Perm()),
		ModTime: ent.ModTime(),
		Format:  tar.FormatPAX,
	}
	if !validUTF8Path(name) {
		hdr.Format = tar.FormatGNU
	}
	if o := ent.Owner(); o.UserID != 0 || o.GroupID != 0 {
		hdr.Uid, hdr.Gid = int(o.UserID), int(o.GroupID)
	}
	switch ent := ent.(type) {
	case fs.Directory:
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("write tar %s: %w", name, err)
		}
		return fs.IterateEntries(ctx, ent, func(ctx context.Context, child fs.Entry) error { //nolint:wrapcheck
			if err := CheckEntryName(child.Name()); err != nil {
				return err
			}
			return tarEntry(ctx, tw, path.Join(name, child.Name()), child)
		})
	case fs.Symlink:
		target, err := ent.Readlink(ctx)
		if err != nil {
			return fmt.Errorf("read symlink %s: %w", name, err)
		}
		hdr.Typeflag = tar.TypeSymlink
		hdr.Linkname = target
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("write tar %s: %w", name, err)
		}
		return nil
	case fs.File:
		hdr.Typeflag = tar.TypeReg
		hdr.Size = ent.Size()
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("write tar %s: %w", name, err)
		}
		rd, err := ent.Open(ctx)
		if err != nil {
			return fmt.Errorf("open %s: %w", name, err)
		}
		defer rd.Close() //nolint:errcheck
		n, err := io.Copy(tw, rd)
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		if n != hdr.Size {
			return fmt.Errorf("read %s: %d bytes, want %d", name, n, hdr.Size)
		}
		return nil
	default:
		return nil // kopia records no other types
	}
}

package backup

import (
	"context"
	"fmt"

	"github.com/kopia/kopia/fs"
	"github.com/kopia/kopia/snapshot"
)

// VerifyBackup reads every file of backup id from the repository (which authenticates every byte) and checks
// it against the backup's SHA256SUMS and each service's checksum in rewind.json. It changes nothing. A missing
// or corrupted blob wraps ErrDamaged, a mismatch ErrChecksum.
func (e *Engine) VerifyBackup(ctx context.Context, id string, p Progress) error {
	return classify(e.verifyBackup(ctx, id, p))
}

func (e *Engine) verifyBackup(ctx context.Context, id string, p Progress) error {
	if p == nil {
		p = NopProgress
	}
	root, m, err := e.openBackup(ctx, id)
	if err != nil {
		return err
	}
	data, err := readRootFile(ctx, root, SumsFile)
	if err != nil {
		return fmt.Errorf("backup %s: %w", id, err)
	}
	sums, err := ParseSums(data)
	if err != nil {
		return fmt.Errorf("backup %s: %w", id, err)
	}
	p.SetTotal(m.Bytes)
	seen := 0
	for _, s := range m.Services {
		if got := sums.ServiceChecksum(s.Name); got != s.SHA256 {
			return fmt.Errorf("backup %s: %w: listing of service %q", id, ErrChecksum, s.Name)
		}
		ent, err := root.Child(ctx, s.Name)
		if err != nil {
			return fmt.Errorf("backup %s: folder of service %q: %w", id, s.Name, err)
		}
		dir, ok := ent.(fs.Directory)
		if !ok {
			return fmt.Errorf("backup %s: folder of service %q is not a directory", id, s.Name)
		}
		err = fileEntries(ctx, dir, s.Name, func(rel string, f fs.File, _ *snapshot.DirEntry) error {
			want, ok := sums[rel]
			if !ok {
				return fmt.Errorf("%w: %s is not in %s", ErrChecksum, rel, SumsFile)
			}
			got, err := hashEntry(ctx, f)
			if err != nil {
				return fmt.Errorf("read %s: %w", rel, err)
			}
			p.Add(got.size)
			if got.sum != want {
				return fmt.Errorf("%w: %s", ErrChecksum, rel)
			}
			seen++
			return nil
		})
		if err != nil {
			return fmt.Errorf("backup %s: %w", id, err)
		}
	}
	if seen != len(sums) {
		return fmt.Errorf("backup %s: %w: %s lists %d files, the backup holds %d", id, ErrChecksum, SumsFile, len(sums), seen)
	}
	return nil
}

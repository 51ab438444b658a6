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
		n, err := verifyService(ctx, dir, s.Name, sums, nil, p)
		if err != nil {
			return fmt.Errorf("backup %s: %w", id, err)
		}
		seen += n
	}
	if seen != len(sums) {
		return fmt.Errorf("backup %s: %w: %s lists %d files, the backup holds %d", id, ErrChecksum, SumsFile, len(sums), seen)
	}
	return nil
}

// verifyService checks every file of service's folder dir against sums and returns how many it checked. A file
// that read recorded as read to its end is checked with that checksum; any other is read from the repository.
// read may be nil; p receives the bytes read here.
func verifyService(ctx context.Context, dir fs.Directory, service string, sums Sums, read *hashRecorder, p Progress) (int, error) {
	seen := 0
	err := fileEntries(ctx, dir, service, func(rel string, f fs.File, _ *snapshot.DirEntry) error {
		want, ok := sums[rel]
		if !ok {
			return fmt.Errorf("%w: %s is not in %s", ErrChecksum, rel, SumsFile)
		}
		got, ok := fileSum{}, false
		if read != nil {
			got, ok = read.lookup(rel)
		}
		if !ok {
			var err error
			if got, err = hashEntry(ctx, f); err != nil {
				return fmt.Errorf("read %s: %w", rel, err)
			}
			p.Add(got.size)
		}
		if got.sum != want {
			return fmt.Errorf("%w: %s", ErrChecksum, rel)
		}
		seen++
		return nil
	})
	return seen, err
}

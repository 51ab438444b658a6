package backup

import (
	"context"
	"fmt"

	"github.com/kopia/kopia/repo"
	"github.com/kopia/kopia/repo/maintenance"
	"github.com/kopia/kopia/repo/manifest"
	"github.com/kopia/kopia/snapshot"
	"github.com/kopia/kopia/snapshot/snapshotmaintenance"
)

// ListBackups returns the complete backups in the repository, newest first; env filters by environment when
// not empty. Each manifest is read from its backup's rewind.json, so the list rebuilds the catalog.
func (e *Engine) ListBackups(ctx context.Context, env string) ([]*Manifest, error) {
	r := e.Repo.rep
	if err := r.Refresh(ctx); err != nil {
		return nil, fmt.Errorf("refresh repository: %w", err)
	}
	labels := map[string]string{manifest.TypeLabelKey: snapshot.ManifestType}
	if env != "" {
		labels[tagEnvironment] = env
	}
	ents, err := r.FindManifests(ctx, labels)
	if err != nil {
		return nil, fmt.Errorf("list backups: %w", err)
	}
	var out []*Manifest
	seen := map[string]bool{}
	for _, en := range ents {
		id := en.Labels[tagID]
		if id == "" || seen[id] {
			continue
		}
		seen[id] = true
		m, err := e.FindBackup(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	sortManifests(out)
	return out, nil
}

// FindBackup reads the manifest of backup id. A missing backup wraps ErrNotFound.
func (e *Engine) FindBackup(ctx context.Context, id string) (*Manifest, error) {
	m, err := e.findBackup(ctx, id)
	return m, classify(err)
}

func (e *Engine) findBackup(ctx context.Context, id string) (*Manifest, error) {
	_, m, err := e.openBackup(ctx, id)
	if err != nil {
		return nil, err
	}
	if m.ID != id {
		return nil, fmt.Errorf("backup %s: its rewind.json names %s", id, m.ID)
	}
	return m, nil
}

// DeleteBackup deletes the snapshot of backup id. Its data is reclaimed by a later full Maintenance, once no
// other backup shares it. A missing backup wraps ErrNotFound.
func (e *Engine) DeleteBackup(ctx context.Context, id string) error {
	if !ValidID(id) {
		return fmt.Errorf("%w: %q is not a backup id", ErrNotFound, id)
	}
	err := repo.WriteSession(ctx, e.Repo.rep, repo.WriteSessionOptions{Purpose: "rewind delete " + id},
		func(ctx context.Context, w repo.RepositoryWriter) error {
			ents, err := w.FindManifests(ctx, map[string]string{manifest.TypeLabelKey: snapshot.ManifestType, tagID: id})
			if err != nil {
				return fmt.Errorf("find backup %s: %w", id, err)
			}
			if len(ents) == 0 {
				return fmt.Errorf("%w: %s", ErrNotFound, id)
			}
			for _, en := range ents {
				if err := w.DeleteManifest(ctx, en.ID); err != nil {
					return fmt.Errorf("delete backup %s: %w", id, err)
				}
			}
			return nil
		})
	return err //nolint:wrapcheck
}

// Maintenance runs kopia's quick maintenance (index compaction, deleting unused small blobs) or, when full,
// the full one (snapshot garbage collection, then rewriting and deleting unreferenced data). It is safe while
// backups run: kopia's SafetyFull parameters never collect contents younger than a day, so data uploaded by a
// backup not yet saved stays, and a local lock keeps two maintenance runs apart. Rewind owns maintenance of its
// repository (set when the repository is opened).
func (e *Engine) Maintenance(ctx context.Context, full bool) error {
	dr, ok := e.Repo.rep.(repo.DirectRepository)
	if !ok {
		return fmt.Errorf("maintenance: repository is not direct")
	}
	mode := maintenance.ModeQuick
	if full {
		mode = maintenance.ModeFull
	}
	err := repo.DirectWriteSession(ctx, dr, repo.WriteSessionOptions{Purpose: "rewind maintenance"},
		func(ctx context.Context, dw repo.DirectRepositoryWriter) error {
			return snapshotmaintenance.Run(ctx, dw, mode, false, maintenance.SafetyFull) //nolint:wrapcheck
		})
	if err != nil {
		return fmt.Errorf("maintenance: %w", err)
	}
	return nil
}

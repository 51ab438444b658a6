package db

import (
	"context"
	"fmt"
	"os"
)

// CopyTo writes a consistent copy of the whole catalog to path, a new file (SQLite's VACUUM INTO: one read
// transaction, so writers are not blocked and the copy is one point in time). The copy is a standalone
// catalog: Open it with the same key.
func (db *DB) CopyTo(ctx context.Context, path string) error {
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("copy catalog: %s exists", path)
	}
	if _, err := db.sql.ExecContext(ctx, `VACUUM INTO ?`, path); err != nil {
		return fmt.Errorf("copy catalog to %s: %w", path, err)
	}
	return nil
}

package postgres

import (
	"context"
	"fmt"

	"github.com/rewind/rewind/backup"
)

var _ backup.Sweeper = (*Source)(nil)

// Sweep drops the database a Prepare of the operation with scratch id left beside the live one. (The switch
// renames that database to the live name in the same transaction that moves the live one aside, so after a
// switch there is nothing of that name; the replaced database is named `_rewind_old_` and never swept.)
func (s *Source) Sweep(ctx context.Context, id string) ([]string, error) {
	tmp := sibling(s.database, "", id)
	conn, err := s.maintenance(ctx)
	if err != nil {
		return nil, err
	}
	var exists bool
	err = conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", tmp).Scan(&exists)
	conn.Close(context.Background()) //nolint:errcheck
	if err != nil {
		return nil, fmt.Errorf("look for database %q: %w", tmp, s.redact(err))
	}
	if !exists {
		return nil, nil
	}
	if err := s.dropDatabase(ctx, tmp); err != nil {
		return nil, err
	}
	return []string{"database " + tmp}, nil
}

package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/rewind/rewind/backup"
)

var (
	_ backup.Summarizer        = (*Source)(nil)
	_ backup.CaptureSummarizer = (*capture)(nil)
	_ backup.CaptureSummarizer = emptyCapture{}
)

// countBudget is how long Summarize counts the rows of the live database; tables left after it are listed
// as not counted (SQLite keeps no estimate).
const countBudget = 3 * time.Second

// Summarize counts the rows of every table of the live database file, opened read-only.
func (s *Source) Summarize(ctx context.Context) (*backup.Summary, error) {
	if _, err := os.Stat(s.path); errors.Is(err, os.ErrNotExist) {
		return &backup.Summary{Tables: []backup.TableSummary{}}, nil // no database yet: no tables
	}
	ctx, cancel := context.WithTimeout(ctx, countBudget)
	defer cancel()
	return countTables(ctx, s.path)
}

// Summary counts the rows of the pinned state (the staged copy the folder streamed).
func (c *capture) Summary() (*backup.Summary, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.staged == "" {
		return nil, errors.New("sqlite capture: nothing staged")
	}
	return countTables(context.Background(), c.staged)
}

func (emptyCapture) Summary() (*backup.Summary, error) {
	return &backup.Summary{Tables: []backup.TableSummary{}}, nil
}

// countTables counts the rows of every table (not SQLite's own) of the database at path, read-only. Tables it
// had no time for when ctx ends are listed with Rows -1.
func countTables(ctx context.Context, path string) (*backup.Summary, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(10000)&_pragma=query_only(1)")
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close() //nolint:errcheck
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer conn.Close() //nolint:errcheck
	// One read transaction: every count sees the same state.
	tx, err := conn.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer tx.Rollback() //nolint:errcheck
	rows, err := tx.QueryContext(ctx, `SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\'
		AND sql NOT LIKE 'CREATE VIRTUAL %' ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list tables of %s: %w", path, err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close() //nolint:errcheck
			return nil, fmt.Errorf("list tables of %s: %w", path, err)
		}
		names = append(names, n)
	}
	rows.Close() //nolint:errcheck
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tables of %s: %w", path, err)
	}
	out := &backup.Summary{Tables: make([]backup.TableSummary, 0, len(names))}
	for _, n := range names {
		t := backup.TableSummary{Name: n, Rows: -1, Estimated: true}
		if ctx.Err() == nil {
			err := tx.QueryRowContext(ctx, `SELECT count(*) FROM "`+quoteName(n)+`"`).Scan(&t.Rows)
			switch {
			case err == nil:
				t.Estimated = false
			case ctx.Err() != nil:
				t.Rows = -1
			default:
				return nil, fmt.Errorf("count rows of %s: %w", n, err)
			}
		}
		out.Tables = append(out.Tables, t)
	}
	backup.SortTables(out.Tables)
	return out, nil
}

// quoteName escapes a name for a double-quoted SQL identifier.
func quoteName(n string) string {
	b := make([]byte, 0, len(n))
	for i := 0; i < len(n); i++ {
		if n[i] == '"' {
			b = append(b, '"')
		}
		b = append(b, n[i])
	}
	return string(b)
}

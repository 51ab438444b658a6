package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/rewind/rewind/backup"
)

var _ backup.Summarizer = (*Source)(nil)

// countBudget is how long Summarize counts rows exactly; tables left when it is spent (or the one whose count
// ran out of it) get the server's estimate (information_schema.tables.table_rows).
const countBudget = 3 * time.Second

// Summarize counts the rows of every base table of the live database, in a read-only session: exactly while
// countBudget lasts, by the server's estimate after that.
func (s *Source) Summarize(ctx context.Context) (*backup.Summary, error) {
	db, conn, err := s.session(ctx)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET SESSION TRANSACTION READ ONLY"); err != nil {
		return nil, fmt.Errorf("mysql session: %w", err)
	}
	rows, err := conn.QueryContext(ctx, `SELECT table_name, table_rows FROM information_schema.tables
		WHERE table_schema = ? AND table_type = 'BASE TABLE' ORDER BY table_name`, s.database)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	out := &backup.Summary{Tables: []backup.TableSummary{}}
	for rows.Next() {
		var name string
		var estimate sql.NullInt64
		if err := rows.Scan(&name, &estimate); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list tables: %w", err)
		}
		t := backup.TableSummary{Name: name, Rows: -1, Estimated: true}
		if estimate.Valid {
			t.Rows = estimate.Int64
		}
		out.Tables = append(out.Tables, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	deadline := time.Now().Add(countBudget)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d.Add(-200 * time.Millisecond) // leave time to answer with estimates
	}
	cctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	for i := range out.Tables {
		t := &out.Tables[i]
		var n int64
		err := conn.QueryRowContext(cctx, "SELECT COUNT(*) FROM "+quoteIdent(s.database)+"."+quoteIdent(t.Name)).Scan(&n)
		if cctx.Err() != nil {
			break // out of time: the connection is gone with the cancelled query, the rest are estimates
		}
		if err != nil {
			return nil, fmt.Errorf("count rows of %s: %w", t.Name, err)
		}
		t.Rows, t.Estimated = n, false
	}
	if err := ctx.Err(); err != nil {
		return nil, err //nolint:wrapcheck
	}
	backup.SortTables(out.Tables)
	return out, nil
}

package db

import (
	"context"
	"database/sql"
	"sync"
	"sync/atomic"
)

// maxCachedStmts bounds the statements kept prepared (queries are built from a few fixed shapes, so a handful
// of dozen in practice).
const maxCachedStmts = 256

// stmtCache is the catalog's *sql.DB with its queries prepared once and reused: parsing the SQL of every query
// was the largest single cost of a dashboard page. database/sql prepares a cached statement again on each
// connection that runs it. Writes and transactions go through unchanged.
type stmtCache struct {
	*sql.DB
	mu    sync.Mutex
	stmts map[string]*sql.Stmt
	// writes counts the writes done through this cache, each counted once it is committed (recentCache).
	writes atomic.Uint64
}

// ExecContext runs a write, then counts it.
func (c *stmtCache) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	defer c.wrote()
	return c.DB.ExecContext(ctx, query, args...)
}

// wrote counts a write; transactions call it once committed (or rolled back).
func (c *stmtCache) wrote() { c.writes.Add(1) }

func newStmtCache(d *sql.DB) *stmtCache { return &stmtCache{DB: d, stmts: map[string]*sql.Stmt{}} }

// stmt returns the prepared statement of query, or nil when the cache is full or preparing fails (the caller
// then runs the query unprepared, which reports any error).
func (c *stmtCache) stmt(query string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.stmts[query]; ok {
		return st
	}
	if len(c.stmts) >= maxCachedStmts {
		return nil
	}
	// Prepared outside any request's context: a cancelled request must not leave a broken statement behind.
	st, err := c.DB.PrepareContext(context.Background(), query)
	if err != nil {
		return nil
	}
	c.stmts[query] = st
	return st
}

func (c *stmtCache) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := c.stmt(query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return c.DB.QueryContext(ctx, query, args...)
}

func (c *stmtCache) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := c.stmt(query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return c.DB.QueryRowContext(ctx, query, args...)
}

// Close closes the prepared statements, then the database.
func (c *stmtCache) Close() error {
	c.mu.Lock()
	for q, st := range c.stmts {
		st.Close()
		delete(c.stmts, q)
	}
	c.mu.Unlock()
	return c.DB.Close()
}

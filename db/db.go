// Package db is Rewind's catalog: users, API tokens, environments and their
// services, and the activity feed, kept in one SQLite file (modernc.org/sqlite,
// no cgo). The schema lives in embedded, numbered migrations applied at Open.
//
// Secrets never leave this package in clear text except where the caller asks
// for them: passwords are stored as argon2id hashes, API tokens as SHA-256
// digests, and service URLs (which carry database passwords) are encrypted
// with AES-256-GCM under the catalog key.
package db

import (
	"context"
	"crypto/cipher"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"modernc.org/sqlite" // registers the "sqlite" database/sql driver
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Sentinel errors. Callers compare with errors.Is; the web layer maps them to
// HTTP statuses in its single error handler.
var (
	// ErrNotFound reports that the requested record does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict reports that a record with the same unique name exists.
	ErrConflict = errors.New("already exists")
	// ErrBadCredentials is returned for a wrong email, password, token or
	// setup link, and for disabled users; the same error for all of them so
	// a caller cannot tell which part was wrong.
	ErrBadCredentials = errors.New("bad credentials")
	// ErrSchemaTooNew reports a catalog written by a newer rewind.
	ErrSchemaTooNew = errors.New("catalog schema too new")
)

// SchemaTooNewError is returned by Open when the catalog was migrated by a
// newer rewind. It matches ErrSchemaTooNew with errors.Is.
type SchemaTooNewError struct {
	Have, Know int
}

func (e *SchemaTooNewError) Error() string {
	return fmt.Sprintf("catalog schema version %d is newer than this rewind (knows %d): upgrade rewind", e.Have, e.Know)
}

// Is makes errors.Is(err, ErrSchemaTooNew) true.
func (e *SchemaTooNewError) Is(target error) bool { return target == ErrSchemaTooNew }

// KeySize is the length of the catalog encryption key in bytes.
const KeySize = 32

// DB is an open catalog. It is safe for concurrent use.
type DB struct {
	// Now is the clock used for every timestamp the catalog writes.
	// It defaults to time.Now; tests replace it.
	Now func() time.Time

	sql    *stmtCache
	recent recentCache
	aead   cipher.AEAD
	path   string
}

// Open opens (creating if needed) the catalog at path, applies pending
// migrations and returns it. key is the 32-byte catalog encryption key that
// protects service URLs; opening an existing catalog with another key works,
// but its stored service URLs will fail to decrypt.
func Open(ctx context.Context, path string, key []byte) (*DB, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open catalog: %w", err)
	}
	sqldb, err := sql.Open("sqlite", dsn(abs))
	if err != nil {
		return nil, fmt.Errorf("open catalog %s: %w", abs, err)
	}
	// Keep the connections open: database/sql keeps only 2 idle by default, so under concurrent requests it
	// closed and reopened SQLite connections (pragmas, schema read, every statement prepared again), a quarter
	// of the CPU of the Backups tab under 50 clients. Bound them too: WAL readers run in parallel, but more
	// connections than a few per CPU only interleave the same CPU work and stretch the slowest requests (p99
	// 340 ms unbounded, 130-150 ms at 8, same load). Nothing in this package holds one connection while
	// waiting for another (transactions use their tx throughout), so the bound cannot deadlock.
	sqldb.SetMaxOpenConns(maxConns)
	sqldb.SetMaxIdleConns(maxConns)
	db := &DB{Now: time.Now, sql: newStmtCache(sqldb), aead: aead, path: abs}
	db.recent.writes = db.sql.writes.Load
	if err := ping(ctx, sqldb); err != nil {
		sqldb.Close()
		return nil, fmt.Errorf("open catalog %s: %w", abs, err)
	}
	if err := db.migrate(ctx); err != nil {
		sqldb.Close()
		return nil, err
	}
	return db, nil
}

// ping opens the first connection, which applies the DSN's pragmas. When two
// processes create a catalog at once, switching the new file to WAL returns
// SQLITE_BUSY without calling the busy handler (SQLite takes that lock without
// waiting), so ping retries for as long as busy_timeout would have waited.
func ping(ctx context.Context, sqldb *sql.DB) error {
	deadline := time.Now().Add(busyTimeout)
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		err := sqldb.PingContext(ctx)
		if err == nil || !isBusy(err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// isBusy reports whether err is SQLite's "database is locked".
func isBusy(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}

// busyTimeout is how long a connection waits for another's lock (the DSN's busy_timeout).
const busyTimeout = 10 * time.Second

// maxConns bounds the catalog's SQLite connections (see Open).
const maxConns = 8

// dsn builds the modernc DSN: a file: URI (so any path is safe) with the
// pragmas every connection needs.
func dsn(path string) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(NORMAL)")
	// Every write transaction takes the write lock up front, so two
	// processes (serve and an offline admin command) wait on busy_timeout
	// instead of failing with SQLITE_BUSY when a read lock is upgraded.
	q.Set("_txlock", "immediate")
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

// Path returns the absolute path of the catalog file.
func (db *DB) Path() string { return db.path }

// Close closes the catalog.
func (db *DB) Close() error {
	if db == nil || db.sql == nil {
		return nil
	}
	return db.sql.Close()
}

// migration is one embedded schema step.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations sorted by version.
func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(e.Name(), ".sql") {
			return nil, fmt.Errorf("migration %q: want NNN_name.sql", e.Name())
		}
		b, err := fs.ReadFile(migrationFS, "migrations/"+e.Name())
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i := range ms {
		if i > 0 && ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s share version %d", ms[i-1].name, ms[i].name, ms[i].version)
		}
	}
	return ms, nil
}

// SchemaVersion returns the highest migration version this binary knows.
func SchemaVersion() int {
	ms, err := migrations()
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].version
}

// migrate applies every embedded migration not yet recorded, each in its own
// transaction together with its record, and refuses a catalog whose schema is
// newer than this binary knows.
func (db *DB) migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	if _, err := db.sql.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at TEXT NOT NULL
	)`); err != nil {
		return fmt.Errorf("create migrations table: %w", err)
	}
	var have int
	if err := db.sql.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	know := 0
	if len(ms) > 0 {
		know = ms[len(ms)-1].version
	}
	if have > know {
		return &SchemaTooNewError{Have: have, Know: know}
	}
	for _, m := range ms {
		if err := db.applyMigration(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

func (db *DB) applyMigration(ctx context.Context, m migration) error {
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migration %s: %w", m.name, err)
	}
	defer func() { tx.Rollback(); db.sql.wrote() }() // counted once committed (Rollback then does nothing)
	// Checked inside the write transaction: another process may have
	// applied it while we waited for the lock.
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, m.version).Scan(&n); err != nil {
		return fmt.Errorf("migration %s: %w", m.name, err)
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return fmt.Errorf("migration %s: %w", m.name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.version, m.name, formatTime(db.now())); err != nil {
		return fmt.Errorf("record migration %s: %w", m.name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migration %s: %w", m.name, err)
	}
	return nil
}

func (db *DB) now() time.Time {
	if db.Now == nil {
		return time.Now().UTC()
	}
	return db.Now().UTC()
}

// timeLayout is fixed-width so timestamps sort as text.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// parseTime reads a timestamp of the catalog: timeLayout, or RFC 3339 (older rows, SQL written by hand).
func parseTime(s string) (time.Time, error) {
	if t, ok := parseUTC(s); ok {
		return t, nil
	}
	t, err := time.Parse(timeLayout, s)
	if err != nil {
		t, err = time.Parse(time.RFC3339Nano, s)
	}
	return t.UTC(), err
}

// parseUTC reads "2006-01-02T15:04:05Z" with 0 to 9 digits of fractional seconds, the shape of every timestamp
// Rewind writes, for a quarter of time.Parse's cost (a page of 25 backups parsed 25); anything else, including
// an invalid date, is left to time.Parse and its error.
func parseUTC(s string) (time.Time, bool) {
	n := len(s)
	if n < 20 || n == 21 || n > 30 || s[n-1] != 'Z' || s[4] != '-' || s[7] != '-' || s[10] != 'T' ||
		s[13] != ':' || s[16] != ':' || (n > 20 && s[19] != '.') {
		return time.Time{}, false
	}
	ok := true
	digits := func(from, to int) int {
		v := 0
		for _, c := range []byte(s[from:to]) {
			if c < '0' || c > '9' {
				ok = false
			}
			v = v*10 + int(c-'0')
		}
		return v
	}
	year, month, day := digits(0, 4), digits(5, 7), digits(8, 10)
	hour, minute, sec := digits(11, 13), digits(14, 16), digits(17, 19)
	nsec := 0
	if n > 20 {
		nsec = digits(20, n-1)
		for range 30 - n { // 9 - (n-21) digits short of nanoseconds
			nsec *= 10
		}
	}
	if !ok || month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	if t.Day() != day { // February 30th: time.Parse reports it
		return time.Time{}, false
	}
	return t, true
}

// nullTime converts between *time.Time and a nullable TEXT column.
type nullTime struct{ t **time.Time }

func (n nullTime) Scan(v any) error {
	if v == nil {
		*n.t = nil
		return nil
	}
	t, err := scanTime(v)
	if err != nil {
		return err
	}
	*n.t = &t
	return nil
}

// timeCol scans a NOT NULL TEXT timestamp.
type timeCol struct{ t *time.Time }

func (c timeCol) Scan(v any) error {
	if v == nil {
		return errors.New("time column: NULL")
	}
	t, err := scanTime(v)
	if err != nil {
		return err
	}
	*c.t = t
	return nil
}

func scanTime(v any) (time.Time, error) {
	switch v := v.(type) {
	case string:
		return parseTime(v)
	case []byte:
		return parseTime(string(v))
	}
	return time.Time{}, fmt.Errorf("time column: unexpected %T", v)
}

func timeArg(t *time.Time) any {
	if t == nil {
		return nil
	}
	return formatTime(*t)
}

// isUniqueViolation reports whether err is a SQLite UNIQUE (or primary key)
// constraint failure.
func isUniqueViolation(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

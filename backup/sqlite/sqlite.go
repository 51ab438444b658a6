// Package sqlite is the Source of a SQLite database file, through SQLite's own online backup API (modernc's
// driver exposes it), so the application may keep its connections open and keep writing.
//
// Pin opens a read transaction on a connection of its own: in WAL mode that fixes a snapshot without blocking
// writers, and it takes a few milliseconds whatever the size. The capture then copies that snapshot with the
// backup API (which reuses the open read transaction) into a staged file beside the database and streams it as
// database.sqlite. A database in a rollback-journal mode would block writers for as long as a read
// transaction is open, so there Pin copies the database to the staged file at once instead.
//
// Prepare writes the backup's file beside the live one and checks it (PRAGMA quick_check). Switch first copies
// the live database aside (the replaced state), then copies the staged file INTO the live database with the
// backup API, so open connections see the restored data at their next transaction; the file is never
// replaced under them. Revert copies the saved state back the same way.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kopia/kopia/fs"
	"github.com/kopia/kopia/fs/virtualfs"
	msqlite "modernc.org/sqlite"

	"github.com/rewind/rewind/backup"
)

// FileName is the database's file in a backup folder.
const FileName = "database.sqlite"

// Source captures and restores one SQLite database file.
type Source struct {
	path string
}

var (
	_ backup.Source  = (*Source)(nil)
	_ backup.Sweeper = (*Source)(nil)
)

// Driver builds the Source of a sqlite service (spec.Path).
func Driver(spec backup.ServiceSpec) (backup.Source, error) {
	return New(spec.Path)
}

// New returns the Source of the database file at path.
func New(path string) (*Source, error) {
	if path == "" {
		return nil, errors.New("sqlite: empty path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: path %q: %w", path, err)
	}
	return &Source{path: abs}, nil
}

func dsn(path string) string {
	return "file:" + path + "?_pragma=busy_timeout(10000)"
}

// sibling returns the path of the operation's scratch file of kind beside the database (id: backup.ScratchID).
func (s *Source) sibling(kind, id string) string {
	return filepath.Join(filepath.Dir(s.path), fmt.Sprintf(".rewind-%s-%s-%s", kind, filepath.Base(s.path), id))
}

// Sweep removes the staged copy and the prepared restore that the operation with scratch id left beside the
// database. The copy a switch saves of the live database (kind "replaced") is never swept.
func (s *Source) Sweep(_ context.Context, id string) ([]string, error) {
	var removed []string
	for _, p := range []string{s.sibling("stage", id), s.sibling("restore", id)} {
		if _, err := os.Lstat(p); err != nil {
			continue
		}
		removeDB(p)
		if _, err := os.Lstat(p); err == nil {
			return removed, fmt.Errorf("could not remove %s", p)
		}
		removed = append(removed, "file "+p)
	}
	return removed, nil
}

// backuper is the online backup API of modernc's driver connection.
type backuper interface {
	NewBackup(dstURI string) (*msqlite.Backup, error)
	NewRestore(srcURI string) (*msqlite.Backup, error)
}

// runBackup copies the database of conn into dst (backup) or dst into it (restore) in steps, so other
// connections get the lock between steps.
func runBackup(ctx context.Context, conn *sql.Conn, other string, restore bool) error {
	return conn.Raw(func(dc any) error { //nolint:wrapcheck
		b, ok := dc.(backuper)
		if !ok {
			return fmt.Errorf("sqlite driver %T has no backup API", dc)
		}
		var bk *msqlite.Backup
		var err error
		if restore {
			bk, err = b.NewRestore(other)
		} else {
			bk, err = b.NewBackup(other)
		}
		if err != nil {
			return fmt.Errorf("start backup: %w", err)
		}
		for {
			if err := ctx.Err(); err != nil {
				bk.Finish() //nolint:errcheck
				return err
			}
			more, err := bk.Step(1024)
			if err != nil {
				bk.Finish() //nolint:errcheck
				return fmt.Errorf("backup step: %w", err)
			}
			if !more {
				break
			}
		}
		if err := bk.Finish(); err != nil {
			return fmt.Errorf("finish backup: %w", err)
		}
		return nil
	})
}

func openConn(ctx context.Context, path string) (*sql.DB, *sql.Conn, error) {
	db, err := sql.Open("sqlite", dsn(path))
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", path, err)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close() //nolint:errcheck
		return nil, nil, fmt.Errorf("open %s: %w", path, err)
	}
	return db, conn, nil
}

// Pin fixes the database's point in time; see the package doc.
func (s *Source) Pin(ctx context.Context) (backup.Capture, error) {
	t0 := time.Now()
	if _, err := os.Stat(s.path); err != nil {
		return nil, fmt.Errorf("database file: %w", err)
	}
	db, conn, err := openConn(ctx, s.path)
	if err != nil {
		return nil, err
	}
	c := &capture{s: s, db: db, conn: conn}
	var mode, version string
	var pages, pageSize int64
	if err := conn.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		c.Close() //nolint:errcheck
		return nil, fmt.Errorf("read journal mode: %w", err)
	}
	if err := conn.QueryRowContext(ctx, "SELECT sqlite_version()").Scan(&version); err != nil {
		c.Close() //nolint:errcheck
		return nil, fmt.Errorf("read version: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
		c.Close() //nolint:errcheck
		return nil, fmt.Errorf("begin read transaction: %w", err)
	}
	c.inTx = true
	// The first read starts the snapshot.
	if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(new(int)); err != nil {
		c.Close() //nolint:errcheck
		return nil, fmt.Errorf("start read transaction: %w", err)
	}
	if err := conn.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
		c.Close() //nolint:errcheck
		return nil, fmt.Errorf("read page count: %w", err)
	}
	if err := conn.QueryRowContext(ctx, "PRAGMA page_size").Scan(&pageSize); err != nil {
		c.Close() //nolint:errcheck
		return nil, fmt.Errorf("read page size: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		// A read transaction would block writers: copy now, within the pin.
		if err := c.copyOut(ctx); err != nil {
			c.Close() //nolint:errcheck
			return nil, err
		}
	}
	c.info = backup.ServiceInfo{
		Version:        "SQLite " + version,
		PinnedAt:       t0.UTC(),
		PinDuration:    time.Since(t0),
		EstimatedBytes: pages * pageSize,
	}
	return c, nil
}

type capture struct {
	s    *Source
	info backup.ServiceInfo

	mu     sync.Mutex
	db     *sql.DB
	conn   *sql.Conn
	inTx   bool
	staged string
	closed bool
}

func (c *capture) Info() backup.ServiceInfo { return c.info }

// copyOut copies the pinned snapshot to the staged file and ends the read transaction.
func (c *capture) copyOut(ctx context.Context) error {
	if c.staged != "" {
		return nil
	}
	c.staged = c.s.sibling("stage", backup.ScratchID(ctx))
	if err := runBackup(ctx, c.conn, c.staged, false); err != nil {
		return fmt.Errorf("copy database: %w", err)
	}
	c.endTx()
	return nil
}

func (c *capture) endTx() {
	if c.inTx {
		c.conn.ExecContext(context.Background(), "ROLLBACK") //nolint:errcheck
		c.inTx = false
	}
	if c.conn != nil {
		c.conn.Close() //nolint:errcheck
		c.conn = nil
	}
	if c.db != nil {
		c.db.Close() //nolint:errcheck
		c.db = nil
	}
}

func (c *capture) Folder(ctx context.Context, p backup.Progress) (fs.Directory, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errors.New("capture closed")
	}
	if c.conn != nil || c.staged == "" {
		if err := c.copyOut(ctx); err != nil {
			return nil, err
		}
	}
	f, err := os.Open(c.staged)
	if err != nil {
		return nil, fmt.Errorf("open staged copy: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close() //nolint:errcheck
		return nil, fmt.Errorf("open staged copy: %w", err)
	}
	p.SetTotal(fi.Size())
	return virtualfs.NewStaticDirectory("sqlite", []fs.Entry{
		virtualfs.StreamingFileWithModTimeFromReader(FileName, c.info.PinnedAt, backup.ProgressReadCloser(f, p)),
	}), nil
}

func (c *capture) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	c.endTx()
	if c.staged != "" {
		removeDB(c.staged)
		c.staged = ""
	}
	return nil
}

// removeDB removes a database file and its journals.
func removeDB(p string) {
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		os.Remove(p + suffix) //nolint:errcheck
	}
}

// Prepare stages the backup's database beside the live one and checks it.
func (s *Source) Prepare(ctx context.Context, dir fs.Directory, p backup.Progress) (backup.Prepared, error) {
	ent, err := dir.Child(ctx, FileName)
	if err != nil {
		return nil, fmt.Errorf("backup folder has no %s: %w", FileName, err)
	}
	var r io.ReadCloser
	switch e := ent.(type) {
	case fs.File:
		r, err = e.Open(ctx)
	case fs.StreamingFile:
		r, err = e.GetReader(ctx)
	default:
		return nil, fmt.Errorf("%s in backup is not a file", FileName)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s from backup: %w", FileName, err)
	}
	defer r.Close() //nolint:errcheck
	if err := os.MkdirAll(filepath.Dir(s.path), 0o755); err != nil {
		return nil, fmt.Errorf("create database directory: %w", err)
	}
	staged := s.sibling("restore", backup.ScratchID(ctx))
	out, err := os.OpenFile(staged, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("stage database: %w", err)
	}
	_, err = io.Copy(out, backup.ProgressReader(r, p))
	if serr := out.Sync(); err == nil {
		err = serr
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		removeDB(staged)
		return nil, fmt.Errorf("stage database: %w", err)
	}
	if err := quickCheck(ctx, staged); err != nil {
		removeDB(staged)
		return nil, err
	}
	return &prepared{s: s, staged: staged}, nil
}

func quickCheck(ctx context.Context, path string) error {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return fmt.Errorf("check staged database: %w", err)
	}
	defer db.Close() //nolint:errcheck
	var res string
	if err := db.QueryRowContext(ctx, "PRAGMA quick_check").Scan(&res); err != nil {
		return fmt.Errorf("check staged database: %w", err)
	}
	if res != "ok" {
		return fmt.Errorf("staged database is damaged: %s", res)
	}
	return nil
}

type prepared struct {
	s      *Source
	staged string
	mu     sync.Mutex
	done   bool
}

// Switch saves the live database aside, then copies the staged one into it.
func (p *prepared) Switch(ctx context.Context) (backup.Replaced, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return nil, errors.New("prepared state already used")
	}
	if _, err := os.Stat(p.s.path); errors.Is(err, os.ErrNotExist) {
		// No live database (a new environment): nothing is replaced.
		if err := copyInto(ctx, p.s.path, p.staged, true); err != nil {
			removeDB(p.s.path)
			return nil, fmt.Errorf("restore into new database: %w", err)
		}
		p.done = true
		removeDB(p.staged)
		return &replaced{s: p.s}, nil
	}
	saved := p.s.sibling("replaced", backup.ScratchID(ctx))
	if err := copyInto(ctx, p.s.path, saved, false); err != nil {
		removeDB(saved)
		return nil, fmt.Errorf("save live database: %w", err)
	}
	if err := copyInto(ctx, p.s.path, p.staged, true); err != nil {
		removeDB(saved)
		return nil, fmt.Errorf("restore into live database: %w", err)
	}
	p.done = true
	removeDB(p.staged)
	return &replaced{s: p.s, saved: saved}, nil
}

// copyInto runs the backup API on a fresh connection to live: backup (live → other) or restore (other → live).
func copyInto(ctx context.Context, live, other string, restore bool) error {
	db, conn, err := openConn(ctx, live)
	if err != nil {
		return err
	}
	defer db.Close()   //nolint:errcheck
	defer conn.Close() //nolint:errcheck
	return runBackup(ctx, conn, other, restore)
}

func (p *prepared) Discard(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done = true
	removeDB(p.staged)
	return nil
}

// replaced is a copy of the live database taken at the switch; saved is "" when there was none.
type replaced struct {
	s     *Source
	saved string
	mu    sync.Mutex
}

func (r *replaced) Pin(ctx context.Context) (backup.Capture, error) {
	if r.saved == "" {
		// There was no database: capture an empty one (a zero-length file is an empty SQLite database).
		return emptyCapture{at: time.Now().UTC()}, nil
	}
	src := &Source{path: r.saved}
	return src.Pin(ctx)
}

func (r *replaced) Revert(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.saved == "" {
		removeDB(r.s.path)
		return nil
	}
	if err := copyInto(ctx, r.s.path, r.saved, true); err != nil {
		return fmt.Errorf("revert database: %w", err)
	}
	return nil
}

func (r *replaced) Discard(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.saved != "" {
		removeDB(r.saved)
	}
	return nil
}

type emptyCapture struct{ at time.Time }

func (c emptyCapture) Info() backup.ServiceInfo {
	return backup.ServiceInfo{Version: "SQLite (no database)", PinnedAt: c.at}
}

func (c emptyCapture) Folder(context.Context, backup.Progress) (fs.Directory, error) {
	return virtualfs.NewStaticDirectory("sqlite", []fs.Entry{
		virtualfs.StreamingFileWithModTimeFromReader(FileName, c.at, io.NopCloser(strings.NewReader(""))),
	}), nil
}

func (emptyCapture) Close() error { return nil }

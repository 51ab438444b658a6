package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/kopia/kopia/fs"
	"github.com/kopia/kopia/fs/virtualfs"
	"golang.org/x/sys/unix"

	"github.com/rewind/rewind/backup"
)

// Info is the content of info.json in a service's folder.
type Info struct {
	Format        string    `json:"format"` // "pg_dump custom, uncompressed"
	Database      string    `json:"database"`
	ServerVersion string    `json:"server_version"`
	ServerMajor   int       `json:"server_major"`
	PgDumpMajor   int       `json:"pg_dump_major"`
	PinnedAt      time.Time `json:"pinned_at"`
}

// Pin opens a repeatable-read transaction on the database and exports its snapshot; the backup will hold
// exactly the data committed when Pin returns.
func (s *Source) Pin(ctx context.Context) (backup.Capture, error) {
	return s.pin(ctx, s.database)
}

// pin captures database db (the live one, or a Replaced one moved aside).
func (s *Source) pin(ctx context.Context, db string) (*capture, error) {
	start := time.Now()
	s.warmTools("pg_dump") // before the snapshot: finding the tools runs them
	conn, err := s.connect(ctx, db)
	if err != nil {
		return nil, err
	}
	c := &capture{src: s, conn: conn, database: db}
	fail := func(err error) (*capture, error) {
		_ = conn.Close(context.Background())
		return nil, fmt.Errorf("pin postgresql database %q: %w", db, s.redact(err))
	}
	// The pinned session idles until pg_dump imports its snapshot: a server-wide idle timeout must not end it.
	if _, err := conn.Exec(ctx, "SET idle_in_transaction_session_timeout = 0"); err != nil {
		return fail(err)
	}
	if _, err := conn.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
		return fail(err)
	}
	err = conn.QueryRow(ctx, `SELECT pg_export_snapshot(), current_setting('server_version'),
		current_setting('server_version_num')::int / 10000`).
		Scan(&c.snapshot, &c.version, &c.major)
	if err != nil {
		return fail(err)
	}
	c.pgDump, err = s.findTool("pg_dump", c.major)
	if err != nil {
		return fail(err)
	}
	c.info = backup.ServiceInfo{
		Version:     "PostgreSQL " + c.version,
		PinnedAt:    time.Now(),
		PinDuration: time.Since(start),
	}
	// The estimate comes after the snapshot: it does not delay the point in time.
	if err := conn.QueryRow(ctx, "SELECT pg_database_size(current_database())").Scan(&c.info.EstimatedBytes); err != nil {
		return fail(err)
	}
	return c, nil
}

// capture is a pinned database: an open transaction whose snapshot pg_dump imports.
type capture struct {
	src      *Source
	database string
	snapshot string
	version  string
	major    int
	pgDump   string
	info     backup.ServiceInfo

	mu     sync.Mutex
	conn   *pgx.Conn
	reader *dumpReader
	rows   *rowTee // counts the rows of the dump as it streams
	closed bool
}

var (
	_ backup.Capture           = (*capture)(nil)
	_ backup.CaptureSummarizer = (*capture)(nil)
)

func (c *capture) Info() backup.ServiceInfo { return c.info }

// Folder starts pg_dump on the pinned snapshot and returns {dump.pgc, info.json}. ctx governs the dump:
// cancelling it kills pg_dump and makes the stream fail.
func (c *capture) Folder(ctx context.Context, p backup.Progress) (fs.Directory, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fmt.Errorf("dump postgresql database %q: capture is closed", c.database)
	}
	if c.reader != nil {
		return nil, fmt.Errorf("dump postgresql database %q: folder already taken", c.database)
	}
	var dumpMajor int
	for _, t := range c.src.toolsFor("pg_dump") {
		if t.path == c.pgDump {
			dumpMajor = t.major
		}
	}
	info, err := json.MarshalIndent(Info{
		Format:        "pg_dump custom, uncompressed",
		Database:      c.database,
		ServerVersion: c.version,
		ServerMajor:   c.major,
		PgDumpMajor:   dumpMajor,
		PinnedAt:      c.info.PinnedAt.UTC(),
	}, "", "  ")
	if err != nil {
		return nil, err
	}
	p.SetTotal(c.info.EstimatedBytes)
	cmd := c.src.cmd(ctx, c.pgDump, "--format=custom", "--compress=0", "--no-password",
		"--snapshot="+c.snapshot, "--dbname="+c.src.connURL(c.database, false))
	r, err := startDump(c.src, cmd, c.database, p)
	if err != nil {
		return nil, err
	}
	c.reader = r
	c.rows = newRowTee(r)
	return virtualfs.NewStaticDirectory(c.src.name, []fs.Entry{
		virtualfs.StreamingFileWithModTimeFromReader(InfoFile, c.info.PinnedAt, io.NopCloser(bytes.NewReader(info))),
		virtualfs.StreamingFileWithModTimeFromReader(DumpFile, c.info.PinnedAt, c.rows),
	}), nil
}

// Summary returns the rows of every table, counted in the dump as it streamed.
func (c *capture) Summary() (*backup.Summary, error) {
	c.mu.Lock()
	t := c.rows
	c.mu.Unlock()
	if t == nil {
		return nil, fmt.Errorf("dump postgresql database %q: not dumped", c.database)
	}
	return t.summary()
}

func (s *Source) toolsFor(name string) []tool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tools[name]
}

// Close kills a pg_dump still running and ends the transaction. Safe to call more than once.
func (c *capture) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	if c.rows != nil {
		_ = c.rows.Close() // and the reader
	} else if c.reader != nil {
		_ = c.reader.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _ = c.conn.Exec(ctx, "ROLLBACK")
	if err := c.conn.Close(ctx); err != nil {
		return fmt.Errorf("close postgresql capture of %q: %w", c.database, c.src.redact(err))
	}
	return nil
}

// dumpReader streams pg_dump's stdout. At the end of the stream it waits for pg_dump and returns its
// failure, with the tail of its stderr, instead of io.EOF.
type dumpReader struct {
	src      *Source
	cmd      *exec.Cmd
	stdout   io.ReadCloser
	stderr   *backup.Tail
	database string
	p        backup.Progress

	waitOnce sync.Once
	waitErr  error

	mu   sync.Mutex
	done bool
	err  error // final result once done (io.EOF on success)
}

// wait reaps pg_dump once.
func (r *dumpReader) wait() error {
	r.waitOnce.Do(func() { r.waitErr = r.cmd.Wait() })
	return r.waitErr
}

func startDump(s *Source, cmd *exec.Cmd, db string, p backup.Progress) (*dumpReader, error) {
	r := &dumpReader{src: s, cmd: cmd, stderr: &backup.Tail{}, database: db, p: p}
	cmd.Stderr = r.stderr
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	r.stdout = out
	if f, ok := out.(*os.File); ok {
		// A 1 MiB pipe instead of Linux's 64 KiB: pg_dump writes the data in small pieces, and with the small
		// pipe it and the reader woke each other for every few of them. Best effort: the default still works.
		// (SyscallConn, not Fd, which would make the pipe blocking.)
		if rc, err := f.SyscallConn(); err == nil {
			_ = rc.Control(func(fd uintptr) { _, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, 1<<20) })
		}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("dump postgresql database %q: start pg_dump: %w", db, err)
	}
	return r, nil
}

func (r *dumpReader) Read(b []byte) (int, error) {
	r.mu.Lock()
	if r.done {
		err := r.err
		r.mu.Unlock()
		return 0, err
	}
	r.mu.Unlock()
	n, err := r.stdout.Read(b)
	if n > 0 {
		r.p.Add(int64(n))
	}
	if err == nil {
		return n, nil
	}
	// End of stream or broken pipe: the exit status decides.
	werr := r.wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done { // closed meanwhile
		return n, r.err
	}
	r.done = true
	switch {
	case werr != nil:
		r.err = fmt.Errorf("dump postgresql database %q: %w", r.database, r.src.toolError("pg_dump", werr, r.stderr))
	case !errors.Is(err, io.EOF):
		r.err = fmt.Errorf("dump postgresql database %q: read pg_dump output: %w", r.database, err)
	default:
		r.err = io.EOF
	}
	return n, r.err
}

// Close kills pg_dump if it is still running.
func (r *dumpReader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return nil
	}
	r.done = true
	r.err = fmt.Errorf("dump postgresql database %q: stream closed before its end", r.database)
	_ = r.cmd.Process.Kill()
	r.mu.Unlock()
	_ = r.wait()
	r.mu.Lock()
	return nil
}

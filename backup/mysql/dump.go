package mysql

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"
	"github.com/kopia/kopia/fs"
	"github.com/kopia/kopia/fs/virtualfs"

	"github.com/rewind/rewind/backup"
)

// Info is the content of info.json in a service's folder.
type Info struct {
	Format        string    `json:"format"`
	Database      string    `json:"database"`
	ServerVersion string    `json:"server_version"`
	Tables        int       `json:"tables"`
	Objects       int       `json:"objects"` // views, routines, triggers, events
	PinnedAt      time.Time `json:"pinned_at"`
}

// batchBytes is the size at which a multi-row INSERT is cut.
const batchBytes = 1 << 20

// Pin starts a consistent-snapshot transaction and reads the schema inside it.
func (s *Source) Pin(ctx context.Context) (backup.Capture, error) {
	return s.pin(ctx, s.database, nil)
}

// pin captures schema; when objects is not nil it replaces the schema's own views, routines, triggers and
// events (a Replaced state keeps them in memory).
func (s *Source) pin(ctx context.Context, schema string, objects []object) (*capture, error) {
	start := time.Now()
	db, conn, err := s.session(ctx)
	if err != nil {
		return nil, fmt.Errorf("pin mysql database %q: %w", schema, err)
	}
	c := &capture{src: s, db: db, conn: conn, schema: schema}
	fail := func(err error) (*capture, error) {
		conn.Close()
		db.Close()
		return nil, fmt.Errorf("pin mysql database %q: %w", schema, err)
	}
	for _, q := range []string{
		// The stream is read as fast as the repository takes it: let the server wait for us (its default is
		// 60 s, after which it drops the connection mid-dump), and keep the idle pinned session alive.
		"SET SESSION net_write_timeout = 3600, net_read_timeout = 3600, wait_timeout = 86400",
		"SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
		"START TRANSACTION WITH CONSISTENT SNAPSHOT",
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fail(err)
		}
	}
	c.info.PinnedAt = time.Now()
	if err := conn.QueryRowContext(ctx, "SELECT VERSION(), CONNECTION_ID()").Scan(&c.version, &c.connID); err != nil {
		return fail(err)
	}
	if _, err := conn.ExecContext(ctx, "USE "+quoteIdent(schema)); err != nil {
		return fail(err)
	}
	if c.tables, err = readTables(ctx, conn, schema); err != nil {
		return fail(err)
	}
	if objects != nil {
		c.objects = objects
	} else if c.objects, err = readObjects(ctx, conn, schema); err != nil {
		return fail(err)
	}
	var size sql.NullInt64
	_ = conn.QueryRowContext(ctx, "SELECT SUM(data_length) FROM information_schema.tables WHERE table_schema = ?", schema).Scan(&size)
	product := "MySQL"
	if strings.Contains(strings.ToLower(c.version), "mariadb") {
		product = "MariaDB"
	}
	c.info.Version = product + " " + c.version
	c.info.PinDuration = time.Since(start)
	c.info.EstimatedBytes = size.Int64
	return c, nil
}

// capture is a pinned database: an open consistent-snapshot transaction and the schema read in it.
type capture struct {
	src     *Source
	db      *sql.DB
	conn    *sql.Conn
	schema  string
	version string
	connID  int64 // the server's id of the pinned session
	info    backup.ServiceInfo
	tables  []table
	objects []object

	mu     sync.Mutex
	pipe   *io.PipeReader
	cancel context.CancelFunc
	done   chan struct{}
	closed bool
	// counted are the rows of each table written so far (by the dump's goroutine; read once done is closed).
	counted []backup.TableSummary
	failed  bool
}

var (
	_ backup.Capture           = (*capture)(nil)
	_ backup.CaptureSummarizer = (*capture)(nil)
)

func (c *capture) Info() backup.ServiceInfo { return c.info }

// Folder returns {dump.sql, info.json}; dump.sql is written from the pinned transaction while it is read.
// ctx governs the dump.
func (c *capture) Folder(ctx context.Context, p backup.Progress) (fs.Directory, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fmt.Errorf("dump mysql database %q: capture is closed", c.schema)
	}
	if c.done != nil {
		return nil, fmt.Errorf("dump mysql database %q: folder already taken", c.schema)
	}
	info, err := json.MarshalIndent(Info{
		Format:        "SQL (Rewind sections), loadable with the mariadb/mysql client",
		Database:      c.schema,
		ServerVersion: c.info.Version,
		Tables:        len(c.tables),
		Objects:       len(c.objects),
		PinnedAt:      c.info.PinnedAt.UTC(),
	}, "", "  ")
	if err != nil {
		return nil, err
	}
	p.SetTotal(c.info.EstimatedBytes)
	ctx, c.cancel = context.WithCancel(ctx)
	c.done = make(chan struct{})
	pr, pw := io.Pipe()
	c.pipe = pr
	go func() {
		defer close(c.done)
		err := c.write(ctx, backup.ProgressWriter(pw, p))
		if err != nil {
			c.failed = true
			err = fmt.Errorf("dump mysql database %q: %w", c.schema, err)
		}
		pw.CloseWithError(err)
	}()
	return virtualfs.NewStaticDirectory(c.src.name, []fs.Entry{
		virtualfs.StreamingFileWithModTimeFromReader(InfoFile, c.info.PinnedAt, io.NopCloser(bytes.NewReader(info))),
		virtualfs.StreamingFileWithModTimeFromReader(DumpFile, c.info.PinnedAt, pr),
	}), nil
}

// Summary returns the rows of every table, counted as the dump wrote them.
func (c *capture) Summary() (*backup.Summary, error) {
	c.mu.Lock()
	done := c.done
	c.mu.Unlock()
	if done == nil {
		return nil, fmt.Errorf("dump mysql database %q: not dumped", c.schema)
	}
	<-done
	if c.failed {
		return nil, fmt.Errorf("dump mysql database %q: the dump failed", c.schema)
	}
	out := &backup.Summary{Tables: append([]backup.TableSummary{}, c.counted...)}
	backup.SortTables(out.Tables)
	return out, nil
}

// write produces the dump file.
func (c *capture) write(ctx context.Context, w io.Writer) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	fmt.Fprintf(bw, "-- Rewind dump of %s database %s, pinned at %s.\n", c.info.Version, quoteIdent(c.schema),
		c.info.PinnedAt.UTC().Format(time.RFC3339))
	fmt.Fprintf(bw, "-- Load it into an empty database: mariadb DBNAME < %s\n\n", DumpFile)
	bw.WriteString(sectionMarker + "header\n")
	bw.WriteString("SET NAMES utf8mb4;\nSET SESSION time_zone = '+00:00';\nSET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO';\n" +
		"SET SESSION foreign_key_checks = 0;\nSET SESSION unique_checks = 0;\n\n")
	bw.WriteString(sectionMarker + "tables\n")
	for _, t := range c.tables {
		bw.WriteString("\n" + t.Create + ";\n")
		var err error
		if t.Sequence {
			err = c.writeSequence(ctx, bw, t)
		} else {
			var n int64
			n, err = c.writeRows(ctx, bw, t)
			c.counted = append(c.counted, backup.TableSummary{Name: t.Name, Rows: n})
		}
		if errors.Is(err, mysql.ErrInvalidConn) {
			err = fmt.Errorf("the connection to the server was lost (session killed or server gone): %w", err)
		}
		if err != nil {
			return fmt.Errorf("table %s: %w", t.Name, err)
		}
	}
	writeObjects(bw, c.objects)
	bw.WriteString("\n" + sectionMarker + "end\nSET SESSION foreign_key_checks = 1;\nSET SESSION unique_checks = 1;\nDO 0;\n")
	return bw.Flush()
}

// writeObjects writes the views, routines, triggers and events sections.
func writeObjects(bw *bufio.Writer, objs []object) {
	for _, sec := range []struct {
		name  string
		kinds []string
	}{
		{"routines", []string{kindProcedure, kindFunction}},
		{"views", []string{kindView}},
		{"triggers", []string{kindTrigger}},
		{"events", []string{kindEvent}},
	} {
		bw.WriteString("\n" + sectionMarker + sec.name + "\n")
		for _, o := range objs {
			if o.Kind != sec.kinds[0] && (len(sec.kinds) < 2 || o.Kind != sec.kinds[1]) {
				continue
			}
			bw.WriteString("SET SESSION sql_mode = " + quoteString(o.SQLMode))
			if o.TimeZone != "" {
				bw.WriteString(", time_zone = " + quoteString(o.TimeZone))
			}
			bw.WriteString(";\nDELIMITER ;;\n" + o.Create + " ;;\nDELIMITER ;\n")
		}
	}
	bw.WriteString("SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO', time_zone = '+00:00';\n")
}

// writeSequence writes the position of a MariaDB sequence.
func (c *capture) writeSequence(ctx context.Context, bw *bufio.Writer, t table) error {
	var next string
	if err := c.conn.QueryRowContext(ctx, "SELECT next_not_cached_value FROM "+quoteIdent(c.schema)+"."+quoteIdent(t.Name)).
		Scan(&next); err != nil {
		return err
	}
	fmt.Fprintf(bw, "SELECT SETVAL(%s, %s, 0);\n", quoteIdent(t.Name), next)
	return nil
}

// writeRows writes a table's rows as multi-row INSERTs and returns how many it wrote.
func (c *capture) writeRows(ctx context.Context, bw *bufio.Writer, t table) (int64, error) {
	if len(t.Columns) == 0 {
		return 0, nil
	}
	cols := make([]string, len(t.Columns))
	for i, col := range t.Columns {
		cols[i] = quoteIdent(col)
	}
	list := strings.Join(cols, ", ")
	// The server prints FLOAT with 6 significant digits; as a DOUBLE (exact) it prints every digit needed.
	sel := make([]string, len(cols))
	for i, col := range t.Columns {
		sel[i] = cols[i]
		if t.Floats[col] {
			sel[i] = "(" + cols[i] + " + 0e0)"
		}
	}
	rows, err := c.conn.QueryContext(ctx, "SELECT "+strings.Join(sel, ", ")+" FROM "+quoteIdent(c.schema)+"."+quoteIdent(t.Name))
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		return 0, err
	}
	kinds := make([]valueKind, len(types))
	for i, ct := range types {
		kinds[i] = kindOf(ct.DatabaseTypeName())
	}
	vals := make([]sql.RawBytes, len(types))
	ptrs := make([]any, len(types))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	prefix := "INSERT INTO " + quoteIdent(t.Name) + " (" + list + ") VALUES\n"
	var sb strings.Builder
	flush := func() {
		if sb.Len() > 0 {
			bw.WriteString(prefix)
			bw.WriteString(sb.String())
			bw.WriteString(";\n")
			sb.Reset()
		}
	}
	var n int64
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return n, err
		}
		n++
		if sb.Len() > 0 {
			sb.WriteString(",\n")
		}
		sb.WriteByte('(')
		for i, v := range vals {
			if i > 0 {
				sb.WriteByte(',')
			}
			writeValue(&sb, kinds[i], v)
		}
		sb.WriteByte(')')
		if sb.Len() >= batchBytes {
			flush()
		}
	}
	if err := rows.Err(); err != nil {
		return n, err
	}
	flush()
	return n, nil
}

// valueKind says how a column's values are written.
type valueKind int

const (
	kindText   valueKind = iota // quoted string
	kindNumber                  // as the server prints it
	kindBinary                  // hex literal
)

func kindOf(dbType string) valueKind {
	t := strings.TrimPrefix(dbType, "UNSIGNED ")
	switch t {
	case "TINYINT", "SMALLINT", "MEDIUMINT", "INT", "BIGINT", "DECIMAL", "FLOAT", "DOUBLE", "YEAR":
		return kindNumber
	case "BLOB", "TINYBLOB", "MEDIUMBLOB", "LONGBLOB", "BINARY", "VARBINARY", "BIT", "GEOMETRY":
		return kindBinary
	}
	return kindText
}

func writeValue(sb *strings.Builder, k valueKind, v sql.RawBytes) {
	switch {
	case v == nil:
		sb.WriteString("NULL")
	case k == kindNumber:
		sb.Write(v)
	case k == kindBinary || !utf8.Valid(v):
		sb.WriteString("X'")
		sb.WriteString(hex.EncodeToString(v))
		sb.WriteByte('\'')
	default:
		sb.WriteByte('\'')
		writeEscaped(sb, v)
		sb.WriteByte('\'')
	}
}

// Close stops a dump still running and ends the transaction. Safe to call more than once.
func (c *capture) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	if c.cancel != nil {
		c.cancel()
		c.pipe.CloseWithError(fmt.Errorf("dump mysql database %q: capture closed before the stream ended", c.schema))
		<-c.done
	}
	_, _ = c.conn.ExecContext(context.Background(), "ROLLBACK")
	err := errors.Join(c.conn.Close(), c.db.Close())
	if err != nil {
		return fmt.Errorf("close mysql capture of %q: %w", c.schema, err)
	}
	return nil
}

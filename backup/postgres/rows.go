package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rewind/rewind/backup"
)

// countRows reads a pg_dump custom-format archive from r and counts the rows of each table's data: an
// uncompressed archive holds a table's data as COPY text, one line per row (a newline inside a value is
// written as \n), so the rows are the newlines of its data block. Every TABLE DATA entry of the table of
// contents is listed, as "schema.table", sorted by name.
func countRows(r io.Reader) ([]backup.TableSummary, error) {
	a := newArchiveReader(r)
	if err := a.readHeader(); err != nil {
		return nil, err
	}
	if a.h.compressed {
		return nil, errors.New("the archive is compressed: its rows cannot be counted")
	}
	toc, err := a.readTOC()
	if err != nil {
		return nil, err
	}
	tables := map[int]*backup.TableSummary{}
	var out []backup.TableSummary
	for _, e := range toc {
		if e.desc == "TABLE DATA" {
			out = append(out, backup.TableSummary{Name: e.namespace + "." + e.tag})
		}
	}
	i := 0
	for _, e := range toc {
		if e.desc == "TABLE DATA" {
			tables[e.dumpID] = &out[i]
			i++
		}
	}
	for {
		typ, id, err := a.nextBlock()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		t := tables[id]
		if typ != blockData || t == nil {
			if err := a.skipBlock(typ); err != nil {
				return nil, err
			}
			continue
		}
		var last []byte // the block's last bytes
		for {
			n, err := a.chunk()
			if err != nil {
				return nil, err
			}
			if n == 0 {
				break
			}
			for n > 0 { // counted in the reader's buffer, copied nowhere
				p, err := a.r.Peek(int(min(n, int64(a.r.Size()))))
				if len(p) == 0 {
					return nil, noEOF(err)
				}
				t.Rows += int64(bytes.Count(p, []byte{'\n'}))
				if len(p) >= len(copyEnd) {
					last = append(last[:0], p[len(p)-len(copyEnd):]...)
				} else {
					last = append(last, p...)
					last = last[max(0, len(last)-len(copyEnd)):]
				}
				d, _ := a.r.Discard(len(p))
				a.pos += int64(d)
				n -= int64(d)
			}
		}
		if bytes.Equal(last, copyEnd) {
			t.Rows -= 3 // pg_dump's end-of-data line and two empty ones
		}
	}
	backup.SortTables(out)
	return out, nil
}

// copyEnd ends the COPY data of a table in an archive (pg_dump's dumpTableData_copy writes it).
var copyEnd = []byte("\\.\n\n\n")

// rowTee counts the rows of a dump as it streams: Read passes the dump through and hands a copy of each chunk
// to countRows in another goroutine, up to teeAhead chunks ahead of it, so counting overlaps the upload instead
// of holding every read until its bytes are counted (with a synchronous pipe there, a backup of pgbench scale 50
// took 1.25x pg_dump -Fc). A failure of the count never fails the dump: the copies just stop.
type rowTee struct {
	r    io.ReadCloser
	done chan struct{} // closed when the count ended
	quit chan struct{} // closed when the count failed: no more copies

	mu     sync.Mutex // sending a copy, and ending the copies
	ch     chan []byte
	ended  bool
	endErr error // why the copies ended: io.EOF at the dump's end

	tables []backup.TableSummary
	err    error
}

// teeAhead is how many chunks (of up to a read each, 1 MiB from pg_dump's pipe) the dump may be ahead of its count.
const teeAhead = 4

var teeBuffers = sync.Pool{New: func() any { return new([]byte) }}

func newRowTee(r io.ReadCloser) *rowTee {
	t := &rowTee{r: r, ch: make(chan []byte, teeAhead), done: make(chan struct{}), quit: make(chan struct{})}
	go func() {
		defer close(t.done)
		cr := &chunkReader{t: t}
		t.tables, t.err = countRows(cr)
		if t.err != nil {
			close(t.quit)
		}
		for b := range t.ch { // what the count did not need (or all, after a failure)
			cr.recycle(b)
		}
	}()
	return t
}

func (t *rowTee) Read(b []byte) (int, error) {
	n, err := t.r.Read(b)
	if n > 0 {
		t.send(b[:n])
	}
	switch {
	case errors.Is(err, io.EOF):
		t.end(io.EOF)
	case err != nil:
		t.end(err)
	}
	return n, err //nolint:wrapcheck // the dump's own error, as dumpReader made it
}

// send hands a copy of p to the count, waiting while it is teeAhead chunks behind, unless it failed.
func (t *rowTee) send(p []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended {
		return
	}
	bp := teeBuffers.Get().(*[]byte)
	c := append((*bp)[:0], p...)
	select {
	case t.ch <- c:
	case <-t.quit:
		*bp = c
		teeBuffers.Put(bp)
	}
}

// end ends the copies with err (io.EOF: the whole dump was sent).
func (t *rowTee) end(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.ended {
		t.ended, t.endErr = true, err
		close(t.ch)
	}
}

// Close stops the dump and the count.
func (t *rowTee) Close() error {
	t.end(errors.New("dump closed before its end"))
	return t.r.Close() //nolint:wrapcheck
}

// summary waits for the count of a dump read to its end.
func (t *rowTee) summary() (*backup.Summary, error) {
	t.end(errors.New("dump not read to its end")) // no-op after the end
	<-t.done
	if t.err != nil {
		return nil, fmt.Errorf("count rows: %w", t.err)
	}
	return &backup.Summary{Tables: t.tables}, nil
}

// chunkReader reads the copies a rowTee sends, in order, then the error that ended them.
type chunkReader struct {
	t   *rowTee
	cur []byte // the chunk being read
	off int
}

func (r *chunkReader) Read(b []byte) (int, error) {
	for r.off == len(r.cur) {
		if r.cur != nil {
			r.recycle(r.cur)
			r.cur, r.off = nil, 0
		}
		c, ok := <-r.t.ch
		if !ok {
			r.t.mu.Lock()
			err := r.t.endErr
			r.t.mu.Unlock()
			return 0, err
		}
		r.cur, r.off = c, 0
	}
	n := copy(b, r.cur[r.off:])
	r.off += n
	return n, nil
}

func (r *chunkReader) recycle(c []byte) {
	bp := new([]byte)
	*bp = c
	teeBuffers.Put(bp)
}

// Summarize counts the rows of every table of the live database, in read-only statements, exactly while
// Options.CountBudget lasts and by the planner's estimate (pg_class.reltuples) after that: a count(*) reads a
// whole table (about a second per GB), so a preview of a big database stays quick.
func (s *Source) Summarize(ctx context.Context) (*backup.Summary, error) {
	conn, err := s.connect(ctx, s.database)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx)) //nolint:errcheck
	if _, err := conn.Exec(ctx, "SET default_transaction_read_only = on"); err != nil {
		return nil, s.redact(err)
	}
	// The tables pg_dump dumps the data of: ordinary tables outside the system schemas, not members of an
	// extension.
	rows, err := conn.Query(ctx, `SELECT n.nspname, c.relname, c.reltuples::bigint
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind = 'r' AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
		  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
		                  AND d.deptype = 'e')
		ORDER BY 1, 2`)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", s.redact(err))
	}
	type rel struct {
		schema, name string
		estimate     int64
	}
	var rels []rel
	for rows.Next() {
		var r rel
		if err := rows.Scan(&r.schema, &r.name, &r.estimate); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list tables: %w", err)
		}
		rels = append(rels, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tables: %w", s.redact(err))
	}
	deadline := time.Now().Add(s.opts.CountBudget)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d.Add(-200 * time.Millisecond) // leave time to answer with estimates
	}
	out := &backup.Summary{Tables: []backup.TableSummary{}}
	for _, r := range rels {
		t := backup.TableSummary{Name: r.schema + "." + r.name, Rows: r.estimate, Estimated: true}
		if left := time.Until(deadline); left > 10*time.Millisecond && ctx.Err() == nil {
			if _, err := conn.Exec(ctx, fmt.Sprintf("SET statement_timeout = %d", left.Milliseconds())); err != nil {
				return nil, s.redact(err)
			}
			var n int64
			err := conn.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{r.schema, r.name}.Sanitize()).Scan(&n)
			switch {
			case err == nil:
				t.Rows, t.Estimated = n, false
			case ctx.Err() != nil:
				return nil, ctx.Err() //nolint:wrapcheck
			case !isQueryCanceled(err):
				return nil, fmt.Errorf("count rows of %s: %w", t.Name, s.redact(err))
			}
		}
		if t.Estimated && t.Rows < 0 {
			t.Rows = -1 // never analyzed: no estimate
		}
		out.Tables = append(out.Tables, t)
	}
	backup.SortTables(out.Tables)
	return out, nil
}

var _ backup.Summarizer = (*Source)(nil)

// isQueryCanceled reports whether err is the server cancelling a statement (statement_timeout: 57014).
func isQueryCanceled(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "57014"
}

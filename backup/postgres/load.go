package postgres

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/kopia/kopia/fs"

	"github.com/rewind/rewind/backup"
)

// restoreStream restores a dump from the repository, reading it once, as a stream.
//
// The stream is an archive pg_dump wrote to a pipe: header, table of contents, then one data block per table,
// without offsets. Restore reads it itself:
//  1. the header and table of contents go to a spool file in Options.SpoolDir, from which pg_restore
//     --section=pre-data creates the schema (tables, types, functions);
//  2. each table's data block is loaded by Rewind with COPY ... FREEZE on one of Options.Jobs connections
//     (the next table goes to the next free one while the last one's rows are still going in). A table's rows
//     stay on one connection, so the restored table keeps the physical order of the dumped one: splitting
//     them between connections was faster on two CPUs, but interleaved the rows page by page, which undoes a
//     CLUSTER, defeats BRIN indexes, and made the next backup's dump share nothing with the earlier ones;
//  3. pg_restore --jobs N --section=data --section=post-data runs the rest of the table of contents from the
//     spool: sequence positions, then indexes and constraints in parallel. Data blocks Rewind does not load
//     itself (large objects) are copied into the spool, their offsets filled in, for pg_restore to restore.
//
// An archive this cannot read (a newer format, compressed data) is spooled whole, its offsets filled in when
// its blocks can be located, and restored by pg_restore --jobs N from the spool.
func (prep *prepared) restoreStream(ctx context.Context, file fs.File, pgRestore string, args []string, p backup.Progress) error {
	s := prep.src
	f, err := os.CreateTemp(s.opts.SpoolDir, "rewind-pg-*.pgc")
	if err != nil {
		return fmt.Errorf("spool %s: %w", DumpFile, err)
	}
	defer func() {
		f.Close()
		os.Remove(f.Name())
	}()
	r, err := file.Open(ctx)
	if err != nil {
		return fmt.Errorf("open %s: %w", DumpFile, err)
	}
	defer r.Close()
	src := &readErr{r: backup.ProgressReader(r, p)}
	spool := bufio.NewWriterSize(f, 256<<10)
	a := newArchiveReader(src)
	a.rec = spool
	jobs := []string{"--jobs", fmt.Sprint(s.opts.Jobs)}

	// drain reads what is left of the stream, so the engine verifies the whole file's checksum, and returns the
	// read error, if any: a damaged backup explains failures better than what they caused.
	drain := func(err error) error {
		_, _ = io.Copy(io.Discard, a)
		if src.err != nil {
			return fmt.Errorf("read %s: %w", DumpFile, src.err)
		}
		return err
	}
	flush := func() error {
		if err := spool.Flush(); err != nil {
			return fmt.Errorf("spool %s to %s: %w", DumpFile, f.Name(), err)
		}
		return nil
	}

	err = a.readHeader()
	var toc []tocEntry
	if err == nil {
		toc, err = a.readTOC()
	}
	var enc string
	if err == nil {
		enc, err = loadable(a.h, toc)
	}
	if err != nil {
		// Spool the whole archive, as it is, and leave it to pg_restore.
		a.rec = nil
		if _, err := io.Copy(spool, a); err != nil {
			return drain(fmt.Errorf("spool %s to %s: %w", DumpFile, f.Name(), err))
		}
		if err := flush(); err != nil {
			return drain(err)
		}
		if src.err != nil {
			return drain(nil)
		}
		if _, err := f.Seek(0, io.SeekStart); err == nil {
			if h, toc, blocks, err := scanArchive(f); err == nil {
				_, _ = setOffsets(f, h, toc, blocks) // else pg_restore's workers scan for their blocks
			}
		}
		return prep.runRestore(ctx, pgRestore, append(append(args, jobs...), f.Name()))
	}

	// 1. The schema, from the table of contents.
	if err := flush(); err != nil {
		return drain(err)
	}
	if err := prep.runRestore(ctx, pgRestore, append(args, "--section=pre-data", f.Name())); err != nil {
		return drain(err)
	}

	// 2. The data.
	ld, err := prep.newLoader(ctx, enc)
	if err != nil {
		return drain(err)
	}
	byID := map[int]*tocEntry{}
	for i := range toc {
		byID[toc[i].dumpID] = &toc[i]
	}
	loaded := map[int]bool{}
	blocks := map[int]int64{} // block → position in the spool
	spooled := a.pos          // bytes in the spool
	for err == nil {
		a.rec = nil
		var (
			typ byte
			id  int
		)
		typ, id, err = a.nextBlock()
		if errors.Is(err, io.EOF) {
			err = nil
			break
		}
		if err != nil {
			break
		}
		e := byID[id]
		if _, dup := blocks[id]; dup || loaded[id] {
			err = fmt.Errorf("%w: second data block for dump id %d", errNotArchive, id)
			break
		}
		if typ == blockData && e != nil && e.desc == "TABLE DATA" && e.copyStmt != "" {
			loaded[id] = true
			err = ld.load(a, e)
			continue
		}
		// Not ours: into the spool, block header included, for pg_restore.
		blocks[id] = spooled
		start := a.pos
		spool.WriteByte(typ)
		spool.Write(archiveInt(a.h, int64(id)))
		a.rec = spool
		err = a.skipBlock(typ)
		spooled += 1 + int64(1+a.h.intSize) + a.pos - start
	}
	a.rec = nil
	if lerr := ld.close(); err == nil {
		err = lerr
	}
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = fmt.Errorf("%s ends inside a data block (truncated?): %w", DumpFile, err)
		}
		return drain(err)
	}
	if err := flush(); err != nil {
		return drain(err)
	}
	if err := drain(nil); err != nil {
		return err
	}
	if _, err := setOffsets(f, a.h, toc, blocks); err != nil {
		return fmt.Errorf("spool %s to %s: %w", DumpFile, f.Name(), err)
	}

	// 3. The rest of the table of contents, without the data loaded above.
	list, err := os.CreateTemp(s.opts.SpoolDir, "rewind-pg-*.list")
	if err != nil {
		return fmt.Errorf("spool %s: %w", DumpFile, err)
	}
	defer func() {
		list.Close()
		os.Remove(list.Name())
	}()
	var lines strings.Builder
	for _, e := range toc {
		if !loaded[e.dumpID] {
			fmt.Fprintf(&lines, "%d\n", e.dumpID)
		}
	}
	if _, err := list.WriteString(lines.String()); err != nil {
		return fmt.Errorf("spool %s: %w", DumpFile, err)
	}
	if err := list.Close(); err != nil {
		return fmt.Errorf("spool %s: %w", DumpFile, err)
	}
	return prep.runRestore(ctx, pgRestore, append(append(args, jobs...),
		"--section=data", "--section=post-data", "--use-list="+list.Name(), f.Name()))
}

// archiveInt encodes v as the archive's integers (WriteInt).
func archiveInt(h archiveHeader, v int64) []byte {
	b := make([]byte, 1+h.intSize)
	if v < 0 {
		b[0], v = 1, -v
	}
	for i := 0; i < h.intSize; i++ {
		b[1+i] = byte(v >> (8 * i))
	}
	return b
}

// encodingRe matches the ENCODING entry pg_dump writes.
var encodingRe = regexp.MustCompile(`^SET client_encoding = '([A-Za-z0-9_]+)';\n?$`)

// loadable checks that Rewind can load the archive's data itself, and returns the archive's encoding.
func loadable(h archiveHeader, toc []tocEntry) (string, error) {
	if h.compressed {
		return "", errors.New("compressed data")
	}
	for _, e := range toc {
		if e.desc == "ENCODING" {
			if m := encodingRe.FindStringSubmatch(e.defn); m != nil {
				return m[1], nil
			}
			return "", fmt.Errorf("encoding entry %q", e.defn)
		}
	}
	return "", errors.New("no encoding entry")
}

// copyBatch is the size of the batches of a table's data the loader hands to its connection.
const copyBatch = 1 << 20

// loader loads tables with COPY over several connections at once.
type loader struct {
	ctx    context.Context
	cancel context.CancelFunc
	conns  []*pgx.Conn
	tables chan copyTable
	wg     sync.WaitGroup

	mu  sync.Mutex
	err error
}

// copyTable is one table's COPY: the connection that takes it reads its rows from batches until it is closed.
type copyTable struct {
	stmt    string
	table   string // the table, quoted
	batches chan []byte
}

// newLoader opens Options.Jobs connections to the prepared database, set up as pg_restore sets up its own.
func (prep *prepared) newLoader(ctx context.Context, encoding string) (*loader, error) {
	s := prep.src
	ctx, cancel := context.WithCancel(ctx)
	ld := &loader{ctx: ctx, cancel: cancel, tables: make(chan copyTable)}
	setup := []string{
		"SELECT pg_catalog.set_config('search_path', '', false)",
		"SET statement_timeout = 0",
		"SET lock_timeout = 0",
		"SET idle_in_transaction_session_timeout = 0",
		"SET row_security = off",
		// Durable before Switch: see restoreOptions.
		"SET synchronous_commit = off",
	}
	if prep.role != "" {
		setup = append(setup, "SET ROLE "+pgx.Identifier{prep.role}.Sanitize())
	}
	// Last: pgx wants UTF8 for queries with arguments (these have none; COPY sends the archive's bytes as they are).
	setup = append(setup, "SET client_encoding = "+quote(encoding))
	for range s.opts.Jobs {
		c, err := s.connect(ctx, prep.tmp)
		if err == nil {
			for _, q := range setup {
				if _, err = c.Exec(ctx, q); err != nil {
					err = fmt.Errorf("%s: %w", q, s.redact(err))
					break
				}
			}
			ld.conns = append(ld.conns, c)
		}
		if err != nil {
			ld.close()
			return nil, fmt.Errorf("load data: %w", err)
		}
	}
	for _, c := range ld.conns {
		ld.wg.Add(1)
		go ld.work(c)
	}
	return ld, nil
}

// work runs the COPYs of one connection.
func (ld *loader) work(c *pgx.Conn) {
	defer ld.wg.Done()
	for t := range ld.tables {
		first, ok := <-t.batches
		if !ok || ld.failed() {
			continue // no rows; or draining after a failure
		}
		r := &batchReader{cur: first, next: t.batches}
		if err := ld.copyFrom(c, t, r); err != nil {
			ld.fail(fmt.Errorf("%s: %w", strings.TrimSpace(t.stmt), err))
			for range t.batches { // let the reader go on to the end of this table
			}
		}
	}
}

// copyFrom loads one table's rows frozen: the table is emptied in the same transaction (it is empty already:
// pg_restore has just created it), which lets COPY write its rows frozen and all-visible, so building its
// indexes and the first reads later do not rewrite every page to set hint bits.
func (ld *loader) copyFrom(c *pgx.Conn, t copyTable, r io.Reader) error {
	tx, err := c.Begin(ld.ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck
	if _, err := tx.Exec(ld.ctx, "TRUNCATE ONLY "+t.table); err != nil {
		return err
	}
	stmt := strings.TrimSuffix(strings.TrimSpace(t.stmt), ";") + " WITH (FREEZE)"
	if _, err := c.PgConn().CopyFrom(ld.ctx, r, stmt); err != nil {
		return err
	}
	return tx.Commit(ld.ctx)
}

func (ld *loader) fail(err error) {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	if ld.err == nil {
		ld.err = err
		ld.cancel()
	}
}

func (ld *loader) failed() bool {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	return ld.err != nil
}

// load reads the data block of a table (after its header) from a and hands it, in batches of about copyBatch
// bytes, to the one connection that loads the table.
func (ld *loader) load(a *archiveReader, e *tocEntry) error {
	t := copyTable{stmt: e.copyStmt, table: pgx.Identifier{e.namespace, e.tag}.Sanitize(),
		batches: make(chan []byte, 2*len(ld.conns))}
	select { // one connection: its rows keep their order (see restoreStream)
	case ld.tables <- t:
	case <-ld.ctx.Done():
		return ld.result(ld.ctx.Err())
	}
	defer close(t.batches)
	send := func(b []byte) error {
		select {
		case t.batches <- b:
			return nil
		case <-ld.ctx.Done():
			return ld.result(ld.ctx.Err())
		}
	}
	buf := newBatch()
	for {
		n, err := a.chunk()
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
		for n > 0 {
			m := min(n, int64(cap(buf)-len(buf)))
			k, err := io.ReadFull(a, buf[len(buf):len(buf)+int(m)])
			buf = buf[:len(buf)+k]
			n -= int64(k)
			if err != nil {
				return noEOF(err)
			}
			// Keep the last bytes back: the end of the block is checked for pg_dump's end-of-data marker.
			if len(buf) >= copyBatch {
				next := append(newBatch(), buf[len(buf)-8:]...)
				if err := send(buf[:len(buf)-8]); err != nil {
					return err
				}
				buf = next
			}
		}
	}
	// pg_dump ends the data with the end-of-data line "\." and an empty line (pg_restore sends them to the
	// server, which stops reading there); COPY ... FROM STDIN through pgx ends the data itself.
	switch {
	case bytes.HasSuffix(buf, []byte("\\.\n\n")) && (len(buf) == 4 || buf[len(buf)-5] == '\n'):
		buf = buf[:len(buf)-4]
	case bytes.HasSuffix(buf, []byte("\\.\n")) && (len(buf) == 3 || buf[len(buf)-4] == '\n'):
		buf = buf[:len(buf)-3]
	}
	if len(buf) > 0 {
		return send(buf)
	}
	return nil
}

// result is err, or the failure of a connection that caused it.
func (ld *loader) result(err error) error {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	if ld.err != nil {
		return ld.err
	}
	return err
}

// close waits for the COPYs to end, closes the connections and returns the first failure.
func (ld *loader) close() error {
	close(ld.tables)
	ld.wg.Wait()
	for _, c := range ld.conns {
		_ = c.Close(context.Background())
	}
	ld.cancel()
	return ld.result(nil)
}

// batches recycles the loader's buffers.
var batches = sync.Pool{New: func() any { return make([]byte, 0, copyBatch+64<<10) }}

func newBatch() []byte { return batches.Get().([]byte)[:0] }

// batchReader reads a table's batches one after the other.
type batchReader struct {
	cur  []byte
	off  int
	next <-chan []byte
}

func (r *batchReader) Read(b []byte) (int, error) {
	for r.off == len(r.cur) {
		if cap(r.cur) >= copyBatch {
			batches.Put(r.cur[:0]) //nolint:staticcheck // a slice header is small
		}
		var ok bool
		if r.cur, ok = <-r.next; !ok {
			r.cur = nil
			return 0, io.EOF
		}
		r.off = 0
	}
	n := copy(b, r.cur[r.off:])
	r.off += n
	return n, nil
}

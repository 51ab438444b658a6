package postgres

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// This file reads the custom-format archives pg_dump writes (PostgreSQL's src/bin/pg_dump/pg_backup_archiver.c
// and pg_backup_custom.c), as far as restore needs: the header, the table of contents, and the framing of the
// data blocks after it. It never interprets the data itself.
//
// An archive pg_dump writes to a file has, in its table of contents, the position of every entry's data block,
// so pg_restore --jobs can seek to each table's data. An archive written to a pipe (every Rewind backup) cannot
// be rewritten at the end, so its offsets say "not set", and every pg_restore --jobs worker then scans the
// archive from the start to find its table's data. offsetWriter records where each data block starts while an
// archive is copied to a file, then fills in the offsets the way pg_dump would have (they have a fixed width,
// so the table of contents keeps its size).

// Versions of the custom format this reader knows (MAKE_ARCHIVE_VERSION(1, minor, 0)): 1.12 (PostgreSQL 9.5)
// to 1.16 (PostgreSQL 17).
const (
	archiveMinMinor = 12
	archiveMaxMinor = 16
)

// Values of the flag byte before an entry's data offset (K_OFFSET_*).
const (
	offsetNotSet = 1
	offsetSet    = 2
	offsetNoData = 3
)

// Block types in the data part (BLK_*).
const (
	blockData  = 1
	blockBlobs = 3
)

// Limits on untrusted input: a string of the table of contents (a definition, a COPY statement) and the
// number of entries.
const (
	maxArchiveString  = 256 << 20
	maxArchiveEntries = 10_000_000
)

var errNotArchive = errors.New("not a pg_dump custom-format archive")

// archiveHeader is what restore needs of an archive's header.
type archiveHeader struct {
	minor      int // format version 1.minor
	intSize    int // bytes of an integer's magnitude
	offSize    int // bytes of a data offset
	compressed bool
}

// tocEntry is one entry of an archive's table of contents.
type tocEntry struct {
	dumpID    int
	hasData   bool // the entry has a data block (TABLE DATA, BLOBS)
	desc      string
	section   int // SECTION_PRE_DATA = 2, SECTION_DATA = 3, SECTION_POST_DATA = 4
	tag       string
	namespace string
	copyStmt  string
	defn      string // the SQL of the ENCODING entry (not kept for others)
	offsetPos int64  // position in the archive of the entry's offset: flag byte, then offSize bytes
	dataState int    // the flag byte as read
	offset    int64  // the offset as read, meaningful when dataState is offsetSet
}

// archiveReader reads an archive sequentially, counting its position.
type archiveReader struct {
	r   *bufio.Reader
	pos int64
	h   archiveHeader
	// rec, when set, receives every byte read (a copy of the parts of the archive restore keeps).
	rec io.Writer
}

func newArchiveReader(r io.Reader) *archiveReader {
	return &archiveReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// Read reads the archive's bytes as they are.
func (a *archiveReader) Read(b []byte) (int, error) {
	n, err := a.r.Read(b)
	a.pos += int64(n)
	if a.rec != nil && n > 0 {
		if _, werr := a.rec.Write(b[:n]); werr != nil {
			return n, werr
		}
	}
	return n, err
}

func (a *archiveReader) byte() (byte, error) {
	b, err := a.r.ReadByte()
	if err != nil {
		return 0, noEOF(err)
	}
	a.pos++
	if a.rec != nil {
		if _, err := a.rec.Write([]byte{b}); err != nil {
			return 0, err
		}
	}
	return b, nil
}

// noEOF turns an end of input inside a structure into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// int reads an integer as WriteInt writes it: a sign byte, then intSize bytes, least significant first.
func (a *archiveReader) int() (int64, error) {
	var sign byte
	var v uint64
	if b, err := a.r.Peek(1 + a.h.intSize); err == nil && a.rec == nil {
		// The common case, once per row of a table's data: decode in place.
		sign = b[0]
		for i := 0; i < a.h.intSize; i++ {
			v |= uint64(b[1+i]) << (8 * i)
		}
		n, _ := a.r.Discard(len(b))
		a.pos += int64(n)
	} else {
		var err error
		if sign, err = a.byte(); err != nil {
			return 0, err
		}
		for i := 0; i < a.h.intSize; i++ {
			b, err := a.byte()
			if err != nil {
				return 0, err
			}
			v |= uint64(b) << (8 * i)
		}
	}
	if v > 1<<62 {
		return 0, fmt.Errorf("%w: integer out of range at byte %d", errNotArchive, a.pos)
	}
	if sign != 0 {
		return -int64(v), nil
	}
	return int64(v), nil
}

// str reads a string as WriteStr writes it: its length (-1 for NULL), then its bytes.
func (a *archiveReader) str() (string, bool, error) {
	n, err := a.int()
	if err != nil {
		return "", false, err
	}
	switch {
	case n == -1:
		return "", false, nil
	case n < 0 || n > maxArchiveString:
		return "", false, fmt.Errorf("%w: string of %d bytes at byte %d", errNotArchive, n, a.pos)
	}
	var b bytes.Buffer
	// Copy rather than allocate n bytes up front: n comes from the input.
	_, err = io.CopyN(&b, a, n)
	if err != nil {
		return "", false, noEOF(err)
	}
	return b.String(), true, nil
}

func (a *archiveReader) skip(n int64) error {
	_, err := io.CopyN(io.Discard, a, n)
	return noEOF(err)
}

// readHeader reads the header (ReadHead).
func (a *archiveReader) readHeader() error {
	magic := make([]byte, 5)
	if _, err := io.ReadFull(a, magic); err != nil {
		return fmt.Errorf("%w: %v", errNotArchive, noEOF(err))
	}
	if string(magic) != "PGDMP" {
		return errNotArchive
	}
	var v [6]byte // major, minor, revision, intSize, offSize, format
	for i := range v {
		b, err := a.byte()
		if err != nil {
			return err
		}
		v[i] = b
	}
	if v[0] != 1 || v[1] < archiveMinMinor || v[1] > archiveMaxMinor {
		return fmt.Errorf("%w: unsupported version %d.%d", errNotArchive, v[0], v[1])
	}
	if v[3] < 1 || v[3] > 8 || v[4] < 1 || v[4] > 8 {
		return fmt.Errorf("%w: integer size %d, offset size %d", errNotArchive, v[3], v[4])
	}
	if v[5] != 1 { // archCustom
		return fmt.Errorf("%w: format %d is not custom", errNotArchive, v[5])
	}
	a.h = archiveHeader{minor: int(v[1]), intSize: int(v[3]), offSize: int(v[4])}
	if a.h.minor >= 15 {
		alg, err := a.byte() // pg_compress_algorithm; 0 is none
		if err != nil {
			return err
		}
		a.h.compressed = alg != 0
	} else {
		level, err := a.int()
		if err != nil {
			return err
		}
		a.h.compressed = level != 0
	}
	for range 7 { // creation time: sec, min, hour, mday, mon, year, isdst
		if _, err := a.int(); err != nil {
			return err
		}
	}
	for range 3 { // database name, server version, pg_dump version
		if _, _, err := a.str(); err != nil {
			return err
		}
	}
	return nil
}

// readTOC reads the table of contents (ReadToc and the custom format's ReadExtraToc).
func (a *archiveReader) readTOC() ([]tocEntry, error) {
	n, err := a.int()
	if err != nil {
		return nil, err
	}
	if n < 0 || n > maxArchiveEntries {
		return nil, fmt.Errorf("%w: %d entries", errNotArchive, n)
	}
	var toc []tocEntry
	for range n {
		var e tocEntry
		id, err := a.int()
		if err != nil {
			return nil, err
		}
		had, err := a.int()
		if err != nil {
			return nil, err
		}
		e.dumpID, e.hasData = int(id), had != 0
		if id <= 0 || id > 1<<31 {
			return nil, fmt.Errorf("%w: dump id %d", errNotArchive, id)
		}
		for range 2 { // catalog table oid, object oid
			if _, _, err := a.str(); err != nil {
				return nil, err
			}
		}
		if e.tag, _, err = a.str(); err != nil {
			return nil, err
		}
		if e.desc, _, err = a.str(); err != nil {
			return nil, err
		}
		section, err := a.int()
		if err != nil {
			return nil, err
		}
		e.section = int(section)
		defn, _, err := a.str()
		if err != nil {
			return nil, err
		}
		if e.desc == "ENCODING" {
			e.defn = defn
		}
		if _, _, err := a.str(); err != nil { // dropStmt
			return nil, err
		}
		if e.copyStmt, _, err = a.str(); err != nil {
			return nil, err
		}
		if e.namespace, _, err = a.str(); err != nil {
			return nil, err
		}
		if _, _, err := a.str(); err != nil { // tablespace
			return nil, err
		}
		if a.h.minor >= 14 {
			if _, _, err := a.str(); err != nil { // table access method
				return nil, err
			}
		}
		if a.h.minor >= 16 {
			if _, err := a.int(); err != nil { // relkind
				return nil, err
			}
		}
		for range 2 { // owner, "false" (WITH OIDS)
			if _, _, err := a.str(); err != nil {
				return nil, err
			}
		}
		for { // dependencies, up to a NULL
			_, ok, err := a.str()
			if err != nil {
				return nil, err
			}
			if !ok {
				break
			}
		}
		e.offsetPos = a.pos
		flag, err := a.byte()
		if err != nil {
			return nil, err
		}
		e.dataState = int(flag)
		for i := 0; i < a.h.offSize; i++ {
			b, err := a.byte()
			if err != nil {
				return nil, err
			}
			e.offset |= int64(b) << (8 * i)
		}
		toc = append(toc, e)
	}
	return toc, nil
}

// nextBlock reads the header of the next data block: its type and dump id. At the clean end of the archive
// it returns io.EOF.
func (a *archiveReader) nextBlock() (typ byte, dumpID int, err error) {
	if _, err := a.r.Peek(1); err != nil {
		return 0, 0, err // io.EOF: no more blocks
	}
	typ, _ = a.byte()
	if typ != blockData && typ != blockBlobs {
		return 0, 0, fmt.Errorf("%w: block type %d at byte %d", errNotArchive, typ, a.pos-1)
	}
	id, err := a.int()
	if err != nil {
		return 0, 0, err
	}
	return typ, int(id), nil
}

// chunk reads the length of the next chunk of a block's data: 0 ends the data.
func (a *archiveReader) chunk() (int64, error) {
	n, err := a.int()
	if err != nil {
		return 0, err
	}
	if n < 0 {
		return 0, fmt.Errorf("%w: chunk of %d bytes at byte %d", errNotArchive, n, a.pos)
	}
	return n, nil
}

// skipData skips a data block's chunks, up to and including the terminating zero length.
func (a *archiveReader) skipData() error {
	for {
		n, err := a.chunk()
		if err != nil || n == 0 {
			return err
		}
		if err := a.skip(n); err != nil {
			return err
		}
	}
}

// skipBlock skips the body of a block of type typ.
func (a *archiveReader) skipBlock(typ byte) error {
	if typ == blockData {
		return a.skipData()
	}
	for { // large objects: an oid and its data each, up to oid 0
		oid, err := a.int()
		if err != nil || oid == 0 {
			return err
		}
		if err := a.skipData(); err != nil {
			return err
		}
	}
}

// scanArchive reads a whole archive: its table of contents, and where each data block starts (dump id →
// position of the block's type byte, what pg_dump records as the entry's offset).
func scanArchive(r io.Reader) (archiveHeader, []tocEntry, map[int]int64, error) {
	a := newArchiveReader(r)
	if err := a.readHeader(); err != nil {
		return a.h, nil, nil, err
	}
	toc, err := a.readTOC()
	if err != nil {
		return a.h, nil, nil, err
	}
	blocks := map[int]int64{}
	for {
		start := a.pos
		typ, id, err := a.nextBlock()
		if errors.Is(err, io.EOF) {
			return a.h, toc, blocks, nil
		}
		if err != nil {
			return a.h, toc, blocks, err
		}
		if _, dup := blocks[id]; dup {
			return a.h, toc, blocks, fmt.Errorf("%w: second data block for dump id %d at byte %d", errNotArchive, id, start)
		}
		blocks[id] = start
		if err := a.skipBlock(typ); err != nil {
			return a.h, toc, blocks, err
		}
	}
}

// setOffsets writes, into the archive file f, the offset of every entry of toc whose data block blocks
// located, marked as set (pg_dump's WriteOffset: a flag byte, then offSize bytes, least significant first).
// Entries whose offsets were already set, or without a block, are left alone. It returns how many it set.
func setOffsets(f *os.File, h archiveHeader, toc []tocEntry, blocks map[int]int64) (int, error) {
	n := 0
	buf := make([]byte, 1+h.offSize)
	for _, e := range toc {
		pos, ok := blocks[e.dumpID]
		if !ok || !e.hasData || e.dataState != offsetNotSet {
			continue
		}
		if h.offSize < 8 && pos >= 1<<(8*h.offSize) {
			return n, fmt.Errorf("offset %d does not fit in %d bytes", pos, h.offSize)
		}
		buf[0] = offsetSet
		for i := 0; i < h.offSize; i++ {
			buf[1+i] = byte(pos >> (8 * i))
		}
		if _, err := f.WriteAt(buf, e.offsetPos); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

package postgres

import (
	"bytes"
	"context"
	"os"
	osexec "os/exec"
	"path/filepath"
	"testing"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/backuptest"
	"github.com/rewind/rewind/backup/internal/testserver"
)

// archiveBuilder writes a small custom-format archive the way pg_dump does (version 1.14, 4-byte integers,
// 8-byte offsets), for tests that need no server.
type archiveBuilder struct{ bytes.Buffer }

func (b *archiveBuilder) int(v int) {
	sign := byte(0)
	if v < 0 {
		sign, v = 1, -v
	}
	b.WriteByte(sign)
	for i := 0; i < 4; i++ {
		b.WriteByte(byte(v >> (8 * i)))
	}
}

func (b *archiveBuilder) str(s string) { b.int(len(s)); b.WriteString(s) }

// testArchive returns an archive with two tables, each with a data block of rows, and an index; its
// offsets are not set, as in an archive pg_dump wrote to a pipe.
func testArchive() []byte {
	var b archiveBuilder
	b.WriteString("PGDMP")
	b.Write([]byte{1, 14, 0, 4, 8, 1})
	b.int(0) // compression level
	for _, v := range []int{1, 2, 3, 4, 5, 124, 0} {
		b.int(v)
	}
	b.str("db")
	b.str("15.0")
	b.str("15.0")
	type ent struct {
		id       int
		data     bool
		desc     string
		section  int
		copyStmt string
	}
	ents := []ent{
		{1, false, "TABLE", 2, ""},
		{2, false, "TABLE", 2, ""},
		{3, true, "TABLE DATA", 3, "COPY public.a (x) FROM stdin;\n"},
		{4, true, "TABLE DATA", 3, "COPY public.b (y) FROM stdin;\n"},
		{5, false, "INDEX", 4, ""},
	}
	b.int(len(ents))
	for _, e := range ents {
		b.int(e.id)
		if e.data {
			b.int(1)
		} else {
			b.int(0)
		}
		b.str("0")
		b.str("0")
		b.str("t")
		b.str(e.desc)
		b.int(e.section)
		b.str("CREATE ...;")
		b.str("")
		b.str(e.copyStmt)
		b.str("public")
		b.str("")
		b.str("heap")
		b.str("owner")
		b.str("false")
		b.str("1")
		b.int(-1) // end of dependencies
		if e.data {
			b.WriteByte(offsetNotSet)
		} else {
			b.WriteByte(offsetNoData)
		}
		b.Write(make([]byte, 8))
	}
	for _, id := range []int{3, 4} {
		b.WriteByte(blockData)
		b.int(id)
		for _, row := range []string{"1\n", "2\n", "3\n"} {
			b.str(row)
		}
		b.int(0)
	}
	return b.Bytes()
}

func TestScanArchive(t *testing.T) {
	data := testArchive()
	h, toc, blocks, err := scanArchive(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(toc), 5; got != want {
		t.Fatalf("%d entries, want %d", got, want)
	}
	if got, want := toc[2].copyStmt, "COPY public.a (x) FROM stdin;\n"; got != want {
		t.Fatalf("copy statement %q, want %q", got, want)
	}
	if got, want := len(blocks), 2; got != want {
		t.Fatalf("%d data blocks, want %d", got, want)
	}
	for id, pos := range blocks {
		if data[pos] != blockData || data[pos+2] != byte(id) {
			t.Fatalf("block of %d at %d does not start with its header", id, pos)
		}
	}

	// Filling in the offsets changes only the offset fields, and a second scan reads them back.
	f := tempArchive(t, data)
	n, err := setOffsets(f, h, toc, blocks)
	if err != nil || n != 2 {
		t.Fatalf("setOffsets = %d, %v; want 2 entries", n, err)
	}
	patched, _ := os.ReadFile(f.Name())
	if len(patched) != len(data) {
		t.Fatalf("size changed: %d → %d", len(data), len(patched))
	}
	_, toc2, _, err := scanArchive(bytes.NewReader(patched))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range toc2 {
		if pos, ok := blocks[e.dumpID]; ok {
			if e.dataState != offsetSet || e.offset != pos {
				t.Errorf("entry %d: state %d offset %d, want %d %d", e.dumpID, e.dataState, e.offset, offsetSet, pos)
			}
		} else if e.dataState != offsetNoData {
			t.Errorf("entry %d without data: state %d", e.dumpID, e.dataState)
		}
	}

	// Every truncation fails, except at the end of a block.
	ends := map[int]bool{len(data): true}
	for _, pos := range blocks {
		ends[int(pos)] = true
	}
	for i := 0; i < len(data); i++ {
		_, _, _, err := scanArchive(bytes.NewReader(data[:i]))
		if (err == nil) != ends[i] {
			t.Fatalf("archive cut at %d of %d: %v", i, len(data), err)
		}
	}
}

func tempArchive(t testing.TB, data []byte) *os.File {
	f, err := os.CreateTemp(t.TempDir(), "*.pgc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	return f
}

// FuzzScanArchive: the reader of untrusted archives never panics nor allocates what the input merely
// claims, and offsets it fills in point at the blocks it found.
func FuzzScanArchive(f *testing.F) {
	f.Add(testArchive())
	f.Add([]byte("PGDMP"))
	f.Add(append([]byte("PGDMP\x01\x10\x00\x04\x08\x01\x00"), bytes.Repeat([]byte{0xff}, 40)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, toc, blocks, err := scanArchive(bytes.NewReader(data))
		if err != nil {
			return
		}
		for id, pos := range blocks {
			if pos < 0 || int(pos) >= len(data) || (data[pos] != blockData && data[pos] != blockBlobs) {
				t.Fatalf("block %d at %d of %d", id, pos, len(data))
			}
		}
		fl := tempArchive(t, data)
		if _, err := setOffsets(fl, h, toc, blocks); err != nil {
			return
		}
		patched, _ := os.ReadFile(fl.Name())
		if len(patched) != len(data) {
			t.Fatalf("size changed: %d → %d", len(data), len(patched))
		}
		if _, _, _, err := scanArchive(bytes.NewReader(patched)); err != nil {
			t.Fatalf("patched archive no longer reads: %v", err)
		}
	})
}

// TestSetOffsetsLikePgDump: the offsets filled into a dump pg_dump wrote to a pipe (a Rewind backup) are the
// ones pg_dump itself writes into a file, byte for byte.
func TestSetOffsetsLikePgDump(t *testing.T) {
	t.Parallel()
	srv := testserver.StartPostgres(t)
	db := srv.CreateDatabase(t, "")
	c := newCase(t, srv.URL(db), Options{})
	c.Fill(t)
	src := c.Source.(*Source)
	ctx := context.Background()
	cp, err := src.Pin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dir := backuptest.Stream(t, cp, backup.NopProgress)
	snapshot := cp.(*capture).snapshot
	pgDump, err := src.findTool("pg_dump", 0)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "file.pgc")
	out, err := osexec.Command(pgDump, "--format=custom", "--compress=0", "--snapshot="+snapshot, "--file="+file,
		"--dbname="+src.connURL(db, true)).CombinedOutput()
	cp.Close()
	if err != nil {
		t.Fatalf("pg_dump: %v: %s", err, out)
	}

	piped, err := os.ReadFile(filepath.Join(dir, DumpFile))
	if err != nil {
		t.Fatal(err)
	}
	h, toc, blocks, err := scanArchive(bytes.NewReader(piped))
	if err != nil {
		t.Fatal(err)
	}
	f := tempArchive(t, piped)
	if n, err := setOffsets(f, h, toc, blocks); err != nil || n == 0 {
		t.Fatalf("setOffsets = %d, %v", n, err)
	}
	patched, _ := os.ReadFile(f.Name())
	want, _ := os.ReadFile(file)
	_, wtoc, _, err := scanArchive(bytes.NewReader(want))
	if err != nil {
		t.Fatal(err)
	}
	_, ptoc, _, err := scanArchive(bytes.NewReader(patched))
	if err != nil {
		t.Fatal(err)
	}
	if len(wtoc) != len(ptoc) {
		t.Fatalf("%d entries, pg_dump's file has %d", len(ptoc), len(wtoc))
	}
	for i := range wtoc {
		w, p := wtoc[i], ptoc[i]
		if w.dumpID != p.dumpID || w.dataState != p.dataState || (w.dataState == offsetSet && w.offset != p.offset) {
			t.Errorf("entry %d %s: state %d offset %d, pg_dump wrote %d %d", p.dumpID, p.desc, p.dataState, p.offset, w.dataState, w.offset)
		}
	}
	// The archives differ only in the creation time of their headers.
	if len(patched) != len(want) {
		t.Fatalf("%d bytes, pg_dump's file has %d", len(patched), len(want))
	}
	diff := 0
	for i := range want {
		if want[i] != patched[i] {
			diff++
		}
	}
	if diff > 8 {
		t.Errorf("%d bytes differ from pg_dump's own file", diff)
	}
}

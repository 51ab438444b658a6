package postgres

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/backuptest"
	"github.com/rewind/rewind/backup/testserver"
)

// dumpOf dumps a fresh database filled by fill through the Source and returns the archive's bytes.
func dumpOf(tb testing.TB, fill string) []byte {
	tb.Helper()
	srv := testserver.StartPostgres(tb)
	name := srv.CreateDatabase(tb, "")
	srv.Exec(tb, name, fill)
	src, err := NewWithOptions(backup.ServiceSpec{Name: "db", URL: srv.URL(name)}, Options{})
	if err != nil {
		tb.Fatal(err)
	}
	c, err := src.Pin(backuptest.Context(tb))
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	dir := backuptest.Stream(tb, c, backup.NopProgress)
	b, err := os.ReadFile(filepath.Join(dir, DumpFile))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// TestCountRowsOfAnArchive counts the rows of tables whose values hold newlines, tabs and backslashes, of an
// empty table and of a table whose data pg_dump leaves out (a partitioned parent: its rows are its partitions').
func TestCountRowsOfAnArchive(t *testing.T) {
	dump := dumpOf(t, `CREATE SCHEMA "odd ""name""";
		CREATE TABLE "odd ""name""".t (v text); INSERT INTO "odd ""name""".t VALUES (E'a\nb'), (E'\\.\n\n\n'), (E'x\ty\\z'), (NULL);
		CREATE TABLE empty (id int);
		CREATE TABLE parts (id int) PARTITION BY RANGE (id);
		CREATE TABLE parts_1 PARTITION OF parts FOR VALUES FROM (0) TO (10); INSERT INTO parts SELECT generate_series(0, 9)`)
	got, err := countRows(bytes.NewReader(dump))
	if err != nil {
		t.Fatal(err)
	}
	if g, w := fmt.Sprint(got), `[{odd "name".t 4 false} {public.empty 0 false} {public.parts_1 10 false}]`; g != w {
		t.Fatalf("countRows = %s, want %s", g, w)
	}
	// A cut archive is an error, not a short count.
	if _, err := countRows(bytes.NewReader(dump[:len(dump)-10])); err == nil {
		t.Fatal("countRows of a cut archive: no error")
	}
}

// BenchmarkCountRows measures counting rows in a dump as it streams, beside the upload (what every PostgreSQL
// backup does): the throughput of the tee and its counting goroutine, to set against pg_dump's.
func BenchmarkCountRows(b *testing.B) {
	dump := dumpOf(b, `CREATE TABLE events AS SELECT i AS id, md5(i::text) AS body, now() AS at FROM generate_series(1, 1000000) i`)
	b.SetBytes(int64(len(dump)))
	for b.Loop() {
		t := newRowTee(io.NopCloser(bytes.NewReader(dump)))
		if _, err := io.CopyBuffer(io.Discard, t, make([]byte, 256<<10)); err != nil {
			b.Fatal(err)
		}
		if s, err := t.summary(); err != nil || s.Tables[0].Rows != 1000000 {
			b.Fatalf("summary = %+v, %v", s, err)
		}
	}
}

// TestSummarizeEstimatesPastItsBudget: with no time left to count, the live tables get the planner's
// estimates, marked so, and -1 for a table never analyzed.
func TestSummarizeEstimatesPastItsBudget(t *testing.T) {
	srv := testserver.StartPostgres(t)
	name := srv.CreateDatabase(t, "")
	srv.Exec(t, name, `CREATE TABLE analyzed AS SELECT generate_series(1, 1000) AS id; ANALYZE analyzed;
		CREATE TABLE fresh AS SELECT generate_series(1, 10) AS id`)
	src, err := NewWithOptions(backup.ServiceSpec{Name: "db", URL: srv.URL(name)}, Options{CountBudget: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	s, err := src.Summarize(backuptest.Context(t))
	if err != nil {
		t.Fatal(err)
	}
	if g, w := fmt.Sprint(s.Tables), "[{public.analyzed 1000 true} {public.fresh -1 true}]"; g != w {
		t.Fatalf("Summarize = %s, want %s", g, w)
	}
}

// FuzzRowTee: whatever the stream, the tee passes it through unchanged and never blocks it, and a count that
// succeeds has no negative row count.
func FuzzRowTee(f *testing.F) {
	f.Add(testArchive())
	f.Add([]byte("PGDMP"))
	f.Add([]byte("not an archive at all"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tee := newRowTee(io.NopCloser(bytes.NewReader(data)))
		var out bytes.Buffer
		if _, err := io.CopyBuffer(&out, tee, make([]byte, 7)); err != nil {
			t.Fatalf("copy through the tee: %v", err)
		}
		if !bytes.Equal(out.Bytes(), data) {
			t.Fatal("the tee changed the stream")
		}
		s, err := tee.summary()
		if err != nil {
			return
		}
		for _, tb := range s.Tables {
			if tb.Rows < 0 {
				t.Fatalf("table %s: %d rows", tb.Name, tb.Rows)
			}
		}
	})
}

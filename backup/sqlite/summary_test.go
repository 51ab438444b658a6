package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
)

// BenchmarkCountTables measures what a SQLite backup adds to count its rows (on the pinned copy) and what a
// preview spends counting the live file: a read of every table's b-tree.
func BenchmarkCountTables(b *testing.B) {
	path := filepath.Join(b.TempDir(), "big.db")
	d, err := sql.Open("sqlite", path)
	if err != nil {
		b.Fatal(err)
	}
	_, err = d.Exec(`PRAGMA journal_mode=WAL; CREATE TABLE events (id INTEGER PRIMARY KEY, body TEXT);
		WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000)
		INSERT INTO events SELECT i, hex(randomblob(32)) FROM n; PRAGMA wal_checkpoint(TRUNCATE)`)
	d.Close()
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		s, err := countTables(context.Background(), path)
		if err != nil || len(s.Tables) != 1 || s.Tables[0].Rows != 1000000 {
			b.Fatalf("countTables = %+v, %v", s, err)
		}
	}
	b.ReportMetric(1000000, "rows")
}

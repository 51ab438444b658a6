package mariadb

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rewind/rewind/backup/testserver"
)

// TestScanner reads a binlog file the private server wrote (DDL, autocommit and multi-statement InnoDB
// transactions, a MyISAM write, a rollback), fed in chunks of random sizes as if it arrived over the network,
// and finds the same transaction ends as the server's own SHOW BINLOG EVENTS.
func TestScanner(t *testing.T) {
	srv := testserver.StartMariaDBBinlog(t)
	name := srv.CreateDatabase(t)
	db := srv.Open(t, name)
	var file string
	var pos int64
	if err := db.QueryRow("SHOW MASTER STATUS").Scan(&file, &pos, new(any), new(any)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("FLUSH BINARY LOGS"); err != nil { // a file of this test's statements only
		t.Fatal(err)
	}
	if err := db.QueryRow("SHOW MASTER STATUS").Scan(&file, &pos, new(any), new(any)); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"CREATE TABLE t (n int PRIMARY KEY, s text) ENGINE=InnoDB",
		"INSERT INTO t VALUES (1, 'one')",
		"BEGIN; INSERT INTO t VALUES (2, 'two'); UPDATE t SET s = 'uno' WHERE n = 1; COMMIT",
		"CREATE TABLE m (n int) ENGINE=MyISAM",
		"INSERT INTO m VALUES (1)",
		"BEGIN; INSERT INTO t VALUES (3, 'three'); ROLLBACK",
		"INSERT INTO t SELECT seq, repeat('x', 3000) FROM seq_10_to_200",
		"ALTER TABLE t ADD COLUMN c int",
		"DELETE FROM t WHERE n > 100",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if _, err := db.Exec("FLUSH BINARY LOGS"); err != nil {
		t.Fatal(err)
	}

	// The server's view: where each transaction ends.
	rows, err := db.Query("SHOW BINLOG EVENTS IN '" + file + "'")
	if err != nil {
		t.Fatal(err)
	}
	var want []int64
	var next string
	standalone := false
	for rows.Next() {
		var logName, typ, info string
		var at, serverID, end int64
		if err := rows.Scan(&logName, &at, &typ, &serverID, &end, &info); err != nil {
			t.Fatal(err)
		}
		switch {
		case typ == "Gtid":
			standalone = !strings.HasPrefix(info, "BEGIN")
		case typ == "Xid", typ == "Query" && (standalone || info == "COMMIT"):
			want = append(want, end)
			standalone = false
		case typ == "Rotate":
			next, _, _ = strings.Cut(info, ";")
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(want) != 8 { // the 9 statements less the rollback
		t.Fatalf("the server lists %d transactions, want 8", len(want))
	}

	data, err := os.ReadFile(filepath.Join(srv.Dir, "data", file))
	if err != nil {
		t.Fatal(err)
	}
	var s scanner
	var got []int64
	var pending []byte
	for rest := data; len(rest) > 0; {
		n := min(1+rand.IntN(700), len(rest))
		pending = append(pending, rest[:n]...)
		rest = rest[n:]
		ends, used, err := s.feed(pending)
		if err != nil {
			t.Fatal(err)
		}
		pending = pending[used:]
		for _, e := range ends {
			got = append(got, e.End)
		}
	}
	if len(pending) != 0 || s.off != int64(len(data)) {
		t.Errorf("read %d of %d bytes, %d left over", s.off, len(data), len(pending))
	}
	if strings.Join(fmtInts(got), ",") != strings.Join(fmtInts(want), ",") {
		t.Errorf("transaction ends = %v, want the server's %v", got, want)
	}
	if s.rotate != next || next == "" {
		t.Errorf("rotates to %q, want %q", s.rotate, next)
	}
	if s.checksum != 4 {
		t.Errorf("checksum = %d bytes, want CRC32's 4 (MariaDB's default)", s.checksum)
	}
}

func fmtInts(ns []int64) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = strconv.FormatInt(n, 10)
	}
	return out
}

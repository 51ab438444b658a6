package testserver

import (
	"database/sql"
	"os"
	"sync"
	"testing"

	"github.com/rewind/rewind/backup/scratch"
)

// MariaDB is a private MariaDB server whose root user has no password.
type MariaDB struct {
	*scratch.MariaDB
}

var (
	myOnce sync.Once
	mySrv  *MariaDB
	myErr  error

	binlogOnce sync.Once
	binlogSrv  *MariaDB
	binlogErr  error
)

// StartMariaDB returns the test binary's private MariaDB server, starting it on first use; it skips t when
// MariaDB is not installed.
func StartMariaDB(t testing.TB) *MariaDB {
	t.Helper()
	myOnce.Do(func() { mySrv, myErr = startMariaDB() })
	checkStart(t, "MariaDB", myErr)
	return mySrv
}

// StartMariaDBBinlog returns the test binary's private MariaDB server that writes a binary log as
// point-in-time following needs it (log_bin, binlog_format=ROW, server_id 1), starting it on first use; it is
// another server than StartMariaDB's, which has no binary log. It skips t when MariaDB is not installed.
func StartMariaDBBinlog(t testing.TB) *MariaDB {
	t.Helper()
	binlogOnce.Do(func() {
		binlogSrv, binlogErr = startMariaDB("--log-bin=binlog", "--binlog-format=ROW", "--server-id=1")
	})
	checkStart(t, "MariaDB (binary log)", binlogErr)
	return binlogSrv
}

func startMariaDB(args ...string) (*MariaDB, error) {
	dir, err := tempDir("rewind-my-")
	if err != nil {
		return nil, err
	}
	srv, err := scratch.StartMariaDB(dir, scratch.MariaDBOptions{Args: append([]string{"--event-scheduler=ON"}, args...)})
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	register(func() { _ = srv.Stop() })
	return &MariaDB{srv}, nil
}

// Open returns a pool of root connections to database db, closed at the end of the test.
func (s *MariaDB) Open(t testing.TB, db string) *sql.DB {
	t.Helper()
	d, err := sql.Open("mysql", s.DSN(db))
	if err != nil {
		t.Fatalf("open %s: %v", db, err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// CreateDatabase creates a fresh database, drops it and every database whose name starts with it at the end
// of the test, and returns its name.
func (s *MariaDB) CreateDatabase(t testing.TB) string {
	t.Helper()
	name := UniqueName("t_")
	db := s.Open(t, "")
	if _, err := db.Exec("CREATE DATABASE `" + name + "` CHARACTER SET utf8mb4"); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		d, err := sql.Open("mysql", s.DSN(""))
		if err != nil {
			return
		}
		defer d.Close()
		rows, err := d.Query("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE ?", name+"%")
		if err != nil {
			return
		}
		var names []string
		for rows.Next() {
			var n string
			if rows.Scan(&n) == nil {
				names = append(names, n)
			}
		}
		rows.Close()
		for _, n := range names {
			_, _ = d.Exec("DROP DATABASE IF EXISTS `" + n + "`")
		}
	})
	return name
}

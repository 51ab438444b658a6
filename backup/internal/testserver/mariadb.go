package testserver

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// MariaDB is a private MariaDB server whose root user has no password.
type MariaDB struct {
	Port int
	Dir  string
}

var (
	myOnce sync.Once
	mySrv  *MariaDB
	myErr  error
)

// StartMariaDB returns the test binary's private MariaDB server, starting it on first use; it skips t when
// MariaDB is not installed.
func StartMariaDB(t testing.TB) *MariaDB {
	t.Helper()
	myOnce.Do(func() { mySrv, myErr = startMariaDB() })
	checkStart(t, "MariaDB", myErr)
	return mySrv
}

func startMariaDB() (*MariaDB, error) {
	install, err := lookBin("mariadb-install-db", "/usr/bin", "/usr/sbin")
	if err != nil {
		return nil, err
	}
	server, err := lookBin("mariadbd", "/usr/sbin")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "rewind-my-")
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	cmd := exec.Command(install, "--no-defaults", "--datadir="+data, "--user=root",
		"--auth-root-authentication-method=normal", "--skip-test-db")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mariadb-install-db: %v: %s", err, out)
	}
	var last error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		p, err := start(exec.Command(server, "--no-defaults", "--datadir="+data, "--user=root",
			"--port="+strconv.Itoa(port), "--bind-address=127.0.0.1", "--socket="+filepath.Join(dir, "sock"),
			"--pid-file="+filepath.Join(dir, "pid"), "--skip-log-bin", "--innodb-buffer-pool-size=32M",
			"--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0", "--skip-name-resolve",
			"--event-scheduler=ON"), nil)
		if err != nil {
			return nil, err
		}
		srv := &MariaDB{Port: port, Dir: dir}
		err = p.waitReady(60*time.Second, func() error {
			db, err := sql.Open("mysql", srv.DSN(""))
			if err != nil {
				return err
			}
			defer db.Close()
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			return db.PingContext(ctx)
		})
		if err != nil {
			last = err
			continue
		}
		register(func() {
			p.stop(syscall.SIGTERM)
			_ = os.RemoveAll(dir)
		})
		return srv, nil
	}
	return nil, last
}

// URL returns root's Rewind-style URL (mysql://root:@127.0.0.1:PORT/db) for database db.
func (s *MariaDB) URL(db string) string {
	return fmt.Sprintf("mysql://root:@127.0.0.1:%d/%s", s.Port, db)
}

// DSN returns root's go-sql-driver DSN for database db.
func (s *MariaDB) DSN(db string) string {
	c := mysql.NewConfig()
	c.User = "root"
	c.Net = "tcp"
	c.Addr = "127.0.0.1:" + strconv.Itoa(s.Port)
	c.DBName = db
	c.MultiStatements = true
	c.ParseTime = false
	c.Collation = "utf8mb4_general_ci"
	return c.FormatDSN()
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

package scratch

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
)

// MariaDBOptions tune a private MariaDB server.
type MariaDBOptions struct {
	// Args are more server arguments, e.g. "--event-scheduler=ON".
	Args []string
}

// MariaDB is a private MariaDB server whose root user has no password.
type MariaDB struct {
	Port int
	Dir  string

	proc *process
}

// StartMariaDB installs a data directory in dir (created; it must be empty) and starts a server on it,
// returning once it accepts connections.
func StartMariaDB(dir string, opt MariaDBOptions) (*MariaDB, error) {
	install, err := lookBin("mariadb-install-db", "/usr/bin", "/usr/sbin")
	if err != nil {
		return nil, err
	}
	server, err := lookBin("mariadbd", "/usr/sbin")
	if err != nil {
		return nil, err
	}
	if err := makeDir(dir); err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	cmd := exec.Command(install, "--no-defaults", "--datadir="+data, "--user=root",
		"--auth-root-authentication-method=normal", "--skip-test-db")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mariadb-install-db: %v: %s", err, out)
	}
	srv := &MariaDB{Dir: dir}
	p, port, err := startReady(dir, nil, 60*time.Second, func(port int) *exec.Cmd {
		args := append([]string{"--no-defaults", "--datadir=" + data, "--user=root",
			"--port=" + strconv.Itoa(port), "--bind-address=127.0.0.1", "--socket=" + filepath.Join(dir, "sock"),
			"--pid-file=" + filepath.Join(dir, "pid"), "--skip-log-bin", "--innodb-buffer-pool-size=32M",
			"--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0", "--skip-name-resolve"}, opt.Args...)
		return exec.Command(server, args...)
	}, func(port int) error {
		srv.Port = port
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
		return nil, fmt.Errorf("start mariadb: %w", err)
	}
	srv.Port, srv.proc = port, p
	return srv, nil
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

// Stop stops the server and removes its directory.
func (s *MariaDB) Stop() error {
	s.proc.stop(syscall.SIGTERM)
	if err := os.RemoveAll(s.Dir); err != nil {
		return fmt.Errorf("remove mariadb directory: %w", err)
	}
	return nil
}

package scratch

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
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
	// Socket makes the server listen only on the Unix socket Socket() (--skip-networking): no TCP port.
	Socket bool
}

// MariaDB is a private MariaDB server whose root user has no password.
type MariaDB struct {
	Port int // 0 for a server listening only on its socket
	Dir  string

	proc  *process
	run   func(port int) *exec.Cmd
	ready func(port int) error
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
	// A private tmpdir: the bootstrap's temporary tables in the shared /tmp were seen to vanish under it
	// ("Could not remove temporary table '/tmp/#sql-temptable-…', error: 2") with other servers starting at once.
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return nil, fmt.Errorf("create the server's tmpdir: %w", err)
	}
	cmd := exec.Command(install, "--no-defaults", "--datadir="+data, "--user=root", "--tmpdir="+tmp,
		"--auth-root-authentication-method=normal", "--skip-test-db")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mariadb-install-db: %v: %s", err, out)
	}
	srv := &MariaDB{Dir: dir}
	srv.run = func(port int) *exec.Cmd {
		listen := []string{"--port=" + strconv.Itoa(port), "--bind-address=127.0.0.1"}
		if opt.Socket {
			listen = []string{"--skip-networking"}
		}
		args := append(append([]string{"--no-defaults", "--datadir=" + data, "--user=root", "--tmpdir=" + tmp}, listen...),
			"--socket="+srv.Socket(), "--pid-file="+filepath.Join(dir, "pid"), "--skip-log-bin",
			"--innodb-buffer-pool-size=32M", "--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0",
			"--skip-name-resolve")
		return exec.Command(server, append(args, opt.Args...)...)
	}
	srv.ready = func(port int) error {
		if !opt.Socket {
			srv.Port = port
		}
		db, err := sql.Open("mysql", srv.DSN(""))
		if err != nil {
			return err
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return db.PingContext(ctx)
	}
	p, port, err := startReady(dir, nil, 60*time.Second, srv.run, srv.ready)
	if err != nil {
		return nil, fmt.Errorf("start mariadb: %w", err)
	}
	srv.proc = p
	if !opt.Socket {
		srv.Port = port
	}
	return srv, nil
}

// Restart stops the server as a shutdown does (SIGTERM: it writes the end of its binary log) and starts it
// again on the same data, port and socket, returning once it accepts connections.
func (s *MariaDB) Restart() error {
	s.proc.stop(syscall.SIGTERM)
	p, err := start(s.run(s.Port), s.Dir, nil)
	if err != nil {
		return fmt.Errorf("restart mariadb: %w", err)
	}
	if err := p.waitReady(60*time.Second, func() error { return s.ready(s.Port) }); err != nil {
		return fmt.Errorf("restart mariadb: %w", err)
	}
	s.proc = p
	return nil
}

// Socket is the path of the server's Unix socket.
func (s *MariaDB) Socket() string { return filepath.Join(s.Dir, "sock") }

// URL returns root's Rewind-style URL for database db: mysql://root:@127.0.0.1:PORT/db, or
// mysql://root:@localhost/db?socket=PATH for a server listening only on its socket.
func (s *MariaDB) URL(db string) string {
	if s.Port == 0 {
		return "mysql://root:@localhost/" + db + "?" + url.Values{"socket": {s.Socket()}}.Encode()
	}
	return fmt.Sprintf("mysql://root:@127.0.0.1:%d/%s", s.Port, db)
}

// DSN returns root's go-sql-driver DSN for database db.
func (s *MariaDB) DSN(db string) string {
	c := mysql.NewConfig()
	c.User = "root"
	c.Net = "tcp"
	c.Addr = "127.0.0.1:" + strconv.Itoa(s.Port)
	if s.Port == 0 {
		c.Net, c.Addr = "unix", s.Socket()
	}
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

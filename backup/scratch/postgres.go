package scratch

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresBinDir is where Debian installs the PostgreSQL 15 server binaries (not on PATH), the major version of
// the machine's tools.
const PostgresBinDir = "/usr/lib/postgresql/15/bin"

// PostgresOptions tune a private PostgreSQL server.
type PostgresOptions struct {
	// HBA is the server's pg_hba.conf; empty trusts every local and loopback connection.
	HBA string
	// Args are more server arguments, e.g. "-c", "max_connections=200".
	Args []string
}

// Postgres is a private PostgreSQL server whose superuser is "postgres". It runs as the postgres user when
// this process is root (PostgreSQL refuses root).
type Postgres struct {
	Port int
	Dir  string // the server's directory: its data directory and socket are inside

	proc *process
}

// StartPostgres initialises a cluster in dir (created; it must be empty) and starts a server on it, returning
// once it accepts connections.
func StartPostgres(dir string, opt PostgresOptions) (*Postgres, error) {
	initdb, err := lookBin("initdb", PostgresBinDir)
	if err != nil {
		return nil, err
	}
	server, err := lookBin("postgres", PostgresBinDir)
	if err != nil {
		return nil, err
	}
	cred, err := userCredential("postgres")
	if err != nil {
		return nil, err
	}
	if err := makeDir(dir); err != nil {
		return nil, err
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, fmt.Errorf("give the server directory to the postgres user: %w", err)
		}
	}
	data := filepath.Join(dir, "data")
	cmd := exec.Command(initdb, "-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8",
		"--locale=C.UTF-8")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	hba := opt.HBA
	if hba == "" {
		hba = "local all all trust\nhost all all 127.0.0.1/32 trust\n"
	}
	if err := os.WriteFile(filepath.Join(data, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		return nil, fmt.Errorf("write pg_hba.conf: %w", err)
	}
	if cred != nil {
		_ = os.Chown(filepath.Join(data, "pg_hba.conf"), int(cred.Uid), int(cred.Gid))
	}
	srv := &Postgres{Dir: dir}
	p, port, err := startReady(dir, cred, 30*time.Second, func(port int) *exec.Cmd {
		args := append([]string{"-D", data, "-p", strconv.Itoa(port), "-k", dir,
			"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
			"-c", "full_page_writes=off"}, opt.Args...)
		return exec.Command(server, args...)
	}, func(port int) error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Port = port
		c, err := pgx.Connect(ctx, srv.URL("postgres"))
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		// Another process may have taken the same free port a moment earlier: then this server cannot bind
		// it and exits, and the poll must not mistake the other server for ours.
		var dataDir string
		if err := c.QueryRow(ctx, "SELECT current_setting('data_directory')").Scan(&dataDir); err != nil {
			return err
		}
		if dataDir != data {
			return fmt.Errorf("port %d is another server's (%s)", port, dataDir)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("start postgresql: %w", err)
	}
	srv.Port, srv.proc = port, p
	return srv, nil
}

// URL returns the superuser's connection URL for database db.
func (s *Postgres) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.Port, url.PathEscape(db))
}

// Stop stops the server (a fast shutdown) and removes its directory.
func (s *Postgres) Stop() error {
	s.proc.stop(syscall.SIGINT)
	if err := os.RemoveAll(s.Dir); err != nil {
		return fmt.Errorf("remove postgresql directory: %w", err)
	}
	return nil
}

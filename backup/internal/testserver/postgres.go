package testserver

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresBinDir is where Debian installs the PostgreSQL 15 server binaries (not on PATH).
const PostgresBinDir = "/usr/lib/postgresql/15/bin"

// Postgres is a private PostgreSQL server. Its superuser "postgres" is trusted without a password on loopback;
// every other role (see CreateRole) must give its password (scram-sha-256), so wrong passwords are refused.
type Postgres struct {
	Port int
	Dir  string // data directory, owned by the postgres user
}

var (
	pgOnce sync.Once
	pgSrv  *Postgres
	pgErr  error
)

// StartPostgres returns the test binary's private PostgreSQL server, starting it on first use; it skips t
// when PostgreSQL is not installed.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	pgOnce.Do(func() { pgSrv, pgErr = startPostgres() })
	checkStart(t, "PostgreSQL", pgErr)
	return pgSrv
}

func startPostgres() (*Postgres, error) {
	initdb, err := lookBin("initdb", PostgresBinDir)
	if err != nil {
		return nil, err
	}
	postgres, err := lookBin("postgres", PostgresBinDir)
	if err != nil {
		return nil, err
	}
	cred, err := userCredential("postgres")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "rewind-pg-")
	if err != nil {
		return nil, err
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, err
		}
	}
	data := filepath.Join(dir, "data")
	cmd := exec.Command(initdb, "-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8",
		"--locale=C.UTF-8")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	// The replication lines let tests follow the server's WAL (backup/pitr) as the superuser or a role with
	// REPLICATION; wal_level is replica, the default.
	hba := "local all all trust\nhost all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n" +
		"host replication postgres 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 scram-sha-256\n"
	if err := os.WriteFile(filepath.Join(data, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		return nil, err
	}
	var last error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		p, err := start(exec.Command(postgres, "-D", data, "-p", strconv.Itoa(port), "-k", dir,
			"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
			"-c", "full_page_writes=off", "-c", "max_connections=200", "-c", "shared_buffers=32MB"), cred)
		if err != nil {
			return nil, err
		}
		srv := &Postgres{Port: port, Dir: dir}
		err = p.waitReady(30*time.Second, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			c, err := pgx.Connect(ctx, srv.URL("postgres"))
			if err != nil {
				return err
			}
			defer c.Close(ctx)
			// Another test binary may have taken the same free port a moment earlier: then this server
			// cannot bind it and exits, and the poll must not mistake the other binary's server for ours.
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
			last = err
			continue
		}
		register(func() {
			p.stop(syscall.SIGINT) // fast shutdown
			_ = os.RemoveAll(dir)
		})
		return srv, nil
	}
	return nil, last
}

// userCredential returns the credential to run a server as name when we are root, nil otherwise.
func userCredential(name string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL refuses to run as root and there is no %q user: %w", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// URL returns the superuser's connection URL for database db.
func (s *Postgres) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.Port, url.PathEscape(db))
}

// Exec runs sql as the superuser in database db and fails t on error.
func (s *Postgres) Exec(t testing.TB, db, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := pgx.Connect(ctx, s.URL(db))
	if err != nil {
		t.Fatalf("connect to %s: %v", db, err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("exec %q: %v", sql, err)
	}
}

// CreateDatabase creates a fresh database owned by owner ("" for the superuser), drops it (and every
// database whose name starts with it, such as those a restore leaves beside it) at the end of the test, and
// returns its name.
func (s *Postgres) CreateDatabase(t testing.TB, owner string) string {
	t.Helper()
	name := UniqueName("t_")
	q := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if owner != "" {
		q += " OWNER " + pgx.Identifier{owner}.Sanitize()
	}
	s.Exec(t, "postgres", q)
	t.Cleanup(func() { s.dropDatabases(name) })
	return name
}

func (s *Postgres) dropDatabases(prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return
	}
	defer c.Close(ctx)
	rows, err := c.Query(ctx, "SELECT datname FROM pg_database WHERE starts_with(datname, $1)", prefix)
	if err != nil {
		return
	}
	names, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	for _, n := range names {
		_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{n}.Sanitize()+" WITH (FORCE)")
	}
}

// CreateRole creates a login role with the given password and attributes (e.g. "CREATEDB"), dropped at the
// end of the test, and returns its name.
func (s *Postgres) CreateRole(t testing.TB, password, attrs string) string {
	t.Helper()
	name := UniqueName("r_")
	s.Exec(t, "postgres", fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s' %s",
		pgx.Identifier{name}.Sanitize(), strings.ReplaceAll(password, "'", "''"), attrs))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if c, err := pgx.Connect(ctx, s.URL("postgres")); err == nil {
			defer c.Close(ctx)
			_, _ = c.Exec(ctx, "DROP ROLE IF EXISTS "+pgx.Identifier{name}.Sanitize())
		}
	})
	return name
}

// RoleURL returns the URL of role with password for database db.
func (s *Postgres) RoleURL(role, password, db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable",
		url.UserPassword(role, password).String(), s.Port, url.PathEscape(db))
}

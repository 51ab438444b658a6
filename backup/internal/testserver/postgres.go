package testserver

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rewind/rewind/backup/scratch"
)

// PostgresBinDir is where Debian installs the PostgreSQL 15 server binaries (not on PATH).
const PostgresBinDir = scratch.PostgresBinDir

// Postgres is a private PostgreSQL server. Its superuser "postgres" is trusted without a password on loopback;
// every other role (see CreateRole) must give its password (scram-sha-256), so wrong passwords are refused.
type Postgres struct {
	*scratch.Postgres
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
	dir, err := tempDir("rewind-pg-")
	if err != nil {
		return nil, err
	}
	srv, err := scratch.StartPostgres(dir, scratch.PostgresOptions{
		// The replication lines let tests follow the server's WAL (backup/pitr) as the superuser or a role with
		// REPLICATION; wal_level is replica, the default.
		HBA: "local all all trust\nhost all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n" +
			"host replication postgres 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 scram-sha-256\n",
		Args: []string{"-c", "max_connections=200", "-c", "shared_buffers=32MB"},
	})
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	register(func() { _ = srv.Stop() })
	return &Postgres{srv}, nil
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

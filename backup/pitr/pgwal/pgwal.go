// Package pgwal is Rewind's point-in-time protection of PostgreSQL services: a Follower streams a server's WAL
// (pg_receivewal --slot --synchronous into a local spool) and takes base backups (pg_basebackup, tar), and
// ships each base and each WAL segment into the kopia repository as a snapshot, with the commit times pg_waldump
// finds in it. The segment being written (.partial) is shipped again each time it grows, so the newest commits
// are in the repository within about a second. Rebuild puts a base and the WAL up to T into a private scratch
// PostgreSQL and recovers it to T (recovery_target_time, then promote); the caller takes a normal backup of the
// scratch database and restores that through the engine, so a restore to T is undone like any other restore.
//
// What the server needs (Check verifies each, with a message saying what to change): wal_level replica or
// logical, max_wal_senders of at least 3 (pg_receivewal, and pg_basebackup's two), a free replication slot, the
// service role with REPLICATION (no superuser needed), and a pg_hba.conf `replication` line for it. The scratch
// server runs the binaries of the server's major version (/usr/lib/postgresql/<major>/bin).
package pgwal

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Margin is how long after a commit its WAL may still be on the way (the server's WAL writer, the network): the
// stream counts as covering up to Margin before the moment its newest data was read for shipping.
const Margin = time.Second

// SlotName is the replication slot of env's service: rewind_<env>_<service>, in the characters slots allow.
func SlotName(env, service string) string {
	clean := func(s string) string {
		return strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' {
				return r
			}
			return '_'
		}, strings.ToLower(s))
	}
	name := "rewind_" + clean(env) + "_" + clean(service)
	if len(name) > 63 {
		name = name[:63]
	}
	return name
}

// conn is a service URL split for the PostgreSQL tools: the URL without its password (for -d) and the
// password (for PGPASSWORD), so no secret is on a command line.
type conn struct {
	dsn      string
	password string
	user     string
	database string
}

func parseConn(raw string) (conn, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return conn{}, errors.New("url must look like postgres://user:password@host:5432/dbname") // never echo it
	}
	c := conn{database: strings.TrimPrefix(u.Path, "/")}
	if u.User != nil {
		c.password, _ = u.User.Password()
		c.user = u.User.Username()
		u.User = url.User(c.user)
	}
	q := u.Query()
	if p := q.Get("password"); p != "" {
		c.password = p
		q.Del("password")
		u.RawQuery = q.Encode()
	}
	c.dsn = u.String()
	return c, nil
}

func (c conn) env() []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C", "TZ=UTC"}
	if c.password != "" {
		env = append(env, "PGPASSWORD="+c.password)
	}
	return env
}

func (c conn) connect(ctx context.Context) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(c.dsn)
	if err != nil {
		return nil, fmt.Errorf("connection settings: %w", err)
	}
	cfg.Password = c.password
	return pgx.ConnectConfig(ctx, cfg)
}

// system is what IDENTIFY_SYSTEM says of a server.
type system struct {
	ID       string
	Timeline int
	XLogPos  string
}

// identify asks the server over a replication connection which cluster and timeline it is; it fails like the
// WAL stream would when the role lacks REPLICATION or pg_hba.conf has no replication line.
func (c conn) identify(ctx context.Context) (system, error) {
	cfg, err := pgconn.ParseConfig(c.dsn)
	if err != nil {
		return system{}, fmt.Errorf("connection settings: %w", err)
	}
	cfg.Password = c.password
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["replication"] = "true"
	pc, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return system{}, err
	}
	defer pc.Close(context.WithoutCancel(ctx)) //nolint:errcheck
	res, err := pc.Exec(ctx, "IDENTIFY_SYSTEM").ReadAll()
	if err != nil {
		return system{}, fmt.Errorf("IDENTIFY_SYSTEM: %w", err)
	}
	if len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].Rows[0]) < 3 {
		return system{}, errors.New("IDENTIFY_SYSTEM: unexpected answer")
	}
	row := res[0].Rows[0]
	tli, _ := strconv.Atoi(string(row[1]))
	return system{ID: string(row[0]), Timeline: tli, XLogPos: string(row[2])}, nil
}

// BinDir finds the server binaries of PostgreSQL major version major: dir when set, else Debian's
// /usr/lib/postgresql/<major>/bin.
func BinDir(dir string, major int) (string, error) {
	if dir == "" {
		dir = fmt.Sprintf("/usr/lib/postgresql/%d/bin", major)
	}
	for _, tool := range []string{"postgres", "pg_receivewal", "pg_basebackup", "pg_waldump"} {
		if _, err := os.Stat(filepath.Join(dir, tool)); err != nil {
			return "", fmt.Errorf("the PostgreSQL %d tools are not installed (%s is missing): install the "+
				"server package of the same major version as the followed server (Debian: apt install "+
				"postgresql-%d)", major, filepath.Join(dir, tool), major)
		}
	}
	return dir, nil
}

// serverMajor returns the server's major version (15 for 15.4).
func serverMajor(ctx context.Context, c *pgx.Conn) (int, error) {
	var num int
	if err := c.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&num); err != nil {
		return 0, fmt.Errorf("read server version: %w", err)
	}
	return num / 10000, nil
}

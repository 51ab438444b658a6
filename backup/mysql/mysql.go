// Package mysql is Rewind's source for one MariaDB or MySQL database (schema).
//
// Capture: Pin opens its own connection and runs START TRANSACTION WITH CONSISTENT SNAPSHOT (REPEATABLE
// READ), then, inside that transaction, reads the schema: tables and sequences (SHOW CREATE TABLE), views,
// triggers, stored procedures and functions, and events. Folder then dumps every table's rows through that same
// transaction, in Go, as a plain SQL file (dump.sql, loadable with the stock `mariadb`/`mysql` client into an
// empty database). For InnoDB tables the rows are exactly those committed when Pin returned, whatever is written
// afterwards. Limits, from the server: non-transactional tables (MyISAM, Aria, MEMORY) are read when they are
// dumped, not at the pin; a table altered or dropped by DDL after the pin fails the dump with the server's
// "Table definition has changed" error rather than producing an inconsistent backup; sequences are read at the
// pin, like every other object's definition.
//
// Restore: Prepare creates a sibling schema `<db>_rewind_<id>` (same character set and collation) and loads the
// tables, rows and sequences into it while the live database keeps serving; views, routines, triggers and
// events are kept aside as SQL. Switch, with requests held: reads the live schema's views, triggers, routines
// and events (they become part of the Replaced state), drops them, moves every table in one atomic
// `RENAME TABLE live.a TO old.a, ..., tmp.a TO live.a, ...` (old = `<db>_rewind_old_<id>`), then creates the
// backup's views, routines, triggers and events in the live schema. Views, triggers, routines and events cannot
// be moved between schemas by RENAME TABLE, hence the drop/create around it; if creating them fails, Switch
// undoes the rename and puts the old objects back. The Replaced state is the old schema's tables plus the old
// objects' SQL, held in memory (the old schema holds the tables only, so its events never fire): Pin captures
// them, Revert swaps them back the same way, Discard drops the old schema.
//
// Privileges: backing up needs SELECT, SHOW VIEW, TRIGGER, EVENT and access to the routines' bodies (the
// definer, or SELECT on mysql.proc) on the database; restoring also needs every privilege on the sibling
// schemas, e.g. GRANT ALL ON `shop`.* and GRANT ALL ON `shop\_rewind\_%`.* TO the user (tested this way).
// Objects keep their DEFINER, so restoring needs a user allowed to create objects for those definers (the
// same user, or one with SET USER / SUPER). Users, grants and other databases are not part of a backup.
package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/rewind/rewind/backup"
)

// Names of the files in a service's folder.
const (
	DumpFile = "dump.sql"
	InfoFile = "info.json"
)

// Source is the MySQL/MariaDB source of one database.
type Source struct {
	name     string
	database string
	cfg      *mysql.Config
}

var (
	_ backup.Source  = (*Source)(nil)
	_ backup.Sweeper = (*Source)(nil)
)

// New builds the Source of spec (a backup.Driver): spec.URL is mysql://user:password@host:port/dbname
// (query parameters are passed to the driver, e.g. tls=true), see Config.
func New(spec backup.ServiceSpec) (backup.Source, error) {
	cfg, db, err := Config(spec)
	if err != nil {
		return nil, err
	}
	return &Source{name: spec.Name, database: db, cfg: cfg}, nil
}

// Config parses spec.URL, mysql://user:password@host:port/dbname, into the driver's settings (with no database
// selected) and the database name. Query parameters are passed to the driver (tls=true is its TLS setting),
// except socket=PATH, which connects through that Unix socket instead of host:port (a scratch server's).
func Config(spec backup.ServiceSpec) (*mysql.Config, string, error) {
	u, err := url.Parse(spec.URL)
	if err != nil || (u.Scheme != "mysql" && u.Scheme != "mariadb") || u.Host == "" {
		// never echo the URL: it may hold a password
		return nil, "", fmt.Errorf("mysql service %q: url must look like mysql://user:password@host:3306/dbname", spec.Name)
	}
	db := strings.TrimPrefix(u.Path, "/")
	if db == "" || strings.Contains(db, "/") {
		return nil, "", fmt.Errorf("mysql service %q: url names no database", spec.Name)
	}
	cfg := mysql.NewConfig()
	if u.User != nil {
		cfg.User = u.User.Username()
		cfg.Passwd, _ = u.User.Password()
	}
	cfg.Net = "tcp"
	cfg.Addr = u.Host
	if u.Port() == "" {
		cfg.Addr = u.Host + ":3306"
	}
	cfg.Params = map[string]string{}
	for k, v := range u.Query() {
		switch k {
		case "tls":
			cfg.TLSConfig = v[0]
		case "socket":
			cfg.Net, cfg.Addr = "unix", v[0]
		default:
			cfg.Params[k] = v[0]
		}
	}
	cfg.Timeout = 10 * time.Second
	cfg.AllowNativePasswords = true
	cfg.MultiStatements = false
	cfg.MaxAllowedPacket = 0 // ask the server
	return cfg, db, nil
}

// open returns a pool with no default database; callers take one connection from it.
func (s *Source) open() (*sql.DB, error) {
	c := s.cfg.Clone()
	c.DBName = ""
	connector, err := mysql.NewConnector(c)
	if err != nil {
		return nil, fmt.Errorf("mysql service %q: %w", s.name, err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(2)
	return db, nil
}

// session opens one connection with Rewind's session settings: utf8mb4, UTC, and an SQL mode that neither
// rewrites values (NO_AUTO_VALUE_ON_ZERO keeps explicit zero ids) nor changes quoting.
func (s *Source) session(ctx context.Context) (*sql.DB, *sql.Conn, error) {
	db, err := s.open()
	if err != nil {
		return nil, nil, err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("connect to mysql server %s: %w", s.cfg.Addr, err)
	}
	for _, q := range []string{
		"SET NAMES utf8mb4",
		"SET SESSION time_zone = '+00:00'",
		"SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO'",
		"SET SESSION foreign_key_checks = 0",
		"SET SESSION unique_checks = 0",
		// RENAME TABLE waits for the metadata locks of open transactions on the live tables: fail after
		// a while (the server default is a day) instead of holding the environment's requests forever.
		"SET SESSION lock_wait_timeout = 30",
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			conn.Close()
			db.Close()
			return nil, nil, fmt.Errorf("mysql session (%s): %w", q, err)
		}
	}
	return db, conn, nil
}

// quoteIdent quotes a MySQL identifier.
func quoteIdent(name string) string {
	return "`" + strings.ReplaceAll(name, "`", "``") + "`"
}

// quoteString quotes a string literal for the dump's session (backslash escapes on).
func quoteString(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	writeEscaped(&b, []byte(s))
	b.WriteByte('\'')
	return b.String()
}

func writeEscaped(b *strings.Builder, v []byte) {
	for _, c := range v {
		switch c {
		case 0:
			b.WriteString(`\0`)
		case '\'':
			b.WriteString(`\'`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case 0x1a:
			b.WriteString(`\Z`)
		default:
			b.WriteByte(c)
		}
	}
}

// sibling returns the name of a schema beside base, shortened to MySQL's 64-character limit.
func sibling(base, infix, id string) string {
	suffix := "_rewind_" + infix + id
	if len(base)+len(suffix) > 64 {
		base = base[:64-len(suffix)]
	}
	return base + suffix
}

// Package mariadb is Rewind's point-in-time protection of MariaDB (and MySQL) services, a pitr.Kind for the
// service type "mysql".
//
// Follow streams the server's binary log with `mariadb-binlog --read-from-remote-server --raw --stop-never`
// into the follower's spool and reads each file's bytes as they arrive (woken by inotify), recording its own
// receive time for every transaction end (XID event, COMMIT query, or a standalone statement such as DDL) with
// the file offset just past it: T maps to a binlog position with sub-second precision, where the server's own
// event timestamps have one-second resolution. Each binlog file is one segment, named <epoch>_<file> (the epoch
// is when this unbroken stream started, so a new server or a purged binlog never reuses a shipped name); the
// growing file is shipped again every ShipEvery, cut at its last transaction end, with a "commits" file (the
// receive times, pitr.MarshalCommits) and a "positions" file (the offset after each of those transactions).
// Bases are `mariadb-dump --single-transaction --master-data=2 --gtid` of the service's database, which name the
// binlog position they are consistent with (and the server's VERSION(): Rebuild refuses a newer one than its
// own mariadbd). A restart streams the first file not shipped complete again from its start, keeping the
// receive times journaled in the spool as they were read (received/<file>); transactions the server wrote
// while no stream was connected are dated by their event timestamp plus one second (when received later than
// that): within a second, not exactly. A purged binlog, another server (server_id@hostname) or a lost spool is
// a Recorder.Gap and a new epoch with a new base.
//
// Rebuild starts a private scratch mariadbd on a Unix socket (no TCP), loads the base, and replays the binlog
// from the base's position to the end of the last transaction at or before T (mariadb-binlog --database
// --start-position/--stop-position | mariadb).
//
// What the server needs (Check verifies each, saying what to change): log_bin, binlog_format=ROW, a server_id
// other than 0, binlog retention longer than any outage of Rewind, and the service user with SELECT, SHOW VIEW,
// TRIGGER, EVENT, LOCK TABLES, REPLICATION SLAVE and BINLOG MONITOR (REPLICATION CLIENT) on *.*. Rewind's host
// needs the MariaDB client tools (mariadb, mariadb-dump, mariadb-binlog) and, for Rebuild, the server
// (mariadbd, mariadb-install-db) of a version at least the followed server's.
package mariadb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/mysql"
	"github.com/rewind/rewind/backup/pitr"
)

// Kind is the point-in-time protection of MariaDB/MySQL services.
type Kind struct {
	// BinDir is where the MariaDB tools are; default: PATH, then /usr/bin and /usr/sbin.
	BinDir string
}

var _ pitr.Kind = (*Kind)(nil)

// Type is backup.TypeMySQL.
func (k *Kind) Type() string { return backup.TypeMySQL }

// Slot is "": a binlog stream keeps nothing on the server (retention is the server's binlog expiry).
func (k *Kind) Slot(env, service string) string { return "" }

// Release does nothing: the server keeps no state for the stream.
func (k *Kind) Release(ctx context.Context, env string, svc backup.ServiceSpec) error { return nil }

// epochLayout names a stream's epoch (its start), the prefix of its segment names; it sorts in time order.
const epochLayout = "20060102T150405.000000Z"

// segmentName is the segment of binlog file in the stream started at epoch. The file's number is padded to 10
// digits, so names keep sorting in stream order when the server's numbering outgrows its 6 digits
// (binlog.999999 is followed by binlog.1000000); the file in the segment keeps its own name.
func segmentName(epoch, file string) string {
	if i := strings.LastIndexByte(file, '.'); i >= 0 {
		if n, err := strconv.ParseUint(file[i+1:], 10, 32); err == nil {
			file = fmt.Sprintf("%s.%010d", file[:i], n)
		}
	}
	return epoch + "_" + file
}

// splitSegment splits a segment name into its epoch and binlog file name.
func splitSegment(name string) (epoch, file string, err error) {
	epoch, file, ok := strings.Cut(name, "_")
	if !ok || len(epoch) != len(epochLayout) || file == "" {
		return "", "", fmt.Errorf("%q is not a MariaDB segment name (<epoch>_<binlog file>)", name)
	}
	return epoch, file, nil
}

// NextSegment is the segment of the binlog file after name's: binlog.000041 → binlog.000042, same width.
func (k *Kind) NextSegment(name string) (string, error) {
	epoch, file, err := splitSegment(name)
	if err != nil {
		return "", err
	}
	next, err := nextFile(file)
	if err != nil {
		return "", err
	}
	return segmentName(epoch, next), nil
}

func nextFile(file string) (string, error) {
	i := strings.LastIndexByte(file, '.')
	n, err := strconv.ParseUint(file[i+1:], 10, 32)
	if i < 0 || err != nil {
		return "", fmt.Errorf("%q is not a binlog file name (<basename>.<number>)", file)
	}
	digits := len(file) - i - 1
	return fmt.Sprintf("%s.%0*d", file[:i], digits, n+1), nil
}

// position is a binlog position, "binlog.000001:2701046" in Base.StartLSN and Segment.LastLSN.
type position struct {
	File string
	Pos  int64
}

func (p position) String() string { return p.File + ":" + strconv.FormatInt(p.Pos, 10) }

func parsePosition(s string) (position, error) {
	i := strings.LastIndexByte(s, ':')
	n, err := strconv.ParseInt(s[i+1:], 10, 64)
	if i <= 0 || err != nil {
		return position{}, fmt.Errorf("%q is not a binlog position (file:offset)", s)
	}
	return position{File: s[:i], Pos: n}, nil
}

// client is a service's connection settings, for Go (cfg) and for the MariaDB tools (an option file).
type client struct {
	cfg      *gomysql.Config
	database string
}

func newClient(svc backup.ServiceSpec) (client, error) {
	cfg, db, err := mysql.Config(svc)
	if err != nil {
		return client{}, err
	}
	return client{cfg: cfg, database: db}, nil
}

func (c client) open() (*sql.DB, error) {
	cfg := c.cfg.Clone()
	cfg.DBName = ""
	conn, err := gomysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("connection settings: %w", err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(2)
	return db, nil
}

// optionFile writes the connection settings to a private option file in dir for the tools'
// --defaults-file, so that no password is on a command line or in the environment.
func (c client) optionFile(dir string) (string, error) {
	var b strings.Builder
	b.WriteString("[client]\n")
	line := func(k, v string) error {
		if strings.ContainsAny(v, "\n\r") {
			return fmt.Errorf("the service's %s holds a line break, which the MariaDB tools cannot read", k)
		}
		q := `"`
		if strings.Contains(v, `"`) {
			q = "'"
			if strings.Contains(v, "'") {
				return fmt.Errorf("the service's %s holds both quote characters, which the MariaDB tools' option "+
					"files cannot hold: change it", k)
			}
		}
		b.WriteString(k + "=" + q + strings.ReplaceAll(v, `\`, `\\`) + q + "\n")
		return nil
	}
	if err := line("user", c.cfg.User); err != nil {
		return "", err
	}
	if c.cfg.Passwd != "" {
		if err := line("password", c.cfg.Passwd); err != nil {
			return "", err
		}
	}
	if c.cfg.Net == "unix" {
		if err := line("socket", c.cfg.Addr); err != nil {
			return "", err
		}
	} else {
		host, port, err := net.SplitHostPort(c.cfg.Addr)
		if err != nil {
			return "", fmt.Errorf("the service's address %q: %w", c.cfg.Addr, err)
		}
		if err := line("host", host); err != nil {
			return "", err
		}
		b.WriteString("port=" + port + "\nprotocol=TCP\n")
	}
	if c.cfg.TLSConfig != "" && c.cfg.TLSConfig != "false" {
		b.WriteString("ssl\n")
	}
	f, err := os.CreateTemp(dir, "client-*.cnf")
	if err != nil {
		return "", fmt.Errorf("write the MariaDB tools' option file: %w", err)
	}
	if _, err := f.WriteString(b.String()); err != nil {
		f.Close()           //nolint:errcheck
		os.Remove(f.Name()) //nolint:errcheck
		return "", fmt.Errorf("write the MariaDB tools' option file: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("write the MariaDB tools' option file: %w", err)
	}
	return f.Name(), nil
}

// tool finds one of the MariaDB tools.
func (k *Kind) tool(name string) (string, error) {
	if k.BinDir != "" {
		p := filepath.Join(k.BinDir, name)
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s is not in %s: install the MariaDB client and server (Debian: apt install "+
				"mariadb-client mariadb-server) or fix the tools directory", name, k.BinDir)
		}
		return p, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/bin", "/usr/sbin"} {
		if _, err := os.Stat(filepath.Join(d, name)); err == nil {
			return filepath.Join(d, name), nil
		}
	}
	return "", fmt.Errorf("%s is not installed here: install the MariaDB client and server tools (Debian: apt "+
		"install mariadb-client mariadb-server) on Rewind's host", name)
}

// replicaID is the server id the binlog stream of env's service registers with (--stop-never-slave-server-id):
// one per stream, so two followers of one server do not take each other's place.
func replicaID(env, service string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(env + "/" + service)) //nolint:errcheck
	return 1<<30 | h.Sum32()&(1<<30-1)
}

// server is what the follower reads of the server.
type server struct {
	ID     string // server_id and hostname: another ID is another server, whose binlog is another stream
	Master position
	Logs   map[string]int64 // SHOW BINARY LOGS: file → size
}

func readServer(ctx context.Context, db *sql.DB) (server, error) {
	var s server
	var id uint32
	var host string
	if err := db.QueryRowContext(ctx, "SELECT @@server_id, @@hostname").Scan(&id, &host); err != nil {
		return s, fmt.Errorf("read the server's identity: %w", err)
	}
	s.ID = fmt.Sprintf("%d@%s", id, host)
	m, err := masterStatus(ctx, db)
	if err != nil {
		return s, err
	}
	s.Master = m
	rows, err := db.QueryContext(ctx, "SHOW BINARY LOGS")
	if err != nil {
		return s, fmt.Errorf("list the binary logs (SHOW BINARY LOGS needs BINLOG MONITOR): %w", err)
	}
	defer rows.Close() //nolint:errcheck
	s.Logs = map[string]int64{}
	cols, _ := rows.Columns()
	for rows.Next() {
		vals := make([]any, len(cols))
		var name string
		var size int64
		vals[0], vals[1] = &name, &size
		for i := 2; i < len(vals); i++ {
			vals[i] = new(sql.RawBytes)
		}
		if err := rows.Scan(vals...); err != nil {
			return s, fmt.Errorf("list the binary logs: %w", err)
		}
		s.Logs[name] = size
	}
	return s, rows.Err()
}

// errNoBinlog is returned when the server writes no binary log.
var errNoBinlog = errors.New("the server writes no binary log: set log_bin in its configuration and restart it " +
	"(run Test on the Settings tab)")

func masterStatus(ctx context.Context, db *sql.DB) (position, error) {
	rows, err := db.QueryContext(ctx, "SHOW MASTER STATUS")
	if err != nil {
		return position{}, fmt.Errorf("read the binlog position (SHOW MASTER STATUS needs BINLOG MONITOR): %w", err)
	}
	defer rows.Close() //nolint:errcheck
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return position{}, fmt.Errorf("read the binlog position: %w", err)
		}
		return position{}, errNoBinlog
	}
	cols, _ := rows.Columns()
	vals := make([]any, len(cols))
	var p position
	vals[0], vals[1] = &p.File, &p.Pos
	for i := 2; i < len(vals); i++ {
		vals[i] = new(sql.RawBytes)
	}
	if err := rows.Scan(vals...); err != nil {
		return position{}, fmt.Errorf("read the binlog position: %w", err)
	}
	return p, nil
}

// epochOf formats t as a stream epoch.
func epochOf(t time.Time) string { return t.UTC().Format(epochLayout) }

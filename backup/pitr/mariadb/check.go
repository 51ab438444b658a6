package mariadb

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/pitr"
)

// grantRE splits a line of SHOW GRANTS: the privileges and what they are on.
var grantRE = regexp.MustCompile("^GRANT (.+?) ON (\\S+) TO ")

// Privileges following needs: on *.* (the binlog stream) and on the service's database (the base).
var (
	globalPrivs   = []string{"REPLICATION SLAVE", "BINLOG MONITOR"}
	databasePrivs = []string{"SELECT", "SHOW VIEW", "TRIGGER", "EVENT", "LOCK TABLES"}
)

// Check verifies what following the service needs of its server and of Rewind's host, and says for each missing
// piece what to change. It changes nothing.
func (k *Kind) Check(ctx context.Context, env string, svc backup.ServiceSpec) []pitr.CheckResult {
	var out []pitr.CheckResult
	add := func(name, status, format string, args ...any) {
		out = append(out, pitr.CheckResult{Name: name, Status: status, Message: fmt.Sprintf(format, args...)})
	}
	var missing []string
	for _, t := range []string{"mariadb-binlog", "mariadb-dump", "mariadb", "mariadbd", "mariadb-install-db"} {
		if _, err := k.tool(t); err != nil {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		add("tools", pitr.CheckFailed, "%s missing on Rewind's host: install the MariaDB client and server "+
			"(Debian: apt install mariadb-client mariadb-server), of a version at least the followed server's",
			strings.Join(missing, ", "))
	} else {
		add("tools", pitr.CheckOK, "the MariaDB tools are installed here")
	}

	cli, err := newClient(svc)
	if err != nil {
		add("connection", pitr.CheckFailed, "%v", err)
		return out
	}
	db, err := cli.open()
	if err != nil {
		add("connection", pitr.CheckFailed, "%v", err)
		return out
	}
	defer db.Close() //nolint:errcheck
	var version, user string
	if err := db.QueryRowContext(ctx, "SELECT VERSION(), CURRENT_USER()").Scan(&version, &user); err != nil {
		add("connection", pitr.CheckFailed, "cannot connect to %s: %v: check the service URL", svc.Name, err)
		return out
	}
	add("connection", pitr.CheckOK, "connected to MariaDB/MySQL %s as %s", version, user)
	if !strings.Contains(version, "MariaDB") {
		add("server version", pitr.CheckWarning, "%s is MySQL: Rewind follows and replays binlogs with MariaDB's "+
			"tools, which do not promise to read MySQL 8's binlog (tested with MariaDB 10.11 only)", version)
	} else if err := k.checkScratchVersion(ctx, version); err != nil {
		add("server version", pitr.CheckFailed, "%v", err)
	} else {
		add("server version", pitr.CheckOK, "this host's mariadbd can restore MariaDB %s", version)
	}
	var binlogSize int64
	if err := db.QueryRowContext(ctx, "SELECT @@max_binlog_size").Scan(&binlogSize); err == nil &&
		binlogSize > maxBinlogSize {
		add("max_binlog_size", pitr.CheckWarning, "max_binlog_size is %d MB: Rewind ships the growing binlog file "+
			"again every second, so a large one costs reading it whole each time; set max_binlog_size = 64M "+
			"under [mariadbd] (SET GLOBAL max_binlog_size = 67108864 for now)", binlogSize>>20)
	}

	var logBin, serverID int64
	var format string
	if err := db.QueryRowContext(ctx, "SELECT @@log_bin, @@binlog_format, @@server_id").
		Scan(&logBin, &format, &serverID); err != nil {
		add("binary log", pitr.CheckFailed, "read the binary log settings: %v", err)
		return out
	}
	if logBin == 0 {
		add("log_bin", pitr.CheckFailed, "the server writes no binary log: add `log_bin = binlog` (and "+
			"`binlog_format = ROW`, `server_id = 1`) under [mariadbd] in its configuration and restart it")
	} else {
		add("log_bin", pitr.CheckOK, "the server writes a binary log")
	}
	if format != "ROW" {
		add("binlog_format", pitr.CheckFailed, "binlog_format is %s: replay needs ROW; run SET GLOBAL "+
			"binlog_format = 'ROW' and add `binlog_format = ROW` under [mariadbd] in the configuration (sessions "+
			"already open keep %s until they reconnect)", format, format)
	} else {
		add("binlog_format", pitr.CheckOK, "binlog_format is ROW")
	}
	if serverID == 0 {
		add("server_id", pitr.CheckFailed, "server_id is 0, which refuses binlog clients: add `server_id = 1` "+
			"(any number not used by another server or replica) under [mariadbd] and restart it")
	} else {
		add("server_id", pitr.CheckOK, "server_id is %d", serverID)
	}
	k.checkRetention(ctx, db, add)
	k.checkGrants(ctx, db, cli.database, user, add)
	if logBin != 0 {
		if _, err := masterStatus(ctx, db); err != nil {
			add("binlog position", pitr.CheckFailed, "%v", err)
		}
	}
	return out
}

// maxBinlogSize is the largest binlog file Check is content with: the growing file is copied and shipped again
// every ShipEvery.
const maxBinlogSize = 128 << 20

// retentionWanted is how long binlogs should be kept: longer than any outage of Rewind.
const retentionWanted = 7 * 24 * time.Hour

func (k *Kind) checkRetention(ctx context.Context, db *sql.DB, add func(name, status, format string, args ...any)) {
	var secs, days float64
	err := db.QueryRowContext(ctx, "SELECT @@binlog_expire_logs_seconds, @@expire_logs_days").Scan(&secs, &days)
	if err != nil { // MySQL, or MariaDB before 10.6: only expire_logs_days
		secs = 0
		if err := db.QueryRowContext(ctx, "SELECT @@expire_logs_days").Scan(&days); err != nil {
			add("binlog retention", pitr.CheckWarning, "cannot read the binlog retention: %v", err)
			return
		}
	}
	keep := time.Duration(secs * float64(time.Second))
	if keep == 0 {
		keep = time.Duration(days * 24 * float64(time.Hour))
	}
	switch {
	case keep == 0:
		add("binlog retention", pitr.CheckWarning, "the server never removes binlogs, which can fill its disk: "+
			"set `binlog_expire_logs_seconds = 604800` (7 days, longer than any outage of Rewind) under [mariadbd]")
	case keep < retentionWanted:
		add("binlog retention", pitr.CheckWarning, "binlogs are removed after %s: if Rewind stops following for "+
			"longer, the stream has a gap; set `binlog_expire_logs_seconds = 604800` (7 days) or more", keep)
	default:
		add("binlog retention", pitr.CheckOK, "binlogs are kept for %s", keep)
	}
}

func (k *Kind) checkGrants(ctx context.Context, db *sql.DB, database, user string,
	add func(name, status, format string, args ...any),
) {
	rows, err := db.QueryContext(ctx, "SHOW GRANTS")
	if err != nil {
		add("privileges", pitr.CheckFailed, "read the user's privileges: %v", err)
		return
	}
	defer rows.Close() //nolint:errcheck
	global, onDB := map[string]bool{}, map[string]bool{}
	dbName := "`" + strings.ReplaceAll(database, "`", "``") + "`.*"
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			add("privileges", pitr.CheckFailed, "read the user's privileges: %v", err)
			return
		}
		m := grantRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		for _, p := range strings.Split(m[1], ", ") {
			p = strings.TrimSpace(p)
			if p == "REPLICATION CLIENT" { // MySQL's (and MariaDB's old) name for BINLOG MONITOR
				p = "BINLOG MONITOR"
			}
			switch m[2] {
			case "*.*":
				global[p], onDB[p] = true, true
			case dbName:
				onDB[p] = true
			}
		}
	}
	var lack []string
	for _, p := range globalPrivs {
		if !global[p] && !global["ALL PRIVILEGES"] {
			lack = append(lack, p)
		}
	}
	for _, p := range databasePrivs {
		if !onDB[p] && !onDB["ALL PRIVILEGES"] {
			lack = append(lack, p)
		}
	}
	if len(lack) > 0 {
		add("privileges", pitr.CheckFailed, "%s lacks %s: run GRANT %s ON *.* TO %s", user,
			strings.Join(lack, ", "), strings.Join(append(append([]string(nil), databasePrivs...), globalPrivs...),
				", "), quoteAccount(user))
		return
	}
	add("privileges", pitr.CheckOK, "%s may read the binlog and dump %s", user, database)
}

// quoteAccount quotes CURRENT_USER()'s user@host as an account name: 'user'@'host'.
func quoteAccount(s string) string {
	u, h, _ := strings.Cut(s, "@")
	q := func(v string) string { return "'" + strings.ReplaceAll(v, "'", "''") + "'" }
	return q(u) + "@" + q(h)
}

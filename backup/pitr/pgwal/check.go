package pgwal

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/rewind/rewind/backup/pitr"
)

// Check verifies what following env's service needs of its server and says, for each missing piece, what to
// change. It never changes anything on the server.
func Check(ctx context.Context, rawURL, env, service, binDir string) []pitr.CheckResult {
	var out []pitr.CheckResult
	add := func(name, status, format string, args ...any) {
		out = append(out, pitr.CheckResult{Name: name, Status: status, Message: fmt.Sprintf(format, args...)})
	}
	c, err := parseConn(rawURL)
	if err != nil {
		add("connection", pitr.CheckFailed, "service %s: %v", service, err)
		return out
	}
	db, err := c.connect(ctx)
	if err != nil {
		add("connection", pitr.CheckFailed, "cannot connect to %s: %v: check the service URL", service, err)
		return out
	}
	defer db.Close(context.WithoutCancel(ctx)) //nolint:errcheck
	add("connection", pitr.CheckOK, "connected as %s", c.user)

	setting := func(name string) string {
		var v string
		if err := db.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v); err != nil {
			return ""
		}
		return v
	}
	intSetting := func(name string) int {
		n, _ := strconv.Atoi(setting(name))
		return n
	}

	if major, err := serverMajor(ctx, db); err != nil {
		add("server version", pitr.CheckFailed, "%v", err)
	} else if _, err := BinDir(binDir, major); err != nil {
		add("server version", pitr.CheckFailed, "PostgreSQL %d: %v", major, err)
	} else {
		add("server version", pitr.CheckOK, "PostgreSQL %d, and its tools are installed here", major)
	}

	switch lvl := setting("wal_level"); lvl {
	case "replica", "logical":
		add("wal_level", pitr.CheckOK, "wal_level is %s", lvl)
	default:
		add("wal_level", pitr.CheckFailed, "wal_level is %q: set wal_level = replica in postgresql.conf and restart "+
			"the server", lvl)
	}
	if v := setting("wal_segment_size"); v != "16MB" {
		add("wal_segment_size", pitr.CheckFailed, "the WAL segments are %s: Rewind follows only servers with the "+
			"default 16MB segments", v)
	}

	var canReplicate bool
	if err := db.QueryRow(ctx, `SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user`).
		Scan(&canReplicate); err != nil || !canReplicate {
		add("replication role", pitr.CheckFailed, "role %s may not stream WAL: run ALTER ROLE %s REPLICATION "+
			"(no superuser is needed)", c.user, quoteIdent(c.user))
	} else {
		add("replication role", pitr.CheckOK, "role %s has REPLICATION", c.user)
	}

	if n := intSetting("max_wal_senders"); n < 3 {
		add("max_wal_senders", pitr.CheckFailed, "max_wal_senders is %d: Rewind needs 3 (one for the WAL stream, "+
			"two while it takes a base backup); set it in postgresql.conf and restart", n)
	} else {
		add("max_wal_senders", pitr.CheckOK, "max_wal_senders is %d", n)
	}

	slot := SlotName(env, service)
	var slots, ours int
	var walStatus string
	_ = db.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE slot_name = $1),
		COALESCE(max(wal_status) FILTER (WHERE slot_name = $1), '') FROM pg_replication_slots`, slot).
		Scan(&slots, &ours, &walStatus)
	switch max := intSetting("max_replication_slots"); {
	case ours > 0:
		add("replication slot", pitr.CheckOK, "slot %s exists (wal_status %s)", slot, walStatus)
	case slots >= max:
		add("replication slot", pitr.CheckFailed, "all %d replication slots are taken: raise max_replication_slots "+
			"and restart, or drop an unused slot", max)
	default:
		add("replication slot", pitr.CheckOK, "a replication slot is free (%d of %d used); Rewind creates %s", slots, max, slot)
	}
	switch walStatus {
	case "unreserved", "lost":
		add("retained WAL", pitr.CheckWarning, "slot %s is %s: the server is removing WAL Rewind has not received; "+
			"the stream will have a gap", slot, walStatus)
	case "extended":
		add("retained WAL", pitr.CheckWarning, "slot %s keeps more WAL than max_wal_size: Rewind is behind", slot)
	}
	if keep := setting("max_slot_wal_keep_size"); keep == "-1" {
		add("max_slot_wal_keep_size", pitr.CheckWarning, "max_slot_wal_keep_size is unlimited: if Rewind stops "+
			"following, its slot keeps all WAL and can fill the server's disk; set for example "+
			"max_slot_wal_keep_size = 10GB")
	}

	if _, err := c.identify(ctx); err != nil {
		msg := err.Error()
		if strings.Contains(msg, "pg_hba.conf") {
			add("pg_hba.conf", pitr.CheckFailed, "the server refuses replication connections of %s from Rewind's "+
				"host: add a line `host replication %s <rewind-ip>/32 scram-sha-256` to pg_hba.conf and reload "+
				"(the `replication` line is separate from the database lines)", c.user, c.user)
		} else {
			add("replication connection", pitr.CheckFailed, "a replication connection failed: %v", err)
		}
	} else {
		add("replication connection", pitr.CheckOK, "replication connections are allowed")
	}
	return out
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

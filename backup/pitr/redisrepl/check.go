package redisrepl

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"

	"github.com/rewind/rewind/backup/pitr"
)

// backlogWarning is the replication backlog below which Check warns: a short disconnection of Rewind while the
// server writes more than it means a full resynchronization and a gap.
const backlogWarning = 16 << 20

// Check verifies what following the service needs of its server: a connection (AUTH), PSYNC and REPLCONF allowed
// for the user, a replication backlog big enough to resume after a disconnection, and a redis-server here that
// can load its RDB. It changes nothing on the server.
func Check(ctx context.Context, rawURL, service string) []pitr.CheckResult {
	var out []pitr.CheckResult
	add := func(name, status, format string, args ...any) {
		out = append(out, pitr.CheckResult{Name: name, Status: status, Message: fmt.Sprintf(format, args...)})
	}
	srv, err := parseURL(rawURL)
	if err != nil {
		add("connection", pitr.CheckFailed, "service %s: %v", service, err)
		return out
	}
	c, err := srv.dial(ctx)
	if err != nil {
		add("connection", pitr.CheckFailed, "cannot connect to %s: %v", service, err)
		return out
	}
	defer c.close()
	who, err := c.str(ctx, "ACL", "WHOAMI")
	if err != nil {
		who = "default"
	}
	add("connection", pitr.CheckOK, "connected as %s", who)

	info, err := c.str(ctx, "INFO", "server")
	version := infoField(info, "redis_version")
	switch local, lerr := localVersion(ctx); {
	case err != nil:
		add("server version", pitr.CheckFailed, "INFO server failed: %v: the user needs +info", err)
	case lerr != nil:
		add("server version", pitr.CheckFailed, "Redis %s; %v", version, lerr)
	case olderThan(local, version):
		add("server version", pitr.CheckFailed, "Redis %s, but the redis-server installed here is %s, which "+
			"cannot load its RDB: install redis-server %s or newer on Rewind's host", version, local, version)
	default:
		add("server version", pitr.CheckOK, "Redis %s; redis-server %s is installed here", version, local)
	}

	sync := syncAllowed(ctx, c, who)
	switch {
	case sync == nil:
		add("replication", pitr.CheckOK, "user %s may run PSYNC and REPLCONF", who)
	case errors.Is(sync, errUnverified):
		add("replication", pitr.CheckWarning, "user %s may run REPLCONF; whether it may run PSYNC cannot be "+
			"checked without ACL DRYRUN: make sure it has +psync (ACL SETUSER %s +psync +replconf)", who, who)
	case strings.Contains(strings.ToLower(sync.Error()), "unknown command"):
		add("replication", pitr.CheckFailed, "the server does not offer replication to clients (%v): managed "+
			"Redis services (ElastiCache, Upstash, Azure Cache, ...) usually block PSYNC, and then Rewind cannot "+
			"follow the service; take scheduled backups of it instead", sync)
	default:
		add("replication", pitr.CheckFailed, "user %s may not replicate (%v): run ACL SETUSER %s +psync "+
			"+replconf (and +sync)", who, sync, who)
	}

	if repl, err := c.str(ctx, "INFO", "replication"); err == nil {
		size, _ := strconv.ParseInt(infoField(repl, "repl_backlog_size"), 10, 64)
		if size > 0 && size < backlogWarning {
			add("repl-backlog-size", pitr.CheckWarning, "the replication backlog is %d KB: if Rewind is "+
				"disconnected while the server writes more than that, following starts again from a new base "+
				"and the stream has a gap; raise it, e.g. CONFIG SET repl-backlog-size 64mb (and in redis.conf)",
				size>>10)
		} else if size > 0 {
			add("repl-backlog-size", pitr.CheckOK, "the replication backlog is %d MB", size>>20)
		}
	}
	return out
}

var errUnverified = errors.New("unverified")

// syncAllowed asks the server whether user may run PSYNC and REPLCONF (ACL DRYRUN, Redis 7); when the user may
// not ask, it tries REPLCONF (harmless on a normal connection) and returns errUnverified if that works.
func syncAllowed(ctx context.Context, c *conn, user string) error {
	var denied []string
	for _, args := range [][]string{{"PSYNC", "?", "-1"}, {"REPLCONF", "ACK", "0"}} {
		ans, err := c.str(ctx, append([]string{"ACL", "DRYRUN", user}, args...)...)
		if err != nil {
			if _, rerr := c.do(ctx, "REPLCONF", "listening-port", "0"); rerr != nil {
				return rerr
			}
			return errUnverified
		}
		if ans != "OK" {
			denied = append(denied, ans)
		}
	}
	if len(denied) > 0 {
		return errors.New(strings.Join(denied, "; "))
	}
	return nil
}

// localVersion is the version of the redis-server on PATH, which rebuilds run.
func localVersion(ctx context.Context) (string, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", errors.New("redis-server is not installed here: Rewind rebuilds Redis services with it " +
			"(Debian: apt install redis-server)")
	}
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("redis-server --version: %w", err)
	}
	for _, f := range strings.Fields(string(out)) {
		if v, ok := strings.CutPrefix(f, "v="); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("redis-server --version said %q", strings.TrimSpace(string(out)))
}

// olderThan compares dotted versions ("7.0.15" < "7.2.4").
func olderThan(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(as), len(bs)); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}

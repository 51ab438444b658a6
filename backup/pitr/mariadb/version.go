package mariadb

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// versionFile in a base's snapshot holds the followed server's VERSION(), so Rebuild can refuse a scratch
// server older than it (replay needs a version at least the binlog's writer's).
const versionFile = "version"

var versionRE = regexp.MustCompile(`(\d+)\.(\d+)\.(\d+)`)

// version is a server version: major, minor, patch.
type version [3]int

// parseVersion reads the first x.y.z in s (VERSION(), or `mariadbd --version`).
func parseVersion(s string) (version, bool) {
	m := versionRE.FindStringSubmatch(s)
	if m == nil {
		return version{}, false
	}
	var v version
	for i := range v {
		v[i], _ = strconv.Atoi(m[i+1])
	}
	return v, true
}

func (v version) less(w version) bool {
	for i := range v {
		if v[i] != w[i] {
			return v[i] < w[i]
		}
	}
	return false
}

func (v version) String() string { return fmt.Sprintf("%d.%d.%d", v[0], v[1], v[2]) }

// checkScratchVersion refuses to replay a base (and its binlog) written by serverVersion into this host's
// mariadbd when that is older, or when the base comes from MySQL (whose binlog MariaDB's tools do not promise to
// read).
func (k *Kind) checkScratchVersion(ctx context.Context, serverVersion string) error {
	serverVersion = strings.TrimSpace(serverVersion)
	if serverVersion == "" {
		return nil // a base from before the version was recorded
	}
	if !strings.Contains(serverVersion, "MariaDB") {
		return fmt.Errorf("the base comes from MySQL %s: Rewind replays binlogs with MariaDB's tools, which do "+
			"not promise to read MySQL 8's binlog", serverVersion)
	}
	prod, ok := parseVersion(serverVersion)
	if !ok {
		return nil
	}
	server, err := k.tool("mariadbd")
	if err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, server, "--version").Output()
	if err != nil {
		return fmt.Errorf("mariadbd --version: %w", err)
	}
	local, ok := parseVersion(string(out))
	if !ok {
		return fmt.Errorf("mariadbd --version said %q: no version in it", strings.TrimSpace(string(out)))
	}
	if local.less(prod) {
		return fmt.Errorf("the base comes from MariaDB %s, newer than this host's mariadbd %s: install MariaDB %s "+
			"or later on Rewind's host to restore it", prod, local, prod)
	}
	return nil
}

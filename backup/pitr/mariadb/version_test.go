package mariadb

import (
	"context"
	"strings"
	"testing"

	"github.com/rewind/rewind/backup/testserver"
)

// TestCheckScratchVersion: a base from the private server's own version replays here; one from a newer
// MariaDB (its version with the patch level raised) or from MySQL is refused, saying what to install.
func TestCheckScratchVersion(t *testing.T) {
	srv := testserver.StartMariaDBBinlog(t)
	var ver string
	if err := srv.Open(t, "").QueryRow("SELECT VERSION()").Scan(&ver); err != nil {
		t.Fatal(err)
	}
	k := &Kind{}
	ctx := context.Background()
	if err := k.checkScratchVersion(ctx, ver); err != nil {
		t.Fatalf("checkScratchVersion(%q) = %v, want nil for this host's own server", ver, err)
	}
	v, ok := parseVersion(ver)
	if !ok {
		t.Fatalf("parseVersion(%q) found none", ver)
	}
	newer := version{v[0], v[1], v[2] + 1}
	err := k.checkScratchVersion(ctx, strings.Replace(ver, v.String(), newer.String(), 1))
	if err == nil || !strings.Contains(err.Error(), "install MariaDB "+newer.String()+" or later") {
		t.Errorf("checkScratchVersion(newer) = %v, want a refusal naming MariaDB %s", err, newer)
	}
	if err := k.checkScratchVersion(ctx, "8.0.36"); err == nil || !strings.Contains(err.Error(), "MySQL") {
		t.Errorf("checkScratchVersion(MySQL 8) = %v, want a refusal", err)
	}
	if !(version{10, 11, 9}).less(version{10, 11, 19}) || (version{11, 0, 0}).less(version{10, 11, 19}) {
		t.Error("version order is not numeric")
	}
}

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/handlers"
)

// TestDrillsEndToEnd runs `rewind drill:run` and `rewind drills` against a served Rewind whose environment has
// five services on private real servers: the drill passes, is listed as the last verified restore, and leaves
// the live data as it was.
func TestDrillsEndToEnd(t *testing.T) {
	m, token := startRewind(t, db.RoleAdmin)
	t.Setenv("REWIND_URL", m.URL())
	t.Setenv("REWIND_TOKEN", token)
	main := newStack(t, "main", "production", true)
	cfg := filepath.Join(t.TempDir(), "rewind.yaml")
	if err := os.WriteFile(cfg, []byte("environments:\n"+main.yaml()), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCommand(t, "apply", "", "-f", cfg); err != nil {
		t.Fatalf("apply: %v", err)
	}
	if _, _, err := runCommand(t, "drill:run", "", "-e", "main"); err == nil ||
		!strings.Contains(err.Error(), "take a backup first") {
		t.Fatalf("drill:run without a backup = %v, want a refusal saying to take a backup", err)
	}
	if _, errOut, err := runCommand(t, "backup:create", "", "-e", "main"); err != nil {
		t.Fatalf("backup:create: %v\n%s", err, errOut)
	}
	main.set("v2") // the live data moves on; the drill restores the backup's v1 elsewhere
	out, errOut, err := runCommand(t, "drill:run", "", "-e", "main")
	if err != nil || !strings.Contains(errOut, "100%") || !strings.Contains(errOut, "succeeded") {
		t.Fatalf("drill:run = %q, %v\n%s", out, err, errOut)
	}
	out, _, err = runCommand(t, "drills", "", "-e", "main", "--json")
	var resp handlers.DrillsJSON
	if err != nil || json.Unmarshal([]byte(out), &resp) != nil {
		t.Fatalf("drills --json = %q, %v", out, err)
	}
	if len(resp.Drills) != 1 || resp.Drills[0].State != db.DrillPassed || resp.LastVerified == nil ||
		resp.Drills[0].Files < 5 || resp.PredictedRTOMS <= 0 {
		t.Fatalf("drills --json = %s", out)
	}
	out, _, err = runCommand(t, "drills", "", "-e", "main")
	if err != nil || !strings.Contains(out, "Last verified restore: 20") || !strings.Contains(out, "passed") ||
		!strings.Contains(out, "Predicted RTO:") {
		t.Fatalf("drills = %q, %v", out, err)
	}
	env, err := m.Catalog.FindEnvironmentByName(t.Context(), "main")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := main.values(env), main.want(env, "v2"); got != want {
		t.Fatalf("the drill changed the live data: %s, want %s", got, want)
	}
	// --no-wait returns the queued activity at once.
	if out, _, err := runCommand(t, "drill:run", "", "-e", "main", "--no-wait"); err != nil || strings.TrimSpace(out) == "" {
		t.Fatalf("drill:run --no-wait = %q, %v", out, err)
	}
}

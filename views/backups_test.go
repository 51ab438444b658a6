package views

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rewind/rewind/db"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestBackupListGolden renders a page of the Backups tab with every kind of row (running, failed with an error
// that needs escaping, live and consistent, sizes of every unit, pauses, retention notes, the pager) and compares
// it with testdata/backup_list.golden.html, byte for byte. Regenerate it with -update after a deliberate change of
// the markup, and read the diff.
func TestBackupListGolden(t *testing.T) {
	local := time.Local
	time.Local = time.FixedZone("UTC+2", 2*60*60) // fmtTime shows local time: make it the same everywhere
	t.Cleanup(func() { time.Local = local })
	at := time.Date(2026, 3, 14, 15, 9, 26, 535897932, time.UTC)
	backups := []*db.Backup{
		{ID: "00000000000000000001", Environment: "main", Kind: db.BackupManual, Status: db.BackupRunning,
			Progress: 42, CreatedAt: at},
		{ID: "00000000000000000002", Environment: "main", Kind: db.BackupAutomated, Live: true,
			Status: db.BackupPending, CreatedAt: at.Add(-time.Minute)},
		{ID: "00000000000000000003", Environment: "main", Kind: db.BackupManual, Status: db.BackupFailed,
			Progress: 7, SizeBytes: 1023, Error: `dump "db" failed: <exit 1> & 'stderr'`, CreatedAt: at.Add(-time.Hour)},
		{ID: "0000000000000000000a", Environment: "main", Kind: db.BackupManual, Status: db.BackupComplete,
			Progress: 100, SizeBytes: 1 << 20, NewBytes: 1536, Pause: 1500 * time.Microsecond,
			CreatedAt: at.Add(-25 * time.Hour)},
		{ID: "0000000000000000000b", Environment: "main", Kind: db.BackupPreRestore, Status: db.BackupComplete,
			Progress: 100, SizeBytes: 5<<30 + 3<<29, NewBytes: 0, Pause: 500 * time.Microsecond,
			CreatedAt: at.Add(-48 * time.Hour)},
		{ID: "0000000000000000000c", Environment: "main", Kind: db.BackupManual, Status: db.BackupComplete,
			Progress: 100, SizeBytes: 7 << 40, NewBytes: 12345678, Pause: 83*time.Second + 400*time.Millisecond,
			CreatedAt: at.Add(-72 * time.Hour)},
		{ID: "0000000000000000000d", Environment: "main", Kind: db.BackupDrill, Status: db.BackupComplete,
			Progress: 100, SizeBytes: 999, NewBytes: 1, Pause: 2*time.Hour + 3*time.Minute, CreatedAt: at.Add(-96 * time.Hour)},
		{ID: "0000000000000000000e", Environment: "main", Kind: db.BackupAutomated, Live: true, Status: db.BackupExpired,
			Progress: 100, SizeBytes: 2048, NewBytes: 3 << 50, CreatedAt: at.Add(-120 * time.Hour)},
		{ID: "0000000000000000000f", Environment: "main", Kind: db.BackupManual, Status: db.BackupComplete,
			Progress: 100, SizeBytes: 4096, NewBytes: 100, Pause: 999 * time.Millisecond, CreatedAt: time.Time{}},
	}
	d := BackupsData{Backups: backups, Total: 1000, TotalAtLeast: true, Offset: 25, Limit: 25,
		BaseURL: "/environments/main%20app", Create: Allow, Admin: Allow, Now: at,
		Retention: RetentionData{Notes: map[string]string{
			"0000000000000000000a": "Kept: the newest daily backup of 2026-03-13 <& \"'>",
			"0000000000000000000c": "Expires in 3 days",
		}}}
	var buf bytes.Buffer
	if err := BackupList(d).Render(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "backup_list.golden.html")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got := buf.String(); got != string(want) {
		t.Fatalf("BackupList renders\n%s\nwant (%s)\n%s", got, golden, want)
	}
}

func TestFmtDuration(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "—"}, {-time.Second, "—"}, {999 * time.Millisecond, "999 ms"}, {1500 * time.Millisecond, "1.5 s"},
		{59960 * time.Millisecond, "60.0 s"}, {65 * time.Second, "1m 05s"}, {3*time.Hour + 7*time.Minute, "3h 07m"},
		{100 * time.Hour, "100h 00m"},
	} {
		if got := fmtDuration(tc.d); got != tc.want {
			t.Errorf("fmtDuration(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

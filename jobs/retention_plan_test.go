package jobs

import (
	"testing"
	"time"

	"github.com/rewind/rewind/db"
)

func TestPlanEstimate(t *testing.T) {
	t0 := time.Date(2028, 2, 1, 4, 0, 0, 0, time.UTC)
	bk := func(env string, day int, status string, size, newBytes int64) *db.Backup {
		return &db.Backup{Environment: env, Status: status, SizeBytes: size, NewBytes: newBytes,
			CreatedAt: t0.AddDate(0, 0, day)}
	}
	for _, tc := range []struct {
		name      string
		backups   []*db.Backup
		want      int64
		fromSizes bool
	}{
		{"nothing yet", nil, 0, false},
		{"no new bytes recorded: sizes", []*db.Backup{
			bk("main", 0, db.BackupComplete, 1000, 0), bk("main", 1, db.BackupComplete, 3000, 0)}, 2000, true},
		{"each environment's first backup stores everything: left out", []*db.Backup{
			bk("main", 2, db.BackupComplete, 1000, 30), bk("main", 0, db.BackupComplete, 1000, 900),
			bk("main", 1, db.BackupComplete, 1000, 10), bk("web", 0, db.BackupComplete, 500, 500),
			bk("web", 1, db.BackupFailed, 0, 0), bk("web", 2, db.BackupComplete, 500, 20)}, 20, false},
		{"a first backup that expired still marks the full one", []*db.Backup{
			bk("main", 0, db.BackupExpired, 1000, 900), bk("main", 1, db.BackupComplete, 1000, 40)}, 40, false},
		{"only first backups: their average", []*db.Backup{
			bk("main", 0, db.BackupComplete, 1000, 800), bk("web", 0, db.BackupComplete, 500, 400)}, 600, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &PlanPreview{ExtraBackups: 3}
			p.estimate(tc.backups)
			if got, want := p.BytesPerBackup, tc.want; got != want {
				t.Fatalf("BytesPerBackup = %d, want %d", got, want)
			}
			if got, want := p.FromSizes, tc.fromSizes; got != want {
				t.Fatalf("FromSizes = %v, want %v", got, want)
			}
			if got, want := p.ExtraBytes, 3*tc.want; got != want {
				t.Fatalf("ExtraBytes = %d, want %d", got, want)
			}
		})
	}
}

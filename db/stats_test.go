package db_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/rewind/rewind/db"
)

// The history holds only complete backups, newest first, with their run time.
func TestFindBackupHistory(t *testing.T) {
	ctx := context.Background()
	c := MustOpenDB(t)
	if err := c.CreateEnvironment(ctx, &db.Environment{Name: "main", Type: db.EnvProduction}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		id := fmt.Sprintf("%020x", i)
		if err := c.CreateBackup(ctx, &db.Backup{ID: id, Environment: "main", Kind: db.BackupManual}); err != nil {
			t.Fatal(err)
		}
		st, size := db.BackupComplete, int64(i*100)
		if i == 3 {
			st = db.BackupFailed
		}
		if _, err := c.UpdateBackup(ctx, id, db.BackupUpdate{Status: &st, SizeBytes: &size}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := c.FindBackupHistory(ctx, "main", 3)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, p := range got {
		ids = append(ids, p.ID[18:])
		if p.Took() != time.Second { // the test clock ticks a second per call: created, then completed
			t.Errorf("%s took %v, want 1s", p.ID, p.Took())
		}
		if want := int64(int(p.ID[19]-'0') * 100); p.SizeBytes != want {
			t.Errorf("%s size %d, want %d", p.ID, p.SizeBytes, want)
		}
	}
	if got, want := fmt.Sprint(ids), "[05 04 02]"; got != want {
		t.Fatalf("history = %s, want %s (complete only, newest first)", got, want)
	}
}

func TestNewestRecoveryPoint(t *testing.T) {
	base := time.Date(2026, 12, 1, 4, 0, 0, 0, time.UTC)
	at := func(m int) *time.Time { t := base.Add(time.Duration(m) * time.Minute); return &t }
	backup := &db.BackupPoint{ID: "00000000000000000001", CreatedAt: base}
	pg := []db.Service{{Name: "db", Type: db.ServicePostgreSQL}, {Name: "db2", Type: db.ServicePostgreSQL}}
	on := &db.PITR{Enabled: true}
	stream := func(svc, state string, covered *time.Time) *db.PITRStream {
		return &db.PITRStream{Environment: "main", Service: svc, State: state, CoveredUntil: covered}
	}
	for _, tc := range []struct {
		name    string
		e       db.Environment
		newest  *db.BackupPoint
		streams []*db.PITRStream
		want    time.Time
		pitr    bool
	}{
		{"nothing", db.Environment{Name: "main"}, nil, nil, time.Time{}, false},
		{"backup only", db.Environment{Name: "main", Services: pg}, backup, nil, base, false},
		{"pitr off", db.Environment{Name: "main", Services: pg},
			backup, []*db.PITRStream{stream("db", db.PITRRunning, at(30)), stream("db2", db.PITRRunning, at(40))}, base, false},
		{"every service followed: the earliest coverage", db.Environment{Name: "main", Services: pg, PITR: on},
			backup, []*db.PITRStream{stream("db", db.PITRRunning, at(30)), stream("db2", db.PITRRunning, at(40))}, *at(30), true},
		{"one stream failed", db.Environment{Name: "main", Services: pg, PITR: on},
			backup, []*db.PITRStream{stream("db", db.PITRRunning, at(30)), stream("db2", db.PITRFailed, at(40))}, base, false},
		{"one service not followed", db.Environment{Name: "main", Services: pg, PITR: on},
			backup, []*db.PITRStream{stream("db", db.PITRRunning, at(30))}, base, false},
		{"streams behind the backup", db.Environment{Name: "main", Services: pg, PITR: on},
			backup, []*db.PITRStream{stream("db", db.PITRRunning, at(-5)), stream("db2", db.PITRRunning, at(40))}, base, false},
		{"pitr without a backup", db.Environment{Name: "main", Services: pg[:1], PITR: on},
			nil, []*db.PITRStream{stream("db", db.PITRRunning, at(30))}, *at(30), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := db.NewestRecoveryPoint(&tc.e, tc.newest, tc.streams)
			if !r.At.Equal(tc.want) || r.PITR != tc.pitr {
				t.Fatalf("NewestRecoveryPoint = %v (pitr %v), want %v (pitr %v)", r.At, r.PITR, tc.want, tc.pitr)
			}
			rpo, ok := r.RPO(base.Add(time.Hour))
			if ok != !tc.want.IsZero() || (ok && rpo != base.Add(time.Hour).Sub(tc.want)) {
				t.Fatalf("RPO = %v, %v", rpo, ok)
			}
		})
	}
}

func TestFormatSpan(t *testing.T) {
	for d, want := range map[time.Duration]string{
		30 * time.Second: "< 1 min", 42 * time.Minute: "42 min", 3 * time.Hour: "3 h",
		200 * time.Minute: "3 h 20 min", 52 * time.Hour: "2 d 4 h", 72 * time.Hour: "3 d",
	} {
		if got := db.FormatSpan(d); got != want {
			t.Errorf("FormatSpan(%v) = %q, want %q", d, got, want)
		}
	}
}

// A page older than a backup holds the next backups after it, whatever was taken since, and a starting point
// that names no backup is ErrNotFound.
func TestFindBackupsBefore(t *testing.T) {
	ctx := context.Background()
	c := MustOpenDB(t)
	if err := c.CreateEnvironment(ctx, &db.Environment{Name: "main", Type: db.EnvProduction}); err != nil {
		t.Fatal(err)
	}
	add := func(i int) {
		if err := c.CreateBackup(ctx, &db.Backup{ID: fmt.Sprintf("%020x", i), Environment: "main", Kind: db.BackupManual}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 10; i++ {
		add(i)
	}
	env := "main"
	page := func() string {
		t.Helper()
		bs, n, err := c.FindBackupsRecent(ctx, db.BackupFilter{Environment: &env, Before: fmt.Sprintf("%020x", 7), Limit: 3, CountUpTo: 100})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, b := range bs {
			ids = append(ids, b.ID[19:])
		}
		return fmt.Sprint(ids, n)
	}
	if got, want := page(), "[6 5 4] 6"; got != want {
		t.Fatalf("page before 7 = %s, want %s (3 shown, 6 older in all)", got, want)
	}
	add(11) // a new backup does not move the page
	if got, want := page(), "[6 5 4] 6"; got != want {
		t.Fatalf("after a new backup the page before 7 = %s, want %s", got, want)
	}
	if _, _, err := c.FindBackups(ctx, db.BackupFilter{Environment: &env, Before: "ffffffffffffffffffff"}); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("before an unknown backup: %v, want ErrNotFound", err)
	}
}

package db_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/rewind/rewind/db"
)

func TestBackups(t *testing.T) {
	ctx := context.Background()
	c := MustOpenDB(t)
	for i := range 5 {
		env := "main"
		if i%2 == 1 {
			env = "staging"
		}
		b := &db.Backup{ID: fmt.Sprintf("%020x", i+1), Environment: env, Kind: db.BackupManual}
		if err := c.CreateBackup(ctx, b); err != nil {
			t.Fatalf("CreateBackup(%d) = %v", i, err)
		}
		if got, want := b.Status, db.BackupPending; got != want {
			t.Fatalf("status = %q, want %q", got, want)
		}
	}
	if err := c.CreateBackup(ctx, &db.Backup{ID: fmt.Sprintf("%020x", 1), Environment: "main", Kind: db.BackupManual}); !errors.Is(err, db.ErrConflict) {
		t.Fatalf("duplicate CreateBackup = %v, want ErrConflict", err)
	}
	var ve *db.ValidationError
	if err := c.CreateBackup(ctx, &db.Backup{ID: "nope", Environment: "main", Kind: "weekly"}); !errors.As(err, &ve) || ve.For("id") == "" || ve.For("kind") == "" {
		t.Fatalf("invalid CreateBackup = %v, want errors on id and kind", err)
	}

	status, progress, pause := db.BackupComplete, 100, 250*time.Millisecond
	services := []db.BackupService{{Name: "db", Type: "sqlite", Version: "3.50", Size: 4096}}
	got, err := c.UpdateBackup(ctx, fmt.Sprintf("%020x", 3), db.BackupUpdate{Status: &status, Progress: &progress, Pause: &pause, Services: &services})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != db.BackupComplete || got.CompletedAt == nil || got.Pause != pause || !got.Restorable() {
		t.Fatalf("updated backup = %+v", got)
	}
	if len(got.Services) != 1 || got.Services[0].Version != "3.50" {
		t.Fatalf("services = %+v, want the one sqlite service", got.Services)
	}
	if _, err := c.UpdateBackup(ctx, fmt.Sprintf("%020x", 99), db.BackupUpdate{Status: &status}); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("UpdateBackup of a missing backup = %v, want ErrNotFound", err)
	}

	env := "main"
	page, total, err := c.FindBackups(ctx, db.BackupFilter{Environment: &env, Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := total, 3; got != want {
		t.Fatalf("total = %d, want %d", got, want)
	}
	if got, want := len(page), 2; got != want {
		t.Fatalf("page = %d backups, want %d", got, want)
	}
	if page[0].ID != fmt.Sprintf("%020x", 5) || page[1].ID != fmt.Sprintf("%020x", 3) {
		t.Fatalf("page = %s, %s: want newest first", page[0].ID, page[1].ID)
	}
	if err := c.DeleteBackup(ctx, fmt.Sprintf("%020x", 5)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.FindBackupByID(ctx, fmt.Sprintf("%020x", 5)); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("FindBackupByID after delete = %v, want ErrNotFound", err)
	}
}

func TestFindBackupsCountUpTo(t *testing.T) {
	ctx := context.Background()
	c := MustOpenDB(t)
	for i := range 30 {
		if err := c.CreateBackup(ctx, &db.Backup{ID: fmt.Sprintf("%020x", i+1), Environment: "main", Kind: db.BackupManual}); err != nil {
			t.Fatal(err)
		}
	}
	env := "main"
	for _, tc := range []struct{ upTo, want int }{{0, 30}, {12, 12}, {30, 30}, {100, 30}} {
		page, total, err := c.FindBackups(ctx, db.BackupFilter{Environment: &env, Limit: 10, CountUpTo: tc.upTo})
		if err != nil {
			t.Fatal(err)
		}
		if got := total; got != tc.want || len(page) != 10 {
			t.Errorf("CountUpTo %d: total = %d (page of %d), want %d", tc.upTo, got, len(page), tc.want)
		}
	}
}

func TestFormatBytes(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{
		{0, "0 B"}, {-5, "-5 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536, "1.5 KiB"},
		{1<<20 - 1, "1024.0 KiB"}, {1 << 20, "1.0 MiB"}, {5<<30 + 3<<29, "6.5 GiB"}, {7 << 40, "7.0 TiB"},
		{3 << 50, "3.0 PiB"}, {1<<63 - 1, "8.0 EiB"},
	} {
		if got := db.FormatBytes(tc.n); got != tc.want {
			t.Errorf("FormatBytes(%d) = %q, want %q", tc.n, got, tc.want)
		}
		if got := string(db.AppendBytes([]byte("x"), tc.n)); got != "x"+tc.want {
			t.Errorf("AppendBytes(x, %d) = %q, want %q", tc.n, got, "x"+tc.want)
		}
	}
}

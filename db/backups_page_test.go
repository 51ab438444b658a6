package db_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/rewind/rewind/db"
)

// Pages at any offset are slices of the whole list, newest first, of the environment asked for.
func TestFindBackupsPages(t *testing.T) {
	ctx := context.Background()
	c := MustOpenDB(t)
	for i := 1; i <= 14; i++ {
		env := "main"
		if i%2 == 0 {
			env = "other"
		}
		if err := c.CreateBackup(ctx, &db.Backup{ID: fmt.Sprintf("%020x", i), Environment: env, Kind: db.BackupManual}); err != nil {
			t.Fatal(err)
		}
	}
	env := "main"
	all, total, err := c.FindBackups(ctx, db.BackupFilter{Environment: &env})
	if err != nil || total != 7 || len(all) != 7 || all[0].ID != fmt.Sprintf("%020x", 13) {
		t.Fatalf("FindBackups(main) = %d backups (total %d), %v; want 7, the newest first", len(all), total, err)
	}
	var paged []string
	for off := 0; off < 9; off += 3 {
		page, n, err := c.FindBackups(ctx, db.BackupFilter{Environment: &env, Offset: off, Limit: 3, CountUpTo: 100})
		if err != nil || n != 7 {
			t.Fatalf("page at %d: total %d, %v; want 7", off, n, err)
		}
		for _, b := range page {
			paged = append(paged, b.ID)
		}
	}
	for i, b := range all {
		if i >= len(paged) || paged[i] != b.ID {
			t.Fatalf("pages = %v, want the ids of %d backups in order, starting %s", paged, len(all), all[0].ID)
		}
	}
	if len(paged) != len(all) {
		t.Fatalf("pages hold %d backups, want %d", len(paged), len(all))
	}
}

func TestFindBackupsSkipServices(t *testing.T) {
	ctx := context.Background()
	c := MustOpenDB(t)
	svc := []db.BackupService{{Name: "uploads", Type: "files", Size: 42}}
	if err := c.CreateBackup(ctx, &db.Backup{ID: fmt.Sprintf("%020x", 1), Environment: "main", Kind: db.BackupManual, Services: svc}); err != nil {
		t.Fatal(err)
	}
	for _, skip := range []bool{false, true} {
		bs, _, err := c.FindBackups(ctx, db.BackupFilter{SkipServices: skip})
		if err != nil || len(bs) != 1 {
			t.Fatalf("FindBackups(SkipServices: %v) = %d backups, %v", skip, len(bs), err)
		}
		if got, want := len(bs[0].Services), map[bool]int{false: 1, true: 0}[skip]; got != want {
			t.Errorf("SkipServices %v: %d services, want %d", skip, got, want)
		}
	}
}

package db_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

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

func TestFindBackupsBrief(t *testing.T) {
	ctx := context.Background()
	c := MustOpenDB(t)
	svc := []db.BackupService{{Name: "uploads", Type: "files", Size: 42}}
	b := &db.Backup{ID: fmt.Sprintf("%020x", 1), Environment: "main", Kind: db.BackupManual, Live: true,
		Status: db.BackupRunning, Progress: 40, RestoredFrom: fmt.Sprintf("%020x", 2), Commit: "abc",
		SizeBytes: 1000, NewBytes: 10, Pause: 5 * time.Millisecond, Services: svc, Error: "<oops>"}
	if err := c.CreateBackup(ctx, b); err != nil {
		t.Fatal(err)
	}
	failed := db.BackupFailed
	if _, err := c.UpdateBackup(ctx, b.ID, db.BackupUpdate{Status: &failed}); err != nil {
		t.Fatal(err)
	}
	full, err := c.FindBackupByID(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, brief := range []bool{false, true} {
		bs, _, err := c.FindBackups(ctx, db.BackupFilter{Brief: brief})
		if err != nil || len(bs) != 1 {
			t.Fatalf("FindBackups(Brief: %v) = %d backups, %v", brief, len(bs), err)
		}
		want := *full
		if brief {
			want.Services, want.ActivityID, want.RestoredFrom, want.Commit, want.CompletedAt = nil, 0, "", "", nil
		}
		if got := bs[0]; !reflect.DeepEqual(*got, want) {
			t.Errorf("FindBackups(Brief: %v) = %+v, want %+v", brief, *got, want)
		}
	}
}

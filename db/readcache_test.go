package db_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/rewind/rewind/db"
)

// A recent read sees this process's writes at once and another process's within a second.
func TestFindUserByIDRecent(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "rewind.db")
	c := mustOpenAt(t, path)
	other := mustOpenAt(t, path) // another process on the same catalog (an offline admin command)
	u := mustCreateUser(t, c, "ana@example.com", db.RoleAdmin)

	got, err := c.FindUserByIDRecent(ctx, u.ID)
	if err != nil || got.Disabled {
		t.Fatalf("FindUserByIDRecent() = %+v, %v; want the enabled user", got, err)
	}
	got.Email = "changed@example.com" // the caller's copy
	if got.RoleOverrides != nil {
		got.RoleOverrides["production"] = db.RoleViewer
	}
	if got, _ := c.FindUserByIDRecent(ctx, u.ID); got.Email != u.Email || len(got.RoleOverrides) != 0 {
		t.Fatalf("a caller's change leaked into the cache: %+v", got)
	}

	disabled := true
	if _, err := c.UpdateUser(ctx, u.ID, db.UserUpdate{Disabled: &disabled}); err != nil {
		t.Fatal(err)
	}
	if got, err := c.FindUserByIDRecent(ctx, u.ID); err != nil || !got.Disabled {
		t.Fatalf("after disabling through this DB: %+v, %v; want disabled at once", got, err)
	}

	enabled := false
	if _, err := other.UpdateUser(ctx, u.ID, db.UserUpdate{Disabled: &enabled}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		got, err := c.FindUserByIDRecent(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Disabled {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a change by another process was not seen within 2 s")
		}
		time.Sleep(50 * time.Millisecond)
	}

	if _, err := c.FindUserByIDRecent(ctx, u.ID+100); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("unknown user: err = %v, want ErrNotFound", err)
	}
}

// A capped count follows this process's writes at once.
func TestFindBackupsCountUpToSeesWrites(t *testing.T) {
	ctx := context.Background()
	c := MustOpenDB(t)
	env := "main"
	count := func() int {
		t.Helper()
		_, n, err := c.FindBackups(ctx, db.BackupFilter{Environment: &env, Limit: 1, CountUpTo: 10})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if got := count(); got != 0 {
		t.Fatalf("count = %d, want 0", got)
	}
	ids := []string{"00000000000000000001", "00000000000000000002"}
	for i, id := range ids {
		if err := c.CreateBackup(ctx, &db.Backup{ID: id, Environment: env, Kind: db.BackupManual}); err != nil {
			t.Fatal(err)
		}
		if got, want := count(), i+1; got != want {
			t.Fatalf("count after %d backups = %d, want %d", want, got, want)
		}
	}
	if err := c.DeleteBackup(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	if got, want := count(), 1; got != want {
		t.Fatalf("count after a delete = %d, want %d", got, want)
	}
}

// A recent environment follows this process's changes at once, and callers get their own copy.
func TestFindEnvironmentByNameRecent(t *testing.T) {
	ctx := context.Background()
	c := MustOpenDB(t)
	mustCreateEnv(t, c, &db.Environment{Name: "main", Type: db.EnvProduction,
		Services: []db.Service{{Name: "uploads", Type: db.ServiceFiles, Path: "/srv/uploads", Exclude: []string{"tmp"}}}})
	e, err := c.FindEnvironmentByNameRecent(ctx, "main")
	if err != nil || len(e.Services) != 1 {
		t.Fatalf("FindEnvironmentByNameRecent() = %+v, %v", e, err)
	}
	title := e.Title
	e.Services[0].Exclude[0], e.Title = "changed", "changed"
	e, _ = c.FindEnvironmentByNameRecent(ctx, "main")
	if e.Title != title || e.Services[0].Exclude[0] != "tmp" {
		t.Fatalf("a caller's change leaked into the cache: %+v", e)
	}
	e.Title = "Main shop"
	if err := c.UpdateEnvironment(ctx, e); err != nil {
		t.Fatal(err)
	}
	if e, _ := c.FindEnvironmentByNameRecent(ctx, "main"); e.Title != "Main shop" {
		t.Fatalf("after an update through this DB: title %q, want it at once", e.Title)
	}
	if _, err := c.FindEnvironmentByNameRecent(ctx, "unknown"); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("unknown environment: err = %v, want ErrNotFound", err)
	}
}

// Recent children follow this process's changes at once, and callers get their own copy.
func TestFindEnvironmentChildrenRecent(t *testing.T) {
	ctx := context.Background()
	c := MustOpenDB(t)
	mustCreateEnv(t, c, &db.Environment{Name: "main", Type: db.EnvProduction})
	mustCreateEnv(t, c, &db.Environment{Name: "staging", Type: db.EnvStaging, Parent: "main"})
	got, err := c.FindEnvironmentChildrenRecent(ctx, "main")
	if err != nil || len(got) != 1 || got[0] != "staging" {
		t.Fatalf("FindEnvironmentChildrenRecent() = %q, %v; want [staging]", got, err)
	}
	got[0] = "changed" // the caller's copy
	if got, _ := c.FindEnvironmentChildrenRecent(ctx, "main"); got[0] != "staging" {
		t.Fatalf("a caller's change leaked into the cache: %q", got)
	}
	mustCreateEnv(t, c, &db.Environment{Name: "dev", Type: db.EnvDevelopment, Parent: "main"})
	if got, _ := c.FindEnvironmentChildrenRecent(ctx, "main"); len(got) != 2 || got[0] != "dev" || got[1] != "staging" {
		t.Fatalf("after a new child through this DB: %q, want [dev staging] at once", got)
	}
}

// A recent page of backups follows every write of this process at once (a running backup's progress, a new
// backup, a delete), another process's within a second, and callers get their own copies.
func TestFindBackupsRecent(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "rewind.db")
	c := mustOpenAt(t, path)
	other := mustOpenAt(t, path)
	env := "main"
	page := func() ([]*db.Backup, int) {
		t.Helper()
		bs, n, err := c.FindBackupsRecent(ctx, db.BackupFilter{Environment: &env, Limit: 2, CountUpTo: 10, Brief: true})
		if err != nil {
			t.Fatal(err)
		}
		return bs, n
	}
	ids := []string{"00000000000000000001", "00000000000000000002"}
	for _, id := range ids {
		if err := c.CreateBackup(ctx, &db.Backup{ID: id, Environment: env, Kind: db.BackupManual, Status: db.BackupRunning}); err != nil {
			t.Fatal(err)
		}
	}
	bs, n := page()
	if len(bs) != 2 || n != 2 || bs[0].ID != ids[1] || bs[0].Progress != 0 {
		t.Fatalf("page = %d backups of %d, first %+v", len(bs), n, bs[0])
	}
	bs[0].Status, bs[0].Progress = "changed", 99 // the caller's copy
	if bs, _ := page(); bs[0].Status != db.BackupRunning || bs[0].Progress != 0 {
		t.Fatalf("a caller's change leaked into the cache: %+v", bs[0])
	}

	progress := 42
	if _, err := c.UpdateBackup(ctx, ids[1], db.BackupUpdate{Progress: &progress}); err != nil {
		t.Fatal(err)
	}
	if bs, _ := page(); bs[0].Progress != 42 {
		t.Fatalf("after a progress update through this DB: %d%%, want 42%% at once", bs[0].Progress)
	}
	if err := c.DeleteBackup(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	if bs, n := page(); len(bs) != 1 || n != 1 {
		t.Fatalf("after a delete: %d backups of %d, want 1 of 1", len(bs), n)
	}

	progress = 77
	if _, err := other.UpdateBackup(ctx, ids[1], db.BackupUpdate{Progress: &progress}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for bs, _ := page(); bs[0].Progress != 77; bs, _ = page() {
		if time.Now().After(deadline) {
			t.Fatal("a change by another process was not seen within 2 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Recent reuses a derived value until a write goes through the DB or a second passes, and keeps keys apart.
func TestRecent(t *testing.T) {
	c := MustOpenDB(t)
	reads := 0
	load := func() (any, error) { reads++; return reads, nil }
	for range 3 {
		if v, err := c.Recent("a", load); err != nil || v != 1 {
			t.Fatalf("Recent(a) = %v, %v; want the first read", v, err)
		}
	}
	if v, _ := c.Recent("b", load); v != 2 {
		t.Fatalf("Recent(b) = %v, want a read of its own", v)
	}
	if err := c.SetSetting(context.Background(), "x", "y"); err != nil {
		t.Fatal(err)
	}
	if v, _ := c.Recent("a", load); v != 3 {
		t.Fatalf("Recent(a) after a write = %v, want a new read", v)
	}
	if _, err := c.Recent("c", func() (any, error) { return nil, errors.New("boom") }); err == nil {
		t.Fatal("Recent returned no error from a failed read")
	}
	if v, _ := c.Recent("c", load); v != 4 {
		t.Fatalf("Recent(c) after a failed read = %v, want a new read (failures are not kept)", v)
	}
}

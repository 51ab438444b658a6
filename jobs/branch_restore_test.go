package jobs_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/jobs"
)

func TestRestoreIntoBranchAndAnotherEnvironment(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	dbPath, mount := w.addEnvironment(t, "main")
	exec(t, dbPath, `INSERT INTO notes (body) VALUES ('production data')`)
	writeFile(t, filepath.Join(mount, "a.txt"), "A")
	a, b, err := w.ops.StartBackup(ctx, jobs.BackupRequest{Environment: "main", Live: true, Actor: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	if got := waitDone(t, w.catalog, a.ID); got.State != db.ActivitySucceeded {
		t.Fatalf("backup: %s\n%s", got.State, got.Log)
	}

	// Branch: a new environment, child of main, with its own database file and mount.
	ra, plan, err := w.ops.StartRestore(ctx, jobs.RestoreRequest{BackupID: b.ID, BranchFrom: "main",
		Confirm: "restore-" + b.ID[:8], Actor: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	if !plan.Create || plan.Target != "restore-"+b.ID[:8] {
		t.Fatalf("plan = %+v, want a new environment restore-%s", plan, b.ID[:8])
	}
	if got := waitDone(t, w.catalog, ra.ID); got.State != db.ActivitySucceeded {
		t.Fatalf("branch restore: %s\n%s", got.State, got.Log)
	}
	branch, err := w.catalog.FindEnvironmentByName(ctx, plan.Target)
	if err != nil {
		t.Fatal(err)
	}
	if branch.Parent != "main" {
		t.Fatalf("branch parent = %q", branch.Parent)
	}
	if got, want := notes(t, branch.Service("app").Path), "production data"; got != want {
		t.Fatalf("branch notes = %q, want %q", got, want)
	}
	if got, want := readFile(t, filepath.Join(branch.Service("uploads").Path, "a.txt")), "A"; got != want {
		t.Fatalf("branch file = %q, want %q", got, want)
	}
	if got, want := notes(t, dbPath), "production data"; got != want {
		t.Fatalf("parent notes changed to %q", got)
	}

	// Another environment whose services do not match is refused before anything is touched.
	other := &db.Environment{Name: "staging", Type: db.EnvStaging, Status: db.StatusActive, Services: []db.Service{
		{Name: "app", Type: db.ServiceFiles, Path: filepath.Join(w.dir, "staging-app")},
	}}
	if err := w.catalog.CreateEnvironment(ctx, other); err != nil {
		t.Fatal(err)
	}
	plan, err = w.ops.PlanRestore(ctx, jobs.RestoreRequest{BackupID: b.ID, Target: "staging"})
	if err != nil {
		t.Fatal(err)
	}
	if plan.Problem == nil || !strings.Contains(plan.Problem.Error(), "cannot change a service's type") ||
		!strings.Contains(plan.Problem.Error(), `no service "uploads"`) {
		t.Fatalf("plan problem = %v, want a type mismatch and a missing service", plan.Problem)
	}
	if _, _, err := w.ops.StartRestore(ctx, jobs.RestoreRequest{BackupID: b.ID, Target: "staging", Confirm: "staging"}); err == nil {
		t.Fatal("a mismatched restore started")
	}
}

package jobs_test

import (
	"context"
	"testing"

	"github.com/rewind/rewind/backup/redis"
	"github.com/rewind/rewind/backup/testserver"
	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/jobs"
)

// TestMain stops the private servers the tests started.
func TestMain(m *testing.M) { testserver.Main(m) }

// TestBranchGivesEachRedisServiceItsOwnDatabase branches a parent with two Redis services on one (real) server:
// each gets a database of its own, used by no environment and not by the other.
func TestBranchGivesEachRedisServiceItsOwnDatabase(t *testing.T) {
	ctx := context.Background()
	srv := testserver.StartRedis(t)
	cacheDB, queueDB := srv.CreateDatabase(t), srv.CreateDatabase(t)
	catalog := openCatalog(t)
	parent := &db.Environment{Name: "main", Type: db.EnvProduction, Status: db.StatusActive, Services: []db.Service{
		{Name: "cache", Type: db.ServiceRedis, URL: srv.URL(cacheDB)},
		{Name: "queue", Type: db.ServiceRedis, URL: srv.URL(queueDB)},
	}}
	if err := catalog.CreateEnvironment(ctx, parent); err != nil {
		t.Fatal(err)
	}
	b := &db.Backup{ID: "0123456789abcdef0123", Environment: "main", Kind: db.BackupManual, Status: db.BackupComplete,
		Services: []db.BackupService{{Name: "cache", Type: db.ServiceRedis}, {Name: "queue", Type: db.ServiceRedis}}}
	if err := catalog.CreateBackup(ctx, b); err != nil {
		t.Fatal(err)
	}
	ops := &jobs.Operations{Catalog: catalog}
	plan, err := ops.PlanRestore(ctx, jobs.RestoreRequest{BackupID: b.ID, BranchFrom: "main"})
	if err != nil || plan.Problem != nil {
		t.Fatalf("PlanRestore = %+v, %v", plan, err)
	}
	seen := map[int]string{cacheDB: "the parent's cache", queueDB: "the parent's queue"}
	for _, m := range plan.Mapping {
		_, n, err := redis.Database(m.Target)
		if err != nil {
			t.Fatalf("%s → %q: %v", m.Name, m.Target, err)
		}
		if other, ok := seen[n]; ok {
			t.Fatalf("the branch's %s gets database %d, already %s", m.Name, n, other)
		}
		seen[n] = "the branch's " + m.Name
	}
}

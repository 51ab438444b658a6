package pgwal

import (
	"context"
	"net/url"
	"strings"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/pitr"
)

// Kind is the point-in-time protection of PostgreSQL services: WAL streamed through a replication slot, base
// backups with pg_basebackup, a scratch server recovered to T.
type Kind struct {
	// BinDir overrides where the PostgreSQL tools are (default: the server's major under /usr/lib/postgresql).
	BinDir string
}

var _ pitr.Kind = Kind{}

// Type is backup.TypePostgreSQL.
func (Kind) Type() string { return backup.TypePostgreSQL }

// Slot is the replication slot the server keeps for env's service.
func (Kind) Slot(env, service string) string { return SlotName(env, service) }

// Check verifies the server's prerequisites (see the package documentation).
func (k Kind) Check(ctx context.Context, env string, svc backup.ServiceSpec) []pitr.CheckResult {
	return Check(ctx, svc.URL, env, svc.Name, k.BinDir)
}

// Follow runs a Follower of the service until ctx ends or the stream fails.
func (k Kind) Follow(ctx context.Context, spec pitr.FollowSpec) error {
	f := &Follower{Environment: spec.Environment, Service: spec.Service.Name, URL: spec.Service.URL, Repo: spec.Repo,
		Spool: spec.Spool, Record: spec.Record, BinDir: k.BinDir, ShipEvery: spec.ShipEvery,
		BaseEvery: spec.BaseEvery, Now: spec.Now}
	return f.Run(ctx)
}

// NextSegment is the WAL segment after name on its timeline.
func (Kind) NextSegment(name string) (string, error) { return NextWAL(name) }

// Rebuild recovers a scratch server to spec.Target; its Spec is the service's database on it.
func (k Kind) Rebuild(ctx context.Context, spec pitr.RebuildSpec) (pitr.Rebuilt, error) {
	var user string
	if u, err := url.Parse(spec.Service.URL); err == nil && u.User != nil {
		user = u.User.Username()
	}
	s, err := Rebuild(ctx, RebuildRequest{Repo: spec.Repo, Choice: spec.Choice, Target: spec.Target, Dir: spec.Dir,
		BinDir: k.BinDir, User: user, Timeout: spec.Timeout})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Release drops the service's replication slot.
func (Kind) Release(ctx context.Context, env string, svc backup.ServiceSpec) error {
	return DropSlot(ctx, svc.URL, env, svc.Name)
}

// Spec is svc's database on the scratch server.
func (s *Scratch) Spec(svc backup.ServiceSpec) backup.ServiceSpec {
	database := ""
	if u, err := url.Parse(svc.URL); err == nil {
		database = strings.TrimPrefix(u.Path, "/")
	}
	return backup.ServiceSpec{Name: svc.Name, Type: svc.Type, URL: s.URL(database)}
}

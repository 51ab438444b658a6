package handlers

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/rewind/rewind/db"
)

// GateMetrics writes the request gates' counters in the Prometheus text
// format: gate.Set.
type GateMetrics interface {
	WritePrometheus(w io.Writer) error
}

type metricsStore interface {
	FindEnvironments(ctx context.Context, f db.EnvironmentFilter) ([]*db.Environment, error)
	FindBackups(ctx context.Context, f db.BackupFilter) ([]*db.Backup, int, error)
	FindDrills(ctx context.Context, f db.DrillFilter) ([]*db.Drill, error)
}

// Metrics is GET /metrics: the gates' counters and, per environment, the
// backups by status, the pause of the newest complete backup and when it
// completed. It is served to API tokens only (any role), like the API:
// configure Prometheus with `authorization: {credentials: TOKEN}`.
type Metrics struct {
	store metricsStore
	gates GateMetrics
}

func NewMetrics(store metricsStore, gates GateMetrics) *Metrics {
	return &Metrics{store: store, gates: gates}
}

func (h *Metrics) Get(c echo.Context) error {
	ctx := c.Request().Context()
	envs, err := h.store.FindEnvironments(ctx, db.EnvironmentFilter{})
	if err != nil {
		return err
	}
	var b bytes.Buffer
	statuses := []string{db.BackupPending, db.BackupRunning, db.BackupComplete, db.BackupFailed, db.BackupExpired}
	b.WriteString("# HELP rewind_backups Backups in the catalog by environment and status.\n# TYPE rewind_backups gauge\n")
	last := map[string]*db.Backup{}
	for _, e := range envs {
		name := e.Name
		for _, s := range statuses {
			st := s
			bs, n, err := h.store.FindBackups(ctx, db.BackupFilter{Environment: &name, Status: &st, Limit: 1})
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, "rewind_backups{environment=%s,status=%s} %d\n", label(name), label(s), n)
			if s == db.BackupComplete && len(bs) > 0 {
				last[name] = bs[0]
			}
		}
	}
	b.WriteString("# HELP rewind_backup_last_pause_seconds How long requests were held by the newest complete backup (0 for a live one).\n# TYPE rewind_backup_last_pause_seconds gauge\n")
	for _, e := range envs {
		if l := last[e.Name]; l != nil {
			fmt.Fprintf(&b, "rewind_backup_last_pause_seconds{environment=%s} %s\n", label(e.Name), strconv.FormatFloat(l.Pause.Seconds(), 'g', -1, 64))
		}
	}
	b.WriteString("# HELP rewind_backup_last_success_timestamp_seconds When the newest complete backup completed.\n# TYPE rewind_backup_last_success_timestamp_seconds gauge\n")
	for _, e := range envs {
		if l := last[e.Name]; l != nil && l.CompletedAt != nil {
			fmt.Fprintf(&b, "rewind_backup_last_success_timestamp_seconds{environment=%s} %d\n", label(e.Name), l.CompletedAt.Unix())
		}
	}
	if err := writeDrillMetrics(ctx, h.store, envs, &b); err != nil {
		return err
	}
	if h.gates != nil {
		if err := h.gates.WritePrometheus(&b); err != nil {
			return err
		}
	}
	return c.Blob(http.StatusOK, "text/plain; version=0.0.4; charset=utf-8", b.Bytes())
}

func label(v string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v) + `"`
}

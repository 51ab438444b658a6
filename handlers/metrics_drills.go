package handlers

import (
	"bytes"
	"context"
	"fmt"
	"strconv"

	"github.com/rewind/rewind/db"
)

// writeDrillMetrics adds, per environment that has drilled, when its newest passed drill (the last verified
// restore) finished and how long its restore took, and whether its newest finished drill failed: an alert on
// rewind_drill_last_failed or on the age of the last verified restore needs nothing else.
func writeDrillMetrics(ctx context.Context, store interface {
	FindDrills(ctx context.Context, f db.DrillFilter) ([]*db.Drill, error)
}, envs []*db.Environment, b *bytes.Buffer) error {
	passed := db.DrillPassed
	type row struct {
		env      string
		verified *db.Drill
		failed   bool
	}
	var rows []row
	for _, e := range envs {
		name := e.Name
		recent, err := store.FindDrills(ctx, db.DrillFilter{Environment: &name, Limit: 2})
		if err != nil {
			return err
		}
		if len(recent) == 0 {
			continue
		}
		r := row{env: name}
		for _, d := range recent { // the newest finished one: a running drill has not said yet
			if d.State != db.DrillRunning {
				r.failed = d.State == db.DrillFailed
				break
			}
		}
		ok, err := store.FindDrills(ctx, db.DrillFilter{Environment: &name, State: &passed, Limit: 1})
		if err != nil {
			return err
		}
		if len(ok) > 0 {
			r.verified = ok[0]
		}
		rows = append(rows, r)
	}
	b.WriteString("# HELP rewind_drill_last_failed 1 when the newest finished restore drill failed, else 0.\n# TYPE rewind_drill_last_failed gauge\n")
	for _, r := range rows {
		failed := 0
		if r.failed {
			failed = 1
		}
		fmt.Fprintf(b, "rewind_drill_last_failed{environment=%s} %d\n", label(r.env), failed)
	}
	b.WriteString("# HELP rewind_drill_last_success_timestamp_seconds When the newest passed restore drill (the last verified restore) finished.\n# TYPE rewind_drill_last_success_timestamp_seconds gauge\n")
	for _, r := range rows {
		if r.verified != nil && r.verified.FinishedAt != nil {
			fmt.Fprintf(b, "rewind_drill_last_success_timestamp_seconds{environment=%s} %d\n", label(r.env), r.verified.FinishedAt.Unix())
		}
	}
	b.WriteString("# HELP rewind_drill_last_restore_seconds How long the newest passed restore drill took to restore and verify.\n# TYPE rewind_drill_last_restore_seconds gauge\n")
	for _, r := range rows {
		if r.verified != nil {
			fmt.Fprintf(b, "rewind_drill_last_restore_seconds{environment=%s} %s\n", label(r.env),
				strconv.FormatFloat(r.verified.Restore.Seconds(), 'g', -1, 64))
		}
	}
	return nil
}

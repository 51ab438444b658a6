package notify_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/jobs"
	"github.com/rewind/rewind/jobs/notify"
)

func TestActivityEvents(t *testing.T) {
	done := time.Date(2026, 12, 3, 4, 5, 0, 0, time.UTC)
	storage := fmt.Errorf("write: %w", &backup.StorageError{Err: errors.New("s3: connection refused")})
	for _, tc := range []struct {
		typ, state string
		err        error
		want       string // the events' kinds, comma-separated
	}{
		{jobs.TypeBackup, db.ActivityFailed, errors.New("capture"), "backup.failed"},
		{jobs.TypeBackup, db.ActivityFailed, storage, "backup.failed,storage.unreachable"},
		{jobs.TypeBackup, db.ActivitySucceeded, nil, "backup.succeeded"},
		{jobs.TypeBackup, db.ActivityCancelled, errors.New("cancelled"), ""},
		{jobs.TypeRestore, db.ActivityFailed, errors.New("prepare"), "restore.failed"},
		{jobs.TypeRestore, db.ActivitySucceeded, nil, "restore.succeeded"},
		{"drill", db.ActivityFailed, errors.New("checksum"), "drill.failed"},
		{"environment.drill", db.ActivityFailed, errors.New("smoke test exited 1"), "drill.failed"},
		{"drill.run", db.ActivityFailed, nil, "drill.failed"},
		{jobs.TypeMaintenance, db.ActivityFailed, errors.New("gc"), "repository.failed"},
		{jobs.TypeMaintenance, db.ActivitySucceeded, nil, ""},
	} {
		a := db.Activity{ID: 9, Type: tc.typ, State: tc.state, Environment: "main", Summary: "Something of main",
			BackupID: "0123456789abcdef0123", FinishedAt: &done, Log: "step\nerror: from the log\n"}
		var kinds []string
		for _, ev := range notify.ActivityEvents(a, tc.err, "http://rewind.test") {
			kinds = append(kinds, ev.Kind)
			if !ev.At.Equal(done) || ev.Environment != "main" || !strings.HasPrefix(ev.URL, "http://rewind.test/") {
				t.Errorf("%s %s: event %+v", tc.typ, tc.state, ev)
			}
			if tc.state == db.ActivityFailed && ev.Detail == "" {
				t.Errorf("%s failed: no detail", tc.typ)
			}
		}
		if got := strings.Join(kinds, ","); got != tc.want {
			t.Errorf("%s %s: events %q, want %q", tc.typ, tc.state, got, tc.want)
		}
	}
}

package notify_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/jobs"
)

// BenchmarkActivityEnded is what the runner's hook costs the job that ended: building the events and queueing
// them (the channels are read and the messages sent on the notifier's own goroutines). The receiver hangs, so
// the queue fills and most events take the drop path, the worst case for the caller.
func BenchmarkActivityEnded(b *testing.B) {
	catalog := openCatalog(b)
	rcv := newReceiver(b)
	rcv.delay = time.Minute
	ch := &db.NotificationChannel{Name: "hook", Kind: db.ChannelWebhook, Enabled: true,
		Events: []string{db.EventBackupFailed}, URL: rcv.URL + "/x"}
	if err := catalog.CreateNotificationChannel(context.Background(), ch); err != nil {
		b.Fatal(err)
	}
	n, _ := newNotifier(b, catalog)
	n.Timeout = 50 * time.Millisecond
	now := time.Now()
	a := db.Activity{ID: 1, Type: jobs.TypeBackup, State: db.ActivityFailed, Environment: "main",
		Summary: "A manual consistent backup of main", BackupID: "0123456789abcdef0123", FinishedAt: &now}
	err := errors.New("capture service \"uploads\" (files): no such file or directory")
	b.ReportAllocs()
	for b.Loop() {
		n.ActivityEnded(context.Background(), a, err)
	}
}

package notify_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/jobs/notify"
)

// The RPO check alerts once when an environment's newest complete backup gets older than the channel's
// threshold, and again only after a newer backup ended the condition.
func TestRPOCheck(t *testing.T) {
	ctx := context.Background()
	catalog := openCatalog(t)
	start := time.Date(2026, 12, 1, 4, 0, 0, 0, time.UTC)
	var clockMu sync.Mutex // the notifier's workers read the clock too
	clock := start
	now := func() time.Time {
		clockMu.Lock()
		defer clockMu.Unlock()
		return clock
	}
	setClock := func(t time.Time) {
		clockMu.Lock()
		defer clockMu.Unlock()
		clock = t
	}
	catalog.Now = now
	for _, e := range []*db.Environment{
		{Name: "main", Type: db.EnvProduction, Status: db.StatusActive},
		{Name: "staging", Type: db.EnvStaging, Status: db.StatusActive},
	} {
		if err := catalog.CreateEnvironment(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	complete := func(id string) {
		if err := catalog.CreateBackup(ctx, &db.Backup{ID: id, Environment: "main", Kind: db.BackupAutomated, Live: true}); err != nil {
			t.Fatal(err)
		}
		st := db.BackupComplete
		if _, err := catalog.UpdateBackup(ctx, id, db.BackupUpdate{Status: &st}); err != nil {
			t.Fatal(err)
		}
	}
	complete("00000000000000000001")
	rcv := newReceiver(t)
	ch := addChannel(t, catalog, &db.NotificationChannel{Name: "rpo", Kind: db.ChannelWebhook,
		Events: []string{db.EventRPOExceeded}, RPOHours: 26, URL: rcv.URL + "/rpo"})
	n, _ := newNotifier(t, catalog)
	n.Watch = &notify.Watch{Catalog: catalog}
	n.Now = now

	check := func(at time.Duration) {
		t.Helper()
		setClock(start.Add(at))
		if err := n.Check(ctx); err != nil {
			t.Fatal(err)
		}
	}
	check(25 * time.Hour)
	check(27 * time.Hour) // main is late; staging (not production, not listed) is not checked
	check(28 * time.Hour) // still late: no second alert
	ds := waitDeliveries(t, catalog, ch.ID, 1)
	time.Sleep(50 * time.Millisecond)
	if got := len(rcv.requests()); got != 1 || len(ds) != 1 {
		t.Fatalf("after the threshold: %d requests, want 1", got)
	}
	var ev struct {
		Event, Environment string
		BackupID           string `json:"backup_id"`
	}
	json.Unmarshal(rcv.requests()[0].Body, &ev)
	if ev.Event != db.EventRPOExceeded || ev.Environment != "main" || ev.BackupID != "00000000000000000001" {
		t.Fatalf("rpo event = %+v", ev)
	}

	setClock(start.Add(29 * time.Hour))
	complete("00000000000000000002")
	check(30 * time.Hour) // back within the threshold
	check(56 * time.Hour) // late again: a new alert
	waitDeliveries(t, catalog, ch.ID, 2)
	if got := len(rcv.requests()); got != 2 {
		t.Fatalf("after a second lapse: %d requests, want 2", got)
	}
}

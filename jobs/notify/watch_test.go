package notify_test

import (
	"context"
	"encoding/json"
	"strings"
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
	rpoActivities := func() []*db.Activity {
		t.Helper()
		typ, env := db.EventRPOExceeded, "main"
		as, _, err := catalog.FindActivities(ctx, db.ActivityFilter{Environment: &env, Type: &typ})
		if err != nil {
			t.Fatal(err)
		}
		return as
	}
	if as := rpoActivities(); len(as) != 1 || as[0].ID != ds[0].ActivityID || !strings.Contains(as[0].Summary, "26 hours") {
		t.Fatalf("rpo.exceeded activities = %+v (delivery names activity %d), want one, named by the delivery", as, ds[0].ActivityID)
	}

	// A restart of Rewind (a new Watch) does not repeat the alert, nor the activity, of a lapse still going on.
	n.Watch = &notify.Watch{Catalog: catalog}
	check(28*time.Hour + 30*time.Minute)
	time.Sleep(50 * time.Millisecond)
	if got := len(rcv.requests()); got != 1 || len(rpoActivities()) != 1 {
		t.Fatalf("after a restart: %d requests and %d activities, want 1 and 1", got, len(rpoActivities()))
	}

	setClock(start.Add(29 * time.Hour))
	complete("00000000000000000002")
	check(30 * time.Hour) // back within the threshold
	check(56 * time.Hour) // late again: a new alert
	waitDeliveries(t, catalog, ch.ID, 2)
	if got := len(rcv.requests()); got != 2 || len(rpoActivities()) != 2 {
		t.Fatalf("after a second lapse: %d requests and %d activities, want 2 and 2", got, len(rpoActivities()))
	}
}

// With point-in-time protection on, what its streams cover counts as the newest restorable moment: no alert
// while they keep up, one that names the protection once they fall behind.
func TestRPOCheck_PITR(t *testing.T) {
	ctx := context.Background()
	catalog := openCatalog(t)
	start := time.Date(2026, 12, 1, 4, 0, 0, 0, time.UTC)
	var clockMu sync.Mutex
	clock := start
	now := func() time.Time {
		clockMu.Lock()
		defer clockMu.Unlock()
		return clock
	}
	catalog.Now = now
	if err := catalog.CreateEnvironment(ctx, &db.Environment{Name: "main", Type: db.EnvProduction, Status: db.StatusActive,
		Services: []db.Service{{Name: "db", Type: db.ServicePostgreSQL, URL: "postgres://app@127.0.0.1:1/app"}},
		PITR:     &db.PITR{Enabled: true}}); err != nil {
		t.Fatal(err)
	}
	st, err := catalog.EnsurePITRStream(ctx, "main", "db", "rewind_main_db")
	if err != nil {
		t.Fatal(err)
	}
	rcv := newReceiver(t)
	ch := addChannel(t, catalog, &db.NotificationChannel{Name: "rpo", Kind: db.ChannelWebhook,
		Events: []string{db.EventRPOExceeded}, RPOHours: 1, URL: rcv.URL + "/rpo"})
	n, _ := newNotifier(t, catalog)
	n.Watch = &notify.Watch{Catalog: catalog}
	n.Now = now
	// covered sets the clock to at and the stream's coverage to covered (running).
	check := func(at, covered time.Duration) {
		t.Helper()
		clockMu.Lock()
		clock = start.Add(at)
		clockMu.Unlock()
		running, c := db.PITRRunning, start.Add(covered)
		if err := catalog.UpdatePITRStream(ctx, st.ID, db.PITRStreamUpdate{State: &running, CoveredUntil: &c}); err != nil {
			t.Fatal(err)
		}
		if err := n.Check(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// No backup at all, but the stream covers up to a second ago: nothing to say.
	check(2*time.Hour, 2*time.Hour-time.Second)
	check(3*time.Hour, 3*time.Hour-time.Second)
	time.Sleep(50 * time.Millisecond)
	if got := len(rcv.requests()); got != 0 {
		t.Fatalf("with the stream keeping up: %d requests, want 0", got)
	}
	// The follower stalls at 3 h: two hours on, the alert says what covers the environment and since when.
	check(5*time.Hour, 3*time.Hour)
	waitDeliveries(t, catalog, ch.ID, 1)
	var ev struct{ Title, Detail string }
	json.Unmarshal(rcv.requests()[0].Body, &ev)
	if !strings.Contains(ev.Detail, "Point-in-time protection covers it only up to 2026-12-01 07:00 UTC") {
		t.Fatalf("rpo event = %+v, want the point-in-time coverage named", ev)
	}
}

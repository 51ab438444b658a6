package notify_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/files"
	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/jobs"
	"github.com/rewind/rewind/jobs/notify"
)

// world is a catalog, a real repository on local disk, the runner and operations over them, and a notifier that
// hears the end of every activity through the runner's one hook.
type world struct {
	catalog  *db.DB
	ops      *jobs.Operations
	notifier *notify.Notifier
	dir      string
	repoDir  string
}

// newWorld builds the world; its notifier trusts roots (a test SMTP server's certificate).
func newWorld(t *testing.T, roots ...*x509.Certificate) *world {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	catalog := openCatalog(t)
	repoDir := filepath.Join(dir, "repo")
	repo, err := backup.OpenRepository(ctx, backup.RepositoryOptions{Storage: backup.FileStorage(repoDir),
		Password: "test password", ConfigDir: filepath.Join(dir, "kopia")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { repo.Close(context.Background()) })
	engine := &backup.Engine{Repo: repo, Drivers: map[string]backup.Driver{
		backup.TypeFiles: func(s backup.ServiceSpec) (backup.Source, error) { return files.New(s.Path, s.Exclude) },
	}}
	n, _ := newNotifier(t, catalog, roots...)
	ops := &jobs.Operations{Catalog: catalog, Engine: engine}
	ops.Runner = jobs.NewRunner(catalog, ops.Build, 2, nil)
	ops.Runner.OnActivityEnd = n.ActivityEnded
	if err := ops.Runner.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ops.Runner.Close)
	return &world{catalog: catalog, ops: ops, notifier: n, dir: dir, repoDir: repoDir}
}

// addEnvironment creates an environment with one files mount holding a file.
func (w *world) addEnvironment(t *testing.T, name, typ string) string {
	t.Helper()
	mount := filepath.Join(w.dir, name, "uploads")
	if err := os.MkdirAll(mount, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mount, "a.txt"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := &db.Environment{Name: name, Type: typ, Status: db.StatusActive,
		Services: []db.Service{{Name: "uploads", Type: db.ServiceFiles, Path: mount}}}
	if err := w.catalog.CreateEnvironment(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	return mount
}

func (w *world) wait(t *testing.T, id int64) *db.Activity {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		a, err := w.catalog.FindActivityByID(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if a.Done() {
			return a
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("activity %d did not finish", id)
	return nil
}

func (w *world) backup(t *testing.T, req jobs.BackupRequest) *db.Activity {
	t.Helper()
	a, _, err := w.ops.StartBackup(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return w.wait(t, a.ID)
}

// A backup that fails for real (its files mount vanished) reaches a generic webhook, Slack and Discord.
func TestFailedBackupNotifies(t *testing.T) {
	w := newWorld(t)
	mount := w.addEnvironment(t, "main", db.EnvProduction)
	rcv := newReceiver(t)
	failed := []string{db.EventBackupFailed}
	for _, kind := range []string{db.ChannelWebhook, db.ChannelSlack, db.ChannelDiscord} {
		addChannel(t, w.catalog, &db.NotificationChannel{Name: kind, Kind: kind, Events: failed, URL: rcv.URL + "/" + kind})
	}
	quiet := addChannel(t, w.catalog, &db.NotificationChannel{Name: "restores", Kind: db.ChannelWebhook,
		Events: []string{db.EventRestoreFailed}, URL: rcv.URL + "/restores"})
	if err := os.RemoveAll(mount); err != nil {
		t.Fatal(err)
	}
	a := w.backup(t, jobs.BackupRequest{Environment: "main", Actor: "test"})
	if a.State != db.ActivityFailed {
		t.Fatalf("backup of a vanished mount: %s", a.State)
	}
	chs, _ := w.catalog.FindNotificationChannels(context.Background())
	for _, ch := range chs {
		if ch.ID != quiet.ID {
			waitDeliveries(t, w.catalog, ch.ID, 1)
		}
	}
	got := map[string]string{}
	for _, r := range rcv.requests() {
		got[r.Path] = string(r.Body)
	}
	if _, ok := got["/restores"]; ok {
		t.Fatal("a channel subscribed to restore.failed got the failed backup")
	}
	link := "http://rewind.test:8080/backups/" + a.BackupID
	var hook struct{ Event, Environment, Detail, URL string }
	if err := json.Unmarshal([]byte(got["/webhook"]), &hook); err != nil {
		t.Fatalf("webhook body %q: %v", got["/webhook"], err)
	}
	if hook.Event != db.EventBackupFailed || hook.Environment != "main" || hook.URL != link ||
		!strings.Contains(hook.Detail, "uploads") {
		t.Fatalf("webhook payload = %+v", hook)
	}
	var slack struct{ Text string }
	json.Unmarshal([]byte(got["/slack"]), &slack)
	if want := "<" + link + "|A manual consistent backup of main failed>"; slack.Text != want {
		t.Fatalf("slack text = %q, want %q", slack.Text, want)
	}
	var discord struct {
		Embeds []struct{ URL, Description string }
	}
	json.Unmarshal([]byte(got["/discord"]), &discord)
	if len(discord.Embeds) != 1 || discord.Embeds[0].URL != link || !strings.Contains(discord.Embeds[0].Description, "uploads") {
		t.Fatalf("discord payload = %s", got["/discord"])
	}
}

// A failed activity of a type the notifier has no code for (a drill) is the event "drill.failed".
func TestFailedDrillNotifiesByType(t *testing.T) {
	w := newWorld(t)
	w.addEnvironment(t, "main", db.EnvProduction)
	rcv := newReceiver(t)
	ch := addChannel(t, w.catalog, &db.NotificationChannel{Name: "drills", Kind: db.ChannelWebhook,
		Events: []string{db.EventDrillFailed}, URL: rcv.URL + "/drills"})
	a := &db.Activity{Type: "backup.drill", Environment: "main", Actor: "schedule", State: db.ActivityQueued,
		Summary: "Restore drill of main"}
	if err := w.catalog.CreateActivity(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	if err := w.ops.Runner.Enqueue(a.ID); err != nil {
		t.Fatal(err)
	}
	if a = w.wait(t, a.ID); a.State != db.ActivityFailed {
		t.Fatalf("drill = %s", a.State)
	}
	waitDeliveries(t, w.catalog, ch.ID, 1)
	var got struct{ Event, Title string }
	json.Unmarshal(rcv.requests()[0].Body, &got)
	if got.Event != db.EventDrillFailed || got.Title != "Restore drill of main failed" {
		t.Fatalf("drill event = %+v", got)
	}
}

// A restore that completes is "restore.succeeded"; a manual backup that replaces the oldest is
// "quota.reached"; a ping channel pings its URL for both.
func TestRestoreDoneAndQuotaReached(t *testing.T) {
	w := newWorld(t)
	w.addEnvironment(t, "staging", db.EnvStaging) // non-production: a quota of 2 manual backups
	rcv := newReceiver(t)
	hook := addChannel(t, w.catalog, &db.NotificationChannel{Name: "hook", Kind: db.ChannelWebhook,
		Events: []string{db.EventRestoreSucceeded, db.EventQuotaReached}, URL: rcv.URL + "/hook"})
	var first *db.Activity
	for i := range 2 {
		a := w.backup(t, jobs.BackupRequest{Environment: "staging", Actor: "test", Live: true})
		if a.State != db.ActivitySucceeded {
			t.Fatalf("backup %d: %s\n%s", i, a.State, a.Log)
		}
		if first == nil {
			first = a
		}
	}
	third := w.backup(t, jobs.BackupRequest{Environment: "staging", Actor: "test", Live: true, ReplaceOldest: true})
	if third.State != db.ActivitySucceeded {
		t.Fatalf("third backup: %s", third.State)
	}
	ra, _, err := w.ops.StartRestore(context.Background(), jobs.RestoreRequest{BackupID: third.BackupID, Confirm: "staging", Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if ra = w.wait(t, ra.ID); ra.State != db.ActivitySucceeded {
		t.Fatalf("restore: %s\n%s", ra.State, ra.Log)
	}
	waitDeliveries(t, w.catalog, hook.ID, 2)
	events := map[string]map[string]any{}
	for _, r := range rcv.requests() {
		var m map[string]any
		json.Unmarshal(r.Body, &m)
		events[m["event"].(string)] = m
	}
	q := events[db.EventQuotaReached]
	if q == nil || !strings.Contains(q["detail"].(string), first.BackupID) || q["backup_id"] != third.BackupID {
		t.Fatalf("quota event = %v, want the replaced %s", q, first.BackupID)
	}
	r := events[db.EventRestoreSucceeded]
	if r == nil || r["url"] != "http://rewind.test:8080/environments/staging/activity" || r["environment"] != "staging" {
		t.Fatalf("restore event = %v", r)
	}
}

// A backup whose repository storage cannot be written (its directory replaced by a file) is both
// "backup.failed" and "storage.unreachable".
func TestStorageWriteFailureNotifies(t *testing.T) {
	w := newWorld(t)
	mount := w.addEnvironment(t, "main", db.EnvProduction)
	rcv := newReceiver(t)
	ch := addChannel(t, w.catalog, &db.NotificationChannel{Name: "storage", Kind: db.ChannelWebhook,
		Events: []string{db.EventStorageUnreachable}, URL: rcv.URL + "/storage"})
	if err := os.WriteFile(filepath.Join(mount, "new.bin"), []byte(strings.Repeat("fresh data ", 1000)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(w.repoDir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(w.repoDir, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	a := w.backup(t, jobs.BackupRequest{Environment: "main", Actor: "test", Live: true})
	if a.State != db.ActivityFailed {
		t.Fatalf("backup into a broken storage: %s", a.State)
	}
	waitDeliveries(t, w.catalog, ch.ID, 1)
	var got struct{ Event, Environment, Detail string }
	json.Unmarshal(rcv.requests()[0].Body, &got)
	if got.Event != db.EventStorageUnreachable || got.Environment != "main" || got.Detail == "" {
		t.Fatalf("storage event = %+v", got)
	}
}

// A restore that fails for real (the mount's parent became a file, so nothing can be prepared beside it) reaches
// a local SMTP server as an email.
func TestFailedRestoreEmails(t *testing.T) {
	srv := newSMTPServer(t, "rewind", "smtp-Passw0rd")
	host, port := splitHostPort(t, srv.Addr)
	w := newWorld(t, srv.Cert)
	mount := w.addEnvironment(t, "main", db.EnvProduction)
	ch := addChannel(t, w.catalog, &db.NotificationChannel{Name: "mail", Kind: db.ChannelEmail,
		Events: []string{db.EventRestoreFailed}, SMTP: db.SMTPSettings{Host: host, Port: port, Username: "rewind",
			Password: "smtp-Passw0rd", From: "rewind@example.com", To: []string{"ops@example.com"}, TLS: db.SMTPStartTLS}})
	b := w.backup(t, jobs.BackupRequest{Environment: "main", Actor: "test", Live: true})
	if b.State != db.ActivitySucceeded {
		t.Fatalf("backup: %s", b.State)
	}
	parent := filepath.Dir(mount)
	if err := os.RemoveAll(parent); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(parent, []byte("in the way"), 0o644); err != nil {
		t.Fatal(err)
	}
	ra, _, err := w.ops.StartRestore(context.Background(), jobs.RestoreRequest{BackupID: b.BackupID, Confirm: "main", Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if ra = w.wait(t, ra.ID); ra.State != db.ActivityFailed {
		t.Fatalf("restore under a file: %s\n%s", ra.State, ra.Log)
	}
	if ds := waitDeliveries(t, w.catalog, ch.ID, 1); ds[0].Status != db.DeliveryDelivered {
		t.Fatalf("email: %s %s", ds[0].Status, ds[0].Error)
	}
	mails := srv.mails()
	if len(mails) != 1 {
		t.Fatalf("SMTP server got %d mails", len(mails))
	}
	data := string(mails[0].Data)
	for _, want := range []string{"Subject: [Rewind] Restore of backup " + b.BackupID + " into main failed",
		"X-Rewind-Event: restore.failed", "http://rewind.test:8080/environments/main/activity"} {
		if !strings.Contains(data, want) {
			t.Errorf("mail lacks %q:\n%s", want, data)
		}
	}
}

package notify_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/jobs/notify"
)

func addChannel(t *testing.T, catalog *db.DB, ch *db.NotificationChannel) *db.NotificationChannel {
	t.Helper()
	ch.Enabled = true
	if err := catalog.CreateNotificationChannel(context.Background(), ch); err != nil {
		t.Fatal(err)
	}
	return ch
}

func TestRetriesUntilDelivered(t *testing.T) {
	catalog := openCatalog(t)
	rcv := newReceiver(t, http.StatusInternalServerError, http.StatusBadGateway, http.StatusOK)
	ch := addChannel(t, catalog, &db.NotificationChannel{Name: "hook", Kind: db.ChannelWebhook,
		Events: []string{db.EventRestoreFailed}, URL: rcv.URL + "/hooks/s3cretT0ken"})
	n, logs := newNotifier(t, catalog)
	n.Notify(notify.Event{Kind: db.EventRestoreFailed, Environment: "main", Title: "Restore of main failed"})

	ds := waitDeliveries(t, catalog, ch.ID, 3)
	var got []string
	for _, d := range ds {
		got = append(got, d.Status)
	}
	if got, want := strings.Join(got, ","), "retrying,retrying,delivered"; got != want {
		t.Fatalf("delivery log = %s, want %s", got, want)
	}
	if got, want := len(rcv.requests()), 3; got != want {
		t.Fatalf("receiver got %d requests, want %d", got, want)
	}
	if !strings.Contains(ds[0].Error, "500") || !strings.Contains(ds[1].Error, "502") {
		t.Fatalf("errors = %q, %q: want the statuses", ds[0].Error, ds[1].Error)
	}
	for _, d := range ds {
		if strings.Contains(d.Error, "s3cretT0ken") {
			t.Fatalf("delivery log holds the token: %q", d.Error)
		}
	}
	if strings.Contains(logs.String(), "s3cretT0ken") {
		t.Fatalf("logs hold the token:\n%s", logs)
	}
}

func TestGivesUpAfterAttempts(t *testing.T) {
	catalog := openCatalog(t)
	rcv := newReceiver(t, http.StatusNotFound)
	ch := addChannel(t, catalog, &db.NotificationChannel{Name: "gone", Kind: db.ChannelDiscord,
		Events: []string{db.EventBackupFailed}, URL: rcv.URL + "/api/webhooks/1/t0kenPart"})
	n, logs := newNotifier(t, catalog)
	n.Attempts = 3
	n.Notify(notify.Event{Kind: db.EventBackupFailed, Environment: "main", Title: "Backup of main failed"})
	ds := waitDeliveries(t, catalog, ch.ID, 3)
	if got, want := ds[len(ds)-1].Status, db.DeliveryFailed; got != want || len(ds) != 3 {
		t.Fatalf("%d attempts, last %s; want 3, last %s", len(ds), got, want)
	}
	time.Sleep(100 * time.Millisecond) // a fourth attempt would come within about 80 ms
	if got := len(rcv.requests()); got != 3 {
		t.Fatalf("receiver got %d requests, want 3", got)
	}
	for _, s := range []string{ds[2].Error, logs.String()} {
		if strings.Contains(s, "t0kenPart") {
			t.Fatalf("the token leaked: %q", s)
		}
	}
	if !strings.Contains(ds[2].Error, "404") {
		t.Fatalf("error %q does not name the status", ds[2].Error)
	}
}

func TestTimeoutIsAFailedAttempt(t *testing.T) {
	catalog := openCatalog(t)
	rcv := newReceiver(t)
	rcv.delay = time.Minute
	ch := addChannel(t, catalog, &db.NotificationChannel{Name: "slow", Kind: db.ChannelWebhook, URL: rcv.URL + "/x"})
	n, _ := newNotifier(t, catalog)
	n.Timeout = 100 * time.Millisecond
	d := n.Test(context.Background(), ch, "ops@example.com")
	if d.Status != db.DeliveryFailed || !strings.Contains(d.Error, "Timeout") && !strings.Contains(d.Error, "deadline") {
		t.Fatalf("test to a hanging receiver = %s %q, want failed with a timeout", d.Status, d.Error)
	}
}

func TestNotifyNeverBlocks(t *testing.T) {
	catalog := openCatalog(t)
	rcv := newReceiver(t)
	rcv.delay = time.Minute // every delivery hangs until the notifier closes
	addChannel(t, catalog, &db.NotificationChannel{Name: "hang", Kind: db.ChannelWebhook,
		Events: []string{db.EventBackupFailed}, URL: rcv.URL + "/x"})
	n, logs := newNotifier(t, catalog)
	for range 2 * notify.DefaultQueueSize {
		n.Notify(notify.Event{Kind: db.EventBackupFailed, Environment: "main", Title: "x"})
	}
	if !strings.Contains(logs.String(), "notification dropped") {
		t.Fatal("a full queue dropped nothing")
	}
}

func TestPayloadShapes(t *testing.T) {
	catalog := openCatalog(t)
	rcv := newReceiver(t)
	events := []string{db.EventBackupFailed, db.EventRestoreSucceeded}
	hook := addChannel(t, catalog, &db.NotificationChannel{Name: "hook", Kind: db.ChannelWebhook, Events: events, URL: rcv.URL + "/generic"})
	slack := addChannel(t, catalog, &db.NotificationChannel{Name: "slack", Kind: db.ChannelSlack, Events: events, URL: rcv.URL + "/slack"})
	discord := addChannel(t, catalog, &db.NotificationChannel{Name: "discord", Kind: db.ChannelDiscord, Events: events, URL: rcv.URL + "/discord"})
	ping := addChannel(t, catalog, &db.NotificationChannel{Name: "ping", Kind: db.ChannelPing, Events: events, URL: rcv.URL + "/ping/uuid"})
	other := addChannel(t, catalog, &db.NotificationChannel{Name: "staging-only", Kind: db.ChannelWebhook, Events: events,
		Environments: []string{"staging"}, URL: rcv.URL + "/staging"})
	n, _ := newNotifier(t, catalog)
	at := time.Date(2026, 12, 3, 4, 0, 0, 0, time.UTC)
	n.Notify(notify.Event{Kind: db.EventBackupFailed, Environment: "main", Title: "An automated live backup of main failed",
		Detail: "capture service <uploads>: no such file", ActivityID: 7, At: at, URL: "http://rewind.test:8080/backups/abc"})
	n.Notify(notify.Event{Kind: db.EventRestoreSucceeded, Environment: "main", Title: "Restore is done", At: at})
	for _, ch := range []*db.NotificationChannel{hook, slack, discord, ping} {
		waitDeliveries(t, catalog, ch.ID, 2)
	}
	byPath := map[string][]request{} // the backup.failed requests by path (two workers deliver in any order)
	for _, r := range rcv.requests() {
		if strings.HasPrefix(r.Path, "/ping/") || strings.Contains(string(r.Body), "backup.failed") {
			byPath[r.Path] = append(byPath[r.Path], r)
		}
	}
	if len(byPath["/staging"]) != 0 {
		t.Fatalf("a channel of staging got main's events")
	}
	if ds, _ := catalog.FindNotificationDeliveries(context.Background(), other.ID, 10); len(ds) != 0 {
		t.Fatalf("a channel of staging has deliveries")
	}

	var generic map[string]any
	if err := json.Unmarshal(byPath["/generic"][0].Body, &generic); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"source": "rewind", "event": "backup.failed", "environment": "main",
		"activity_id": 7.0, "url": "http://rewind.test:8080/backups/abc", "at": "2026-12-03T04:00:00Z"} {
		if generic[k] != want {
			t.Errorf("webhook %s = %v, want %v", k, generic[k], want)
		}
	}

	var sl struct {
		Text        string `json:"text"`
		Attachments []struct {
			Color, Text string
			Fields      []struct{ Title, Value string }
		} `json:"attachments"`
	}
	if err := json.Unmarshal(byPath["/slack"][0].Body, &sl); err != nil {
		t.Fatal(err)
	}
	if want := "<http://rewind.test:8080/backups/abc|An automated live backup of main failed>"; sl.Text != want {
		t.Errorf("slack text = %q, want %q", sl.Text, want)
	}
	if len(sl.Attachments) != 1 || sl.Attachments[0].Color != "danger" || sl.Attachments[0].Text != "capture service &lt;uploads&gt;: no such file" {
		t.Errorf("slack attachments = %+v", sl.Attachments)
	}

	var dc struct {
		Content string `json:"content"`
		Embeds  []struct {
			Title, URL, Description, Timestamp string
			Color                              int
		} `json:"embeds"`
		AllowedMentions struct{ Parse []string } `json:"allowed_mentions"`
	}
	if err := json.Unmarshal(byPath["/discord"][0].Body, &dc); err != nil {
		t.Fatal(err)
	}
	if len(dc.Embeds) != 1 || dc.Embeds[0].URL != "http://rewind.test:8080/backups/abc" || dc.Embeds[0].Color != 0xd0312d ||
		dc.Embeds[0].Timestamp != "2026-12-03T04:00:00Z" || dc.AllowedMentions.Parse == nil {
		t.Errorf("discord payload = %s", byPath["/discord"][0].Body)
	}

	// A ping channel pings /fail on a failure and its URL on success.
	if got, want := len(byPath["/ping/uuid/fail"]), 1; got != want {
		t.Errorf("pings of /fail = %d, want %d", got, want)
	}
	if got, want := len(byPath["/ping/uuid"]), 1; got != want {
		t.Errorf("pings of the url = %d, want %d", got, want)
	}
	if p := byPath["/ping/uuid/fail"]; len(p) == 1 && !strings.Contains(string(p[0].Body), "capture service <uploads>") {
		t.Errorf("ping body = %q, want the event's text", p[0].Body)
	}
}

func TestEmailOverSTARTTLS(t *testing.T) {
	catalog := openCatalog(t)
	srv := newSMTPServer(t, "rewind", "smtp-Passw0rd")
	host, port := splitHostPort(t, srv.Addr)
	ch := addChannel(t, catalog, &db.NotificationChannel{Name: "mail", Kind: db.ChannelEmail,
		Events: []string{db.EventBackupFailed}, SMTP: db.SMTPSettings{Host: host, Port: port, Username: "rewind",
			Password: "smtp-Passw0rd", From: "rewind@example.com", To: []string{"ops@example.com", "oncall@example.com"},
			TLS: db.SMTPStartTLS}})
	n, logs := newNotifier(t, catalog, srv.Cert)
	n.Notify(notify.Event{Kind: db.EventBackupFailed, Environment: "main", Title: "A manual backup of main failed",
		Detail: "capture service \"uploads\"", At: time.Now(), URL: "http://rewind.test:8080/backups/abc"})
	ds := waitDeliveries(t, catalog, ch.ID, 1)
	if ds[0].Status != db.DeliveryDelivered {
		t.Fatalf("email delivery = %s %q", ds[0].Status, ds[0].Error)
	}
	mails := srv.mails()
	if len(mails) != 1 {
		t.Fatalf("SMTP server got %d mails, want 1", len(mails))
	}
	m := mails[0]
	if m.From != "rewind@example.com" || strings.Join(m.To, ",") != "ops@example.com,oncall@example.com" || m.User != "rewind" {
		t.Fatalf("envelope = %+v", m)
	}
	data := string(m.Data)
	for _, want := range []string{"Subject: [Rewind] A manual backup of main failed", "Environment: main",
		"http://rewind.test:8080/backups/abc", "X-Rewind-Event: backup.failed"} {
		if !strings.Contains(data, want) {
			t.Errorf("mail lacks %q:\n%s", want, data)
		}
	}
	if strings.Contains(logs.String(), "smtp-Passw0rd") {
		t.Fatal("logs hold the SMTP password")
	}

	// A wrong password is a failed attempt whose error does not quote it.
	ch.SMTP.Password = "wr0ng-Secret"
	d := n.Test(context.Background(), ch, "ops@example.com")
	if d.Status != db.DeliveryFailed || strings.Contains(d.Error, "wr0ng-Secret") {
		t.Fatalf("wrong password: %s %q", d.Status, d.Error)
	}
	// A server without STARTTLS is refused rather than sent the password in clear.
	plain := newReceiver(t) // an HTTP server: it answers SMTP with garbage, so the connection fails
	host, port = splitHostPort(t, strings.TrimPrefix(plain.URL, "http://"))
	ch.SMTP.Host, ch.SMTP.Port = host, port
	n.Timeout = 300 * time.Millisecond // it never greets
	if d := n.Test(context.Background(), ch, "ops@example.com"); d.Status != db.DeliveryFailed {
		t.Fatalf("SMTP to an HTTP server = %s", d.Status)
	}
}

func splitHostPort(t *testing.T, addr string) (string, int) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	return host, p
}

// Close delivers what is already queued: a failure reported just before a shutdown still goes out.
func TestCloseDeliversWhatIsQueued(t *testing.T) {
	catalog := openCatalog(t)
	rcv := newReceiver(t)
	for _, name := range []string{"a", "b", "c"} {
		addChannel(t, catalog, &db.NotificationChannel{Name: name, Kind: db.ChannelWebhook,
			Events: []string{db.EventBackupFailed}, URL: rcv.URL + "/" + name})
	}
	n, _ := newNotifier(t, catalog)
	for range 3 {
		n.Notify(notify.Event{Kind: db.EventBackupFailed, Environment: "main", Title: "Backup of main failed"})
	}
	n.Close()
	if got, want := len(rcv.requests()), 9; got != want {
		t.Fatalf("after Close the receiver got %d requests, want %d", got, want)
	}
	n.Notify(notify.Event{Kind: db.EventBackupFailed, Environment: "main", Title: "too late"})
	if got := len(rcv.requests()); got != 9 {
		t.Fatalf("an event after Close was delivered (%d requests)", got)
	}
}

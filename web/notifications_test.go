package web_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/jobs/notify"
	"github.com/rewind/rewind/web"
)

const (
	hookToken    = "T0KENinTheHookPath"
	smtpPassword = "smtp-S3cret-pw"
)

// hookReceiver is a local webhook receiver recording the bodies it got.
type hookReceiver struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []string
}

func newHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.bodies = append(h.bodies, r.URL.Path+" "+string(b))
		h.mu.Unlock()
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookReceiver) got() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.bodies...)
}

// newNotifyApp is the router with a real notifier over its catalog.
func newNotifyApp(t *testing.T) *testApp {
	t.Helper()
	var n *notify.Notifier
	app := newTestAppWith(t, func(cfg *web.Config) {
		n = &notify.Notifier{Store: cfg.Catalog, BaseURL: "http://rewind.test"}
		cfg.Notifier = n
	})
	n.Start()
	t.Cleanup(n.Close)
	return app
}

func assertNoSecret(t *testing.T, where, body string) {
	t.Helper()
	for _, s := range []string{hookToken, smtpPassword} {
		if strings.Contains(body, s) {
			t.Fatalf("%s shows the secret %q", where, s)
		}
	}
}

func TestNotificationChannelsPage(t *testing.T) {
	app := newNotifyApp(t)
	app.user("admin@example.com", db.RoleAdmin, nil)
	rcv := newHookReceiver(t)
	c := app.client()
	c.login("admin@example.com")
	if r := c.get("/settings/notifications"); r.StatusCode != http.StatusOK || r.doc(t).Find(testid("no-channels")).Length() != 1 {
		t.Fatalf("empty page: %d", r.StatusCode)
	}

	// Add a Slack channel: its URL is stored, shown masked only.
	r := c.post("/settings/notifications", url.Values{"name": {"ops-slack"}, "kind": {db.ChannelSlack}, "enabled": {"1"},
		"events": {db.EventBackupFailed, db.EventDrillFailed}, "url": {rcv.URL + "/services/" + hookToken}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("add channel: %d %s", r.StatusCode, r.body)
	}
	// And an email channel with a password.
	r = c.post("/settings/notifications", url.Values{"name": {"mail"}, "kind": {db.ChannelEmail}, "enabled": {"1"},
		"events": {db.EventRestoreFailed}, "smtp_host": {"127.0.0.1"}, "smtp_port": {"2525"}, "smtp_tls": {"starttls"},
		"smtp_username": {"rewind"}, "smtp_password": {smtpPassword}, "smtp_from": {"rewind@example.com"},
		"smtp_to": {"ops@example.com, oncall@example.com"}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("add email channel: %d %s", r.StatusCode, r.body)
	}
	page := c.get("/settings/notifications")
	assertNoSecret(t, "the notifications page", page.body)
	doc := page.doc(t)
	if got, want := doc.Find(testid("channel")).Length(), 2; got != want {
		t.Fatalf("channels listed = %d, want %d", got, want)
	}
	slackRow := doc.Find(`[data-testid="channel"][data-name="ops-slack"]`)
	if got := slackRow.Find(testid("channel-target")).Text(); !strings.HasSuffix(got, "/****") {
		t.Fatalf("slack target = %q, want it masked", got)
	}
	id, _ := slackRow.Attr("data-id")

	edit := c.get("/settings/notifications/" + id)
	assertNoSecret(t, "the edit form", edit.body)
	if edit.doc(t).Find(testid("channel-url-stored")).Length() != 1 {
		t.Fatal("the edit form does not say a url is stored")
	}
	// Saving the edit form without retyping the url keeps it.
	r = c.post("/settings/notifications/"+id, url.Values{"name": {"ops-slack"}, "kind": {db.ChannelSlack}, "enabled": {"1"},
		"events": {db.EventBackupFailed}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("save edit: %d %s", r.StatusCode, r.body)
	}

	// "Send test" over HTMX answers with the inline result, and the receiver got a Slack message.
	req, _ := http.NewRequest(http.MethodPost, app.srv.URL+"/settings/notifications/"+id+"/test", nil)
	req.Header.Set("HX-Request", "true")
	req.Header.Set("X-CSRF-Token", c.csrf)
	res := c.do(req)
	if res.StatusCode != http.StatusOK || res.doc(t).Find(testid("test-ok")).Length() != 1 {
		t.Fatalf("send test: %d %s", res.StatusCode, res.body)
	}
	if strings.Contains(res.body, "<html") {
		t.Fatal("the HTMX answer is a whole page")
	}
	if res.doc(t).Find(`[hx-swap-oob] [data-testid="delivery"][data-event="test"]`).Length() != 1 {
		t.Fatalf("the HTMX answer does not update the recent deliveries: %s", res.body)
	}
	got := rcv.got()
	if len(got) != 1 || !strings.HasPrefix(got[0], "/services/"+hookToken+" ") || !strings.Contains(got[0], `"attachments"`) {
		t.Fatalf("receiver got %q", got)
	}
	page = c.get("/settings/notifications")
	if d := page.doc(t).Find(`[data-testid="delivery"][data-event="test"]`); d.Length() != 1 || d.AttrOr("data-status", "") != db.DeliveryDelivered {
		t.Fatalf("recent deliveries do not list the test: %s", page.body)
	}

	// A test to the email channel (no SMTP server there) fails inline, without the password.
	mailID := page.doc(t).Find(`[data-testid="channel"][data-name="mail"]`).AttrOr("data-id", "")
	req, _ = http.NewRequest(http.MethodPost, app.srv.URL+"/settings/notifications/"+mailID+"/test", nil)
	req.Header.Set("HX-Request", "true")
	req.Header.Set("X-CSRF-Token", c.csrf)
	res = c.do(req)
	if res.doc(t).Find(testid("test-failed")).Length() != 1 {
		t.Fatalf("test to a closed SMTP port: %s", res.body)
	}
	assertNoSecret(t, "the failed test", res.body)

	// Invalid input is refused beside its field.
	r = c.post("/settings/notifications", url.Values{"name": {"bad"}, "kind": {db.ChannelWebhook}, "url": {"ftp://nope"}})
	if r.StatusCode != http.StatusUnprocessableEntity || r.doc(t).Find(testid("error-url")).Length() != 1 {
		t.Fatalf("invalid url: %d", r.StatusCode)
	}

	// Delete.
	if r := c.post("/settings/notifications/"+id+"/delete", nil); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("delete: %d", r.StatusCode)
	}
	if chs, _ := app.cat.FindNotificationChannels(context.Background()); len(chs) != 1 {
		t.Fatalf("channels after delete = %d, want 1", len(chs))
	}
}

func TestNotificationChannelsNeedAdminAndCSRF(t *testing.T) {
	app := newNotifyApp(t)
	app.user("admin@example.com", db.RoleAdmin, nil)
	app.user("viewer@example.com", db.RoleViewer, nil)
	// An admin of staging environments only is not an admin of the project's channels.
	app.user("contrib@example.com", db.RoleContributor, map[string]string{db.EnvStaging: db.RoleAdmin})
	ch := &db.NotificationChannel{Name: "hook", Kind: db.ChannelWebhook, Enabled: true, URL: "http://127.0.0.1:9/" + hookToken}
	if err := app.cat.CreateNotificationChannel(context.Background(), ch); err != nil {
		t.Fatal(err)
	}
	id := strconv.FormatInt(ch.ID, 10)
	for _, email := range []string{"viewer@example.com", "contrib@example.com"} {
		c := app.client()
		c.login(email)
		if r := c.get("/settings/notifications"); r.StatusCode != http.StatusForbidden {
			t.Fatalf("%s GET page: %d, want 403", email, r.StatusCode)
		}
		if r := c.get("/environments"); r.doc(t).Find(testid("nav-notifications")).Length() != 0 {
			t.Fatalf("%s sees the notifications link", email)
		}
		for _, path := range []string{"/settings/notifications", "/settings/notifications/" + id,
			"/settings/notifications/" + id + "/delete", "/settings/notifications/" + id + "/test"} {
			r := c.post(path, url.Values{"name": {"x"}, "kind": {db.ChannelWebhook}, "url": {"http://example.com/x"}})
			if r.StatusCode != http.StatusForbidden {
				t.Fatalf("%s POST %s: %d, want 403", email, path, r.StatusCode)
			}
			assertNoSecret(t, "a refusal", r.body)
		}
	}
	// An admin without the CSRF token is refused, and nothing changes.
	c := app.client()
	c.login("admin@example.com")
	for _, path := range []string{"/settings/notifications", "/settings/notifications/" + id + "/delete"} {
		r := c.postRaw(path, url.Values{"name": {"new"}, "kind": {db.ChannelWebhook}, "url": {"http://example.com/x"}})
		if r.StatusCode != http.StatusForbidden {
			t.Fatalf("POST %s without CSRF: %d, want 403", path, r.StatusCode)
		}
	}
	if chs, _ := app.cat.FindNotificationChannels(context.Background()); len(chs) != 1 {
		t.Fatalf("channels = %d after refused posts, want 1", len(chs))
	}

	// The API: viewer tokens are refused, admin tokens work.
	viewer, _ := app.cat.FindUserByEmail(context.Background(), "viewer@example.com")
	vt := app.token(viewer)
	for _, rq := range [][2]string{{"GET", "/api/v1/notifications/channels"}, {"POST", "/api/v1/notifications/channels"},
		{"PUT", "/api/v1/notifications/channels/" + id}, {"DELETE", "/api/v1/notifications/channels/" + id},
		{"POST", "/api/v1/notifications/channels/" + id + "/test"}} {
		if r := app.api(rq[0], rq[1], vt, `{"name":"x"}`); r.StatusCode != http.StatusForbidden {
			t.Fatalf("viewer %s %s: %d, want 403", rq[0], rq[1], r.StatusCode)
		}
		if r := app.api(rq[0], rq[1], "", `{"name":"x"}`); r.StatusCode != http.StatusUnauthorized {
			t.Fatalf("anonymous %s %s: %d, want 401", rq[0], rq[1], r.StatusCode)
		}
	}
}

func TestNotificationChannelsAPI(t *testing.T) {
	app := newNotifyApp(t)
	admin := app.user("admin@example.com", db.RoleAdmin, nil)
	tok := app.token(admin)
	rcv := newHookReceiver(t)

	r := app.api("POST", "/api/v1/notifications/channels", tok, `{"name":"discord","kind":"discord",
		"events":["backup.failed","rpo.exceeded"],"rpo_hours":26,"environments":["main"],"url":"`+rcv.URL+`/api/webhooks/1/`+hookToken+`"}`)
	if r.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d %s", r.StatusCode, r.body)
	}
	assertNoSecret(t, "the create answer", r.body)
	var created struct {
		ID  int64
		URL string
	}
	r.json(t, &created)
	if created.URL != rcv.URL+"/****" {
		t.Fatalf("url = %q, want masked", created.URL)
	}
	id := strconv.FormatInt(created.ID, 10)

	r = app.api("POST", "/api/v1/notifications/channels", tok, `{"name":"mail","kind":"email","events":["restore.failed"],
		"smtp":{"host":"127.0.0.1","port":2525,"username":"rewind","password":"`+smtpPassword+`","from":"rewind@example.com","to":["ops@example.com"]}}`)
	if r.StatusCode != http.StatusCreated {
		t.Fatalf("create email: %d %s", r.StatusCode, r.body)
	}
	assertNoSecret(t, "the create answer", r.body)

	r = app.api("GET", "/api/v1/notifications/channels", tok, "")
	assertNoSecret(t, "the channel list", r.body)
	var list struct {
		Channels []struct {
			Name string
			SMTP *struct {
				PasswordSet bool `json:"password_set"`
			}
		}
	}
	r.json(t, &list)
	if len(list.Channels) != 2 || list.Channels[1].SMTP == nil || !list.Channels[1].SMTP.PasswordSet {
		t.Fatalf("list = %s", r.body)
	}

	// The page's edit form keeps an event it has no checkbox label for.
	ch, _ := app.cat.FindNotificationChannelByID(context.Background(), created.ID)
	ch.Events = append(ch.Events, "repository.failed")
	if err := app.cat.UpdateNotificationChannel(context.Background(), ch); err != nil {
		t.Fatal(err)
	}
	c := app.client()
	c.login("admin@example.com")
	if got := c.get("/settings/notifications/" + id).doc(t).Find(`input[name="events"][value="repository.failed"][checked]`).Length(); got != 1 {
		t.Fatalf("the edit form lost the event repository.failed (%d)", got)
	}

	// PUT with the masked url read back keeps the stored one: the test still reaches the receiver.
	r = app.api("PUT", "/api/v1/notifications/channels/"+id, tok, `{"name":"discord","kind":"discord",
		"events":["backup.failed"],"url":"`+created.URL+`"}`)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("update: %d %s", r.StatusCode, r.body)
	}
	r = app.api("POST", "/api/v1/notifications/channels/"+id+"/test", tok, "")
	var test struct{ Delivery db.NotificationDelivery }
	r.json(t, &test)
	if test.Delivery.Status != db.DeliveryDelivered {
		t.Fatalf("test: %s", r.body)
	}
	if got := rcv.got(); len(got) != 1 || !strings.HasPrefix(got[0], "/api/webhooks/1/"+hookToken) || !strings.Contains(got[0], `"embeds"`) {
		t.Fatalf("receiver got %q", got)
	}

	r = app.api("PUT", "/api/v1/notifications/channels/"+id, tok, `{"name":"discord","kind":"discord","events":["nope"]}`)
	if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(r.body, "events[0]") {
		t.Fatalf("invalid update: %d %s", r.StatusCode, r.body)
	}
	if r := app.api("DELETE", "/api/v1/notifications/channels/"+id, tok, ""); r.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %d", r.StatusCode)
	}
	if r := app.api("DELETE", "/api/v1/notifications/channels/"+id, tok, ""); r.StatusCode != http.StatusNotFound {
		t.Fatalf("delete again: %d", r.StatusCode)
	}
	acts, _, _ := app.cat.FindActivities(context.Background(), db.ActivityFilter{})
	for _, a := range acts {
		assertNoSecret(t, "the activity feed", a.Summary+a.Log)
	}
	b, _ := json.Marshal(acts)
	if !strings.Contains(string(b), "notification.create") {
		t.Fatal("channel changes are not in the activity feed")
	}
}

package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/views"
)

type notificationStore interface {
	FindNotificationChannels(ctx context.Context) ([]*db.NotificationChannel, error)
	FindNotificationChannelByID(ctx context.Context, id int64) (*db.NotificationChannel, error)
	CreateNotificationChannel(ctx context.Context, ch *db.NotificationChannel) error
	UpdateNotificationChannel(ctx context.Context, ch *db.NotificationChannel) error
	DeleteNotificationChannel(ctx context.Context, id int64) error
	FindNotificationDeliveries(ctx context.Context, channelID int64, limit int) ([]*db.NotificationDelivery, error)
	CreateActivity(ctx context.Context, a *db.Activity) error
}

// NotificationTester sends a test event to a channel now and returns the recorded attempt (jobs/notify's
// Notifier).
type NotificationTester interface {
	Test(ctx context.Context, ch *db.NotificationChannel, actor string) *db.NotificationDelivery
}

// Notifications is the notification channels page (/settings/notifications) and its JSON API. Admins only.
type Notifications struct {
	store   notificationStore
	tester  NotificationTester // nil: "Send test" says notifications are not running
	session Session
	now     func() time.Time
}

func NewNotifications(store notificationStore, tester NotificationTester, session Session, now func() time.Time) *Notifications {
	return &Notifications{store: store, tester: tester, session: session, now: now}
}

func requireNotificationsAdmin(c echo.Context) error {
	return requireProjectAdmin(c, "see and change notification channels")
}

// recentDeliveries is how many attempts the page lists.
const recentDeliveries = 30

// List is GET /settings/notifications.
func (h *Notifications) List(c echo.Context) error {
	if err := requireNotificationsAdmin(c); err != nil {
		return err
	}
	return h.renderList(c, http.StatusOK, views.ChannelForm{Kind: db.ChannelWebhook, Enabled: true,
		Events: []string{db.EventBackupFailed, db.EventDrillFailed, db.EventRestoreFailed}})
}

func (h *Notifications) renderList(c echo.Context, status int, form views.ChannelForm) error {
	ctx := c.Request().Context()
	chs, err := h.store.FindNotificationChannels(ctx)
	if err != nil {
		return err
	}
	ds, err := h.store.FindNotificationDeliveries(ctx, 0, recentDeliveries)
	if err != nil {
		return err
	}
	return render(c, status, views.NotificationsPage(page(c, "Notifications", "notifications"),
		views.NotificationsData{Channels: chs, Form: form, Deliveries: ds, Now: h.now()}))
}

// Create is POST /settings/notifications.
func (h *Notifications) Create(c echo.Context) error {
	if err := requireNotificationsAdmin(c); err != nil {
		return err
	}
	ch, form := channelFromForm(c)
	ctx := c.Request().Context()
	err := h.store.CreateNotificationChannel(ctx, ch)
	var ve *db.ValidationError
	if errors.As(err, &ve) {
		form.Errors = views.FromValidation(ve)
		return h.renderList(c, http.StatusUnprocessableEntity, form)
	}
	if err != nil {
		return err
	}
	if err := h.record(ctx, c, "notification.create", "Added %s notification channel %q", ch.Kind, ch.Name); err != nil {
		return err
	}
	_ = h.session.Flash(c, "success", fmt.Sprintf("Channel %q added. Use “Send test” to check it.", ch.Name))
	return redirect(c, "/settings/notifications")
}

// Edit is GET /settings/notifications/:id.
func (h *Notifications) Edit(c echo.Context) error {
	if err := requireNotificationsAdmin(c); err != nil {
		return err
	}
	ch, err := h.channel(c)
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.ChannelEditPage(page(c, "Notifications", "notifications"), views.ChannelFormOf(ch)))
}

// Update is POST /settings/notifications/:id. An empty URL or password keeps the stored one.
func (h *Notifications) Update(c echo.Context) error {
	if err := requireNotificationsAdmin(c); err != nil {
		return err
	}
	prev, err := h.channel(c)
	if err != nil {
		return err
	}
	ch, form := channelFromForm(c)
	ch.ID, form.ID = prev.ID, prev.ID
	ctx := c.Request().Context()
	err = h.store.UpdateNotificationChannel(ctx, ch)
	var ve *db.ValidationError
	if errors.As(err, &ve) {
		form.Errors = views.FromValidation(ve)
		form.MaskedURL, form.PasswordSet = prev.MaskedURL(), prev.SMTP.Password != ""
		return render(c, http.StatusUnprocessableEntity, views.ChannelEditPage(page(c, "Notifications", "notifications"), form))
	}
	if err != nil {
		return err
	}
	if err := h.record(ctx, c, "notification.update", "Changed %s notification channel %q", ch.Kind, ch.Name); err != nil {
		return err
	}
	_ = h.session.Flash(c, "success", fmt.Sprintf("Channel %q saved.", ch.Name))
	return redirect(c, "/settings/notifications")
}

// Delete is POST /settings/notifications/:id/delete.
func (h *Notifications) Delete(c echo.Context) error {
	if err := requireNotificationsAdmin(c); err != nil {
		return err
	}
	ch, err := h.channel(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if err := h.store.DeleteNotificationChannel(ctx, ch.ID); err != nil {
		return err
	}
	if err := h.record(ctx, c, "notification.delete", "Deleted %s notification channel %q", ch.Kind, ch.Name); err != nil {
		return err
	}
	_ = h.session.Flash(c, "success", fmt.Sprintf("Channel %q deleted.", ch.Name))
	return redirect(c, "/settings/notifications")
}

// Test is POST /settings/notifications/:id/test: the result alone for HTMX, else the page with a message.
func (h *Notifications) Test(c echo.Context) error {
	if err := requireNotificationsAdmin(c); err != nil {
		return err
	}
	ch, err := h.channel(c)
	if err != nil {
		return err
	}
	d := h.test(c, ch)
	if isHTMX(c) {
		ds, err := h.store.FindNotificationDeliveries(c.Request().Context(), 0, recentDeliveries)
		if err != nil {
			return err
		}
		return render(c, http.StatusOK, views.NotificationTestAnswer(ch.ID, d, ds, h.now()))
	}
	if d.Status == db.DeliveryDelivered {
		_ = h.session.Flash(c, "success", fmt.Sprintf("Test sent to %q.", ch.Name))
	} else {
		_ = h.session.Flash(c, "error", fmt.Sprintf("Test to %q failed: %s", ch.Name, d.Error))
	}
	return redirect(c, "/settings/notifications")
}

func (h *Notifications) test(c echo.Context, ch *db.NotificationChannel) *db.NotificationDelivery {
	if h.tester == nil {
		return &db.NotificationDelivery{ChannelID: ch.ID, ChannelName: ch.Name, Event: db.EventTest, Attempt: 1,
			Status: db.DeliveryFailed, Error: "notifications are not running in this server"}
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), 30*time.Second)
	defer cancel()
	return h.tester.Test(ctx, ch, actor(c))
}

func (h *Notifications) channel(c echo.Context) (*db.NotificationChannel, error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil {
		return nil, db.ErrNotFound
	}
	return h.store.FindNotificationChannelByID(c.Request().Context(), id)
}

func (h *Notifications) record(ctx context.Context, c echo.Context, typ, format string, args ...any) error {
	return h.store.CreateActivity(ctx, &db.Activity{Type: typ, Actor: actor(c), Summary: fmt.Sprintf(format, args...)})
}

// channelFromForm reads the channel form; the returned form is what was typed, secrets left out.
func channelFromForm(c echo.Context) (*db.NotificationChannel, views.ChannelForm) {
	params, _ := c.FormParams()
	f := views.ChannelForm{Name: c.FormValue("name"), Kind: c.FormValue("kind"), Enabled: c.FormValue("enabled") != "",
		Events: params["events"], Environments: c.FormValue("environments"), RPOHours: c.FormValue("rpo_hours"),
		SMTPHost: c.FormValue("smtp_host"), SMTPPort: c.FormValue("smtp_port"), SMTPUsername: c.FormValue("smtp_username"),
		SMTPFrom: c.FormValue("smtp_from"), SMTPTo: c.FormValue("smtp_to"), SMTPTLS: c.FormValue("smtp_tls")}
	ch := &db.NotificationChannel{Name: f.Name, Kind: f.Kind, Enabled: f.Enabled, Events: f.Events,
		Environments: splitList(f.Environments), URL: strings.TrimSpace(c.FormValue("url"))}
	ch.RPOHours, _ = strconv.Atoi(strings.TrimSpace(f.RPOHours))
	if ch.Kind == db.ChannelEmail {
		port, _ := strconv.Atoi(strings.TrimSpace(f.SMTPPort))
		ch.SMTP = db.SMTPSettings{Host: f.SMTPHost, Port: port, Username: strings.TrimSpace(f.SMTPUsername),
			Password: c.FormValue("smtp_password"), From: strings.TrimSpace(f.SMTPFrom), To: splitList(f.SMTPTo), TLS: f.SMTPTLS}
		ch.URL = ""
	}
	return ch, f
}

// splitList reads a comma- or space-separated list.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' })
}

package handlers

import (
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/rewind/rewind/db"
)

// NotificationsAPI is /api/v1/notifications/channels: the channels of the settings page, for admins' tokens.
type NotificationsAPI struct{ h *Notifications }

func NewNotificationsAPI(h *Notifications) *NotificationsAPI { return &NotificationsAPI{h: h} }

// channelJSON is a channel in the API. On the way out, url is masked and the SMTP password left out
// (password_set says whether one is stored); on the way in, an empty or masked url and an empty password keep
// the stored ones.
type channelJSON struct {
	ID           int64     `json:"id,omitempty"`
	Name         string    `json:"name"`
	Kind         string    `json:"kind"`
	Enabled      *bool     `json:"enabled,omitempty"`
	Events       []string  `json:"events"`
	Environments []string  `json:"environments"`
	RPOHours     int       `json:"rpo_hours"`
	URL          string    `json:"url,omitempty"`
	SMTP         *smtpJSON `json:"smtp,omitempty"`
	CreatedAt    time.Time `json:"created_at,omitzero"`
	UpdatedAt    time.Time `json:"updated_at,omitzero"`
}

type smtpJSON struct {
	Host        string   `json:"host"`
	Port        int      `json:"port"`
	Username    string   `json:"username,omitempty"`
	Password    string   `json:"password,omitempty"`
	PasswordSet bool     `json:"password_set"`
	From        string   `json:"from"`
	To          []string `json:"to"`
	TLS         string   `json:"tls"`
}

func channelOut(ch *db.NotificationChannel) channelJSON {
	enabled := ch.Enabled
	out := channelJSON{ID: ch.ID, Name: ch.Name, Kind: ch.Kind, Enabled: &enabled, Events: ch.Events,
		Environments: ch.Environments, RPOHours: ch.RPOHours, URL: ch.MaskedURL(), CreatedAt: ch.CreatedAt,
		UpdatedAt: ch.UpdatedAt}
	if ch.Kind == db.ChannelEmail {
		out.SMTP = &smtpJSON{Host: ch.SMTP.Host, Port: ch.SMTP.Port, Username: ch.SMTP.Username,
			PasswordSet: ch.SMTP.Password != "", From: ch.SMTP.From, To: ch.SMTP.To, TLS: ch.SMTP.TLS}
	}
	return out
}

func (in channelJSON) channel() *db.NotificationChannel {
	ch := &db.NotificationChannel{Name: in.Name, Kind: in.Kind, Enabled: in.Enabled == nil || *in.Enabled,
		Events: in.Events, Environments: in.Environments, RPOHours: in.RPOHours, URL: in.URL}
	if strings.Contains(ch.URL, db.MaskedPassword) {
		ch.URL = "" // the masked value read back: keep the stored url
	}
	if in.SMTP != nil {
		ch.SMTP = db.SMTPSettings{Host: in.SMTP.Host, Port: in.SMTP.Port, Username: in.SMTP.Username,
			Password: in.SMTP.Password, From: in.SMTP.From, To: in.SMTP.To, TLS: in.SMTP.TLS}
	}
	return ch
}

// List is GET /api/v1/notifications/channels.
func (a *NotificationsAPI) List(c echo.Context) error {
	if err := requireNotificationsAdmin(c); err != nil {
		return err
	}
	chs, err := a.h.store.FindNotificationChannels(c.Request().Context())
	if err != nil {
		return err
	}
	out := make([]channelJSON, 0, len(chs))
	for _, ch := range chs {
		out = append(out, channelOut(ch))
	}
	return c.JSON(http.StatusOK, map[string]any{"channels": out})
}

// Create is POST /api/v1/notifications/channels → 201 with the channel.
func (a *NotificationsAPI) Create(c echo.Context) error {
	if err := requireNotificationsAdmin(c); err != nil {
		return err
	}
	var in channelJSON
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	ch := in.channel()
	ctx := c.Request().Context()
	if err := a.h.store.CreateNotificationChannel(ctx, ch); err != nil {
		return err
	}
	if err := a.h.record(ctx, c, "notification.create", "Added %s notification channel %q", ch.Kind, ch.Name); err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, channelOut(ch))
}

// Update is PUT /api/v1/notifications/channels/{id}: every field is replaced, except that an empty or masked
// url and an empty SMTP password keep the stored secret.
func (a *NotificationsAPI) Update(c echo.Context) error {
	if err := requireNotificationsAdmin(c); err != nil {
		return err
	}
	prev, err := a.h.channel(c)
	if err != nil {
		return err
	}
	var in channelJSON
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	ch := in.channel()
	ch.ID = prev.ID
	ctx := c.Request().Context()
	if err := a.h.store.UpdateNotificationChannel(ctx, ch); err != nil {
		return err
	}
	if err := a.h.record(ctx, c, "notification.update", "Changed %s notification channel %q", ch.Kind, ch.Name); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, channelOut(ch))
}

// Delete is DELETE /api/v1/notifications/channels/{id} → 204.
func (a *NotificationsAPI) Delete(c echo.Context) error {
	if err := requireNotificationsAdmin(c); err != nil {
		return err
	}
	ch, err := a.h.channel(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if err := a.h.store.DeleteNotificationChannel(ctx, ch.ID); err != nil {
		return err
	}
	if err := a.h.record(ctx, c, "notification.delete", "Deleted %s notification channel %q", ch.Kind, ch.Name); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// Test is POST /api/v1/notifications/channels/{id}/test: sends a test event now → 200 with the attempt
// ({"delivery": {"status": "delivered" | "failed", "error": ...}}).
func (a *NotificationsAPI) Test(c echo.Context) error {
	if err := requireNotificationsAdmin(c); err != nil {
		return err
	}
	ch, err := a.h.channel(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"delivery": a.h.test(c, ch)})
}

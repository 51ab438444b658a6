package views

import (
	"strings"
	"time"

	"github.com/a-h/templ"

	"github.com/rewind/rewind/db"
)

// NotificationsData is the notification channels page (/settings/notifications), for admins.
type NotificationsData struct {
	Channels   []*db.NotificationChannel // secrets are shown masked only
	Form       ChannelForm               // the add (or edit) form, as typed
	Deliveries []*db.NotificationDelivery
	Now        time.Time
}

// ChannelForm is the form of one channel. It never carries a stored secret: URL and SMTPPassword are what was
// typed ("" keeps the stored one), MaskedURL and PasswordSet say what is stored.
type ChannelForm struct {
	ID                               int64 // 0: a new channel
	Name, Kind                       string
	Enabled                          bool
	Events                           []string
	Environments                     string // comma-separated
	RPOHours                         string
	URL, MaskedURL                   string
	SMTPHost, SMTPPort, SMTPUsername string
	SMTPPassword                     string
	PasswordSet                      bool
	SMTPFrom, SMTPTo, SMTPTLS        string
	Errors                           Errors
}

// ChannelFormOf fills the form from a stored channel, without its secrets.
func ChannelFormOf(ch *db.NotificationChannel) ChannelForm {
	f := ChannelForm{ID: ch.ID, Name: ch.Name, Kind: ch.Kind, Enabled: ch.Enabled, Events: ch.Events,
		Environments: strings.Join(ch.Environments, ", "), MaskedURL: ch.MaskedURL(),
		SMTPHost: ch.SMTP.Host, SMTPUsername: ch.SMTP.Username, PasswordSet: ch.SMTP.Password != "",
		SMTPFrom: ch.SMTP.From, SMTPTo: strings.Join(ch.SMTP.To, ", "), SMTPTLS: ch.SMTP.TLS}
	if ch.RPOHours > 0 {
		f.RPOHours = itoa(ch.RPOHours)
	}
	if ch.SMTP.Port > 0 {
		f.SMTPPort = itoa(ch.SMTP.Port)
	}
	return f
}

// eventLabel names an event for people.
func eventLabel(ev string) string {
	switch ev {
	case db.EventBackupFailed:
		return "Backup failed"
	case db.EventDrillFailed:
		return "Restore drill failed"
	case db.EventRestoreFailed:
		return "Restore failed"
	case db.EventRestoreSucceeded:
		return "Restore done"
	case db.EventRPOExceeded:
		return "RPO above the threshold"
	case db.EventStorageUnreachable:
		return "Storage unreachable"
	case db.EventQuotaReached:
		return "Manual backup quota reached"
	case db.EventBackupSucceeded:
		return "Backup completed (for ping checks)"
	case db.EventTest:
		return "Test"
	}
	return ev
}

func kindLabel(kind string) string {
	switch kind {
	case db.ChannelWebhook:
		return "Webhook (JSON)"
	case db.ChannelSlack:
		return "Slack"
	case db.ChannelDiscord:
		return "Discord"
	case db.ChannelEmail:
		return "Email (SMTP)"
	case db.ChannelPing:
		return "Ping URL (healthchecks)"
	}
	return kind
}

// channelTarget is where a channel sends, masked.
func channelTarget(ch *db.NotificationChannel) string {
	if ch.Kind == db.ChannelEmail {
		return strings.Join(ch.SMTP.To, ", ") + " via " + ch.SMTP.Host
	}
	return ch.MaskedURL()
}

func eventList(evs []string) string {
	labels := make([]string, 0, len(evs))
	for _, e := range evs {
		labels = append(labels, eventLabel(e))
	}
	if len(labels) == 0 {
		return "none (test only)"
	}
	return strings.Join(labels, ", ")
}

func hasEvent(evs []string, ev string) bool {
	for _, e := range evs {
		if e == ev {
			return true
		}
	}
	return false
}

// otherEvents are the events of a channel the page has no label for (a "<operation>.failed" set through the
// API), so that saving the form keeps them.
func otherEvents(evs []string) []string {
	var out []string
	for _, e := range evs {
		if !hasEvent(db.NotificationEvents(), e) {
			out = append(out, e)
		}
	}
	return out
}

func channelURL(id int64, action string) string {
	u := "/settings/notifications/" + i64(id)
	if action != "" {
		u += "/" + action
	}
	return u
}

func testResultID(id int64) string { return "notify-test-" + i64(id) }

func formAction(f ChannelForm) string {
	if f.ID == 0 {
		return "/settings/notifications"
	}
	return channelURL(f.ID, "")
}

func urlPlaceholder(f ChannelForm) string {
	if f.MaskedURL != "" {
		return "unchanged"
	}
	return "https://hooks.slack.com/services/…"
}

func passwordPlaceholder(f ChannelForm) string {
	if f.PasswordSet {
		return "unchanged (stored encrypted)"
	}
	return ""
}

func deliveryBadge(status string) string {
	switch status {
	case db.DeliveryDelivered:
		return "b-succeeded"
	case db.DeliveryFailed:
		return "b-failed"
	}
	return "b-running"
}

// oobAttrs marks a fragment for an out-of-band HTMX swap.
func oobAttrs(oob bool) templ.Attributes {
	if oob {
		return templ.Attributes{"hx-swap-oob": "true"}
	}
	return nil
}

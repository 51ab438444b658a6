package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Notification channel kinds.
const (
	ChannelWebhook = "webhook" // generic JSON POST
	ChannelSlack   = "slack"   // Slack incoming webhook
	ChannelDiscord = "discord" // Discord webhook
	ChannelEmail   = "email"   // SMTP
	ChannelPing    = "ping"    // healthchecks.io-style ping URL: success pings it, a failure pings URL/fail
)

// ChannelKinds lists the notification channel kinds.
func ChannelKinds() []string {
	return []string{ChannelWebhook, ChannelSlack, ChannelDiscord, ChannelEmail, ChannelPing}
}

// Notification events a channel can subscribe to. A failed activity is the event "<operation>.failed", the
// operation named by its type (see jobs/notify): backup.failed, restore.failed, drill.failed, ...
const (
	EventBackupFailed       = "backup.failed"
	EventBackupSucceeded    = "backup.succeeded"
	EventDrillFailed        = "drill.failed"
	EventRestoreSucceeded   = "restore.succeeded"
	EventRestoreFailed      = "restore.failed"
	EventRPOExceeded        = "rpo.exceeded"
	EventStorageUnreachable = "storage.unreachable"
	EventQuotaReached       = "quota.reached"
	EventTest               = "test" // "Send test": delivered whatever the channel subscribes to
)

// NotificationEvents lists the events a channel can subscribe to, in the order the settings page shows them.
func NotificationEvents() []string {
	return []string{EventBackupFailed, EventDrillFailed, EventRestoreFailed, EventRestoreSucceeded, EventRPOExceeded,
		EventStorageUnreachable, EventQuotaReached, EventBackupSucceeded}
}

// failedEventPattern admits the failure of any other operation ("repository.failed"), so a new kind of activity
// can be subscribed to before the page lists it.
var failedEventPattern = regexp.MustCompile(`^[a-z][a-z0-9-]{0,39}\.failed$`)

// ValidNotificationEvent reports whether a channel may subscribe to event.
func ValidNotificationEvent(event string) bool {
	return slices.Contains(NotificationEvents(), event) || failedEventPattern.MatchString(event)
}

// SMTP transport security choices.
const (
	SMTPStartTLS = "starttls" // plain connection upgraded with STARTTLS (port 587); refused if the server lacks it
	SMTPTLS      = "tls"      // TLS from the first byte (port 465)
	SMTPNone     = "none"     // no encryption: only for a relay on this machine or a trusted network
)

// SMTPSettings are an email channel's server and addresses. Password is a secret: sealed at rest, never shown.
type SMTPSettings struct {
	Host     string   `json:"host"`
	Port     int      `json:"port"`
	Username string   `json:"username,omitempty"`
	Password string   `json:"-"`
	From     string   `json:"from"`
	To       []string `json:"to"`
	TLS      string   `json:"tls"` // SMTPStartTLS, SMTPTLS or SMTPNone
}

// NotificationChannel is one place notifications go. URL (webhook, slack, discord, ping) and SMTP.Password are
// secrets: in clear text in memory, sealed at rest; show MaskedURL to people.
type NotificationChannel struct {
	ID      int64  `json:"id"`
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	Enabled bool   `json:"enabled"`
	// Events are the events the channel gets; Environments limits them to these environments (empty: all).
	Events       []string `json:"events"`
	Environments []string `json:"environments"`
	// RPOHours is the rpo.exceeded threshold: the newest complete backup of an environment older than this.
	RPOHours  int          `json:"rpo_hours"`
	URL       string       `json:"-"`
	SMTP      SMTPSettings `json:"-"`
	CreatedAt time.Time    `json:"created_at"`
	UpdatedAt time.Time    `json:"updated_at"`
}

// MaskedURL is the channel's URL with everything after the host hidden: webhook and ping URLs carry their token
// in the path ("https://hooks.slack.com/****").
func (ch *NotificationChannel) MaskedURL() string { return MaskChannelURL(ch.URL) }

// MaskChannelURL hides everything of a URL but its scheme and host.
func MaskChannelURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return MaskedPassword
	}
	return u.Scheme + "://" + u.Host + "/" + MaskedPassword
}

// Secrets returns the channel's secret strings (for redacting them from error messages).
func (ch *NotificationChannel) Secrets() []string {
	var out []string
	for _, s := range []string{ch.URL, ch.SMTP.Password} {
		if s != "" {
			out = append(out, s)
		}
	}
	if u, err := url.Parse(ch.URL); err == nil && len(u.Path) > 1 {
		out = append(out, u.Path) // a message may quote the path alone
		if u.RawQuery != "" {
			out = append(out, u.RawQuery)
		}
	}
	return out
}

// Wants reports whether the channel gets event about environment env ("" for events of no environment).
func (ch *NotificationChannel) Wants(event, env string) bool {
	if !ch.Enabled || !slices.Contains(ch.Events, event) {
		return false
	}
	return env == "" || len(ch.Environments) == 0 || slices.Contains(ch.Environments, env)
}

// channelSecret is what is sealed in the secret column.
type channelSecret struct {
	URL      string `json:"url,omitempty"`
	Password string `json:"password,omitempty"`
}

const channelSecretPurpose = "notification.secret"

func validateChannel(ch *NotificationChannel) error {
	ve := &ValidationError{}
	ch.Name = strings.TrimSpace(ch.Name)
	if ch.Name == "" || len(ch.Name) > 100 || hasControl(ch.Name) {
		ve.add("name", "name is required: at most 100 printable characters, e.g. ops-slack")
	}
	if !slices.Contains(ChannelKinds(), ch.Kind) {
		ve.add("kind", fmt.Sprintf("unknown channel kind %q: use one of %s", ch.Kind, strings.Join(ChannelKinds(), ", ")))
	}
	for i, ev := range ch.Events {
		if !ValidNotificationEvent(ev) {
			ve.add(fmt.Sprintf("events[%d]", i), fmt.Sprintf("unknown event %q: use one of %s", ev,
				strings.Join(NotificationEvents(), ", ")))
		}
	}
	for i, env := range ch.Environments {
		if !ValidSlug(env) {
			ve.add(fmt.Sprintf("environments[%d]", i), slugMessage(env, "environment name"))
		}
	}
	if ch.RPOHours < 0 || ch.RPOHours > 24*366 {
		ve.add("rpo_hours", "rpo_hours must be between 0 (off) and 8784 (a year)")
	}
	if slices.Contains(ch.Events, EventRPOExceeded) && ch.RPOHours == 0 {
		ve.add("rpo_hours", "rpo.exceeded needs a threshold: set rpo_hours, e.g. 26 for a daily schedule")
	}
	switch ch.Kind {
	case ChannelEmail:
		validateSMTP(ve, &ch.SMTP)
		if ch.URL != "" {
			ve.add("url", "email channels take SMTP settings, not a url: remove url")
		}
	case "":
	default:
		if msg := validateChannelURL(ch.URL); msg != "" {
			ve.add("url", msg)
		}
	}
	return ve.err()
}

func validateChannelURL(raw string) string {
	if raw == "" {
		return "url is required: paste the webhook (or ping) URL, e.g. https://hooks.slack.com/services/…"
	}
	if len(raw) > 2048 || strings.ContainsAny(raw, " \t\r\n") || hasControl(raw) {
		return "url must be at most 2048 characters, without spaces or control characters"
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "url must be an http:// or https:// URL with a host, e.g. https://hc-ping.com/your-uuid"
	}
	return ""
}

func validateSMTP(ve *ValidationError, s *SMTPSettings) {
	s.Host = strings.TrimSpace(s.Host)
	if s.Host == "" || hasControl(s.Host) || strings.ContainsAny(s.Host, " /:") {
		ve.add("smtp.host", "SMTP host is required: a host name or IP address, e.g. smtp.example.com")
	}
	if s.TLS == "" {
		s.TLS = SMTPStartTLS
	}
	if !slices.Contains([]string{SMTPStartTLS, SMTPTLS, SMTPNone}, s.TLS) {
		ve.add("smtp.tls", fmt.Sprintf("unknown SMTP security %q: use starttls, tls or none", s.TLS))
	}
	if s.Port == 0 {
		s.Port = 587
		if s.TLS == SMTPTLS {
			s.Port = 465
		}
	}
	if s.Port < 1 || s.Port > 65535 {
		ve.add("smtp.port", "SMTP port must be 1-65535 (587 for STARTTLS, 465 for TLS)")
	}
	if hasControl(s.Username) || len(s.Username) > 200 {
		ve.add("smtp.username", "SMTP username must be at most 200 printable characters")
	}
	if s.Password != "" && s.Username == "" {
		ve.add("smtp.username", "a password needs a username: set the SMTP username")
	}
	if _, err := mail.ParseAddress(s.From); err != nil || strings.ContainsAny(s.From, "\r\n") {
		ve.add("smtp.from", "from must be an email address, e.g. rewind@example.com")
	}
	if len(s.To) == 0 {
		ve.add("smtp.to", "give at least one recipient address")
	}
	for i, to := range s.To {
		if a, err := mail.ParseAddress(to); err != nil || a.Name != "" || strings.ContainsAny(to, "\r\n") {
			ve.add(fmt.Sprintf("smtp.to[%d]", i), fmt.Sprintf("%q is not an email address", to))
		}
	}
}

// CreateNotificationChannel validates and saves ch, setting ID and its times.
func (db *DB) CreateNotificationChannel(ctx context.Context, ch *NotificationChannel) error {
	if err := validateChannel(ch); err != nil {
		return err
	}
	now := db.now()
	ch.CreatedAt, ch.UpdatedAt = now, now
	args, err := db.channelArgs(ch)
	if err != nil {
		return err
	}
	res, err := db.sql.ExecContext(ctx, `INSERT INTO notification_channels (name, kind, enabled, events, environments,
		rpo_hours, config, secret, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		append(args, formatTime(now), formatTime(now))...)
	if isUniqueViolation(err) {
		return &ValidationError{Errors: []FieldError{{Field: "name",
			Message: fmt.Sprintf("a channel named %q exists: pick another name", ch.Name)}}}
	}
	if err != nil {
		return fmt.Errorf("create notification channel: %w", err)
	}
	if ch.ID, err = res.LastInsertId(); err != nil {
		return fmt.Errorf("create notification channel: %w", err)
	}
	return nil
}

// UpdateNotificationChannel validates and saves every field of ch (found by ch.ID). An empty URL or SMTP
// password keeps the stored one, so a form that never shows a secret can still change the rest.
func (db *DB) UpdateNotificationChannel(ctx context.Context, ch *NotificationChannel) error {
	return db.inTx(ctx, func(tx *sql.Tx) error {
		prev, err := db.findChannel(ctx, tx, ch.ID)
		if err != nil {
			return err
		}
		if ch.URL == "" && ch.Kind == prev.Kind {
			ch.URL = prev.URL
		}
		if ch.SMTP.Password == "" && ch.Kind == prev.Kind {
			ch.SMTP.Password = prev.SMTP.Password
		}
		if err := validateChannel(ch); err != nil {
			return err
		}
		ch.CreatedAt, ch.UpdatedAt = prev.CreatedAt, db.now()
		args, err := db.channelArgs(ch)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE notification_channels SET name = ?, kind = ?, enabled = ?, events = ?,
			environments = ?, rpo_hours = ?, config = ?, secret = ?, updated_at = ? WHERE id = ?`,
			append(args, formatTime(ch.UpdatedAt), ch.ID)...)
		if isUniqueViolation(err) {
			return &ValidationError{Errors: []FieldError{{Field: "name",
				Message: fmt.Sprintf("a channel named %q exists: pick another name", ch.Name)}}}
		}
		if err != nil {
			return fmt.Errorf("update notification channel %d: %w", ch.ID, err)
		}
		return nil
	})
}

// channelArgs returns the column values of ch from name to secret, the secret sealed.
func (db *DB) channelArgs(ch *NotificationChannel) ([]any, error) {
	events, _ := json.Marshal(nonNil(ch.Events))
	envs, _ := json.Marshal(nonNil(ch.Environments))
	var config []byte = []byte("{}")
	if ch.Kind == ChannelEmail {
		config, _ = json.Marshal(ch.SMTP)
	}
	plain, _ := json.Marshal(channelSecret{URL: ch.URL, Password: ch.SMTP.Password})
	sealed, err := db.seal(channelSecretPurpose, plain)
	if err != nil {
		return nil, err
	}
	return []any{ch.Name, ch.Kind, ch.Enabled, string(events), string(envs), ch.RPOHours, string(config), sealed}, nil
}

const channelColumns = `id, name, kind, enabled, events, environments, rpo_hours, config, secret, created_at, updated_at`

func (db *DB) scanChannel(row interface{ Scan(...any) error }) (*NotificationChannel, error) {
	ch := &NotificationChannel{}
	var events, envs, config string
	var sealed []byte
	if err := row.Scan(&ch.ID, &ch.Name, &ch.Kind, &ch.Enabled, &events, &envs, &ch.RPOHours, &config, &sealed,
		timeCol{&ch.CreatedAt}, timeCol{&ch.UpdatedAt}); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(events), &ch.Events); err != nil {
		return nil, fmt.Errorf("channel %d events: %w", ch.ID, err)
	}
	if err := json.Unmarshal([]byte(envs), &ch.Environments); err != nil {
		return nil, fmt.Errorf("channel %d environments: %w", ch.ID, err)
	}
	if err := json.Unmarshal([]byte(config), &ch.SMTP); err != nil {
		return nil, fmt.Errorf("channel %d config: %w", ch.ID, err)
	}
	if len(sealed) > 0 {
		plain, err := db.open(channelSecretPurpose, sealed)
		if err != nil {
			return nil, fmt.Errorf("channel %q: %w", ch.Name, err)
		}
		var sec channelSecret
		if err := json.Unmarshal(plain, &sec); err != nil {
			return nil, fmt.Errorf("channel %q secret: %w", ch.Name, err)
		}
		ch.URL, ch.SMTP.Password = sec.URL, sec.Password
	}
	return ch, nil
}

func (db *DB) findChannel(ctx context.Context, q execQuerier, id int64) (*NotificationChannel, error) {
	ch, err := db.scanChannel(q.QueryRowContext(ctx, `SELECT `+channelColumns+` FROM notification_channels WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("notification channel %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("find notification channel %d: %w", id, err)
	}
	return ch, nil
}

// FindNotificationChannelByID returns one channel with its secrets, or ErrNotFound.
func (db *DB) FindNotificationChannelByID(ctx context.Context, id int64) (*NotificationChannel, error) {
	return db.findChannel(ctx, db.sql, id)
}

// FindNotificationChannels returns every channel with its secrets, by name.
func (db *DB) FindNotificationChannels(ctx context.Context) ([]*NotificationChannel, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT `+channelColumns+` FROM notification_channels ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("find notification channels: %w", err)
	}
	defer rows.Close()
	chs := []*NotificationChannel{}
	for rows.Next() {
		ch, err := db.scanChannel(rows)
		if err != nil {
			return nil, fmt.Errorf("find notification channels: %w", err)
		}
		chs = append(chs, ch)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find notification channels: %w", err)
	}
	return chs, nil
}

// DeleteNotificationChannel deletes a channel and its deliveries, or returns ErrNotFound.
func (db *DB) DeleteNotificationChannel(ctx context.Context, id int64) error {
	res, err := db.sql.ExecContext(ctx, `DELETE FROM notification_channels WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("delete notification channel %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("notification channel %d: %w", id, ErrNotFound)
	}
	return nil
}

// Delivery statuses: an attempt delivered, failed with another attempt to come, or failed for good.
const (
	DeliveryDelivered = "delivered"
	DeliveryRetrying  = "retrying"
	DeliveryFailed    = "failed"
)

// NotificationDelivery is one attempt to deliver one event to one channel. Error never carries a secret.
type NotificationDelivery struct {
	ID          int64     `json:"id"`
	ChannelID   int64     `json:"channel_id"`
	ChannelName string    `json:"channel"`
	Event       string    `json:"event"`
	Environment string    `json:"environment,omitempty"`
	ActivityID  int64     `json:"activity_id,omitempty"`
	Attempt     int       `json:"attempt"`
	Status      string    `json:"status"`
	Error       string    `json:"error,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
}

// MaxDeliveries bounds the delivery log: older attempts are pruned as new ones are recorded.
const MaxDeliveries = 1000

// CreateNotificationDelivery records an attempt, setting ID and CreatedAt, and prunes the log to MaxDeliveries.
func (db *DB) CreateNotificationDelivery(ctx context.Context, d *NotificationDelivery) error {
	d.CreatedAt = db.now()
	return db.inTx(ctx, func(tx *sql.Tx) error {
		var channel any
		if d.ChannelID != 0 {
			channel = d.ChannelID
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO notification_deliveries (channel_id, channel_name, event,
			environment, activity_id, attempt, status, error, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			channel, d.ChannelName, d.Event, d.Environment, d.ActivityID, d.Attempt, d.Status, d.Error,
			formatTime(d.CreatedAt))
		if err != nil {
			return fmt.Errorf("record notification delivery: %w", err)
		}
		if d.ID, err = res.LastInsertId(); err != nil {
			return fmt.Errorf("record notification delivery: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM notification_deliveries WHERE id <= ?`, d.ID-MaxDeliveries); err != nil {
			return fmt.Errorf("prune notification deliveries: %w", err)
		}
		return nil
	})
}

// FindNotificationDeliveries returns the newest limit attempts (of one channel when channelID is not 0).
func (db *DB) FindNotificationDeliveries(ctx context.Context, channelID int64, limit int) ([]*NotificationDelivery, error) {
	if limit <= 0 {
		limit = 50
	}
	rows, err := db.sql.QueryContext(ctx, `SELECT id, COALESCE(channel_id, 0), channel_name, event, environment,
		activity_id, attempt, status, error, created_at FROM notification_deliveries
		WHERE ? = 0 OR channel_id = ? ORDER BY id DESC LIMIT ?`, channelID, channelID, limit)
	if err != nil {
		return nil, fmt.Errorf("find notification deliveries: %w", err)
	}
	defer rows.Close()
	out := []*NotificationDelivery{}
	for rows.Next() {
		d := &NotificationDelivery{}
		if err := rows.Scan(&d.ID, &d.ChannelID, &d.ChannelName, &d.Event, &d.Environment, &d.ActivityID, &d.Attempt,
			&d.Status, &d.Error, timeCol{&d.CreatedAt}); err != nil {
			return nil, fmt.Errorf("find notification deliveries: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find notification deliveries: %w", err)
	}
	return out, nil
}

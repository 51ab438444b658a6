package db_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/rewind/rewind/db"
)

func TestNotificationChannels(t *testing.T) {
	ctx := context.Background()
	c := MustOpenDB(t)
	slack := &db.NotificationChannel{Name: "ops", Kind: db.ChannelSlack, Enabled: true,
		Events: []string{db.EventBackupFailed, "drill.failed"}, URL: "https://hooks.slack.com/services/T0/B0/tok3nSecret"}
	if err := c.CreateNotificationChannel(ctx, slack); err != nil {
		t.Fatal(err)
	}
	mailer := &db.NotificationChannel{Name: "mail", Kind: db.ChannelEmail, Enabled: true,
		Events: []string{db.EventRestoreFailed}, Environments: []string{"main"},
		SMTP: db.SMTPSettings{Host: "127.0.0.1", Username: "u", Password: "smtpPassw0rd", From: "rewind@example.com",
			To: []string{"ops@example.com"}}}
	if err := c.CreateNotificationChannel(ctx, mailer); err != nil {
		t.Fatal(err)
	}
	if got, want := mailer.SMTP.Port, 587; got != want {
		t.Fatalf("default port = %d, want %d", got, want)
	}

	// Secrets are sealed at rest: the raw file holds neither.
	raw, err := sql.Open("sqlite", c.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	rows, err := raw.Query(`SELECT config, secret FROM notification_channels`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var config string
		var secret []byte
		rows.Scan(&config, &secret)
		for _, s := range []string{"tok3nSecret", "smtpPassw0rd", "hooks.slack.com"} {
			if bytes.Contains(secret, []byte(s)) || bytes.Contains([]byte(config), []byte(s)) {
				t.Fatalf("stored row holds %q in clear text", s)
			}
		}
	}
	rows.Close()

	got, err := c.FindNotificationChannelByID(ctx, slack.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.URL != slack.URL || len(got.Events) != 2 || got.MaskedURL() != "https://hooks.slack.com/****" {
		t.Fatalf("channel = %+v, masked %q", got, got.MaskedURL())
	}
	if !got.Wants(db.EventBackupFailed, "any") || got.Wants(db.EventRestoreFailed, "any") {
		t.Fatal("Wants does not follow the events")
	}

	// An update with no secret keeps the stored one.
	upd := &db.NotificationChannel{ID: mailer.ID, Name: "mail", Kind: db.ChannelEmail, Enabled: true,
		Events: []string{db.EventRestoreFailed}, SMTP: db.SMTPSettings{Host: "smtp.example.com", Port: 465, TLS: db.SMTPTLS,
			Username: "u", From: "rewind@example.com", To: []string{"ops@example.com"}}}
	if err := c.UpdateNotificationChannel(ctx, upd); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.FindNotificationChannelByID(ctx, mailer.ID); got.SMTP.Password != "smtpPassw0rd" || got.SMTP.Host != "smtp.example.com" {
		t.Fatalf("updated channel = %+v", got.SMTP)
	}

	var ve *db.ValidationError
	bad := &db.NotificationChannel{Name: "ops", Kind: db.ChannelWebhook, Events: []string{"nope", db.EventRPOExceeded}, URL: "ftp://x"}
	if err := c.CreateNotificationChannel(ctx, bad); !errors.As(err, &ve) || ve.For("url") == "" || ve.For("events[0]") == "" || ve.For("rpo_hours") == "" {
		t.Fatalf("invalid channel: %v", err)
	}
	dup := &db.NotificationChannel{Name: "ops", Kind: db.ChannelPing, URL: "https://hc-ping.com/x"}
	if err := c.CreateNotificationChannel(ctx, dup); !errors.As(err, &ve) || ve.For("name") == "" {
		t.Fatalf("duplicate name: %v", err)
	}

	// The delivery log keeps the newest MaxDeliveries attempts.
	for i := range db.MaxDeliveries + 5 {
		if err := c.CreateNotificationDelivery(ctx, &db.NotificationDelivery{ChannelID: slack.ID, ChannelName: "ops",
			Event: db.EventTest, Attempt: i + 1, Status: db.DeliveryDelivered}); err != nil {
			t.Fatal(err)
		}
	}
	ds, err := c.FindNotificationDeliveries(ctx, 0, 2*db.MaxDeliveries)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(ds), db.MaxDeliveries; got != want {
		t.Fatalf("deliveries kept = %d, want %d", got, want)
	}
	if got, want := ds[0].Attempt, db.MaxDeliveries+5; got != want {
		t.Fatalf("newest attempt = %d, want %d", got, want)
	}
	if err := c.DeleteNotificationChannel(ctx, slack.ID); err != nil {
		t.Fatal(err)
	}
	if ds, _ := c.FindNotificationDeliveries(ctx, slack.ID, 10); len(ds) != 0 {
		t.Fatalf("deliveries of a deleted channel: %d", len(ds))
	}
	if err := c.DeleteNotificationChannel(ctx, slack.ID); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("delete again = %v, want ErrNotFound", err)
	}
}

package db_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/rewind/rewind/db"
)

func TestSettings(t *testing.T) {
	ctx := context.Background()
	c := MustOpenDB(t)
	if _, err := c.Setting(ctx, "x"); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("Setting(missing) = %v, want ErrNotFound", err)
	}
	if err := c.SetSetting(ctx, "tz", "Europe/Paris"); err != nil {
		t.Fatal(err)
	}
	c.SetSetting(ctx, "tz", "UTC")
	if v, err := c.Setting(ctx, "tz"); err != nil || v != "UTC" {
		t.Fatalf("Setting(tz) = %q, %v, want UTC", v, err)
	}
	if err := c.SetSecretSetting(ctx, "pw", "hunter22"); err != nil {
		t.Fatal(err)
	}
	if v, err := c.SecretSetting(ctx, "pw"); err != nil || v != "hunter22" {
		t.Fatalf("SecretSetting(pw) = %q, %v", v, err)
	}
	var raw []byte
	rawDB(t, c).QueryRow(`SELECT value FROM settings WHERE key = 'pw'`).Scan(&raw)
	if bytes.Contains(raw, []byte("hunter22")) {
		t.Fatal("secret setting stored in clear")
	}
}

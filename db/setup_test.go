package db_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rewind/rewind/db"
)

func TestSetupToken(t *testing.T) {
	ctx := context.Background()
	c := MustOpenDB(t)
	secret, err := c.CreateSetupToken(ctx, time.Hour)
	if err != nil {
		t.Fatalf("CreateSetupToken() = %v", err)
	}
	if err := c.CheckSetupToken(ctx, secret); err != nil {
		t.Fatalf("CheckSetupToken() = %v", err)
	}
	if err := c.CheckSetupToken(ctx, secret+"x"); !errors.Is(err, db.ErrBadCredentials) {
		t.Fatalf("CheckSetupToken(wrong) = %v, want ErrBadCredentials", err)
	}
	// Invalid input leaves the link usable.
	var ve *db.ValidationError
	if _, err := c.UseSetupToken(ctx, secret, "not-an-email", "short"); !errors.As(err, &ve) || ve.For("email") == "" || ve.For("password") == "" {
		t.Fatalf("UseSetupToken(bad input) = %v, want email and password errors", err)
	}
	u, err := c.UseSetupToken(ctx, secret, "root@example.com", "first admin pw")
	if err != nil {
		t.Fatalf("UseSetupToken() = %v", err)
	}
	if u.Role != db.RoleAdmin {
		t.Fatalf("Role = %q, want admin", u.Role)
	}
	if _, err := c.Authenticate(ctx, "root@example.com", "first admin pw"); err != nil {
		t.Fatalf("Authenticate(first admin) = %v", err)
	}
	if _, err := c.UseSetupToken(ctx, secret, "two@example.com", "second admin pw"); !errors.Is(err, db.ErrBadCredentials) {
		t.Fatalf("UseSetupToken(used) = %v, want ErrBadCredentials", err)
	}

	expiring, _ := c.CreateSetupToken(ctx, 5*time.Second)
	// The test clock advances a second per reading.
	for range 10 {
		c.Now()
	}
	if _, err := c.UseSetupToken(ctx, expiring, "late@example.com", "late admin pw"); !errors.Is(err, db.ErrBadCredentials) {
		t.Fatalf("UseSetupToken(expired) = %v, want ErrBadCredentials", err)
	}
	if n, _ := c.CountUsers(ctx); n != 1 {
		t.Fatalf("CountUsers() = %d, want 1", n)
	}
}

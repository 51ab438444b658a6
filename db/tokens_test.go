package db_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	"github.com/rewind/rewind/db"
)

func TestTokens(t *testing.T) {
	ctx := context.Background()
	c := MustOpenDB(t)
	ana := mustCreateUser(t, c, "ana@example.com", db.RoleAdmin)
	bob := mustCreateUser(t, c, "bob@example.com", db.RoleViewer)

	secret, tok, err := c.CreateToken(ctx, ana.ID, " ci deploy ")
	if err != nil {
		t.Fatalf("CreateToken() = %v", err)
	}
	if !strings.HasPrefix(secret, db.TokenPrefix) || len(secret) != len(db.TokenPrefix)+43 {
		t.Fatalf("secret = %q, want rwd_ + 43 base64url characters", secret)
	}
	if got, want := tok.Name, "ci deploy"; got != want {
		t.Fatalf("Name = %q, want %q", got, want)
	}
	if !strings.HasPrefix(secret, tok.Prefix) || len(tok.Prefix) >= len(secret)/2 {
		t.Fatalf("Prefix = %q, want a short start of the secret", tok.Prefix)
	}
	secret2, _, err := c.CreateToken(ctx, bob.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	if secret2 == secret {
		t.Fatal("two tokens have the same secret")
	}
	if _, _, err := c.CreateToken(ctx, 999, "x"); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("CreateToken(unknown user) = %v, want ErrNotFound", err)
	}

	// Only the SHA-256 digest is stored.
	rows, err := rawDB(t, c).Query(`SELECT hash, prefix, name FROM tokens`)
	if err != nil {
		t.Fatal(err)
	}
	var hashes [][]byte
	for rows.Next() {
		var h []byte
		var prefix, name string
		if err := rows.Scan(&h, &prefix, &name); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(h, []byte(secret)) || strings.Contains(prefix+name, secret[len(tok.Prefix):]) {
			t.Fatal("a tokens row holds the secret")
		}
		hashes = append(hashes, h)
	}
	rows.Close()
	sum := sha256.Sum256([]byte(secret))
	if !bytes.Equal(hashes[0], sum[:]) && !bytes.Equal(hashes[1], sum[:]) {
		t.Fatal("no tokens row holds SHA-256(secret)")
	}

	u, got, err := c.AuthenticateToken(ctx, secret)
	if err != nil {
		t.Fatalf("AuthenticateToken() = %v", err)
	}
	if u.ID != ana.ID || got.ID != tok.ID || got.LastUsedAt == nil {
		t.Fatalf("AuthenticateToken() = %+v, %+v", u, got)
	}
	first := *got.LastUsedAt
	_, got, _ = c.AuthenticateToken(ctx, secret)
	if !got.LastUsedAt.After(first) {
		t.Fatalf("LastUsedAt = %v after a second use, want after %v", got.LastUsedAt, first)
	}
	stored, err := c.FindTokenByID(ctx, tok.ID)
	if err != nil || stored.LastUsedAt == nil || !stored.LastUsedAt.Equal(*got.LastUsedAt) {
		t.Fatalf("FindTokenByID() = %+v, %v, want LastUsedAt %v", stored, err, got.LastUsedAt)
	}

	all, err := c.FindTokens(ctx, 0)
	if err != nil || len(all) != 2 {
		t.Fatalf("FindTokens(0) = %d tokens, %v, want 2", len(all), err)
	}
	mine, _ := c.FindTokens(ctx, bob.ID)
	if len(mine) != 1 || mine[0].UserID != bob.ID || mine[0].Name != "token" {
		t.Fatalf("FindTokens(bob) = %+v, want bob's one token named \"token\"", mine)
	}

	for _, bad := range []string{"", "rwd_", "rwd_nope", secret + "x", strings.TrimPrefix(secret, db.TokenPrefix), strings.ToUpper(secret)} {
		if _, _, err := c.AuthenticateToken(ctx, bad); !errors.Is(err, db.ErrBadCredentials) {
			t.Fatalf("AuthenticateToken(%q) = %v, want ErrBadCredentials", bad, err)
		}
	}

	if err := c.RevokeToken(ctx, tok.ID); err != nil {
		t.Fatalf("RevokeToken() = %v", err)
	}
	if err := c.RevokeToken(ctx, tok.ID); err != nil {
		t.Fatalf("RevokeToken() again = %v, want nil", err)
	}
	if err := c.RevokeToken(ctx, 999); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("RevokeToken(999) = %v, want ErrNotFound", err)
	}
	if _, _, err := c.AuthenticateToken(ctx, secret); !errors.Is(err, db.ErrBadCredentials) {
		t.Fatalf("revoked: AuthenticateToken() = %v, want ErrBadCredentials", err)
	}
	if revoked, _ := c.FindTokenByID(ctx, tok.ID); !revoked.Revoked() {
		t.Fatal("Revoked() = false after RevokeToken")
	}

	disabled := true
	if _, err := c.UpdateUser(ctx, bob.ID, db.UserUpdate{Disabled: &disabled}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.AuthenticateToken(ctx, secret2); !errors.Is(err, db.ErrBadCredentials) {
		t.Fatalf("disabled user: AuthenticateToken() = %v, want ErrBadCredentials", err)
	}
}

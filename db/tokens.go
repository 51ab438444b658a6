package db

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
)

// TokenPrefix starts every API token, so leaked tokens are easy to grep for.
const TokenPrefix = "rwd_"

// Token is an API token's record. The secret itself is shown once by
// CreateToken and only its SHA-256 digest is stored.
type Token struct {
	ID     int64  `json:"id"`
	UserID int64  `json:"user_id"`
	Name   string `json:"name"`
	// Prefix is the first characters of the secret, enough to recognise it.
	Prefix     string     `json:"prefix"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

// Revoked reports whether the token has been revoked.
func (t *Token) Revoked() bool { return t.RevokedAt != nil }

// newSecret returns prefix followed by 32 random bytes, base64url-encoded.
func newSecret(prefix string) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate secret: %w", err)
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b), nil
}

func secretHash(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// CreateToken creates an API token for userID and returns its secret, which
// is not stored and cannot be retrieved later.
func (db *DB) CreateToken(ctx context.Context, userID int64, name string) (string, *Token, error) {
	name = strings.TrimSpace(name)
	ve := &ValidationError{}
	if len(name) > 100 || hasControl(name) {
		ve.add("name", "token name must be at most 100 printable characters")
	}
	if err := ve.err(); err != nil {
		return "", nil, err
	}
	if _, err := db.FindUserByID(ctx, userID); err != nil {
		return "", nil, err
	}
	secret, err := newSecret(TokenPrefix)
	if err != nil {
		return "", nil, err
	}
	if name == "" {
		name = "token"
	}
	now := db.now()
	tok := &Token{UserID: userID, Name: name, Prefix: secret[:len(TokenPrefix)+6], CreatedAt: now}
	res, err := db.sql.ExecContext(ctx, `INSERT INTO tokens (user_id, name, prefix, hash, created_at) VALUES (?, ?, ?, ?, ?)`,
		userID, tok.Name, tok.Prefix, secretHash(secret), formatTime(now))
	if err != nil {
		return "", nil, fmt.Errorf("create token: %w", err)
	}
	if tok.ID, err = res.LastInsertId(); err != nil {
		return "", nil, fmt.Errorf("create token: %w", err)
	}
	return secret, tok, nil
}

const tokenColumns = `id, user_id, name, prefix, created_at, last_used_at, revoked_at`

func scanToken(row interface{ Scan(...any) error }) (*Token, error) {
	t := &Token{}
	err := row.Scan(&t.ID, &t.UserID, &t.Name, &t.Prefix, timeCol{&t.CreatedAt}, nullTime{&t.LastUsedAt}, nullTime{&t.RevokedAt})
	return t, err
}

// FindTokens returns the tokens of userID (all tokens when userID is 0),
// newest first, revoked ones included.
func (db *DB) FindTokens(ctx context.Context, userID int64) ([]*Token, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE ? = 0 OR user_id = ? ORDER BY id DESC`, userID, userID)
	if err != nil {
		return nil, fmt.Errorf("find tokens: %w", err)
	}
	defer rows.Close()
	var toks []*Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("find tokens: %w", err)
		}
		toks = append(toks, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find tokens: %w", err)
	}
	return toks, nil
}

// FindTokenByID returns one token, or ErrNotFound.
func (db *DB) FindTokenByID(ctx context.Context, id int64) (*Token, error) {
	t, err := scanToken(db.sql.QueryRowContext(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("token %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("find token %d: %w", id, err)
	}
	return t, nil
}

// RevokeToken revokes a token; revoking it again is a no-op. An unknown id
// returns ErrNotFound.
func (db *DB) RevokeToken(ctx context.Context, id int64) error {
	res, err := db.sql.ExecContext(ctx, `UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`, formatTime(db.now()), id)
	if err != nil {
		return fmt.Errorf("revoke token %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("token %d: %w", id, ErrNotFound)
	}
	return nil
}

// AuthenticateToken returns the token's user and the token, and records
// its use. An unknown or revoked token, or a disabled user, returns
// ErrBadCredentials.
func (db *DB) AuthenticateToken(ctx context.Context, secret string) (*User, *Token, error) {
	if !strings.HasPrefix(secret, TokenPrefix) || len(secret) > 200 {
		return nil, nil, ErrBadCredentials
	}
	t, err := scanToken(db.sql.QueryRowContext(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE hash = ?`, secretHash(secret)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, ErrBadCredentials
	}
	if err != nil {
		return nil, nil, fmt.Errorf("authenticate token: %w", err)
	}
	if t.Revoked() {
		return nil, nil, ErrBadCredentials
	}
	u, err := db.FindUserByID(ctx, t.UserID)
	if errors.Is(err, ErrNotFound) {
		return nil, nil, ErrBadCredentials
	}
	if err != nil {
		return nil, nil, fmt.Errorf("authenticate token: %w", err)
	}
	if u.Disabled {
		return nil, nil, ErrBadCredentials
	}
	now := db.now()
	if _, err := db.sql.ExecContext(ctx, `UPDATE tokens SET last_used_at = ? WHERE id = ?`, formatTime(now), t.ID); err != nil {
		return nil, nil, fmt.Errorf("record token use: %w", err)
	}
	t.LastUsedAt = &now
	return u, t, nil
}

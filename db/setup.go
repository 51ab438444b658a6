package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// SetupTokenPrefix starts every first-admin setup secret.
const SetupTokenPrefix = "rws_"

// CreateSetupToken creates a one-time secret for the first-admin setup link,
// valid for ttl. Only its SHA-256 digest is stored.
func (db *DB) CreateSetupToken(ctx context.Context, ttl time.Duration) (string, error) {
	secret, err := newSecret(SetupTokenPrefix)
	if err != nil {
		return "", err
	}
	now := db.now()
	if _, err := db.sql.ExecContext(ctx, `INSERT INTO setup_tokens (hash, created_at, expires_at) VALUES (?, ?, ?)`,
		secretHash(secret), formatTime(now), formatTime(now.Add(ttl))); err != nil {
		return "", fmt.Errorf("create setup token: %w", err)
	}
	return secret, nil
}

// CheckSetupToken reports whether secret is an unused, unexpired setup
// secret (ErrBadCredentials if not), without consuming it.
func (db *DB) CheckSetupToken(ctx context.Context, secret string) error {
	return db.checkSetupToken(ctx, db.sql, secret)
}

func (db *DB) checkSetupToken(ctx context.Context, q execQuerier, secret string) error {
	var expires time.Time
	var used *time.Time
	err := q.QueryRowContext(ctx, `SELECT expires_at, used_at FROM setup_tokens WHERE hash = ?`, secretHash(secret)).
		Scan(timeCol{&expires}, nullTime{&used})
	if errors.Is(err, sql.ErrNoRows) {
		return ErrBadCredentials
	}
	if err != nil {
		return fmt.Errorf("check setup token: %w", err)
	}
	if used != nil || !db.now().Before(expires) {
		return ErrBadCredentials
	}
	return nil
}

// UseSetupToken creates the first admin with email and password and consumes
// the setup secret, in one transaction. An unknown, used or expired secret
// returns ErrBadCredentials; bad input returns a *ValidationError and leaves
// the secret usable. Once an admin exists every setup secret is spent.
func (db *DB) UseSetupToken(ctx context.Context, secret, email, password string) (*User, error) {
	email = NormalizeEmail(email)
	ve := &ValidationError{}
	validateEmail(ve, email)
	validatePassword(ve, password)
	if err := ve.err(); err != nil {
		return nil, err
	}
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("use setup token: %w", err)
	}
	defer func() { tx.Rollback(); db.sql.wrote() }() // counted once committed (Rollback then does nothing)
	if err := db.checkSetupToken(ctx, tx, secret); err != nil {
		return nil, err
	}
	u, err := db.insertUser(ctx, tx, email, password, RoleAdmin)
	if err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE setup_tokens SET used_at = ? WHERE used_at IS NULL`, formatTime(db.now())); err != nil {
		return nil, fmt.Errorf("use setup token: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("use setup token: %w", err)
	}
	return u, nil
}

package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Setting returns a stored setting, or ErrNotFound.
func (db *DB) Setting(ctx context.Context, key string) (string, error) {
	var v []byte
	err := db.sql.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("setting %q: %w", key, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("read setting %q: %w", key, err)
	}
	return string(v), nil
}

// SetSetting stores a setting, replacing any previous value.
func (db *DB) SetSetting(ctx context.Context, key, value string) error {
	if _, err := db.sql.ExecContext(ctx, `INSERT INTO settings (key, value) VALUES (?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, []byte(value)); err != nil {
		return fmt.Errorf("save setting %q: %w", key, err)
	}
	return nil
}

// SecretSetting returns a setting stored with SetSecretSetting, decrypted,
// or ErrNotFound.
func (db *DB) SecretSetting(ctx context.Context, key string) (string, error) {
	v, err := db.Setting(ctx, key)
	if err != nil {
		return "", err
	}
	plain, err := db.open("setting:"+key, []byte(v))
	if err != nil {
		return "", fmt.Errorf("setting %q: %w", key, err)
	}
	return string(plain), nil
}

// SetSecretSetting stores a setting encrypted under the catalog key.
func (db *DB) SetSecretSetting(ctx context.Context, key, value string) error {
	sealed, err := db.seal("setting:"+key, []byte(value))
	if err != nil {
		return err
	}
	return db.SetSetting(ctx, key, string(sealed))
}

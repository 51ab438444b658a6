// Package demo is the demo project of `rewind serve --demo`: environments main and staging, each a small
// shop (a SQLite database and an uploads mount under the data directory) served behind its request gate, and
// a demo admin, so a newcomer can back up and restore at once.
package demo

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"

	"github.com/rewind/rewind/db"
)

// Demo project constants.
const (
	demoEmail          = "demo@rewind.local"
	demoPasswordKey    = "demo.password"
	demoPasswordLength = 16
)

// Environment describes one environment of the demo project.
type Environment struct {
	Name               string
	title, typ, parent string
	orders             int // how many orders to seed, so environments differ
}

// Environments are the demo project's environments.
func Environments() []Environment {
	return []Environment{
		{Name: "main", title: "Main (demo shop)", typ: db.EnvProduction, orders: 12},
		{Name: "staging", title: "Staging (demo shop)", typ: db.EnvStaging, parent: "main", orders: 5},
	}
}

// Seed creates the demo project, or completes it if part is missing:
// environments main (production) and staging (child of main), each with a
// SQLite database <data>/demo/<env>/app.db and a files mount
// <data>/demo/<env>/uploads/, and an admin demo@rewind.local whose password
// is generated once and kept (encrypted) in the catalog, so every start can
// print it. Existing data and environments are left as they are.
func Seed(ctx context.Context, catalog *db.DB, dataDir string) (email, password string, err error) {
	root, err := filepath.Abs(filepath.Join(dataDir, "demo"))
	if err != nil {
		return "", "", fmt.Errorf("demo: %w", err)
	}
	for _, de := range Environments() {
		dir := filepath.Join(root, de.Name)
		if err := seedDatabase(ctx, filepath.Join(dir, "app.db"), de.orders); err != nil {
			return "", "", fmt.Errorf("demo %s database: %w", de.Name, err)
		}
		if err := seedUploads(filepath.Join(dir, "uploads"), de.Name); err != nil {
			return "", "", fmt.Errorf("demo %s uploads: %w", de.Name, err)
		}
		if err := seedEnvironment(ctx, catalog, de, dir); err != nil {
			return "", "", err
		}
	}
	password, err = seedUser(ctx, catalog)
	if err != nil {
		return "", "", err
	}
	return demoEmail, password, nil
}

func seedEnvironment(ctx context.Context, catalog *db.DB, de Environment, dir string) error {
	_, err := catalog.FindEnvironmentByName(ctx, de.Name)
	if err == nil {
		return nil // never overwrite what the user changed
	}
	if !errors.Is(err, db.ErrNotFound) {
		return fmt.Errorf("demo environment %s: %w", de.Name, err)
	}
	env := &db.Environment{
		Name: de.Name, Title: de.title, Type: de.typ, Parent: de.parent, Status: db.StatusActive,
		Services: []db.Service{
			{Name: "app-db", Type: db.ServiceSQLite, Path: filepath.Join(dir, "app.db")},
			{Name: "uploads", Type: db.ServiceFiles, Path: filepath.Join(dir, "uploads"), Exclude: []string{"*.tmp", "cache/"}},
		},
	}
	if err := catalog.CreateEnvironment(ctx, env); err != nil {
		return fmt.Errorf("demo environment %s: %w", de.Name, err)
	}
	return catalog.CreateActivity(ctx, &db.Activity{
		Type: "environment.create", Environment: de.Name, Actor: "demo",
		Summary: fmt.Sprintf("Created demo environment %s (%s)", de.Name, de.typ),
	})
}

// seedUser returns the demo admin's password, creating the user and the
// password on first use.
func seedUser(ctx context.Context, catalog *db.DB) (string, error) {
	pw, err := catalog.SecretSetting(ctx, demoPasswordKey)
	switch {
	case errors.Is(err, db.ErrNotFound):
		if pw, err = generatePassword(demoPasswordLength); err != nil {
			return "", err
		}
		if err := catalog.SetSecretSetting(ctx, demoPasswordKey, pw); err != nil {
			return "", fmt.Errorf("demo password: %w", err)
		}
	case err != nil:
		return "", fmt.Errorf("demo password: %w", err)
	}
	u, err := catalog.FindUserByEmail(ctx, demoEmail)
	switch {
	case errors.Is(err, db.ErrNotFound):
		if _, err := catalog.CreateUser(ctx, demoEmail, pw, db.RoleAdmin); err != nil {
			return "", fmt.Errorf("demo user: %w", err)
		}
		if err := catalog.CreateActivity(ctx, &db.Activity{
			Type: "user.create", Actor: "demo", Summary: "Created demo admin " + demoEmail,
		}); err != nil {
			return "", err
		}
	case err != nil:
		return "", fmt.Errorf("demo user: %w", err)
	default:
		// Keep the printed credentials true: if the demo admin's password
		// was changed, it is set back to the stored one. Only the demo
		// account is affected; a disabled demo admin stays disabled.
		if !u.Disabled {
			if _, err := catalog.CheckUserPassword(ctx, demoEmail, pw); errors.Is(err, db.ErrBadCredentials) {
				if _, err := catalog.UpdateUser(ctx, u.ID, db.UserUpdate{Password: &pw}); err != nil {
					return "", fmt.Errorf("demo user: %w", err)
				}
			}
		}
	}
	return pw, nil
}

// generatePassword returns n random characters from an alphabet without
// look-alikes (no 0/O, 1/l/I).
func generatePassword(n int) (string, error) {
	const alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, n)
	for i := range b {
		k, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		if err != nil {
			return "", fmt.Errorf("generate password: %w", err)
		}
		b[i] = alphabet[k.Int64()]
	}
	return string(b), nil
}

// seedDatabase creates a small shop database (products, orders) in WAL
// mode, seeding it only when it is empty.
func seedDatabase(ctx context.Context, path string, orders int) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "journal_mode(WAL)")
	conn, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?"+q.Encode())
	if err != nil {
		return err
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `
		CREATE TABLE IF NOT EXISTS products (
			id          INTEGER PRIMARY KEY,
			name        TEXT NOT NULL,
			price_cents INTEGER NOT NULL
		);
		CREATE TABLE IF NOT EXISTS orders (
			id         INTEGER PRIMARY KEY,
			product_id INTEGER NOT NULL REFERENCES products (id),
			quantity   INTEGER NOT NULL,
			customer   TEXT NOT NULL,
			created_at TEXT NOT NULL
		)`); err != nil {
		return err
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM products`).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return tx.Commit()
	}
	products := []struct {
		name  string
		price int
	}{{"Espresso beans 1kg", 2490}, {"Pour-over kettle", 5900}, {"Ceramic mug", 1450}, {"Hand grinder", 8900}, {"Paper filters (100)", 690}}
	for i, p := range products {
		if _, err := tx.ExecContext(ctx, `INSERT INTO products (id, name, price_cents) VALUES (?, ?, ?)`, i+1, p.name, p.price); err != nil {
			return err
		}
	}
	customers := []string{"ada@example.com", "grace@example.com", "linus@example.com", "margaret@example.com"}
	for i := range orders {
		if _, err := tx.ExecContext(ctx, `INSERT INTO orders (product_id, quantity, customer, created_at) VALUES (?, ?, ?, ?)`,
			i%len(products)+1, i%3+1, customers[i%len(customers)], fmt.Sprintf("2026-01-%02dT10:%02d:00Z", i%28+1, i%60)); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// seedUploads writes a few files and a subdirectory, each only if missing.
func seedUploads(dir, env string) error {
	files := map[string]string{
		"README.txt":            "Files uploaded to the " + env + " demo shop. Rewind backs up this directory.\n",
		"products/espresso.svg": `<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><circle cx="32" cy="32" r="28" fill="#6f4e37"/></svg>` + "\n",
		"products/mug.svg":      `<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect x="12" y="16" width="32" height="36" rx="4" fill="#ddd"/></svg>` + "\n",
		"invoices/2026-01.csv":  "order,customer,total_cents\n1,ada@example.com,2490\n2,grace@example.com,11800\n",
	}
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return err
		}
		if _, err := f.WriteString(content); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}

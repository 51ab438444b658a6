package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/mail"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Roles, from most to least powerful.
const (
	RoleAdmin       = "admin"
	RoleContributor = "contributor"
	RoleViewer      = "viewer"
)

// Roles lists the valid roles, most powerful first.
func Roles() []string { return []string{RoleAdmin, RoleContributor, RoleViewer} }

// ValidRole reports whether r is a known role.
func ValidRole(r string) bool { return r == RoleAdmin || r == RoleContributor || r == RoleViewer }

// User is an account. Its password hash never leaves the package.
type User struct {
	ID    int64  `json:"id"`
	Email string `json:"email"`
	Role  string `json:"role"`
	// RoleOverrides maps an environment type to the role the user has on
	// environments of that type, overriding Role.
	RoleOverrides map[string]string `json:"role_overrides,omitempty"`
	Disabled      bool              `json:"disabled"`
	CreatedAt     time.Time         `json:"created_at"`
	LastLoginAt   *time.Time        `json:"last_login_at,omitempty"`
}

// RoleFor returns the user's role on environments of envType.
func (u *User) RoleFor(envType string) string {
	if r, ok := u.RoleOverrides[envType]; ok && r != "" {
		return r
	}
	return u.Role
}

// UserUpdate holds the fields to change; nil fields are left as they are.
type UserUpdate struct {
	Role          *string
	RoleOverrides *map[string]string
	Disabled      *bool
	Password      *string
}

// NormalizeEmail trims and lowercases an email address.
func NormalizeEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

func validateEmail(ve *ValidationError, email string) {
	if email == "" {
		ve.add("email", "email is required")
		return
	}
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email || a.Name != "" || !strings.Contains(email, "@") || len(email) > 254 {
		ve.add("email", fmt.Sprintf("%q is not an email address: use the form name@example.com", email))
	}
}

func validateRole(ve *ValidationError, field, role string) {
	if !ValidRole(role) {
		if role == "" {
			ve.add(field, "role is required: one of admin, contributor, viewer")
			return
		}
		ve.add(field, fmt.Sprintf("unknown role %q: use admin, contributor or viewer", role))
	}
}

func validateOverrides(ve *ValidationError, overrides map[string]string) {
	keys := make([]string, 0, len(overrides))
	for k := range overrides {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !ValidEnvironmentType(k) {
			ve.add("role_overrides", fmt.Sprintf("unknown environment type %q: use production, staging or development", k))
			continue
		}
		if v := overrides[k]; v != "" {
			validateRole(ve, "role_overrides."+k, v)
		}
	}
}

// CreateUser adds a user. Bad input returns a *ValidationError; an email
// already in use returns ErrConflict.
func (db *DB) CreateUser(ctx context.Context, email, password, role string) (*User, error) {
	email = NormalizeEmail(email)
	ve := &ValidationError{}
	validateEmail(ve, email)
	validatePassword(ve, password)
	validateRole(ve, "role", role)
	if err := ve.err(); err != nil {
		return nil, err
	}
	return db.insertUser(ctx, db.sql, email, password, role)
}

// execQuerier is satisfied by *sql.DB and *sql.Tx.
type execQuerier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (db *DB) insertUser(ctx context.Context, q execQuerier, email, password, role string) (*User, error) {
	hash, err := HashPassword(password)
	if err != nil {
		return nil, err
	}
	now := db.now()
	res, err := q.ExecContext(ctx, `INSERT INTO users (email, password_hash, role, created_at) VALUES (?, ?, ?, ?)`,
		email, hash, role, formatTime(now))
	if isUniqueViolation(err) {
		return nil, fmt.Errorf("user %s: %w", email, ErrConflict)
	}
	if err != nil {
		return nil, fmt.Errorf("create user: %w", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return nil, fmt.Errorf("create user: %w", err)
	}
	return &User{ID: id, Email: email, Role: role, RoleOverrides: map[string]string{}, CreatedAt: now}, nil
}

const userColumns = `id, email, role, role_overrides, disabled, created_at, last_login_at`

func scanUser(row interface{ Scan(...any) error }, hash *string) (*User, error) {
	u := &User{}
	var overrides string
	dest := []any{&u.ID, &u.Email, &u.Role, &overrides, &u.Disabled, timeCol{&u.CreatedAt}, nullTime{&u.LastLoginAt}}
	if hash != nil {
		dest = append(dest, hash)
	}
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	u.RoleOverrides = map[string]string{}
	if err := json.Unmarshal([]byte(overrides), &u.RoleOverrides); err != nil {
		return nil, fmt.Errorf("user %d role overrides: %w", u.ID, err)
	}
	return u, nil
}

// FindUserByID returns the user with id, or ErrNotFound.
func (db *DB) FindUserByID(ctx context.Context, id int64) (*User, error) {
	u, err := scanUser(db.sql.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE id = ?`, id), nil)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("user %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("find user %d: %w", id, err)
	}
	return u, nil
}

// FindUserByIDRecent is FindUserByID for the check of the signed-in user on every request: it may answer from
// a read of up to a second ago (recentCache). A user disabled, deleted or changed through this process is
// seen at once; by another process on the same catalog (an offline admin command), within a second.
func (db *DB) FindUserByIDRecent(ctx context.Context, id int64) (*User, error) {
	v, err := db.recent.get("user "+strconv.FormatInt(id, 10), func() (any, error) { return db.FindUserByID(ctx, id) })
	if err != nil {
		return nil, err
	}
	u := *v.(*User) // a copy: the cached user is shared
	u.RoleOverrides = maps.Clone(u.RoleOverrides)
	if u.LastLoginAt != nil {
		t := *u.LastLoginAt
		u.LastLoginAt = &t
	}
	return &u, nil
}

// FindUserByEmail returns the user with email (case-insensitive), or ErrNotFound.
func (db *DB) FindUserByEmail(ctx context.Context, email string) (*User, error) {
	email = NormalizeEmail(email)
	u, err := scanUser(db.sql.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE email = ?`, email), nil)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("user %s: %w", email, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("find user %s: %w", email, err)
	}
	return u, nil
}

// FindUsers returns every user ordered by email.
func (db *DB) FindUsers(ctx context.Context) ([]*User, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT `+userColumns+` FROM users ORDER BY email`)
	if err != nil {
		return nil, fmt.Errorf("find users: %w", err)
	}
	defer rows.Close()
	var users []*User
	for rows.Next() {
		u, err := scanUser(rows, nil)
		if err != nil {
			return nil, fmt.Errorf("find users: %w", err)
		}
		users = append(users, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find users: %w", err)
	}
	return users, nil
}

// CountUsers returns the number of users (enabled or not).
func (db *DB) CountUsers(ctx context.Context) (int, error) {
	var n int
	if err := db.sql.QueryRowContext(ctx, `SELECT COUNT(*) FROM users`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count users: %w", err)
	}
	return n, nil
}

// UpdateUser changes the non-nil fields of upd and returns the updated user.
// Bad input returns a *ValidationError and changes nothing.
func (db *DB) UpdateUser(ctx context.Context, id int64, upd UserUpdate) (*User, error) {
	ve := &ValidationError{}
	if upd.Role != nil {
		validateRole(ve, "role", *upd.Role)
	}
	if upd.RoleOverrides != nil {
		validateOverrides(ve, *upd.RoleOverrides)
	}
	if upd.Password != nil {
		validatePassword(ve, *upd.Password)
	}
	if err := ve.err(); err != nil {
		return nil, err
	}
	var sets []string
	var args []any
	if upd.Role != nil {
		sets, args = append(sets, "role = ?"), append(args, *upd.Role)
	}
	if upd.RoleOverrides != nil {
		clean := map[string]string{}
		for k, v := range *upd.RoleOverrides {
			if v != "" {
				clean[k] = v
			}
		}
		b, err := json.Marshal(clean)
		if err != nil {
			return nil, fmt.Errorf("update user %d: %w", id, err)
		}
		sets, args = append(sets, "role_overrides = ?"), append(args, string(b))
	}
	if upd.Disabled != nil {
		sets, args = append(sets, "disabled = ?"), append(args, *upd.Disabled)
	}
	if upd.Password != nil {
		hash, err := HashPassword(*upd.Password)
		if err != nil {
			return nil, err
		}
		sets, args = append(sets, "password_hash = ?"), append(args, hash)
	}
	if len(sets) > 0 {
		res, err := db.sql.ExecContext(ctx, `UPDATE users SET `+strings.Join(sets, ", ")+` WHERE id = ?`, append(args, id)...)
		if err != nil {
			return nil, fmt.Errorf("update user %d: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil, fmt.Errorf("user %d: %w", id, ErrNotFound)
		}
	}
	return db.FindUserByID(ctx, id)
}

// Authenticate checks an email and password and records the login. A wrong
// email, a wrong password and a disabled user all return ErrBadCredentials.
// A hash made with older argon2id parameters is replaced by one made with
// the current parameters.
func (db *DB) Authenticate(ctx context.Context, email, password string) (*User, error) {
	u, hash, err := db.checkUserPassword(ctx, email, password)
	if err != nil {
		return nil, err
	}
	now := db.now()
	if _, err := db.sql.ExecContext(ctx, `UPDATE users SET last_login_at = ? WHERE id = ?`, formatTime(now), u.ID); err != nil {
		return nil, fmt.Errorf("record login: %w", err)
	}
	u.LastLoginAt = &now
	if !strings.HasPrefix(hash, currentHashPrefix()) {
		if fresh, err := HashPassword(password); err == nil {
			if _, err := db.sql.ExecContext(ctx, `UPDATE users SET password_hash = ? WHERE id = ? AND password_hash = ?`, fresh, u.ID, hash); err != nil {
				return nil, fmt.Errorf("rehash password: %w", err)
			}
		}
	}
	return u, nil
}

// CheckUserPassword is Authenticate without recording a login (for
// re-confirming a password before a sensitive change).
func (db *DB) CheckUserPassword(ctx context.Context, email, password string) (*User, error) {
	u, _, err := db.checkUserPassword(ctx, email, password)
	return u, err
}

func (db *DB) checkUserPassword(ctx context.Context, email, password string) (*User, string, error) {
	email = NormalizeEmail(email)
	var hash string
	u, err := scanUser(db.sql.QueryRowContext(ctx, `SELECT `+userColumns+`, password_hash FROM users WHERE email = ?`, email), &hash)
	if errors.Is(err, sql.ErrNoRows) {
		CheckPassword(dummyHash, password) // same cost as a real check
		return nil, "", ErrBadCredentials
	}
	if err != nil {
		return nil, "", fmt.Errorf("authenticate: %w", err)
	}
	if !CheckPassword(hash, password) || u.Disabled {
		return nil, "", ErrBadCredentials
	}
	return u, hash, nil
}

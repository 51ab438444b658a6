package db_test

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"

	"github.com/rewind/rewind/db"
)

func mustCreateUser(tb testing.TB, c *db.DB, email, role string) *db.User {
	tb.Helper()
	u, err := c.CreateUser(context.Background(), email, "correct horse", role)
	if err != nil {
		tb.Fatalf("CreateUser(%q) = %v", email, err)
	}
	return u
}

func TestUsers_CreateFindUpdate(t *testing.T) {
	ctx := context.Background()
	c := MustOpenDB(t)
	u := mustCreateUser(t, c, "  Ana@Example.com ", db.RoleAdmin)
	if got, want := u.Email, "ana@example.com"; got != want {
		t.Fatalf("Email = %q, want %q", got, want)
	}
	if u.ID == 0 || u.CreatedAt.IsZero() {
		t.Fatalf("CreateUser() = %+v, want ID and CreatedAt set", u)
	}
	got, err := c.FindUserByEmail(ctx, "ANA@example.COM")
	if err != nil {
		t.Fatalf("FindUserByEmail() = %v", err)
	}
	if got.ID != u.ID || got.Role != db.RoleAdmin || got.Disabled || got.LastLoginAt != nil {
		t.Fatalf("FindUserByEmail() = %+v", got)
	}
	if _, err := c.FindUserByID(ctx, u.ID); err != nil {
		t.Fatalf("FindUserByID() = %v", err)
	}
	if _, err := c.FindUserByID(ctx, 999); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("FindUserByID(999) = %v, want ErrNotFound", err)
	}
	if _, err := c.FindUserByEmail(ctx, "nobody@example.com"); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("FindUserByEmail(nobody) = %v, want ErrNotFound", err)
	}
	if _, err := c.CreateUser(ctx, "ana@EXAMPLE.com", "another password", db.RoleViewer); !errors.Is(err, db.ErrConflict) {
		t.Fatalf("CreateUser(duplicate) = %v, want ErrConflict", err)
	}
	mustCreateUser(t, c, "bob@example.com", db.RoleViewer)
	users, err := c.FindUsers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(users), 2; got != want {
		t.Fatalf("len(FindUsers()) = %d, want %d", got, want)
	}
	if n, err := c.CountUsers(ctx); err != nil || n != 2 {
		t.Fatalf("CountUsers() = %d, %v, want 2", n, err)
	}

	role, disabled := db.RoleContributor, true
	overrides := map[string]string{db.EnvDevelopment: db.RoleAdmin, db.EnvProduction: db.RoleViewer}
	upd, err := c.UpdateUser(ctx, u.ID, db.UserUpdate{Role: &role, RoleOverrides: &overrides, Disabled: &disabled})
	if err != nil {
		t.Fatalf("UpdateUser() = %v", err)
	}
	if upd.Role != role || !upd.Disabled {
		t.Fatalf("UpdateUser() = %+v", upd)
	}
	for envType, want := range map[string]string{db.EnvDevelopment: db.RoleAdmin, db.EnvProduction: db.RoleViewer, db.EnvStaging: db.RoleContributor} {
		if got := upd.RoleFor(envType); got != want {
			t.Fatalf("RoleFor(%q) = %q, want %q", envType, got, want)
		}
	}
	if _, err := c.UpdateUser(ctx, 999, db.UserUpdate{Role: &role}); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("UpdateUser(999) = %v, want ErrNotFound", err)
	}
}

func TestUsers_Validation(t *testing.T) {
	c := MustOpenDB(t)
	for _, tt := range []struct {
		name, email, password, role string
		field, want                 string
	}{
		{"no email", "", "long enough", db.RoleAdmin, "email", "required"},
		{"bad email", "ana", "long enough", db.RoleAdmin, "email", "name@example.com"},
		{"display name", "Ana <ana@example.com>", "long enough", db.RoleAdmin, "email", "not an email"},
		{"short password", "ana@example.com", "short", db.RoleAdmin, "password", "at least 8"},
		{"no password", "ana@example.com", "", db.RoleAdmin, "password", "required"},
		{"bad role", "ana@example.com", "long enough", "root", "role", `unknown role "root"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.CreateUser(context.Background(), tt.email, tt.password, tt.role)
			var ve *db.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("CreateUser() = %v, want *ValidationError", err)
			}
			if got := ve.For(tt.field); !strings.Contains(got, tt.want) {
				t.Fatalf("For(%q) = %q, want it to contain %q", tt.field, got, tt.want)
			}
		})
	}
	if n, _ := c.CountUsers(context.Background()); n != 0 {
		t.Fatalf("CountUsers() = %d after invalid input, want 0", n)
	}
	u := mustCreateUser(t, c, "ana@example.com", db.RoleAdmin)
	bad := map[string]string{"qa": db.RoleAdmin, db.EnvStaging: "boss"}
	_, err := c.UpdateUser(context.Background(), u.ID, db.UserUpdate{RoleOverrides: &bad})
	var ve *db.ValidationError
	if !errors.As(err, &ve) || ve.For("role_overrides") == "" || ve.For("role_overrides.staging") == "" {
		t.Fatalf("UpdateUser(bad overrides) = %v, want errors on role_overrides and role_overrides.staging", err)
	}
}

func TestAuthenticate(t *testing.T) {
	ctx := context.Background()
	c := MustOpenDB(t)
	u := mustCreateUser(t, c, "ana@example.com", db.RoleAdmin)
	got, err := c.Authenticate(ctx, "ANA@example.com", "correct horse")
	if err != nil {
		t.Fatalf("Authenticate() = %v", err)
	}
	if got.ID != u.ID || got.LastLoginAt == nil {
		t.Fatalf("Authenticate() = %+v, want user %d with LastLoginAt", got, u.ID)
	}
	again, _ := c.FindUserByID(ctx, u.ID)
	if again.LastLoginAt == nil || !again.LastLoginAt.Equal(*got.LastLoginAt) {
		t.Fatalf("stored LastLoginAt = %v, want %v", again.LastLoginAt, got.LastLoginAt)
	}

	for _, tt := range []struct{ name, email, password string }{
		{"wrong password", "ana@example.com", "wrong horse"},
		{"unknown email", "bob@example.com", "correct horse"},
		{"empty", "", ""},
	} {
		if _, err := c.Authenticate(ctx, tt.email, tt.password); !errors.Is(err, db.ErrBadCredentials) {
			t.Fatalf("%s: Authenticate() = %v, want ErrBadCredentials", tt.name, err)
		}
	}
	disabled := true
	if _, err := c.UpdateUser(ctx, u.ID, db.UserUpdate{Disabled: &disabled}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Authenticate(ctx, "ana@example.com", "correct horse"); !errors.Is(err, db.ErrBadCredentials) {
		t.Fatalf("disabled: Authenticate() = %v, want ErrBadCredentials", err)
	}
	enabled, pw := false, "a new password"
	if _, err := c.UpdateUser(ctx, u.ID, db.UserUpdate{Disabled: &enabled, Password: &pw}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Authenticate(ctx, "ana@example.com", "correct horse"); !errors.Is(err, db.ErrBadCredentials) {
		t.Fatalf("old password: Authenticate() = %v, want ErrBadCredentials", err)
	}
	if _, err := c.Authenticate(ctx, "ana@example.com", pw); err != nil {
		t.Fatalf("new password: Authenticate() = %v", err)
	}
}

func TestUsers_PasswordStoredAsArgon2id(t *testing.T) {
	c := MustOpenDB(t)
	mustCreateUser(t, c, "ana@example.com", db.RoleAdmin)
	var hash string
	if err := rawDB(t, c).QueryRow(`SELECT password_hash FROM users`).Scan(&hash); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(hash, "$argon2id$v=19$m=") || strings.Contains(hash, "correct horse") {
		t.Fatalf("password_hash = %q, want an argon2id PHC string without the password", hash)
	}
}

func TestPasswordHash(t *testing.T) {
	h1, err := db.HashPassword("s3cret pass")
	if err != nil {
		t.Fatal(err)
	}
	h2, _ := db.HashPassword("s3cret pass")
	if h1 == h2 {
		t.Fatal("two hashes of one password are equal: want a random salt")
	}
	if !db.CheckPassword(h1, "s3cret pass") || !db.CheckPassword(h2, "s3cret pass") {
		t.Fatal("CheckPassword(right password) = false")
	}
	if db.CheckPassword(h1, "s3cret pasS") {
		t.Fatal("CheckPassword(wrong password) = true")
	}
	for _, bad := range []string{"", "plain", "$argon2id$v=19$m=1,t=1,p=1$$", "$argon2i$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
		"$argon2id$v=19$m=99999999,t=2,p=1$c2FsdA$aGFzaA", strings.Replace(h1, "v=19", "v=16", 1)} {
		if db.CheckPassword(bad, "s3cret pass") {
			t.Fatalf("CheckPassword(%q) = true, want false", bad)
		}
	}
}

func TestAuthenticate_RehashesOldParameters(t *testing.T) {
	ctx := context.Background()
	c := MustOpenDB(t)
	mustCreateUser(t, c, "ana@example.com", db.RoleAdmin)
	// A hash of "correct horse" with weaker parameters (m=8 MiB, t=1).
	salt := []byte("0123456789abcdef")
	key := argon2.IDKey([]byte("correct horse"), salt, 1, 8*1024, 1, 32)
	old := "$argon2id$v=19$m=8192,t=1,p=1$" + base64.RawStdEncoding.EncodeToString(salt) + "$" + base64.RawStdEncoding.EncodeToString(key)
	if _, err := rawDB(t, c).Exec(`UPDATE users SET password_hash = ?`, old); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Authenticate(ctx, "ana@example.com", "correct horse"); err != nil {
		t.Fatalf("Authenticate(old hash) = %v", err)
	}
	var hash string
	rawDB(t, c).QueryRow(`SELECT password_hash FROM users`).Scan(&hash)
	if hash == old || !strings.HasPrefix(hash, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("password_hash = %q after login, want it rehashed with current parameters", hash)
	}
	if _, err := c.Authenticate(ctx, "ana@example.com", "correct horse"); err != nil {
		t.Fatalf("Authenticate(after rehash) = %v", err)
	}
}

package cli

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/rewind/rewind/db"
)

// runCommand runs cmd in-process with args and stdin and returns what it
// printed on stdout and stderr.
func runCommand(t *testing.T, cmd *cobra.Command, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SilenceUsage = true
	cmd.SilenceErrors = true
	err = cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

// openTestCatalog opens the catalog of dataDir as the commands do.
func openTestCatalog(t *testing.T, dataDir string) *db.DB {
	t.Helper()
	c, _, err := db.OpenDataDir(context.Background(), dataDir)
	if err != nil {
		t.Fatalf("OpenDataDir() = %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestUsersAdd(t *testing.T) {
	dir := t.TempDir()
	out, _, err := runCommand(t, newUsersAddCommand(), "correct horse battery\n", "Ana@Example.com", "--role", "admin", "--password-stdin", "--data", dir)
	if err != nil {
		t.Fatalf("users:add = %v", err)
	}
	if got, want := out, "Added admin ana@example.com.\n"; got != want {
		t.Fatalf("output = %q, want %q", got, want)
	}
	if strings.Contains(out, "correct horse") {
		t.Fatal("users:add printed the password")
	}
	c := openTestCatalog(t, dir)
	u, err := c.Authenticate(context.Background(), "ana@example.com", "correct horse battery")
	if err != nil {
		t.Fatalf("Authenticate() = %v", err)
	}
	if got, want := u.Role, db.RoleAdmin; got != want {
		t.Fatalf("Role = %q, want %q", got, want)
	}
	acts, _, _ := c.FindActivities(context.Background(), db.ActivityFilter{})
	if len(acts) != 1 || acts[0].Type != "user.create" {
		t.Fatalf("activities = %+v, want one user.create", acts)
	}

	_, _, err = runCommand(t, newUsersAddCommand(), "another password\n", "ana@example.com", "--role", "viewer", "--password-stdin", "--data", dir)
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("duplicate users:add = %v, want an already-exists error", err)
	}
}

func TestUsersAdd_Errors(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"bad role", "long enough pw\n", []string{"ana@example.com", "--role", "owner", "--password-stdin"}, `unknown role "owner"`},
		{"no role", "long enough pw\n", []string{"ana@example.com", "--password-stdin"}, `"role" not set`},
		{"no --password-stdin", "", []string{"ana@example.com", "--role", "admin"}, "--password-stdin"},
		{"empty stdin", "", []string{"ana@example.com", "--role", "admin", "--password-stdin"}, "no password on standard input"},
		{"short password", "short\n", []string{"ana@example.com", "--role", "admin", "--password-stdin"}, "password: password is too short"},
		{"bad email", "long enough pw\n", []string{"ana", "--role", "admin", "--password-stdin"}, "email: "},
		{"no email", "long enough pw\n", []string{"--role", "admin", "--password-stdin"}, "accepts 1 arg"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := runCommand(t, newUsersAddCommand(), tt.stdin, append(tt.args, "--data", dir)...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("users:add = %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, db.CatalogFileName)); err == nil {
		if n, _ := openTestCatalog(t, dir).CountUsers(context.Background()); n != 0 {
			t.Fatalf("CountUsers() = %d after failed commands, want 0", n)
		}
	}
}

func TestUsersAdd_FlagsFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("REWIND_DATA", dir)
	t.Setenv("REWIND_ROLE", "viewer")
	t.Setenv("REWIND_PASSWORD_STDIN", "true")
	if _, _, err := runCommand(t, newUsersAddCommand(), "long enough pw\n", "vic@example.com"); err != nil {
		t.Fatalf("users:add with REWIND_* = %v", err)
	}
	u, err := openTestCatalog(t, dir).FindUserByEmail(context.Background(), "vic@example.com")
	if err != nil || u.Role != db.RoleViewer {
		t.Fatalf("FindUserByEmail() = %+v, %v, want a viewer", u, err)
	}
	// A flag on the command line beats the environment.
	if _, _, err := runCommand(t, newUsersAddCommand(), "long enough pw\n", "ada@example.com", "--role", "admin"); err != nil {
		t.Fatal(err)
	}
	if u, _ := openTestCatalog(t, dir).FindUserByEmail(context.Background(), "ada@example.com"); u.Role != db.RoleAdmin {
		t.Fatalf("Role = %q, want admin from --role", u.Role)
	}
	t.Setenv("REWIND_PASSWORD_STDIN", "maybe")
	if _, _, err := runCommand(t, newUsersAddCommand(), "long enough pw\n", "x@example.com"); err == nil || !strings.Contains(err.Error(), "REWIND_PASSWORD_STDIN") {
		t.Fatalf("users:add with a bad REWIND_PASSWORD_STDIN = %v, want an error naming it", err)
	}
}

func TestTokensCreate(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := runCommand(t, newUsersAddCommand(), "long enough pw\n", "ana@example.com", "--role", "admin", "--password-stdin", "--data", dir); err != nil {
		t.Fatal(err)
	}
	out, stderr, err := runCommand(t, newTokensCreateCommand(), "", "--user", "ANA@example.com", "--name", "ci", "--data", dir)
	if err != nil {
		t.Fatalf("tokens:create = %v", err)
	}
	secret := strings.TrimSpace(out)
	if !strings.HasPrefix(secret, db.TokenPrefix) || strings.Count(out, "\n") != 1 {
		t.Fatalf("stdout = %q, want the token alone on one line", out)
	}
	if !strings.Contains(stderr, "shown once") {
		t.Fatalf("stderr = %q, want a shown-once notice", stderr)
	}
	c := openTestCatalog(t, dir)
	u, tok, err := c.AuthenticateToken(context.Background(), secret)
	if err != nil || u.Email != "ana@example.com" || tok.Name != "ci" {
		t.Fatalf("AuthenticateToken(printed token) = %+v, %+v, %v", u, tok, err)
	}

	_, _, err = runCommand(t, newTokensCreateCommand(), "", "--user", "bob@example.com", "--data", dir)
	if err == nil || !strings.Contains(err.Error(), "rewind users:add") {
		t.Fatalf("tokens:create for an unknown user = %v, want a hint to users:add", err)
	}
	_, _, err = runCommand(t, newTokensCreateCommand(), "", "--data", dir)
	if err == nil || !strings.Contains(err.Error(), `"user" not set`) {
		t.Fatalf("tokens:create without --user = %v", err)
	}
}

func TestReadPassword(t *testing.T) {
	for in, want := range map[string]string{"pw\n": "pw", "pw\r\n": "pw", "pw": "pw", "a b \nignored\n": "a b "} {
		got, err := readPassword(strings.NewReader(in))
		if err != nil || got != want {
			t.Fatalf("readPassword(%q) = %q, %v, want %q", in, got, err, want)
		}
	}
	if _, err := readPassword(iotestErrReader{}); err == nil {
		t.Fatal("readPassword(failing reader) = nil error")
	}
}

type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) { return 0, errors.New("boom") }

var _ io.Reader = iotestErrReader{}

func TestAdminCommands_RefuseNewerCatalog(t *testing.T) {
	dir := t.TempDir()
	c := openTestCatalog(t, dir)
	c.Close()
	raw, err := sql.Open("sqlite", filepath.Join(dir, db.CatalogFileName))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future.sql', '')`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	_, _, err = runCommand(t, newUsersAddCommand(), "long enough pw\n", "ana@example.com", "--role", "admin", "--password-stdin", "--data", dir)
	if !errors.Is(err, db.ErrSchemaTooNew) || !strings.Contains(err.Error(), "catalog schema version 9999 is newer than this rewind") || !strings.Contains(err.Error(), "upgrade rewind") {
		t.Fatalf("users:add on a newer catalog = %v, want the too-new message", err)
	}
}

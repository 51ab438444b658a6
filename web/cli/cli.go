// Package cli is Rewind's command line but `serve`: the offline admin commands on the data directory
// (users:add, tokens:create, catalog:rebuild) and the clients of the JSON API (apply, environments,
// activities, backup:*), with the typed API client they share (client.go). Every flag can be set through
// REWIND_<FLAG> (WithEnv).
package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/rewind/rewind/db"
)

// DefaultDataDir is where the data directory lives unless --data says otherwise.
const DefaultDataDir = "./rewind-data"

// envPrefix starts the environment variable of every flag: --data → REWIND_DATA.
const envPrefix = "REWIND_"

// flagEnvName returns the environment variable that sets flag name.
func flagEnvName(name string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// applyEnv sets every flag of cmd not given on the command line from its
// REWIND_<FLAG> environment variable, if set. getenv is os.Getenv outside tests.
func applyEnv(cmd *cobra.Command, getenv func(string) string) error {
	var errs []error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Changed || f.Name == "help" {
			return
		}
		name := flagEnvName(f.Name)
		v := getenv(name)
		if v == "" {
			return
		}
		if err := cmd.Flags().Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", name, v, err))
		}
	})
	return errors.Join(errs...)
}

// WithEnv makes cmd read unset flags from REWIND_<FLAG> before it runs, and
// names the variable in each flag's help.
func WithEnv(cmd *cobra.Command) *cobra.Command {
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Name != "help" && !strings.Contains(f.Usage, "$"+envPrefix) {
			f.Usage += " [$" + flagEnvName(f.Name) + "]"
		}
	})
	cmd.PreRunE = chainPreRun(cmd.PreRunE, func(cmd *cobra.Command, _ []string) error {
		return applyEnv(cmd, os.Getenv)
	})
	return cmd
}

func chainPreRun(prev, next func(*cobra.Command, []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := next(cmd, args); err != nil {
			return err
		}
		if prev != nil {
			return prev(cmd, args)
		}
		return nil
	}
}

// Commands returns every command of the command line but serve.
func Commands() []*cobra.Command { return append(adminCommands(), clientCommands()...) }

// adminCommands returns the offline commands that work on the data
// directory directly: users:add and tokens:create.
func adminCommands() []*cobra.Command {
	return []*cobra.Command{newUsersAddCommand(), newTokensCreateCommand(), newCatalogRebuildCommand()}
}

// clientCommands returns the commands that talk to a running server over
// the JSON API: apply, environments, activities.
func clientCommands() []*cobra.Command {
	cmds := []*cobra.Command{newApplyCommand(), newEnvironmentsCommand(), newActivitiesCommand()}
	cmds = append(cmds, drillCommands()...)
	return append(cmds, backupCommands()...)
}

func newUsersAddCommand() *cobra.Command {
	var dataDir, role string
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "users:add EMAIL --role admin|contributor|viewer --password-stdin",
		Short: "Add a user to the catalog (offline, on the data directory)",
		Long: `Add a user to the catalog of the data directory. The password is read from the first
line of standard input, so it never appears in the process list or shell history:

  printf '%s\n' "$PASSWORD" | rewind users:add ana@example.com --role admin --password-stdin`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !passwordStdin {
				return errors.New("the password is read from standard input: pass --password-stdin and pipe the password in")
			}
			if !db.ValidRole(role) {
				return fmt.Errorf("unknown role %q: use --role admin, contributor or viewer", role)
			}
			password, err := readPassword(cmd.InOrStdin())
			if err != nil {
				return err
			}
			catalog, _, err := db.OpenDataDir(cmd.Context(), dataDir)
			if err != nil {
				return err
			}
			defer catalog.Close()
			u, err := catalog.CreateUser(cmd.Context(), args[0], password, role)
			if errors.Is(err, db.ErrConflict) {
				return fmt.Errorf("user %s already exists: change it on the Users page", db.NormalizeEmail(args[0]))
			}
			var ve *db.ValidationError
			if errors.As(err, &ve) {
				return errors.New(fieldMessages(ve))
			}
			if err != nil {
				return fmt.Errorf("add user: %w", err)
			}
			if err := catalog.CreateActivity(cmd.Context(), &db.Activity{
				Type: "user.create", Actor: "rewind users:add", Summary: fmt.Sprintf("Added user %s (%s)", u.Email, u.Role),
			}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Added %s %s.\n", u.Role, u.Email)
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data", DefaultDataDir, "data directory")
	cmd.Flags().StringVar(&role, "role", "", "role: admin, contributor or viewer")
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from the first line of standard input")
	_ = cmd.MarkFlagRequired("role")
	return WithEnv(cmd)
}

// readPassword reads the first line of r, without its line ending.
func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", errors.New("no password on standard input: pipe it in, e.g. printf '%s\\n' \"$PASSWORD\" | rewind users:add ...")
	}
	return pw, nil
}

func newTokensCreateCommand() *cobra.Command {
	var dataDir, email, name string
	cmd := &cobra.Command{
		Use:   "tokens:create --user EMAIL [--name NAME]",
		Short: "Create an API token for a user and print it once (offline, on the data directory)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			catalog, _, err := db.OpenDataDir(cmd.Context(), dataDir)
			if err != nil {
				return err
			}
			defer catalog.Close()
			u, err := catalog.FindUserByEmail(cmd.Context(), email)
			if errors.Is(err, db.ErrNotFound) {
				return fmt.Errorf("no user %s: add one with `rewind users:add`", db.NormalizeEmail(email))
			}
			if err != nil {
				return err
			}
			if u.Disabled {
				return fmt.Errorf("user %s is disabled: enable it on the Users page first", u.Email)
			}
			secret, tok, err := catalog.CreateToken(cmd.Context(), u.ID, name)
			var ve *db.ValidationError
			if errors.As(err, &ve) {
				return errors.New(fieldMessages(ve))
			}
			if err != nil {
				return fmt.Errorf("create token: %w", err)
			}
			if err := catalog.CreateActivity(cmd.Context(), &db.Activity{
				Type: "token.create", Actor: "rewind tokens:create",
				Summary: fmt.Sprintf("Created API token %q (%s…) for %s", tok.Name, tok.Prefix, u.Email),
			}); err != nil {
				return err
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "API token for "+u.Email+" (shown once, store it now):")
			fmt.Fprintln(cmd.OutOrStdout(), secret)
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data", DefaultDataDir, "data directory")
	cmd.Flags().StringVar(&email, "user", "", "email of the user the token acts as")
	cmd.Flags().StringVar(&name, "name", "cli", "a name to recognise the token by")
	_ = cmd.MarkFlagRequired("user")
	return WithEnv(cmd)
}

// fieldMessages renders a validation error one problem per line.
func fieldMessages(ve *db.ValidationError) string {
	lines := make([]string, 0, len(ve.Errors))
	for _, fe := range ve.Errors {
		lines = append(lines, fe.Field+": "+fe.Message)
	}
	return strings.Join(lines, "\n")
}

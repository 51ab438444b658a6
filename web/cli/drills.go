package cli

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/rewind/rewind/handlers"
)

// drillCommands are the client verbs on restore drills: drill:run and drills.
func drillCommands() []*cobra.Command {
	return []*cobra.Command{newDrillRunCommand(), newDrillsCommand()}
}

func newDrillRunCommand() *cobra.Command {
	var flags clientFlags
	var env string
	var noWait bool
	cmd := &cobra.Command{
		Use:   "drill:run [-e ENV] [--no-wait]",
		Short: "Restore the latest backup into throwaway private servers and verify it (the environment is not touched)",
		Long: `Run a restore drill: the environment's latest complete backup is restored into private PostgreSQL,
MariaDB and Redis servers and temporary directories, every checksum is verified, the environment's smoke
command runs against them, and everything is removed again. Without --no-wait, progress is shown until the
drill ends; the exit status is non-zero if it failed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := flags.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if env, err = defaultEnvironment(ctx, c, env); err != nil {
				return err
			}
			var resp startedResponse
			if _, err := c.do(ctx, http.MethodPost, "/api/v1/environments/"+url.PathEscape(env)+"/drills", nil, &resp); err != nil {
				return fmt.Errorf("drill %s: %w", env, err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "Restore drill of backup %s of %s started (activity %d).\n",
				resp.Activity.BackupID, env, resp.Activity.ID)
			if !noWait {
				a, err := waitActivity(ctx, c, resp.Activity.ID, cmd.ErrOrStderr())
				if a != nil {
					resp.Activity = *a
				}
				if err != nil {
					return err
				}
			}
			if flags.json {
				return writeJSON(cmd.OutOrStdout(), resp)
			}
			fmt.Fprintln(cmd.OutOrStdout(), resp.Activity.ID)
			return nil
		},
	}
	flags.register(cmd, true)
	cmd.Flags().StringVarP(&env, "environment", "e", "", "environment to drill (default: the only one)")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return once the drill is queued")
	return WithEnv(cmd)
}

func newDrillsCommand() *cobra.Command {
	var flags clientFlags
	var env string
	var limit int
	cmd := &cobra.Command{
		Use:   "drills [-e ENV] [--json]",
		Short: "List an environment's restore drills, newest first, with its last verified restore and predicted RTO",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := flags.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if env, err = defaultEnvironment(ctx, c, env); err != nil {
				return err
			}
			var resp handlers.DrillsJSON
			path := "/api/v1/environments/" + url.PathEscape(env) + "/drills?" + url.Values{"limit": {fmt.Sprint(limit)}}.Encode()
			if _, err := c.do(ctx, http.MethodGet, path, nil, &resp); err != nil {
				return fmt.Errorf("list drills of %s: %w", env, err)
			}
			if flags.json {
				return writeJSON(cmd.OutOrStdout(), resp)
			}
			return printDrills(cmd.OutOrStdout(), env, resp)
		},
	}
	flags.register(cmd, true)
	cmd.Flags().StringVarP(&env, "environment", "e", "", "environment (default: the only one)")
	cmd.Flags().IntVar(&limit, "limit", 20, "at most this many drills")
	return WithEnv(cmd)
}

func printDrills(w io.Writer, env string, resp handlers.DrillsJSON) error {
	if resp.LastVerified != nil {
		fmt.Fprintf(w, "Last verified restore: %s, %s (backup %s)\n", resp.LastVerified.CreatedAt.Local().Format("2006-01-02 15:04"),
			time.Duration(resp.LastVerified.RestoreMS)*time.Millisecond, resp.LastVerified.BackupID)
	} else {
		fmt.Fprintln(w, "Last verified restore: never verified")
	}
	if resp.PredictedRTOMS > 0 {
		fmt.Fprintf(w, "Predicted RTO: %s %s\n", (time.Duration(resp.PredictedRTOMS) * time.Millisecond).String(), resp.RTOBasis)
	}
	if len(resp.Drills) == 0 {
		fmt.Fprintf(w, "No drills yet: run one with `rewind drill:run -e %s`.\n", env)
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STARTED\tSTATE\tBACKUP NAME\tSIZE\tRESTORE\tFILES\tACTIVITY\tERROR")
	for _, d := range resp.Drills {
		restore := "-"
		if d.RestoreMS > 0 {
			restore = (time.Duration(d.RestoreMS) * time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", d.CreatedAt.Local().Format("2006-01-02 15:04:05"), d.State,
			d.BackupID, sizeOrDash(d.SizeBytes), restore, d.Files, d.ActivityID, drillErrorLine(d.Error))
	}
	return tw.Flush()
}

// drillErrorLine is the first line of a drill's error, for the table.
func drillErrorLine(msg string) string {
	line, _, _ := strings.Cut(msg, "\n")
	if len(line) > 120 {
		line = line[:117] + "..."
	}
	return line
}

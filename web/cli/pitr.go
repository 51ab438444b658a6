package cli

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/handlers"
)

// restoreAtResponse is the 202 answer of POST /api/v1/environments/{env}/restore.
type restoreAtResponse struct {
	Activity db.Activity                 `json:"activity"`
	Plan     *handlers.RestoreAtPlanJSON `json:"plan,omitempty"`
}

// newRestoreAtCommand is `rewind restore:at --at T -e ENV [--target ENV|--branch-from PARENT]`: the client side of
// a restore to a moment. It is meant to become `backup:restore --at T` (cli_backups.go is being moved).
func newRestoreAtCommand() *cobra.Command {
	var flags clientFlags
	var wf waitFlags
	var env, at, target, branchFrom string
	cmd := &cobra.Command{
		Use:   "restore:at --at TIME [-e ENV] [--target ENV] [--branch-from PARENT] [--yes] [--no-wait]",
		Short: "Restore an environment to a moment (point-in-time restore, PostgreSQL services)",
		Long: `Restore an environment's state at a moment (RFC 3339, e.g. 2026-12-01T10:42:13Z). Each service is
rebuilt at its last commit at or before that moment, then restored like a backup: the target's current
state is replaced and kept as a pre-restore backup (undo = restore it). The plan shown first says, per
service, the exact moment it is restored to. A moment in the future, before the point-in-time window or
in a gap of the stream is refused with the nearest restorable moments.

--target names the environment to restore into (default: -e); with --branch-from PARENT, a target that
does not exist yet is created as a child of PARENT. Without --yes you are asked to type the target's name.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := time.Parse(time.RFC3339Nano, at)
			if err != nil {
				return fmt.Errorf("--at %q is not a moment in RFC 3339 form with its time zone, e.g. 2026-12-01T10:42:13Z", at)
			}
			c, err := flags.client()
			if err != nil {
				return err
			}
			ctx, stderr := cmd.Context(), cmd.ErrOrStderr()
			if env, err = defaultEnvironment(ctx, c, env); err != nil {
				return err
			}
			base := "/api/v1/environments/" + url.PathEscape(env) + "/restore"
			q := url.Values{"at": {t.Format(time.RFC3339Nano)}, "target": {target}, "branch_from": {branchFrom}}
			var plan struct {
				Plan handlers.RestoreAtPlanJSON `json:"plan"`
			}
			if _, err := c.do(ctx, http.MethodGet, base+"?"+q.Encode(), nil, &plan); err != nil {
				return fmt.Errorf("restore %s to %s: %w", env, at, err)
			}
			p := plan.Plan
			printRestoreAtPlan(stderr, p)
			if len(p.Problems) > 0 {
				msgs := make([]string, 0, len(p.Problems))
				for _, f := range p.Problems {
					msgs = append(msgs, "  "+f.Message)
				}
				return fmt.Errorf("restore refused, nothing was touched:\n%s", strings.Join(msgs, "\n"))
			}
			if !wf.yes {
				if err := confirm(cmd, fmt.Sprintf("Type %q to replace its current state: ", p.Target), p.Target,
					"pass --yes to restore without a prompt"); err != nil {
					return err
				}
			}
			body := map[string]string{"at": t.Format(time.RFC3339Nano), "target": p.Target, "confirm": p.Target}
			if p.Create {
				body["branch_from"] = p.Parent
			}
			var resp restoreAtResponse
			if _, err := c.do(ctx, http.MethodPost, base, body, &resp); err != nil {
				return fmt.Errorf("restore %s to %s: %w", env, at, err)
			}
			fmt.Fprintf(stderr, "Restore of %s to %s into %s started (activity %d).\n", env, at, p.Target, resp.Activity.ID)
			if !wf.noWait {
				a, err := waitActivity(ctx, c, resp.Activity.ID, stderr)
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
			fmt.Fprintf(cmd.OutOrStdout(), "%s restored to %s into %s\n", env, at, p.Target)
			return nil
		},
	}
	flags.register(cmd, true)
	cmd.Flags().StringVar(&at, "at", "", "the moment, RFC 3339 (e.g. 2026-12-01T10:42:13Z)")
	cmd.Flags().StringVarP(&env, "environment", "e", "", "the environment whose state at that moment is restored")
	cmd.Flags().StringVar(&target, "target", "", "environment to restore into (default: -e)")
	cmd.Flags().StringVar(&branchFrom, "branch-from", "", "create the target as a child of this environment when it does not exist")
	cmd.Flags().BoolVar(&wf.yes, "yes", false, "do not ask for confirmation")
	cmd.Flags().BoolVar(&wf.noWait, "no-wait", false, "return once the restore is queued")
	_ = cmd.MarkFlagRequired("at")
	return WithEnv(cmd)
}

func printRestoreAtPlan(w io.Writer, p handlers.RestoreAtPlanJSON) {
	at := p.At.UTC().Format(time.RFC3339Nano)
	if p.Create {
		fmt.Fprintf(w, "A new environment %s is created as a child of %s, then %s as of %s is restored into it.\n",
			p.Target, p.Parent, p.Environment, at)
	} else {
		fmt.Fprintf(w, "The current state of %s is replaced by %s as of %s; what it replaces is kept as a pre-restore backup (undo = restore it).\n",
			p.Target, p.Environment, at)
	}
	for _, s := range p.Services {
		moment := "its base backup of " + s.BaseAt.UTC().Format(time.RFC3339) + " (no commit since)"
		if s.RestoredTo != nil {
			moment = "its last commit at or before then, " + s.RestoredTo.UTC().Format(time.RFC3339Nano)
		}
		fmt.Fprintf(w, "  %s (%s) → %s: restored to %s\n", s.Name, s.Type, s.Target, moment)
	}
}

package cli

import (
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rewind/rewind/db"
)

// restoreRun is a restore the command line plans, confirms, starts and follows: of a backup
// (backup:restore BACKUP) or of an environment's state at a moment (backup:restore --at T).
type restoreRun struct {
	cmd    *cobra.Command
	client *apiClient
	flags  clientFlags
	wait   waitFlags
	dryRun bool

	what     string          // what is restored, for messages: the backup's id, "main at 2026-…"
	plan     any             // the plan as the API returned it (--dry-run --json prints it)
	target   string          // the plan's target
	create   bool            // the target is created as a child of parent
	parent   string          //
	problems []db.FieldError // why the plan cannot run
	print    func(io.Writer) // prints the plan for a person
	start    string          // the API path that starts the restore
	body     map[string]any  // more of the POST body (the moment, a partial restore's scope)
	done     string          // what stdout says once it is done; default: "<what> restored into <target>"
}

// run prints the plan (on stdout for a dry run, else stderr), refuses one with problems, stops there for a dry
// run, asks to type the target's name (unless --yes), starts the restore and follows it (unless --no-wait).
func (r *restoreRun) run() error {
	ctx, stderr := r.cmd.Context(), r.cmd.ErrOrStderr()
	out := stderr
	if r.dryRun {
		out = r.cmd.OutOrStdout()
	}
	if !r.dryRun || !r.flags.json {
		r.print(out)
	}
	if len(r.problems) > 0 {
		msgs := make([]string, 0, len(r.problems))
		for _, f := range r.problems {
			msgs = append(msgs, "  "+f.Message)
		}
		return fmt.Errorf("restore refused, nothing was touched:\n%s", strings.Join(msgs, "\n"))
	}
	if r.dryRun {
		if r.flags.json {
			return writeJSON(r.cmd.OutOrStdout(), r.plan)
		}
		fmt.Fprintln(out, "Dry run: nothing was changed.")
		return nil
	}
	if !r.wait.yes {
		if err := confirm(r.cmd, fmt.Sprintf("Type %q to replace its current state: ", r.target), r.target,
			"pass --yes to restore without a prompt"); err != nil {
			return err
		}
	}
	body := map[string]any{"target": r.target, "confirm": r.target}
	for k, v := range r.body {
		body[k] = v
	}
	if r.create {
		body["branch_from"] = r.parent
	}
	var resp startedResponse
	if _, err := r.client.do(ctx, http.MethodPost, r.start, body, &resp); err != nil {
		return fmt.Errorf("restore %s: %w", r.what, err)
	}
	fmt.Fprintf(stderr, "Restore of %s into %s started (activity %d).\n", r.what, r.target, resp.Activity.ID)
	if !r.wait.noWait {
		a, err := waitActivity(ctx, r.client, resp.Activity.ID, stderr)
		if a != nil {
			resp.Activity = *a
		}
		if err != nil {
			return err
		}
	}
	if r.flags.json {
		return writeJSON(r.cmd.OutOrStdout(), resp)
	}
	if r.done == "" {
		r.done = r.what + " restored into " + r.target
	}
	fmt.Fprintln(r.cmd.OutOrStdout(), r.done)
	return nil
}

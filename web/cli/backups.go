package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/handlers"
)

// backupCommands are the client verbs on backups: backup:create, backups
// (backup:list), backup:get, backup:restore, backup:delete, backup:download.
func backupCommands() []*cobra.Command {
	return []*cobra.Command{newBackupCreateCommand(), newBackupsCommand(), newBackupGetCommand(),
		newBackupBrowseCommand(), newBackupRestoreCommand(), newBackupDeleteCommand(), newBackupDownloadCommand()}
}

// backupResponse is GET /api/v1/backups/{id}.
type backupResponse struct {
	Backup   db.Backup    `json:"backup"`
	Activity *db.Activity `json:"activity,omitempty"`
}

// startedResponse is the 202 answer of a backup or restore.
type startedResponse struct {
	Activity db.Activity     `json:"activity"`
	Backup   *db.Backup      `json:"backup,omitempty"`
	Plan     json.RawMessage `json:"plan,omitempty"` // a restore's plan, as the server wrote it
}

// waitFlags are --no-wait and --yes of the commands that start work.
type waitFlags struct {
	noWait bool
	yes    bool
}

func newBackupCreateCommand() *cobra.Command {
	var flags clientFlags
	var wf waitFlags
	var env string
	var live bool
	cmd := &cobra.Command{
		Use:   "backup:create [-e ENV] [--live] [--yes] [--no-wait]",
		Short: "Back up an environment (consistent: requests are held while every service is pinned)",
		Long: `Back up every service of an environment and its code commit as one backup.

A consistent backup holds the environment's requests (its gate, or its pre_pause/post_pause hooks) for
the moment every service is pinned; --live pins each service without holding anything. Without
--no-wait, progress is shown until the backup ends; the exit status is non-zero if it failed.`,
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
			path := "/api/v1/environments/" + url.PathEscape(env) + "/backups"
			_, err = c.do(ctx, http.MethodPost, path, map[string]bool{"live": live, "replace_oldest": wf.yes}, &resp)
			var ae *apiError
			if errors.As(err, &ae) && ae.Code == "quota" {
				// Beyond the quota the oldest manual backup is replaced: only once confirmed.
				fmt.Fprintln(cmd.ErrOrStderr(), ae.Message)
				if err := confirm(cmd, "Type \"yes\" to replace it: ", "yes", "pass --yes to replace it"); err != nil {
					return err
				}
				_, err = c.do(ctx, http.MethodPost, path, map[string]bool{"live": live, "replace_oldest": true}, &resp)
			}
			if err != nil {
				return fmt.Errorf("back up %s: %w", env, err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "Backup %s of %s started (activity %d).\n", resp.Backup.ID, env, resp.Activity.ID)
			if !wf.noWait {
				a, err := waitActivity(ctx, c, resp.Activity.ID, cmd.ErrOrStderr())
				if a != nil {
					resp.Activity = *a
				}
				if err != nil {
					return err
				}
				var b backupResponse
				if _, err := c.do(ctx, http.MethodGet, "/api/v1/backups/"+resp.Backup.ID, nil, &b); err == nil {
					resp.Backup = &b.Backup
				}
			}
			if flags.json {
				return writeJSON(cmd.OutOrStdout(), resp)
			}
			fmt.Fprintln(cmd.OutOrStdout(), resp.Backup.ID)
			return nil
		},
	}
	flags.register(cmd, true)
	cmd.Flags().StringVarP(&env, "environment", "e", "", "environment to back up (default: the only one)")
	cmd.Flags().BoolVar(&live, "live", false, "do not hold requests: each service is captured at its own moment")
	cmd.Flags().BoolVar(&wf.yes, "yes", false, "do not ask for confirmation (beyond the quota, replace the oldest manual backup)")
	cmd.Flags().BoolVar(&wf.noWait, "no-wait", false, "return once the backup is queued")
	return WithEnv(cmd)
}

// defaultEnvironment returns env, or the only environment when env is empty.
func defaultEnvironment(ctx context.Context, c *apiClient, env string) (string, error) {
	if env != "" {
		return env, nil
	}
	var resp environmentsResponse
	if _, err := c.do(ctx, http.MethodGet, "/api/v1/environments", nil, &resp); err != nil {
		return "", fmt.Errorf("list environments: %w", err)
	}
	if len(resp.Environments) == 1 {
		return resp.Environments[0].Name, nil
	}
	names := make([]string, 0, len(resp.Environments))
	for _, e := range resp.Environments {
		names = append(names, e.Name)
	}
	if len(names) == 0 {
		return "", errors.New("there are no environments yet: create one with `rewind apply -f rewind.yaml`")
	}
	return "", fmt.Errorf("name the environment with -e: one of %s", strings.Join(names, ", "))
}

// backupsListResponse is GET /api/v1/environments/{env}/backups.
type backupsListResponse struct {
	Backups []db.Backup `json:"backups"`
	Total   int         `json:"total"`
}

func newBackupsCommand() *cobra.Command {
	var flags clientFlags
	var env string
	var limit int
	cmd := &cobra.Command{
		Use:     "backups [-e ENV] [--json]",
		Aliases: []string{"backup:list"},
		Short:   "List backups, newest first",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := flags.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			envs := []string{env}
			if env == "" {
				var resp environmentsResponse
				if _, err := c.do(ctx, http.MethodGet, "/api/v1/environments", nil, &resp); err != nil {
					return fmt.Errorf("list environments: %w", err)
				}
				envs = envs[:0]
				for _, e := range resp.Environments {
					envs = append(envs, e.Name)
				}
			}
			all := backupsListResponse{Backups: []db.Backup{}}
			for _, e := range envs {
				var resp backupsListResponse
				path := "/api/v1/environments/" + url.PathEscape(e) + "/backups?" + url.Values{"limit": {fmt.Sprint(limit)}}.Encode()
				if _, err := c.do(ctx, http.MethodGet, path, nil, &resp); err != nil {
					return fmt.Errorf("list backups of %s: %w", e, err)
				}
				all.Backups = append(all.Backups, resp.Backups...)
				all.Total += resp.Total
			}
			sort.SliceStable(all.Backups, func(i, j int) bool { return all.Backups[i].CreatedAt.After(all.Backups[j].CreatedAt) })
			if flags.json {
				return writeJSON(cmd.OutOrStdout(), all)
			}
			return printBackups(cmd.OutOrStdout(), all, env == "")
		},
	}
	flags.register(cmd, true)
	cmd.Flags().StringVarP(&env, "environment", "e", "", "only backups of this environment")
	cmd.Flags().IntVar(&limit, "limit", 50, "at most this many backups per environment")
	return WithEnv(cmd)
}

func printBackups(w io.Writer, resp backupsListResponse, withEnv bool) error {
	if len(resp.Backups) == 0 {
		fmt.Fprintln(w, "No backups yet: take one with `rewind backup:create -e ENV`.")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	head := "CREATED\t% COMPLETE\tBACKUP NAME\tKIND\tMODE\tSIZE\tNEW\tPAUSE\tSTATUS\tRESTORABLE"
	if withEnv {
		head += "\tENVIRONMENT"
	}
	fmt.Fprintln(tw, head)
	for _, b := range resp.Backups {
		mode, pause := "consistent", "-"
		if b.Live {
			mode = "live"
		} else if b.Status == db.BackupComplete {
			pause = (time.Duration(b.PauseMS) * time.Millisecond).String()
		}
		restorable := "no"
		if b.Restorable() {
			restorable = "yes"
		}
		line := fmt.Sprintf("%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s", b.CreatedAt.Local().Format("2006-01-02 15:04:05"),
			b.Progress, b.ID, b.Kind, mode, sizeOrDash(b.SizeBytes), sizeOrDash(b.NewBytes), pause, b.Status, restorable)
		if withEnv {
			line += "\t" + b.Environment
		}
		fmt.Fprintln(tw, line)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if resp.Total > len(resp.Backups) {
		fmt.Fprintf(w, "Showing %d of %d backups (--limit).\n", len(resp.Backups), resp.Total)
	}
	return nil
}

func sizeOrDash(n int64) string {
	if n <= 0 {
		return "-"
	}
	return db.FormatBytes(n)
}

func newBackupGetCommand() *cobra.Command {
	var flags clientFlags
	cmd := &cobra.Command{
		Use:   "backup:get BACKUP [--json]",
		Short: "Show a backup: services with versions and sizes, code commit, log",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := flags.client()
			if err != nil {
				return err
			}
			var resp backupResponse
			if _, err := c.do(cmd.Context(), http.MethodGet, "/api/v1/backups/"+url.PathEscape(args[0]), nil, &resp); err != nil {
				return fmt.Errorf("backup %s: %w", args[0], err)
			}
			if flags.json {
				return writeJSON(cmd.OutOrStdout(), resp)
			}
			return printBackup(cmd.OutOrStdout(), resp)
		},
	}
	flags.register(cmd, true)
	return WithEnv(cmd)
}

func printBackup(w io.Writer, resp backupResponse) error {
	b := resp.Backup
	mode := "consistent"
	if b.Live {
		mode = "live"
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v == "" {
			v = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\n", k, v)
	}
	row("Backup name:", b.ID)
	row("Environment:", b.Environment)
	row("Kind:", b.Kind+", "+mode)
	row("Status:", fmt.Sprintf("%s (%d%% complete)", b.Status, b.Progress))
	row("Created:", b.CreatedAt.Local().Format("2006-01-02 15:04:05"))
	if b.CompletedAt != nil {
		row("Completed:", b.CompletedAt.Local().Format("2006-01-02 15:04:05"))
	}
	row("Size:", sizeOrDash(b.SizeBytes))
	row("New bytes stored:", sizeOrDash(b.NewBytes))
	if !b.Live {
		row("Pause:", (time.Duration(b.PauseMS) * time.Millisecond).String())
	}
	row("Code commit:", b.Commit)
	if b.RestoredFrom != "" {
		row("Replaced by restore of:", b.RestoredFrom)
	}
	if b.Error != "" {
		row("Error:", b.Error)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(b.Services) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SERVICE\tTYPE\tVERSION\tSIZE")
		for _, s := range b.Services {
			v := s.Version
			if v == "" {
				v = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Name, s.Type, v, db.FormatBytes(s.Size))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if resp.Activity != nil && resp.Activity.Log != "" {
		fmt.Fprintln(w, "\nLog:")
		fmt.Fprintln(w, strings.TrimRight(resp.Activity.Log, "\n"))
	}
	return nil
}

func newBackupRestoreCommand() *cobra.Command {
	var flags clientFlags
	var wf waitFlags
	var env, target, branchFrom, at, path string
	var services []string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "backup:restore {BACKUP | --at TIME} [-e ENV] [--target ENV] [--branch-from PARENT] [--service S]... [--path P] [--dry-run] [--yes] [--no-wait]",
		Short: "Restore a backup, or an environment as it was at a moment, into its environment, another one, or a new branch",
		Long: `Restore a backup. The target's current state is replaced; what the switch replaces is kept as a
pre-restore backup (undo = restore it). Services are mapped by name, and a restore whose services do
not fit the target is refused before anything is touched.

-e names the environment the backup was taken on (a mismatch is refused); --target the environment
to restore into (default: -e). With --branch-from PARENT, a target that does not exist yet is created
as a child of PARENT (named restore-<first 8 characters of the backup name> without --target).
Before asking, it shows what the restore changes in each service: tables and their rows now and in
the backup, Redis keys, files added, removed and changed, and how old the data will be. --dry-run
prints that (with --json: the plan as the API returns it) and changes nothing.
Without --yes you are asked to type the target's name; without a terminal the command refuses.

--service S (repeatable) restores only these services of the backup: the target's other services are
not touched. --path P with one files service restores only that directory or file of its mount
(relative to the mount, see rewind backup:browse): the rest of the mount is not touched, and the undo
(restoring the pre-restore backup) puts back that directory or file only.

--at TIME (RFC 3339, e.g. 2026-12-01T10:42:13Z) instead of a backup restores the state of -e at that
moment (point-in-time restore of an environment with pitr on): each service is rebuilt at its last
commit at or before TIME, which the plan shows, then restored like a backup. A moment in the future,
before the point-in-time window or in a gap of the stream is refused with the nearest restorable
moments.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case at != "" && len(args) > 0:
				return fmt.Errorf("restore either backup %s or the state at --at %s, not both", args[0], at)
			case at == "" && len(args) == 0:
				return errors.New("name the backup to restore (see rewind backups -e ENV), or --at TIME to restore an environment as it was then")
			case at != "" && (len(services) > 0 || path != ""):
				return errors.New("--service and --path restore part of a backup: name the backup instead of --at")
			}
			c, err := flags.client()
			if err != nil {
				return err
			}
			r := &restoreRun{cmd: cmd, client: c, flags: flags, wait: wf, dryRun: dryRun}
			if at != "" {
				err = planRestoreAt(r, env, at, target, branchFrom)
			} else {
				err = planBackupRestore(r, args[0], env, target, branchFrom, services, path)
			}
			if err != nil {
				return err
			}
			return r.run()
		},
	}
	flags.register(cmd, true)
	cmd.Flags().StringVarP(&env, "environment", "e", "", "the environment the backup was taken on (with --at: whose state is restored)")
	cmd.Flags().StringVar(&at, "at", "", "restore the state of -e at this moment, RFC 3339 (e.g. 2026-12-01T10:42:13Z), instead of a backup")
	cmd.Flags().StringVar(&target, "target", "", "environment to restore into (default: -e)")
	cmd.Flags().StringVar(&branchFrom, "branch-from", "", "create the target as a child of this environment when it does not exist")
	cmd.Flags().StringArrayVar(&services, "service", nil, "restore only this service of the backup (repeatable)")
	cmd.Flags().StringVar(&path, "path", "", "with one files --service: restore only this directory or file of its mount")
	cmd.Flags().BoolVar(&wf.yes, "yes", false, "do not ask for confirmation")
	cmd.Flags().BoolVar(&wf.noWait, "no-wait", false, "return once the restore is queued")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "show the plan and what the restore changes, then stop: nothing is changed")
	return WithEnv(cmd)
}

// planBackupRestore plans the restore of backup id (taken on env, when given) into target or a new branch of
// branchFrom: of services and a path of one of them, when given (a partial restore).
func planBackupRestore(r *restoreRun, id, env, target, branchFrom string, services []string, path string) error {
	ctx := r.cmd.Context()
	var b backupResponse
	if _, err := r.client.do(ctx, http.MethodGet, "/api/v1/backups/"+url.PathEscape(id), nil, &b); err != nil {
		return fmt.Errorf("backup %s: %w", id, err)
	}
	if env != "" && env != b.Backup.Environment {
		return fmt.Errorf("backup %s was taken on %s, not %s: pass -e %s (and --target %s to restore it into %s)",
			id, b.Backup.Environment, env, b.Backup.Environment, env, env)
	}
	if target == "" && branchFrom == "" {
		target = b.Backup.Environment
	}
	var plan struct {
		Plan handlers.RestorePlanJSON `json:"plan"`
	}
	q := url.Values{"target": {target}, "branch_from": {branchFrom}, "service": services}
	if path != "" {
		q.Set("path", path)
	}
	if _, err := r.client.do(ctx, http.MethodGet, "/api/v1/backups/"+url.PathEscape(id)+"/restore?"+q.Encode(), nil, &plan); err != nil {
		return fmt.Errorf("restore %s: %w", id, err)
	}
	p := plan.Plan
	r.what, r.plan, r.start = id, plan, "/api/v1/backups/"+url.PathEscape(id)+"/restore"
	r.target, r.create, r.parent, r.problems = p.Target, p.Create, p.BranchFrom, p.Problems
	if len(p.Services) > 0 {
		r.body = map[string]any{"services": p.Services, "path": p.Path}
		r.what = id + " (" + p.Scope + ")"
	}
	r.print = func(w io.Writer) {
		printPlan(w, p)
		printPreview(w, p.Preview)
	}
	return nil
}

func printPlan(w io.Writer, p handlers.RestorePlanJSON) {
	if p.Create {
		fmt.Fprintf(w, "A new environment %s is created as a child of %s, then backup %s of %s is restored into it.\n",
			p.Target, p.BranchFrom, p.BackupID, p.Environment)
	} else if p.Scope != "" {
		fmt.Fprintf(w, "Only %s of %s is replaced by backup %s of %s; everything else is not touched. What it replaces is kept as a pre-restore backup (undo = restore it).\n",
			p.Scope, p.Target, p.BackupID, p.Environment)
	} else {
		fmt.Fprintf(w, "The current state of %s is replaced by backup %s of %s; what it replaces is kept as a pre-restore backup (undo = restore it).\n",
			p.Target, p.BackupID, p.Environment)
	}
	for _, m := range p.Mapping {
		fmt.Fprintf(w, "  %s (%s) → %s\n", m.Name, m.Type, m.Target)
	}
	if p.Commit != "" && p.TargetHead != "" && p.Commit != p.TargetHead {
		fmt.Fprintf(w, "The backup was taken at commit %s; %s is at %s. Rewind does not change code: check out %s yourself.\n",
			p.Commit, p.Target, p.TargetHead, p.Commit)
	}
}

func newBackupDeleteCommand() *cobra.Command {
	var flags clientFlags
	var yes bool
	cmd := &cobra.Command{
		Use:   "backup:delete BACKUP [--yes]",
		Short: "Delete a backup from the repository and the catalog",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := flags.client()
			if err != nil {
				return err
			}
			ctx, id := cmd.Context(), args[0]
			var b backupResponse
			if _, err := c.do(ctx, http.MethodGet, "/api/v1/backups/"+url.PathEscape(id), nil, &b); err != nil {
				return fmt.Errorf("backup %s: %w", id, err)
			}
			if !yes {
				fmt.Fprintf(cmd.ErrOrStderr(), "Backup %s of %s (%s, %s) is deleted for good: it can no longer be restored.\n",
					id, b.Backup.Environment, b.Backup.Kind, b.Backup.CreatedAt.Local().Format("2006-01-02 15:04"))
				if err := confirm(cmd, fmt.Sprintf("Type %q to delete it: ", id), id, "pass --yes to delete without a prompt"); err != nil {
					return err
				}
			}
			var resp map[string]string
			if _, err := c.do(ctx, http.MethodDelete, "/api/v1/backups/"+url.PathEscape(id), nil, &resp); err != nil {
				return fmt.Errorf("delete %s: %w", id, err)
			}
			if flags.json {
				return writeJSON(cmd.OutOrStdout(), resp)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Deleted backup %s.\n", id)
			return nil
		},
	}
	flags.register(cmd, true)
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	return WithEnv(cmd)
}

func newBackupDownloadCommand() *cobra.Command {
	var flags clientFlags
	var out string
	cmd := &cobra.Command{
		Use:   "backup:download BACKUP -o FILE.tar",
		Short: "Download a backup as a tar (rewind.json and one folder per service); -o - writes to stdout",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := flags.client()
			if err != nil {
				return err
			}
			if out == "" {
				return errors.New("name the file to write with -o FILE.tar (or -o - for standard output)")
			}
			n, err := c.download(cmd.Context(), "/api/v1/backups/"+url.PathEscape(args[0])+"/download", out, cmd.OutOrStdout())
			if err != nil {
				return fmt.Errorf("download %s: %w", args[0], err)
			}
			if out != "-" {
				fmt.Fprintf(cmd.ErrOrStderr(), "Wrote %s (%s).\n", out, db.FormatBytes(n))
			}
			return nil
		},
	}
	flags.register(cmd, false)
	cmd.Flags().StringVarP(&out, "output", "o", "", "file to write the tar to (- for standard output)")
	return WithEnv(cmd)
}

// download streams path into the file out (through a temporary file renamed
// into place once complete) or into stdout for "-". It has no overall
// timeout: a large backup takes as long as it takes.
func (c *apiClient) download(ctx context.Context, path, out string, stdout io.Writer) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base.String()+path, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	hc := &http.Client{Transport: c.http.Transport}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, c.transportError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return 0, c.statusError(resp.StatusCode, data)
	}
	if out == "-" {
		return io.Copy(stdout, resp.Body)
	}
	f, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*")
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(f, resp.Body)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), out)
	}
	if err != nil {
		os.Remove(f.Name())
		return n, err
	}
	return n, nil
}

// confirm asks on the terminal for want to be typed. Without a terminal on
// standard input it refuses, saying how to go on (hint).
func confirm(cmd *cobra.Command, prompt, want, hint string) error {
	in := cmd.InOrStdin()
	f, ok := in.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return fmt.Errorf("confirmation needed but standard input is not a terminal: %s", hint)
	}
	fmt.Fprint(cmd.ErrOrStderr(), prompt)
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if strings.TrimSpace(line) != want {
		return errors.New("not confirmed: nothing was done")
	}
	return nil
}

// waitActivity polls an activity until it ends, drawing a progress bar on w.
// It returns an error (with the log's tail) when the activity failed or was
// cancelled.
func waitActivity(ctx context.Context, c *apiClient, id int64, w io.Writer) (*db.Activity, error) {
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	last := -1
	lastState := ""
	for {
		var resp struct {
			Activity db.Activity `json:"activity"`
		}
		if _, err := c.do(ctx, http.MethodGet, fmt.Sprintf("/api/v1/activities/%d", id), nil, &resp); err != nil {
			return nil, fmt.Errorf("follow activity %d: %w", id, err)
		}
		a := resp.Activity
		pct := a.Progress
		if a.State == db.ActivitySucceeded {
			pct = 100
		}
		if tty {
			fmt.Fprintf(w, "\r%s %3d%% %-9s", progressBar(pct, 30), pct, a.State)
		} else if pct != last && (pct-last >= 10 || pct == 100 || last < 0) || a.State != lastState {
			fmt.Fprintf(w, "%s %3d%% %s\n", progressBar(pct, 30), pct, a.State)
			last, lastState = pct, a.State
		}
		if a.Done() {
			if tty {
				fmt.Fprintln(w)
			}
			if a.State != db.ActivitySucceeded {
				return &a, fmt.Errorf("activity %d %s: %s\n%s", a.ID, a.State, a.Summary, logTail(a.Log, 15))
			}
			return &a, nil
		}
		select {
		case <-ctx.Done():
			return &a, ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}

func progressBar(pct, width int) string {
	n := min(max(pct, 0), 100) * width / 100
	return "[" + strings.Repeat("#", n) + strings.Repeat(" ", width-n) + "]"
}

func logTail(log string, n int) string {
	lines := strings.Split(strings.TrimRight(log, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

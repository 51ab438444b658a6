package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/handlers"
)

func newEnvironmentsCommand() *cobra.Command {
	var flags clientFlags
	cmd := &cobra.Command{
		Use:     "environments [--json]",
		Aliases: []string{"environment:list", "envs"},
		Short:   "List environments",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := flags.client()
			if err != nil {
				return err
			}
			var resp environmentListResponse
			if _, err := c.do(cmd.Context(), http.MethodGet, "/api/v1/environments", nil, &resp); err != nil {
				return fmt.Errorf("list environments: %w", err)
			}
			if flags.json {
				return writeJSON(cmd.OutOrStdout(), resp)
			}
			envs, rec := make([]db.Environment, len(resp.Environments)), map[string]handlers.RecoveryJSON{}
			for i, e := range resp.Environments {
				envs[i], rec[e.Name] = e.Environment, e.RecoveryJSON
			}
			return printEnvironments(cmd.OutOrStdout(), envs, rec)
		},
	}
	flags.register(cmd, true)
	return WithEnv(cmd)
}

// environmentListResponse is GET /api/v1/environments with each environment's recovery figures.
type environmentListResponse struct {
	Environments []environmentRow `json:"environments"`
}

type environmentRow struct {
	db.Environment
	handlers.RecoveryJSON
}

// rpoText is "3 h (plan: 24 h)", "30 h (ABOVE the plan's 24 h)", "none restorable" or "-" (an older server).
func rpoText(r handlers.RecoveryJSON, known bool) string {
	if !known {
		return "-"
	}
	if r.RPOSeconds == nil {
		return "nothing restorable"
	}
	rpo, promise := time.Duration(*r.RPOSeconds)*time.Second, time.Duration(r.PromisedRPOSecs)*time.Second
	s := db.FormatSpan(rpo)
	if r.RPOBasis == "pitr" {
		s += " point-in-time"
	}
	switch {
	case promise == 0:
		return s + " (manual only)"
	case rpo > promise:
		return s + " (ABOVE the plan's " + db.FormatSpan(promise) + ")"
	}
	return s + " (plan: " + db.FormatSpan(promise) + ")"
}

func rtoText(r handlers.RecoveryJSON, known bool) string {
	switch {
	case !known:
		return "-"
	case r.RTOPredictedSecs == nil:
		return "not measured: run a drill"
	}
	return (time.Duration(*r.RTOPredictedSecs * float64(time.Second))).Round(100 * time.Millisecond).String()
}

// printEnvironments writes the environments table with each one's RPO and predicted RTO (rec; an environment
// missing from it shows "-"): children are indented under their parent when the list is ordered parents first.
func printEnvironments(w io.Writer, envs []db.Environment, rec map[string]handlers.RecoveryJSON) error {
	if len(envs) == 0 {
		fmt.Fprintln(w, "No environments yet: describe them in rewind.yaml and run `rewind apply -f rewind.yaml`.")
		return nil
	}
	depth := map[string]int{}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTYPE\tPARENT\tSTATUS\tRPO\tPREDICTED RTO\tSERVICES")
	for _, e := range envs {
		d := 0
		if pd, ok := depth[e.Parent]; ok && e.Parent != "" {
			d = pd + 1
		}
		depth[e.Name] = d
		services := make([]string, len(e.Services))
		for i, s := range e.Services {
			services[i] = s.Name + " (" + s.Type + ")"
		}
		parent := e.Parent
		if parent == "" {
			parent = "-"
		}
		list := strings.Join(services, ", ")
		if list == "" {
			list = "-"
		}
		r := rec[e.Name]
		known := r.RTOBasis != "" // always sent by a server that reports recovery figures
		fmt.Fprintf(tw, "%s%s\t%s\t%s\t%s\t%s\t%s\t%s\n", strings.Repeat("  ", d), e.Name, e.Type, parent, e.Status,
			rpoText(r, known), rtoText(r, known), list)
	}
	return tw.Flush()
}

// activitiesResponse is GET /api/v1/activities.
type activitiesResponse struct {
	Activities []db.Activity `json:"activities"`
	Total      int           `json:"total"`
}

func newActivitiesCommand() *cobra.Command {
	var flags clientFlags
	var env, typ, state string
	var limit int
	cmd := &cobra.Command{
		Use:     "activities [-e ENV] [--type TYPE] [--state STATE] [--limit N] [--json]",
		Aliases: []string{"activity:list"},
		Short:   "List recent activities, newest first",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := flags.client()
			if err != nil {
				return err
			}
			if state != "" && !slices.Contains(db.ActivityStates(), state) {
				return fmt.Errorf("unknown state %q: use one of %s", state, strings.Join(db.ActivityStates(), ", "))
			}
			q := url.Values{}
			for k, v := range map[string]string{"environment": env, "type": typ, "state": state} {
				if v != "" {
					q.Set(k, v)
				}
			}
			if limit > 0 {
				q.Set("limit", strconv.Itoa(limit))
			}
			path := "/api/v1/activities"
			if len(q) > 0 {
				path += "?" + q.Encode()
			}
			var resp activitiesResponse
			if _, err := c.do(cmd.Context(), http.MethodGet, path, nil, &resp); err != nil {
				return fmt.Errorf("list activities: %w", err)
			}
			if flags.json {
				return writeJSON(cmd.OutOrStdout(), resp)
			}
			return printActivities(cmd.OutOrStdout(), resp, time.Now())
		},
	}
	flags.register(cmd, true)
	cmd.Flags().StringVarP(&env, "environment", "e", "", "only activities of this environment")
	cmd.Flags().StringVar(&typ, "type", "", `only activities of this type ("backup.create"), or group ("backup.")`)
	cmd.Flags().StringVar(&state, "state", "", "only activities in this state: "+strings.Join(db.ActivityStates(), ", "))
	cmd.Flags().IntVar(&limit, "limit", 0, "how many to show (default: the server's page size)")
	return WithEnv(cmd)
}

func printActivities(w io.Writer, resp activitiesResponse, now time.Time) error {
	if len(resp.Activities) == 0 {
		fmt.Fprintln(w, "No activities.")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tCREATED\tTYPE\tENVIRONMENT\tSTATE\t% COMPLETE\tDURATION\tACTOR\tSUMMARY")
	for _, a := range resp.Activities {
		env := a.Environment
		if env == "" {
			env = "-"
		}
		dur := "-"
		if d := a.Duration(now); d > 0 {
			dur = d.Round(time.Second).String()
			if d < time.Second {
				dur = d.Round(time.Millisecond).String()
			}
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", a.ID, a.CreatedAt.Local().Format("2006-01-02 15:04:05"),
			a.Type, env, a.State, a.Progress, dur, a.Actor, oneLine(a.Summary))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if resp.Total > len(resp.Activities) {
		fmt.Fprintln(w, "Showing "+strconv.Itoa(len(resp.Activities))+" of "+strconv.Itoa(resp.Total)+" activities.")
	}
	return nil
}

func oneLine(s string) string {
	s = strings.ReplaceAll(strings.ReplaceAll(s, "\r", " "), "\n", " ")
	if r := []rune(s); len(r) > 80 {
		s = string(r[:79]) + "…"
	}
	return s
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

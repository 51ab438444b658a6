package cli

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/rewind/rewind/handlers"
)

// planRestoreAt plans the restore of env's state at the moment at (RFC 3339) into target or a new branch of
// branchFrom: backup:restore --at.
func planRestoreAt(r *restoreRun, env, at, target, branchFrom string) error {
	t, err := time.Parse(time.RFC3339Nano, at)
	if err != nil {
		return fmt.Errorf("--at %q is not a moment in RFC 3339 form with its time zone, e.g. 2026-12-01T10:42:13Z", at)
	}
	ctx := r.cmd.Context()
	if env, err = defaultEnvironment(ctx, r.client, env); err != nil {
		return err
	}
	moment := t.Format(time.RFC3339Nano)
	base := "/api/v1/environments/" + url.PathEscape(env) + "/restore"
	q := url.Values{"at": {moment}, "target": {target}, "branch_from": {branchFrom}}
	var plan struct {
		Plan handlers.RestoreAtPlanJSON `json:"plan"`
	}
	if _, err := r.client.do(ctx, http.MethodGet, base+"?"+q.Encode(), nil, &plan); err != nil {
		return fmt.Errorf("restore %s to %s: %w", env, at, err)
	}
	p := plan.Plan
	r.what, r.plan, r.start, r.body = env+" at "+at, plan, base, map[string]any{"at": moment}
	r.target, r.create, r.parent, r.problems = p.Target, p.Create, p.Parent, p.Problems
	r.print = func(w io.Writer) { printRestoreAtPlan(w, p) }
	r.done = env + " restored to " + at + " into " + p.Target
	return nil
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

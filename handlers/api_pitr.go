package handlers

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/jobs"
)

// restoreAtBody is the body of POST /api/v1/environments/:env/restore.
type restoreAtBody struct {
	At         string `json:"at"`
	Target     string `json:"target"`
	BranchFrom string `json:"branch_from"`
	Confirm    string `json:"confirm"`
}

// RestoreAtPlanJSON is a restore to a moment as the API shows it.
type RestoreAtPlanJSON struct {
	Environment string                 `json:"environment"`
	At          time.Time              `json:"at"`
	Target      string                 `json:"target"`
	Create      bool                   `json:"create"`
	Parent      string                 `json:"parent,omitempty"`
	Services    []RestoreAtServiceJSON `json:"services"`
	Problems    []db.FieldError        `json:"problems,omitempty"`
}

// RestoreAtServiceJSON says the exact moment one service is restored to.
type RestoreAtServiceJSON struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// Target is the masked URL of the service restored into.
	Target string `json:"target"`
	// RestoredTo is the service's newest commit at or before At; null when none happened since its base
	// backup (BaseAt), whose state it then gets.
	RestoredTo *time.Time  `json:"restored_to"`
	BaseAt     time.Time   `json:"base_at"`
	Ranges     []rangeJSON `json:"restorable"`
}

type rangeJSON struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

func toRestoreAtJSON(p *jobs.RestoreAtPlan) *RestoreAtPlanJSON {
	if p == nil {
		return nil
	}
	out := &RestoreAtPlanJSON{Environment: p.Environment, At: p.At, Target: p.Target, Create: p.Create,
		Parent: p.Parent, Services: []RestoreAtServiceJSON{}}
	for _, s := range p.Services {
		sj := RestoreAtServiceJSON{Name: s.Name, Type: s.Type, Target: s.Target, RestoredTo: s.RestoredTo,
			BaseAt: s.BaseAt, Ranges: []rangeJSON{}}
		for _, r := range s.Ranges {
			sj.Ranges = append(sj.Ranges, rangeJSON{From: r.From.UTC(), To: r.To.UTC()})
		}
		out.Services = append(out.Services, sj)
	}
	if p.Problem != nil {
		out.Problems = p.Problem.Errors
	}
	return out
}

// parseAt reads a moment: RFC 3339, with or without fractional seconds.
func parseAt(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, &db.ValidationError{Errors: []db.FieldError{{Field: "at", Message: "at must be a " +
			"moment in RFC 3339 form with its time zone, e.g. 2026-12-01T10:42:13Z"}}}
	}
	return t, nil
}

// PlanAt is GET /api/v1/environments/:env/restore?at=…[&target=…][&branch_from=…] → {"plan":{...}}: per service
// the exact moment it would be restored to. A moment that cannot be restored is refused (422 or 409) with the
// nearest restorable moments in the message.
func (h *PITR) PlanAt(c echo.Context) error {
	if h.ops == nil {
		return errNoJobs
	}
	at, err := parseAt(c.QueryParam("at"))
	if err != nil {
		return err
	}
	plan, err := h.ops.PlanRestoreAt(c.Request().Context(), jobs.RestoreAtRequest{Environment: c.Param("env"),
		At: at, Target: c.QueryParam("target"), BranchFrom: c.QueryParam("branch_from")})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"plan": toRestoreAtJSON(plan)})
}

// RestoreAt is POST /api/v1/environments/:env/restore {"at","target","branch_from","confirm"} → 202
// {"activity":{...},"plan":{...}}. Only admins of the environment's type, the target's and (for a branch) the
// parent's may restore.
func (h *PITR) RestoreAt(c echo.Context) error {
	u, err := user(c)
	if err != nil {
		return err
	}
	var body restoreAtBody
	if err := decodeJSON(c, &body); err != nil {
		return err
	}
	at, err := parseAt(body.At)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	req := jobs.RestoreAtRequest{Environment: c.Param("env"), At: at, Target: body.Target,
		BranchFrom: body.BranchFrom, Confirm: body.Confirm, Actor: actor(c)}
	if err := h.requireRestoreAt(ctx, u, req); err != nil {
		return err
	}
	if h.ops == nil {
		return errNoJobs
	}
	a, plan, err := h.ops.StartRestoreAt(ctx, req)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, map[string]any{"activity": a, "plan": toRestoreAtJSON(plan)})
}

func (h *PITR) requireRestoreAt(ctx context.Context, u *db.User, req jobs.RestoreAtRequest) error {
	src, err := h.store.FindEnvironmentByName(ctx, req.Environment)
	if err != nil {
		return err
	}
	types := []string{src.Type}
	for _, name := range []string{req.Target, req.BranchFrom} {
		if name == "" {
			continue
		}
		e, err := h.store.FindEnvironmentByName(ctx, name)
		if errors.Is(err, db.ErrNotFound) {
			continue // a branch to be created: its parent's type counts
		}
		if err != nil {
			return err
		}
		types = append(types, e.Type)
	}
	if perm := backupAdmin(u, types...); !perm.Allowed {
		return forbidden(perm.Reason)
	}
	return nil
}

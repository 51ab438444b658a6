package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/jobs"
	"github.com/rewind/rewind/views"
)

// parsePITRForm reads the point-in-time section of the environment form: nil (keep the stored setting) when
// the form does not carry it.
func parsePITRForm(form url.Values) (*db.PITR, error) {
	if form.Get("pitr.form") == "" {
		return nil, nil
	}
	p := &db.PITR{Enabled: form.Get("pitr.enabled") != ""}
	if v := strings.TrimSpace(form.Get("pitr.window_days")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, &db.ValidationError{Errors: []db.FieldError{{Field: "pitr.window_days",
				Message: "window must be a whole number of days, e.g. 7"}}}
		}
		p.WindowDays = n
	}
	return p, nil
}

// PITROperations plan and start restores to a moment, and check what following a service needs (jobs).
type PITROperations interface {
	PlanRestoreAt(ctx context.Context, req jobs.RestoreAtRequest) (*jobs.RestoreAtPlan, error)
	StartRestoreAt(ctx context.Context, req jobs.RestoreAtRequest) (*db.Activity, *jobs.RestoreAtPlan, error)
}

// PITRChecker runs the prerequisites check of an environment's followed services (jobs.PITR).
type PITRChecker interface {
	// KindTypes are the service types point-in-time protection covers, sorted.
	KindTypes() []string
	Check(ctx context.Context, env string) (map[string][]jobs.PITRCheckResult, error)
	// Ranges are the moments each followed service of env can be restored to, oldest first.
	Ranges(ctx context.Context, env string) (map[string][]jobs.PITRRange, error)
}

type pitrStore interface {
	FindEnvironmentByName(ctx context.Context, name string) (*db.Environment, error)
	FindPITRStreamsRecent(ctx context.Context, env string) ([]*db.PITRStream, error)
	FindPlan(ctx context.Context) (*db.Plan, error)
	FindPITRUsage(ctx context.Context, streamID int64) (db.PITRUsage, error)
}

// PITR is the point-in-time card of an environment's page, its Test button, and the restore-to-a-moment API.
type PITR struct {
	store   pitrStore
	ops     PITROperations
	checker PITRChecker
	session Session
	now     func() time.Time
}

func NewPITR(store pitrStore, ops PITROperations, checker PITRChecker, session Session, now func() time.Time) *PITR {
	return &PITR{store: store, ops: ops, checker: checker, session: session, now: now}
}

// RestorePage is POST /environments/:env/restore-at (the card's form): at is a local date and time in the
// project's timezone. A refusal comes back as a flash on the environment's page; a start leads to its activity.
func (h *PITR) RestorePage(c echo.Context) error {
	u, err := user(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	e, err := h.store.FindEnvironmentByName(ctx, c.Param("env"))
	if err != nil {
		return err
	}
	if perm := backupAdmin(u, e.Type); !perm.Allowed {
		return forbidden(perm.Reason)
	}
	if h.ops == nil {
		return errNoJobs
	}
	plan, err := h.store.FindPlan(ctx)
	if err != nil {
		return err
	}
	page := "/environments/" + url.PathEscape(e.Name)
	at, err := parseLocalMoment(c.FormValue("at"), plan.Location())
	if err != nil {
		_ = h.session.Flash(c, "error", "Pick the moment to restore to: a date and a time.")
		return redirect(c, page)
	}
	a, _, err := h.ops.StartRestoreAt(ctx, jobs.RestoreAtRequest{Environment: e.Name, At: at,
		Confirm: c.FormValue("confirm"), Actor: actor(c)})
	if msg, ok := userMessage(err); ok {
		_ = h.session.Flash(c, "error", "Nothing was restored: "+msg)
		return redirect(c, page)
	}
	if err != nil {
		return err
	}
	_ = h.session.Flash(c, "success", fmt.Sprintf("Restore of %s to %s started (activity %d).", e.Name,
		at.Format("2006-01-02 15:04:05 MST"), a.ID))
	return redirect(c, page+"/activity")
}

// status is the card on the environment's page: nil when protection was never on.
func (h *PITR) status(c echo.Context, u *db.User, e *db.Environment) (*views.PITRStatus, error) {
	ctx := c.Request().Context()
	streams, err := h.store.FindPITRStreamsRecent(ctx, e.Name)
	if err != nil {
		return nil, err
	}
	enabled := e.PITR != nil && e.PITR.Enabled
	var types []string
	if h.checker != nil {
		types = h.checker.KindTypes()
	}
	covered := false
	for _, svc := range e.Services {
		covered = covered || slices.Contains(types, svc.Type)
	}
	if !enabled && len(streams) == 0 && !covered {
		return nil, nil // nothing to follow: no card
	}
	plan, err := h.store.FindPlan(ctx)
	if err != nil {
		return nil, err
	}
	d := &views.PITRStatus{Enabled: enabled, Now: h.now(), Test: envAdmin(u, e.Type), Restore: backupAdmin(u, e.Type),
		CSRF: CSRFToken(c), Env: e.Name, Timezone: plan.Location().String(), Types: types}
	if e.PITR != nil {
		d.Window = e.PITR.Window(plan.Schedule)
	}
	var ranges map[string][]jobs.PITRRange
	if h.checker != nil {
		if ranges, err = h.checker.Ranges(ctx, e.Name); err != nil {
			return nil, err
		}
	}
	for _, st := range streams {
		row := views.PITRStreamRow{Stream: st}
		if svc := e.Service(st.Service); svc != nil {
			row.Type = svc.Type
		}
		if row.Usage, err = h.store.FindPITRUsage(ctx, st.ID); err != nil {
			return nil, err
		}
		rs := ranges[st.Service]
		if len(rs) > 0 {
			row.From = &rs[0].From
		}
		if enabled {
			spans := make([]views.TimeSpan, len(rs))
			for i, r := range rs {
				spans[i] = views.TimeSpan{From: r.From, To: r.To}
			}
			row.Timeline = views.NewPITRTimeline(st.Service, spans, d.Now.Add(-d.Window), d.Now, plan.Location())
		}
		d.Streams = append(d.Streams, row)
	}
	return d, nil
}

// Test is POST /environments/:env/pitr/test: the prerequisites of following each service whose type is covered.
func (h *PITR) Test(c echo.Context) error {
	u, err := user(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	e, err := h.store.FindEnvironmentByName(ctx, c.Param("env"))
	if err != nil {
		return err
	}
	if err := requireEnvAdmin(u, e.Type); err != nil {
		return err
	}
	if h.checker == nil {
		return errNoJobs
	}
	res, err := h.checker.Check(ctx, e.Name)
	if err != nil {
		return err
	}
	var checks []views.PITRCheck
	for _, svc := range e.Services {
		for _, r := range res[svc.Name] {
			checks = append(checks, views.PITRCheck{Service: svc.Name, Name: r.Name, Status: r.Status, Message: r.Message})
		}
	}
	return render(c, http.StatusOK, views.PITRCheckResults(checks, h.checker.KindTypes()))
}

// PlanPage is GET /environments/:env/restore-at/plan?at=… (the form's preview): the exact moment each service
// would be restored to, or why the moment cannot be restored. It touches nothing.
func (h *PITR) PlanPage(c echo.Context) error {
	if _, err := user(c); err != nil {
		return err
	}
	if h.ops == nil {
		return errNoJobs
	}
	ctx := c.Request().Context()
	plan, err := h.store.FindPlan(ctx)
	if err != nil {
		return err
	}
	at, err := parseLocalMoment(c.QueryParam("at"), plan.Location())
	if err != nil {
		return render(c, http.StatusOK, views.PITRPlanPreview(nil, "Pick a date and a time."))
	}
	p, err := h.ops.PlanRestoreAt(ctx, jobs.RestoreAtRequest{Environment: c.Param("env"), At: at})
	if msg, ok := userMessage(err); ok {
		return render(c, http.StatusOK, views.PITRPlanPreview(nil, msg))
	}
	if err != nil {
		return err
	}
	var rows []views.PITRPlanRow
	for _, s := range p.Services {
		moment := "as its base backup of " + s.BaseAt.In(plan.Location()).Format("2006-01-02 15:04:05 MST") +
			" left it (no commit since)"
		if s.RestoredTo != nil {
			moment = "its last commit at or before then, " + s.RestoredTo.In(plan.Location()).Format("2006-01-02 15:04:05.000000 MST")
		}
		rows = append(rows, views.PITRPlanRow{Service: s.Name, Moment: moment})
	}
	return render(c, http.StatusOK, views.PITRPlanPreview(rows, ""))
}

// parseLocalMoment reads a datetime-local value (to the second, or the minute) in loc.
func parseLocalMoment(raw string, loc *time.Location) (time.Time, error) {
	raw = strings.TrimSpace(raw)
	at, err := time.ParseInLocation("2006-01-02T15:04:05", raw, loc)
	if err != nil {
		at, err = time.ParseInLocation("2006-01-02T15:04", raw, loc)
	}
	return at, err
}

// userMessage is the message of an error the user can act on (a field error, a refused operation).
func userMessage(err error) (string, bool) {
	var ve *db.ValidationError
	switch {
	case errors.As(err, &ve):
		msgs := make([]string, 0, len(ve.Errors))
		for _, fe := range ve.Errors {
			msgs = append(msgs, fe.Message)
		}
		return strings.Join(msgs, "; "), true
	case errors.Is(err, jobs.ErrRefused):
		return refusal(err), true
	}
	return "", false
}

package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/jobs"
	"github.com/rewind/rewind/views"
)

type planStore interface {
	FindPlan(ctx context.Context) (*db.Plan, error)
	UpdatePlan(ctx context.Context, p db.Plan) error
	FindEnvironments(ctx context.Context, f db.EnvironmentFilter) ([]*db.Environment, error)
	CreateActivity(ctx context.Context, a *db.Activity) error
}

// PlanOperations preview a plan change (counts, storage estimate, backups that would expire) and apply the new
// retention: jobs.Operations.
type PlanOperations interface {
	PreviewPlan(ctx context.Context, current, next db.Plan, envs []*db.Environment) (*jobs.PlanPreview, error)
	ApplyRetentionAll(ctx context.Context, plan db.Plan, actor string) ([]*db.Backup, error)
}

// Waker is told when the plan changed, so the next automated backup follows it at once: the scheduler.
type Waker interface{ Wake() }

// Settings is the project settings page (/settings) with its "Edit plan" screen, and the plan API.
type Settings struct {
	store   planStore
	ops     PlanOperations // nil: previews list no backups and nothing is expired
	sched   Waker          // may be nil
	session Session
	now     func() time.Time
}

func NewSettings(store planStore, ops PlanOperations, sched Waker, session Session, now func() time.Time) *Settings {
	return &Settings{store: store, ops: ops, sched: sched, session: session, now: now}
}

// requirePlanAdmin: only admins see and change the project's settings and plan.
func requirePlanAdmin(c echo.Context) (*db.User, error) {
	u, err := user(c)
	if err != nil {
		return nil, err
	}
	if u.Role != db.RoleAdmin {
		return nil, forbidden("Only admins can see and change the project's settings and plan; your role is " + u.Role + ".")
	}
	return u, nil
}

// Show is GET /settings.
func (h *Settings) Show(c echo.Context) error {
	if _, err := requirePlanAdmin(c); err != nil {
		return err
	}
	p, err := h.store.FindPlan(c.Request().Context())
	if err != nil {
		return err
	}
	return h.renderSettings(c, http.StatusOK, *p, *p, nil)
}

func (h *Settings) renderSettings(c echo.Context, status int, current, form db.Plan, errs views.Errors) error {
	d := views.SettingsData{Plan: current, Form: form, Errors: errs, Schedules: scheduleRows(current.Tier, current.Schedule),
		Next: jobs.NextRun(current.Schedule, current.Location(), h.now()).In(current.Location())}
	return render(c, status, views.SettingsPage(page(c, "Project settings", "settings"), d))
}

// Update is POST /settings: the project name and timezone.
func (h *Settings) Update(c echo.Context) error {
	if _, err := requirePlanAdmin(c); err != nil {
		return err
	}
	ctx := c.Request().Context()
	cur, err := h.store.FindPlan(ctx)
	if err != nil {
		return err
	}
	next := *cur
	next.Name, next.Timezone = strings.TrimSpace(c.FormValue("name")), strings.TrimSpace(c.FormValue("timezone"))
	// Another timezone moves the days, weeks and months retention counts in: if that expires backups, the form
	// says which and asks to confirm.
	pv, err := h.change(ctx, actor(c), next, c.FormValue("confirm_expire") != "")
	var ve *db.ValidationError
	var ne *needsConfirmation
	switch {
	case errors.As(err, &ve):
		return h.renderSettings(c, http.StatusUnprocessableEntity, *cur, next, views.FromValidation(ve))
	case errors.As(err, &ne):
		return h.renderSettings(c, http.StatusConflict, *cur, next, views.Errors{"confirm_expire": ne.Error()})
	case err != nil:
		return err
	}
	msg := "Project settings saved."
	if n := len(pv.Expiring); n > 0 {
		msg += fmt.Sprintf(" %s expired.", plural(n, "backup"))
	}
	_ = h.session.Flash(c, "success", msg)
	return redirect(c, "/settings")
}

// EditPlan is GET /settings/plan[?tier=&schedule=]: choose the tier and schedule; once a schedule is chosen, the
// summary of what changes and the confirmation.
func (h *Settings) EditPlan(c echo.Context) error {
	if _, err := requirePlanAdmin(c); err != nil {
		return err
	}
	ctx := c.Request().Context()
	cur, err := h.store.FindPlan(ctx)
	if err != nil {
		return err
	}
	next := *cur
	if t := c.QueryParam("tier"); t != "" {
		next.Tier = t
	}
	chosen := c.QueryParam("schedule")
	if chosen != "" {
		next.Schedule = chosen
	}
	d := views.PlanEditData{Plan: *cur, Tier: next.Tier, Schedule: next.Schedule,
		Schedules: scheduleRows(next.Tier, next.Schedule)}
	if chosen != "" || next.Tier != cur.Tier {
		pv, err := h.preview(ctx, *cur, next)
		if err != nil {
			return err
		}
		d.Review = review(pv)
	}
	return render(c, http.StatusOK, views.PlanEditPage(page(c, "Edit plan", "settings"), d))
}

// ChangePlan is POST /settings/plan: tier, schedule and, when the new retention expires backups, confirm_expire.
func (h *Settings) ChangePlan(c echo.Context) error {
	if _, err := requirePlanAdmin(c); err != nil {
		return err
	}
	ctx := c.Request().Context()
	cur, err := h.store.FindPlan(ctx)
	if err != nil {
		return err
	}
	next := *cur
	next.Tier, next.Schedule = c.FormValue("tier"), c.FormValue("schedule")
	pv, err := h.change(ctx, actor(c), next, c.FormValue("confirm_expire") != "")
	var ve *db.ValidationError
	var ne *needsConfirmation
	switch {
	case errors.As(err, &ve), errors.As(err, &ne):
		status := http.StatusUnprocessableEntity
		if ne != nil {
			status, pv = http.StatusConflict, ne.preview
		} else if pv, err = h.preview(ctx, *cur, next); err != nil {
			return err
		}
		d := views.PlanEditData{Plan: *cur, Tier: next.Tier, Schedule: next.Schedule,
			Schedules: scheduleRows(next.Tier, next.Schedule), Review: review(pv), Errors: views.FromValidation(ve)}
		return render(c, status, views.PlanEditPage(page(c, "Edit plan", "settings"), d))
	case err != nil:
		return err
	}
	msg := fmt.Sprintf("Plan changed: %s tier, %s schedule.", next.Tier, next.Schedule)
	if n := len(pv.Expiring); n > 0 {
		msg += fmt.Sprintf(" %s expired.", plural(n, "backup"))
	}
	_ = h.session.Flash(c, "success", msg)
	return redirect(c, "/settings")
}

// needsConfirmation refuses a plan change whose retention expires backups until it is confirmed.
type needsConfirmation struct{ preview *jobs.PlanPreview }

func (e *needsConfirmation) Error() string {
	ids := make([]string, 0, len(e.preview.Expiring))
	for _, x := range e.preview.Expiring {
		ids = append(ids, fmt.Sprintf("%s (%s, %s, %s)", x.Backup.ID, x.Backup.Environment, x.Backup.Kind,
			x.Backup.CreatedAt.UTC().Format("2006-01-02 15:04 UTC")))
	}
	return fmt.Sprintf("The %s schedule's retention expires %s at once: %s. Confirm to expire them.",
		e.preview.To.Schedule, plural(len(ids), "existing backup"), strings.Join(ids, ", "))
}

func (h *Settings) preview(ctx context.Context, cur, next db.Plan) (*jobs.PlanPreview, error) {
	envs, err := h.store.FindEnvironments(ctx, db.EnvironmentFilter{})
	if err != nil {
		return nil, err
	}
	if h.ops == nil {
		return jobs.NewPlanPreview(cur, next, envs), nil
	}
	return h.ops.PreviewPlan(ctx, cur, next, envs)
}

// change validates and saves the plan, writes the activity and applies the new retention. A change whose
// retention expires backups needs confirm; otherwise it fails with *needsConfirmation and nothing changes.
func (h *Settings) change(ctx context.Context, who string, next db.Plan, confirm bool) (*jobs.PlanPreview, error) {
	cur, err := h.store.FindPlan(ctx)
	if err != nil {
		return nil, err
	}
	next.Name = strings.TrimSpace(next.Name)
	if err := next.Validate(); err != nil {
		return nil, err
	}
	if next == *cur {
		return jobs.NewPlanPreview(*cur, next, nil), nil
	}
	pv, err := h.preview(ctx, *cur, next)
	if err != nil {
		return nil, err
	}
	if len(pv.Expiring) > 0 && !confirm {
		return pv, &needsConfirmation{preview: pv}
	}
	if err := h.store.UpdatePlan(ctx, next); err != nil {
		return nil, err
	}
	var changes []string
	add := func(what, from, to string) {
		if from != to {
			changes = append(changes, fmt.Sprintf("%s from %s to %s", what, from, to))
		}
	}
	add("the project name", cur.Name, next.Name)
	add("the timezone", cur.Timezone, next.Timezone)
	add("the tier", cur.Tier, next.Tier)
	add("the backup schedule", cur.Schedule, next.Schedule)
	summary := "Changed " + strings.Join(changes, ", ")
	if len(pv.Expiring) > 0 {
		summary += fmt.Sprintf("; expiring %s", plural(len(pv.Expiring), "backup"))
	}
	if err := h.store.CreateActivity(ctx, &db.Activity{Type: jobs.TypePlanChange, Actor: who, Summary: summary}); err != nil {
		return nil, err
	}
	if h.ops != nil {
		if _, err := h.ops.ApplyRetentionAll(ctx, next, who); err != nil {
			return nil, fmt.Errorf("the plan was saved, but applying its retention failed: %w", err)
		}
	}
	if h.sched != nil {
		h.sched.Wake()
	}
	return pv, nil
}

// scheduleRows are the platform docs' schedule table, marking the current schedule and what tier allows.
func scheduleRows(tier, current string) []views.ScheduleRow {
	rows := make([]views.ScheduleRow, 0, 3)
	for _, s := range db.Schedules() {
		p := jobs.PolicyFor(s)
		rows = append(rows, views.ScheduleRow{Name: s, Manual: jobs.ManualQuota(s, db.EnvProduction),
			Automated: p.Total(), Words: p.Words(), Current: s == current, Problem: db.ScheduleProblem(tier, s)})
	}
	return rows
}

func review(pv *jobs.PlanPreview) *views.PlanReview {
	r := &views.PlanReview{Problem: pv.Problem, From: pv.From, To: pv.To, AutomatedFrom: pv.AutomatedFrom,
		AutomatedTo: pv.AutomatedTo, ManualFrom: pv.ManualFrom, ManualTo: pv.ManualTo, Environments: pv.Environments,
		ExtraBackups: pv.ExtraBackups, BytesPerBackup: pv.BytesPerBackup, ExtraBytes: pv.ExtraBytes,
		FromSizes: pv.FromSizes}
	for _, x := range pv.Expiring {
		r.Expiring = append(r.Expiring, views.ExpiringRow{ID: x.Backup.ID, Environment: x.Backup.Environment,
			Kind: x.Backup.Kind, Created: x.Backup.CreatedAt.In(pv.To.Location()), Reason: x.Reason})
	}
	return r
}

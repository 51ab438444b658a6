package handlers

import (
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/jobs"
)

// PlanAPI is /api/v1/plan, for admins' tokens only.
type PlanAPI struct {
	s *Settings
}

func NewPlanAPI(s *Settings) *PlanAPI { return &PlanAPI{s: s} }

type planJSONBody struct {
	Plan     db.Plan          `json:"plan"`
	Policy   planPolicyJSON   `json:"policy"`
	NextRun  time.Time        `json:"next_run"`
	Expired  []string         `json:"expired,omitempty"`
	Schedule []planPolicyJSON `json:"schedules"`
}

type planPolicyJSON struct {
	Schedule  string `json:"schedule"`
	Manual    int    `json:"manual"`
	Automated int    `json:"automated"`
	Words     string `json:"words"`
	Allowed   bool   `json:"allowed"`
	Reason    string `json:"reason,omitempty"`
}

func (h *PlanAPI) body(p db.Plan) planJSONBody {
	b := planJSONBody{Plan: p, NextRun: jobs.NextRun(p.Schedule, p.Location(), h.s.now())}
	for _, r := range scheduleRows(p.Tier, p.Schedule) {
		pj := planPolicyJSON{Schedule: r.Name, Manual: r.Manual, Automated: r.Automated, Words: r.Words,
			Allowed: r.Problem == "", Reason: r.Problem}
		if r.Current {
			b.Policy = pj
		}
		b.Schedule = append(b.Schedule, pj)
	}
	return b
}

// Get is GET /api/v1/plan → {"plan":{name,timezone,tier,schedule},"policy":{...},"next_run":...,"schedules":[...]}.
func (h *PlanAPI) Get(c echo.Context) error {
	if _, err := requirePlanAdmin(c); err != nil {
		return err
	}
	p, err := h.s.store.FindPlan(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, h.body(*p))
}

// Put is PUT /api/v1/plan {"tier","schedule","timezone","name","confirm_expire"}: omitted fields keep their
// value. A schedule beyond the tier is refused (422, naming the tier that allows it); a change whose retention
// expires existing backups needs "confirm_expire": true, else 409 listing them (error.expiring).
func (h *PlanAPI) Put(c echo.Context) error {
	if _, err := requirePlanAdmin(c); err != nil {
		return err
	}
	var in struct {
		Name          *string `json:"name"`
		Timezone      *string `json:"timezone"`
		Tier          *string `json:"tier"`
		Schedule      *string `json:"schedule"`
		ConfirmExpire bool    `json:"confirm_expire"`
	}
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	ctx := c.Request().Context()
	cur, err := h.s.store.FindPlan(ctx)
	if err != nil {
		return err
	}
	next := *cur
	for _, f := range []struct {
		dst *string
		src *string
	}{{&next.Name, in.Name}, {&next.Timezone, in.Timezone}, {&next.Tier, in.Tier}, {&next.Schedule, in.Schedule}} {
		if f.src != nil {
			*f.dst = *f.src
		}
	}
	pv, err := h.s.change(ctx, actor(c), next, in.ConfirmExpire)
	var ne *needsConfirmation
	if errors.As(err, &ne) {
		type expiring struct {
			ID          string    `json:"id"`
			Environment string    `json:"environment"`
			Kind        string    `json:"kind"`
			CreatedAt   time.Time `json:"created_at"`
			Reason      string    `json:"reason"`
		}
		list := []expiring{}
		for _, x := range ne.preview.Expiring {
			list = append(list, expiring{x.Backup.ID, x.Backup.Environment, x.Backup.Kind, x.Backup.CreatedAt, x.Reason})
		}
		return c.JSON(http.StatusConflict, map[string]any{"error": map[string]any{
			"code": "confirm_expire", "message": ne.Error() + ` Send "confirm_expire": true.`, "expiring": list}})
	}
	if err != nil {
		return err
	}
	saved, err := h.s.store.FindPlan(ctx)
	if err != nil {
		return err
	}
	b := h.body(*saved)
	for _, x := range pv.Expiring {
		b.Expired = append(b.Expired, x.Backup.ID)
	}
	return c.JSON(http.StatusOK, b)
}

package handlers

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/jobs"
	"github.com/rewind/rewind/views"
)

// DrillOperations start restore drills and report on them: jobs.Operations. A drill that cannot start (no
// complete backup) wraps jobs.ErrRefused.
type DrillOperations interface {
	StartDrill(ctx context.Context, req jobs.DrillRequest) (*db.Activity, error)
	DrillStatus(ctx context.Context, env string) (*jobs.DrillStatus, error)
}

type drillStore interface {
	FindEnvironmentByName(ctx context.Context, name string) (*db.Environment, error)
	FindDrills(ctx context.Context, f db.DrillFilter) ([]*db.Drill, error)
}

// Drills are the restore drills of an environment: the "Run drill now" button and card of the Backups tab,
// and POST/GET /api/v1/environments/{env}/drills. Running a drill needs the admin role for the environment's
// type, like a backup; any signed-in user (or token) reads the results.
type Drills struct {
	store   drillStore
	ops     DrillOperations
	session Session
}

// NewDrills returns the drill handlers; ops may be nil on a server without a job runner, which then answers 503
// to a drill and shows no drill card.
func NewDrills(store drillStore, ops DrillOperations, session Session) *Drills {
	return &Drills{store: store, ops: ops, session: session}
}

// drillAdmin says whether u may run restore drills of environments of type t.
func drillAdmin(u *db.User, t string) views.Permission {
	if r := u.RoleFor(t); r != db.RoleAdmin {
		return views.Deny(fmt.Sprintf("Only admins can run restore drills of %s environments; your role for them is %s.", t, r))
	}
	return views.Allow
}

// Card fills the Backups tab's drill card of environment e for u.
func (h *Drills) Card(ctx context.Context, u *db.User, e *db.Environment) (views.DrillData, error) {
	if h == nil || h.ops == nil {
		return views.DrillData{}, nil
	}
	st, err := h.ops.DrillStatus(ctx, e.Name)
	if err != nil {
		return views.DrillData{}, err
	}
	return views.DrillData{Shown: true, Last: st.Last, Active: st.Active, Verified: st.Verified, RTO: st.RTO, Basis: st.Basis,
		Schedule: e.Drill.Schedule, Run: drillAdmin(u, e.Type)}, nil
}

// start checks the role and starts a drill of the environment named in the path.
func (h *Drills) start(c echo.Context) (*db.Environment, *db.Activity, error) {
	u, err := user(c)
	if err != nil {
		return nil, nil, err
	}
	ctx := c.Request().Context()
	e, err := h.store.FindEnvironmentByName(ctx, c.Param("env"))
	if err != nil {
		return nil, nil, err
	}
	if perm := drillAdmin(u, e.Type); !perm.Allowed {
		return nil, nil, forbidden(perm.Reason)
	}
	if h.ops == nil {
		return nil, nil, errNoJobs
	}
	a, err := h.ops.StartDrill(ctx, jobs.DrillRequest{Environment: e.Name, Actor: actor(c)})
	return e, a, err
}

// Create is POST /environments/:env/drills (the "Run drill now" button).
func (h *Drills) Create(c echo.Context) error {
	e, a, err := h.start(c)
	if err != nil {
		return err
	}
	_ = h.session.Flash(c, "success", fmt.Sprintf("Restore drill of backup %s started (activity %d): the result "+
		"shows below when it ends.", a.BackupID, a.ID))
	return redirect(c, "/environments/"+url.PathEscape(e.Name))
}

// APICreate is POST /api/v1/environments/:env/drills → 202 {"activity":{...}}.
func (h *Drills) APICreate(c echo.Context) error {
	_, a, err := h.start(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, map[string]any{"activity": a})
}

// APIList is GET /api/v1/environments/:env/drills[?limit=] → {"drills":[...], "last_verified":{...}|null,
// "predicted_rto_ms":N, "rto_basis":"..."}, newest first.
func (h *Drills) APIList(c echo.Context) error {
	ctx := c.Request().Context()
	e, err := h.store.FindEnvironmentByName(ctx, c.Param("env"))
	if err != nil {
		return err
	}
	limit, _ := strconv.Atoi(c.QueryParam("limit"))
	drills, err := h.store.FindDrills(ctx, db.DrillFilter{Environment: &e.Name, Limit: min(max(limit, 0), 1000)})
	if err != nil {
		return err
	}
	if drills == nil {
		drills = []*db.Drill{}
	}
	out := DrillsJSON{Drills: drills}
	if h.ops != nil {
		st, err := h.ops.DrillStatus(ctx, e.Name)
		if err != nil {
			return err
		}
		out.LastVerified = st.Verified
		out.PredictedRTOMS, out.RTOBasis = st.RTO.Milliseconds(), st.Basis
	}
	return c.JSON(http.StatusOK, out)
}

// DrillsJSON is GET /api/v1/environments/{env}/drills.
type DrillsJSON struct {
	Drills         []*db.Drill `json:"drills"`
	LastVerified   *db.Drill   `json:"last_verified"` // the newest passed drill; null: never verified
	PredictedRTOMS int64       `json:"predicted_rto_ms"`
	RTOBasis       string      `json:"rto_basis"`
}

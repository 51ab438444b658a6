package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/rewind/rewind/db"
)

type environmentAPIStore interface {
	FindEnvironments(ctx context.Context, f db.EnvironmentFilter) ([]*db.Environment, error)
	FindEnvironmentByName(ctx context.Context, name string) (*db.Environment, error)
	PutEnvironmentChange(ctx context.Context, e *db.Environment) (db.Change, error)
	CreateActivity(ctx context.Context, a *db.Activity) error
}

// EnvironmentsAPI is /api/v1/environments. URLs are always sent masked.
type EnvironmentsAPI struct {
	store environmentAPIStore
	// Changed is called after an environment is created or changed (the
	// server syncs the request gates); nil does nothing.
	Changed func(ctx context.Context)
	// Recovery adds each environment's RPO and predicted RTO to List and Get (nil: left out).
	Recovery *Recovery
	now      func() time.Time
}

// environmentJSON is an environment (masked) with its recovery figures.
type environmentJSON struct {
	*db.Environment
	*RecoveryJSON
}

func (h *EnvironmentsAPI) withRecovery(ctx context.Context, e *db.Environment) (environmentJSON, error) {
	out := environmentJSON{Environment: e.Masked()}
	if h.Recovery == nil {
		return out, nil
	}
	d, err := h.Recovery.Data(ctx, e, h.now())
	if err != nil {
		return out, err
	}
	r := recoveryJSON(d)
	out.RecoveryJSON = &r
	return out, nil
}

func NewEnvironmentsAPI(store environmentAPIStore, now func() time.Time) *EnvironmentsAPI {
	return &EnvironmentsAPI{store: store, now: now}
}

// List is GET /api/v1/environments → {"environments":[...]}, each with its recovery figures (RecoveryJSON).
func (h *EnvironmentsAPI) List(c echo.Context) error {
	envs, err := h.store.FindEnvironments(c.Request().Context(), db.EnvironmentFilter{})
	if err != nil {
		return err
	}
	out := make([]environmentJSON, 0, len(envs))
	for _, e := range envs {
		j, err := h.withRecovery(c.Request().Context(), e)
		if err != nil {
			return err
		}
		out = append(out, j)
	}
	return c.JSON(http.StatusOK, map[string]any{"environments": out})
}

// Get is GET /api/v1/environments/:env → {"environment":{...}} with its recovery figures: "rpo_seconds" (the
// age of the newest restorable point, null when there is none), "rpo_basis" ("backup" or "pitr"),
// "restorable_at", "rpo_backup_id", "rpo_promised_seconds" (0: no automated backups), "rto_predicted_seconds"
// (null: no restore measured yet) and "rto_basis".
func (h *EnvironmentsAPI) Get(c echo.Context) error {
	e, err := h.store.FindEnvironmentByName(c.Request().Context(), c.Param("env"))
	if err != nil {
		return err
	}
	j, err := h.withRecovery(c.Request().Context(), e)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"environment": j})
}

// Put is PUT /api/v1/environments/:env: create (201) or update (200) from
// the JSON body; 422 with fields on invalid input, nothing saved.
func (h *EnvironmentsAPI) Put(c echo.Context) error {
	u, err := user(c)
	if err != nil {
		return err
	}
	name := c.Param("env")
	var e db.Environment
	dec := json.NewDecoder(http.MaxBytesReader(c.Response(), c.Request().Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return badRequest("The body is not a valid environment: " + err.Error())
	}
	if e.Name != "" && e.Name != name {
		return &db.ValidationError{Errors: []db.FieldError{{Field: "name",
			Message: fmt.Sprintf("name %q in the body differs from %q in the URL", e.Name, name)}}}
	}
	e.Name = name
	if err := reservedName(name); err != nil {
		return err
	}
	ctx := c.Request().Context()
	types := []string{e.Type}
	old, err := h.store.FindEnvironmentByName(ctx, name)
	switch {
	case err == nil:
		types = append(types, old.Type)
	case !errors.Is(err, db.ErrNotFound):
		return err
	}
	if err := requireEnvAdmin(u, types...); err != nil {
		return err
	}
	change, err := h.store.PutEnvironmentChange(ctx, &e)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if change != db.Unchanged && h.Changed != nil {
		h.Changed(ctx)
	}
	if change != db.Unchanged {
		typ, summary := "environment.update", fmt.Sprintf("Updated environment %s through the API", e.Name)
		if change == db.Created {
			status, typ = http.StatusCreated, "environment.create"
			summary = fmt.Sprintf("Created %s environment %s with %s through the API", e.Type, e.Name, plural(len(e.Services), "service"))
		}
		if err := h.store.CreateActivity(ctx, &db.Activity{Type: typ, Environment: e.Name, Actor: actor(c), Summary: summary}); err != nil {
			return err
		}
	}
	saved, err := h.store.FindEnvironmentByName(ctx, name)
	if err != nil {
		return err
	}
	return c.JSON(status, map[string]any{"environment": saved.Masked(), "change": change})
}

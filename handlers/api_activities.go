package handlers

import (
	"context"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/rewind/rewind/db"
)

type activityAPIStore interface {
	FindActivities(ctx context.Context, f db.ActivityFilter) ([]*db.Activity, int, error)
	FindActivityByID(ctx context.Context, id int64) (*db.Activity, error)
}

// ActivitiesAPI is /api/v1/activities.
type ActivitiesAPI struct {
	store activityAPIStore
}

func NewActivitiesAPI(store activityAPIStore) *ActivitiesAPI {
	return &ActivitiesAPI{store: store}
}

// List is GET /api/v1/activities[?environment=&type=&state=&offset=&limit=]
// → {"activities":[...],"total":N}, newest first.
func (h *ActivitiesAPI) List(c echo.Context) error {
	f, _ := feedQuery(c, c.QueryParam("environment"), "")
	if c.QueryParam("limit") == "" {
		f.Limit = db.DefaultActivityLimit
	}
	acts, total, err := h.store.FindActivities(c.Request().Context(), f)
	if err != nil {
		return err
	}
	if acts == nil {
		acts = []*db.Activity{}
	}
	return c.JSON(http.StatusOK, map[string]any{"activities": acts, "total": total})
}

// Get is GET /api/v1/activities/:id → {"activity":{...}}.
func (h *ActivitiesAPI) Get(c echo.Context) error {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil {
		return db.ErrNotFound
	}
	a, err := h.store.FindActivityByID(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"activity": a})
}

package handlers

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/jobs"
)

// cancel stops a queued or running activity for an admin of its environment.
func (h *Backups) cancel(c echo.Context) (*db.Activity, error) {
	u, err := user(c)
	if err != nil {
		return nil, err
	}
	ctx := c.Request().Context()
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil {
		return nil, db.ErrNotFound
	}
	a, err := h.store.FindActivityByID(ctx, id)
	if err != nil {
		return nil, err
	}
	t, err := envType(ctx, h.store, a.Environment)
	if err != nil {
		return nil, err
	}
	if perm := backupAdmin(u, t); !perm.Allowed {
		return nil, forbidden(perm.Reason)
	}
	if h.runner == nil {
		return nil, errNoJobs
	}
	if err := h.runner.Cancel(ctx, id); err != nil {
		if errors.Is(err, jobs.ErrNotRunning) {
			return nil, fmt.Errorf("activity %d is %s: only queued or running work can be cancelled: %w", id, a.State, jobs.ErrRefused)
		}
		return nil, err
	}
	return h.store.FindActivityByID(ctx, id)
}

// Cancel is POST /activities/:id/cancel (the feed's Cancel button).
func (h *Backups) Cancel(c echo.Context) error {
	a, err := h.cancel(c)
	if err != nil {
		return err
	}
	if isHTMX(c) {
		c.Response().Header().Set("HX-Refresh", "true")
		return c.NoContent(http.StatusNoContent)
	}
	_ = h.session.Flash(c, "info", fmt.Sprintf("Activity %d is being cancelled.", a.ID))
	back := "/activities"
	if a.Environment != "" {
		back = "/environments/" + url.PathEscape(a.Environment) + "/activity"
	}
	return redirect(c, back)
}

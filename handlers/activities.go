package handlers

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/views"
)

type activityFinder interface {
	FindActivities(ctx context.Context, f db.ActivityFilter) ([]*db.Activity, int, error)
	FindEnvironments(ctx context.Context, f db.EnvironmentFilter) ([]*db.Environment, error)
}

// Activities is the global activity feed. The live refresh of running
// entries asks the same URL for the "feed" fragment.
type Activities struct {
	store activityFinder
	now   func() time.Time
}

func NewActivities(store activityFinder, now func() time.Time) *Activities {
	return &Activities{store: store, now: now}
}

const feedPageSize = 20

// Page is GET /activities[?type=&state=&offset=].
func (h *Activities) Page(c echo.Context) error {
	u, err := user(c)
	if err != nil {
		return err
	}
	f, feed := feedQuery(c, "", "/activities")
	acts, total, err := h.store.FindActivities(c.Request().Context(), f)
	if err != nil {
		return err
	}
	feed.Activities, feed.Total, feed.Now, feed.ShowEnvironment = acts, total, h.now(), true
	if feed.Actions, err = feedActions(c.Request().Context(), h.store, u, acts); err != nil {
		return err
	}
	return render(c, http.StatusOK, views.ActivitiesPage(page(c, "Activity", "activities"), feed))
}

// feedQuery parses the feed's filters and paging from the query string.
func feedQuery(c echo.Context, env, baseURL string) (db.ActivityFilter, views.FeedData) {
	feed := views.FeedData{BaseURL: baseURL, Type: c.QueryParam("type"), State: c.QueryParam("state"), Limit: feedPageSize}
	feed.Offset, _ = strconv.Atoi(c.QueryParam("offset"))
	feed.Offset = max(feed.Offset, 0)
	if l, err := strconv.Atoi(c.QueryParam("limit")); err == nil && l > 0 {
		feed.Limit = min(l, 200)
	}
	f := db.ActivityFilter{Offset: feed.Offset, Limit: feed.Limit}
	if env != "" {
		f.Environment = &env
	}
	if feed.Type != "" {
		f.Type = &feed.Type
	}
	if feed.State != "" {
		f.State = &feed.State
	}
	return f, feed
}

package handlers

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/views"
)

type environmentStore interface {
	FindEnvironments(ctx context.Context, f db.EnvironmentFilter) ([]*db.Environment, error)
	FindEnvironmentByName(ctx context.Context, name string) (*db.Environment, error)
	// FindEnvironmentByNameRecent and FindEnvironmentChildrenRecent may be a second old when another process
	// changed the environments.
	FindEnvironmentByNameRecent(ctx context.Context, name string) (*db.Environment, error)
	FindEnvironmentChildrenRecent(ctx context.Context, name string) ([]string, error)
	CreateEnvironment(ctx context.Context, e *db.Environment) error
	PutEnvironmentChange(ctx context.Context, e *db.Environment) (db.Change, error)
	SetEnvironmentStatus(ctx context.Context, name, status string) (*db.Environment, error)
	FindActivities(ctx context.Context, f db.ActivityFilter) ([]*db.Activity, int, error)
	CreateActivity(ctx context.Context, a *db.Activity) error
	FindBackups(ctx context.Context, f db.BackupFilter) ([]*db.Backup, int, error)
	// FindBackupsRecent may be a second old when another process changed the backups.
	FindBackupsRecent(ctx context.Context, f db.BackupFilter) ([]*db.Backup, int, error)
}

// Environments are the environment list, the environment page with its tabs
// and the create/edit/deactivate forms.
type Environments struct {
	store   environmentStore
	session Session
	now     func() time.Time
	// Changed is called after an environment is created or changed (the
	// server syncs the request gates); nil does nothing.
	Changed func(ctx context.Context)
	// Drills fills the Backups tab's restore drill card; nil leaves it out.
	Drills *Drills
	// PITR shows the point-in-time card (nil: not shown).
	PITR *PITR
	// Recovery fills the RPO/RTO card and the list's RPO column (nil: not shown).
	Recovery *Recovery

	retention retentionMemo
}

func (h *Environments) changed(ctx context.Context) {
	if h.Changed != nil {
		h.Changed(ctx)
	}
}

func NewEnvironments(store environmentStore, session Session, now func() time.Time) *Environments {
	return &Environments{store: store, session: session, now: now}
}

// List is GET /environments.
func (h *Environments) List(c echo.Context) error {
	u, err := user(c)
	if err != nil {
		return err
	}
	envs, err := h.store.FindEnvironments(c.Request().Context(), db.EnvironmentFilter{})
	if err != nil {
		return err
	}
	d := views.EnvironmentsData{Rows: views.EnvTree(envs), Create: anyEnvAdmin(u), Now: h.now()}
	if d.LastBackup, d.Backups, err = lastBackups(c.Request().Context(), h.store, envs); err != nil {
		return err
	}
	if h.Recovery != nil {
		d.Recovery = map[string]views.RecoveryData{}
		for _, e := range envs {
			if d.Recovery[e.Name], err = h.Recovery.Data(c.Request().Context(), e, d.Now); err != nil {
				return err
			}
		}
	}
	return render(c, http.StatusOK, views.EnvironmentsPage(page(c, "Environments", "environments"), d))
}

// New is GET /environments/new.
func (h *Environments) New(c echo.Context) error {
	u, err := user(c)
	if err != nil {
		return err
	}
	if err := requireEnvAdmin(u); err != nil {
		return err
	}
	e := db.Environment{Type: firstAdminType(u), Services: []db.Service{{Type: db.ServicePostgreSQL}}}
	f, err := h.form(c, e, nil, true)
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.NewEnvironmentPage(page(c, "New environment", "environments"), f))
}

// Create is POST /environments.
func (h *Environments) Create(c echo.Context) error {
	u, err := user(c)
	if err != nil {
		return err
	}
	e, err := parseEnvironmentForm(c)
	if err != nil {
		return err
	}
	if err := requireEnvAdmin(u, e.Type); err != nil {
		return err
	}
	ctx := c.Request().Context()
	err = reservedName(e.Name)
	if err == nil {
		err = h.store.CreateEnvironment(ctx, e)
	}
	if errs := formErrors(err, e.Name); errs != nil {
		f, ferr := h.form(c, *e, errs, true)
		if ferr != nil {
			return ferr
		}
		return render(c, http.StatusUnprocessableEntity, views.NewEnvironmentPage(page(c, "New environment", "environments"), f))
	}
	if err != nil {
		return err
	}
	h.changed(ctx)
	if err := h.store.CreateActivity(ctx, &db.Activity{Type: "environment.create", Environment: e.Name, Actor: actor(c),
		Summary: fmt.Sprintf("Created %s environment %s with %s", e.Type, e.Name, plural(len(e.Services), "service"))}); err != nil {
		return err
	}
	_ = h.session.Flash(c, "success", fmt.Sprintf("Environment %s created.", e.Name))
	return redirect(c, "/environments/"+url.PathEscape(e.Name))
}

// Show is GET /environments/:env and its tabs /activity and /settings.
func (h *Environments) Show(tab string) echo.HandlerFunc {
	return func(c echo.Context) error {
		u, err := user(c)
		if err != nil {
			return err
		}
		ctx := c.Request().Context()
		e, err := h.store.FindEnvironmentByNameRecent(ctx, c.Param("env")) // a page: a second old is fine
		if err != nil {
			return err
		}
		d := views.EnvironmentData{Env: e.Masked(), Tab: tab, Deactivate: envAdmin(u, e.Type)}
		switch tab {
		case "activity":
			f, feed := feedQuery(c, e.Name, "/environments/"+url.PathEscape(e.Name)+"/activity")
			if feed.Activities, feed.Total, err = h.store.FindActivities(ctx, f); err != nil {
				return err
			}
			feed.Now = h.now()
			if feed.Actions, err = feedActions(ctx, h.store, u, feed.Activities); err != nil {
				return err
			}
			d.Feed = feed
		case "backups":
			if d.Backups, err = backupsTab(c, h.store, &h.retention, u, e, h.now()); err != nil {
				return err
			}
			if hxTarget(c) != "backups" { // the list's own refresh shows no drill or RPO card
				if d.Backups.Drill, err = h.Drills.Card(ctx, u, e); err != nil {
					return err
				}
				if d.Backups.Recovery, err = h.Recovery.Data(ctx, e, d.Backups.Now); err != nil {
					return err
				}
			}
		case "settings":
			if d.Form, err = h.form(c, *d.Env, nil, false); err != nil {
				return err
			}
		}
		if d.Children, err = h.children(ctx, e.Name); err != nil {
			return err
		}
		if h.PITR != nil && tab != "activity" {
			if d.PITR, err = h.PITR.status(c, u, e); err != nil {
				return err
			}
		}
		return render(c, http.StatusOK, views.EnvironmentPage(page(c, e.Name, "environments"), d))
	}
}

// Update is POST /environments/:env (the Settings form).
func (h *Environments) Update(c echo.Context) error {
	u, err := user(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	old, err := h.store.FindEnvironmentByName(ctx, c.Param("env"))
	if err != nil {
		return err
	}
	e, err := parseEnvironmentForm(c)
	if err != nil {
		return err
	}
	e.Name, e.Status = old.Name, old.Status
	if err := requireEnvAdmin(u, old.Type, e.Type); err != nil {
		return err
	}
	change, err := h.store.PutEnvironmentChange(ctx, e)
	if errs := formErrors(err, e.Name); errs != nil {
		d := views.EnvironmentData{Env: old.Masked(), Tab: "settings", Deactivate: envAdmin(u, old.Type)}
		if d.Form, err = h.form(c, *e, errs, false); err != nil {
			return err
		}
		return render(c, http.StatusUnprocessableEntity, views.EnvironmentPage(page(c, old.Name, "environments"), d))
	}
	if err != nil {
		return err
	}
	if change == db.Unchanged {
		_ = h.session.Flash(c, "info", "Nothing to save: the settings were already like this.")
		return redirect(c, "/environments/"+url.PathEscape(e.Name)+"/settings")
	}
	h.changed(ctx)
	if err := h.store.CreateActivity(ctx, &db.Activity{Type: "environment.update", Environment: e.Name, Actor: actor(c),
		Summary: fmt.Sprintf("Updated environment %s (%s)", e.Name, plural(len(e.Services), "service"))}); err != nil {
		return err
	}
	_ = h.session.Flash(c, "success", "Settings saved.")
	return redirect(c, "/environments/"+url.PathEscape(e.Name)+"/settings")
}

// SetStatus is POST /environments/:env/deactivate and /activate.
func (h *Environments) SetStatus(status string) echo.HandlerFunc {
	return func(c echo.Context) error {
		u, err := user(c)
		if err != nil {
			return err
		}
		ctx := c.Request().Context()
		old, err := h.store.FindEnvironmentByName(ctx, c.Param("env"))
		if err != nil {
			return err
		}
		if err := requireEnvAdmin(u, old.Type); err != nil {
			return err
		}
		e, err := h.store.SetEnvironmentStatus(ctx, old.Name, status)
		if err != nil {
			return err
		}
		verb := map[string]string{db.StatusActive: "activate", db.StatusInactive: "deactivate"}[status]
		if old.Status != e.Status {
			h.changed(ctx)
			if err := h.store.CreateActivity(ctx, &db.Activity{Type: "environment." + verb, Environment: e.Name, Actor: actor(c),
				Summary: fmt.Sprintf("%sd environment %s", strings.ToUpper(verb[:1])+verb[1:], e.Name)}); err != nil {
				return err
			}
		}
		_ = h.session.Flash(c, "success", fmt.Sprintf("Environment %s is %s.", e.Name, e.Status))
		return redirect(c, "/environments/"+url.PathEscape(e.Name))
	}
}

// ServiceRow is GET /environments/service-row: a blank row for the editor.
func (h *Environments) ServiceRow(c echo.Context) error {
	if _, err := user(c); err != nil {
		return err
	}
	return render(c, http.StatusOK, views.ServiceRow(0, db.Service{Type: db.ServicePostgreSQL}, nil))
}

func firstAdminType(u *db.User) string {
	for _, t := range db.EnvironmentTypes() {
		if u.RoleFor(t) == db.RoleAdmin {
			return t
		}
	}
	return db.EnvDevelopment
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func (h *Environments) children(ctx context.Context, name string) ([]string, error) {
	return h.store.FindEnvironmentChildrenRecent(ctx, name) // beside the environment, read as recently
}

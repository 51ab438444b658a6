package handlers

import (
	"context"
	"errors"
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
			if hxTarget(c) != "backups" { // the list's own refresh shows no drill card
				if d.Backups.Drill, err = h.Drills.Card(ctx, u, e); err != nil {
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

// form fills the create/edit form: values, errors, parents and permission.
func (h *Environments) form(c echo.Context, e db.Environment, errs views.Errors, isNew bool) (views.EnvForm, error) {
	u, err := user(c)
	if err != nil {
		return views.EnvForm{}, err
	}
	envs, err := h.store.FindEnvironments(c.Request().Context(), db.EnvironmentFilter{})
	if err != nil {
		return views.EnvForm{}, err
	}
	f := views.EnvForm{Env: e, Errors: errs, New: isNew, Action: "/environments"}
	if isNew {
		f.Perm = anyEnvAdmin(u)
	} else {
		f.Action = "/environments/" + url.PathEscape(e.Name)
		f.Perm = envAdmin(u, e.Type)
	}
	for _, o := range envs {
		if o.Name != e.Name {
			f.Parents = append(f.Parents, o.Name)
		}
	}
	return f, nil
}

func (h *Environments) children(ctx context.Context, name string) ([]string, error) {
	return h.store.FindEnvironmentChildrenRecent(ctx, name) // beside the environment, read as recently
}

// formErrors turns a save error the user can fix into field errors for the
// form; other errors (and nil) give nil.
func formErrors(err error, name string) views.Errors {
	var ve *db.ValidationError
	switch {
	case errors.As(err, &ve):
		return views.FromValidation(ve)
	case errors.Is(err, db.ErrConflict):
		return views.Errors{"name": fmt.Sprintf("an environment named %q already exists: pick another name", name)}
	}
	return nil
}

// parseEnvironmentForm reads the create/edit form. The service editor sends
// repeated fields (svc_name, svc_type, svc_url, svc_path, svc_exclude) in row
// order; rows left completely blank are dropped, and each row keeps only the
// fields its type uses (the others are hidden in the editor).
func parseEnvironmentForm(c echo.Context) (*db.Environment, error) {
	form, err := c.FormParams()
	if err != nil {
		return nil, badRequest("The form could not be read: " + err.Error())
	}
	get := func(k string) string { return strings.TrimSpace(form.Get(k)) }
	e := &db.Environment{
		Name: get("name"), Title: get("title"), Type: get("type"), Parent: get("parent"), GitDir: get("git_dir"),
		Gate:  db.Gate{Listen: get("gate.listen"), Upstream: get("gate.upstream")},
		Hooks: db.Hooks{PrePause: get("hooks.pre_pause"), PostPause: get("hooks.post_pause"), PostRestore: get("hooks.post_restore")},
		Drill: db.DrillSettings{Schedule: get("drill.schedule"), Smoke: get("drill.smoke")},
	}
	if e.PITR, err = parsePITRForm(form); err != nil {
		return nil, err
	}
	names, types, urls, paths, excludes := form["svc_name"], form["svc_type"], form["svc_url"], form["svc_path"], form["svc_exclude"]
	n := len(names)
	if len(types) != n || len(urls) != n || len(paths) != n || len(excludes) != n {
		return nil, badRequest("The service editor sent incomplete rows. Reload the page and try again.")
	}
	e.Services = []db.Service{}
	for i := range n {
		s := db.Service{Name: strings.TrimSpace(names[i]), Type: strings.TrimSpace(types[i])}
		url, path := strings.TrimSpace(urls[i]), strings.TrimSpace(paths[i])
		var exclude []string
		for _, line := range strings.Split(excludes[i], "\n") {
			if line = strings.TrimSpace(line); line != "" {
				exclude = append(exclude, line)
			}
		}
		if s.Name == "" && url == "" && path == "" && len(exclude) == 0 {
			continue
		}
		switch s.Type {
		case db.ServiceSQLite:
			s.Path = path
		case db.ServiceFiles:
			s.Path, s.Exclude = path, exclude
		case db.ServicePostgreSQL, db.ServiceMySQL, db.ServiceRedis:
			s.URL = url
		default:
			s.URL, s.Path, s.Exclude = url, path, exclude
		}
		e.Services = append(e.Services, s)
	}
	return e, nil
}

// reservedName refuses environment names that would hide a dashboard page
// (/environments/new, /environments/service-row).
func reservedName(name string) error {
	switch name {
	case "new", "service-row":
		return &db.ValidationError{Errors: []db.FieldError{{Field: "name",
			Message: fmt.Sprintf("%q is reserved by the dashboard: pick another name", name)}}}
	}
	return nil
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

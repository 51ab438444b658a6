package handlers

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/views"
)

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

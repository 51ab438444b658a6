package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/jobs"
	"github.com/rewind/rewind/views"
)

// restoreRequest reads the restore dialog's choice: an existing target, or a
// new environment (new_name, or target) branched from branch_from.
// A partial restore names its services (service, repeated) and a path of the one files service.
func restoreRequest(c echo.Context, id string) jobs.RestoreRequest {
	req := jobs.RestoreRequest{BackupID: id, Target: strings.TrimSpace(c.FormValue("target")),
		BranchFrom: strings.TrimSpace(c.FormValue("branch_from")), Confirm: c.FormValue("confirm"), Actor: actor(c),
		Path: c.FormValue("path")}
	if form, err := c.FormParams(); err == nil {
		req.Services = form["service"]
	}
	if req.BranchFrom != "" {
		if n := strings.TrimSpace(c.FormValue("new_name")); n != "" || c.Request().Method == http.MethodGet {
			req.Target = n
		}
	}
	return req
}

// RestoreForm is GET /backups/:id/restore[?target=&branch_from=&new_name=]:
// the restore dialog with what the restore will do.
func (h *Backups) RestoreForm(c echo.Context) error {
	if h.ops == nil {
		return errNoJobs
	}
	req := restoreRequest(c, c.Param("id"))
	d, err := h.restoreData(c, req, nil)
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.RestorePage(page(c, "Restore backup "+d.Backup.ID, "environments"), d))
}

// restoreData plans the restore for the dialog. A plan that names a missing
// target or parent comes back as a problem, not an error.
func (h *Backups) restoreData(c echo.Context, req jobs.RestoreRequest, errs views.Errors) (views.RestoreData, error) {
	u, err := user(c)
	if err != nil {
		return views.RestoreData{}, err
	}
	ctx := c.Request().Context()
	b, err := h.store.FindBackupByID(ctx, req.BackupID)
	if err != nil {
		return views.RestoreData{}, err
	}
	envs, err := h.store.FindEnvironments(ctx, db.EnvironmentFilter{})
	if err != nil {
		return views.RestoreData{}, err
	}
	d := views.RestoreData{Backup: b, Target: req.Target, BranchFrom: req.BranchFrom, Errors: errs,
		Services: req.Services, Path: req.Path}
	if req.BranchFrom != "" {
		d.NewName = req.Target
	}
	for _, e := range envs {
		d.Envs = append(d.Envs, e.Name)
	}
	// The preview shows the target's tables and files: only to those who may run the restore.
	if perm, err := h.mayRestore(ctx, u, req); err == nil && perm.Allowed {
		req.Preview = true
	}
	plan, err := h.ops.PlanRestore(ctx, req)
	var ve *db.ValidationError
	switch {
	case errors.As(err, &ve):
		for _, f := range ve.Errors {
			d.Problems = append(d.Problems, f.Message)
		}
	case errors.Is(err, jobs.ErrRefused):
		d.Problems = append(d.Problems, refusal(err))
	case err != nil:
		return d, err
	default:
		d.Target, d.Create, d.Commit, d.TargetHead = plan.Target, plan.Create, plan.Commit, plan.TargetHead
		d.Services, d.Path, d.Scope = plan.Services, plan.Path, plan.Scope()
		if !plan.Create {
			d.BranchFrom = ""
		}
		for _, m := range plan.Mapping {
			d.Mapping = append(d.Mapping, views.RestoreMapping{Name: m.Name, Type: m.Type, Target: m.Target})
		}
		if plan.Problem != nil {
			for _, f := range plan.Problem.Errors {
				d.Problems = append(d.Problems, f.Message)
			}
		}
		d.Preview = toPreview(plan.Preview)
		for _, e := range envs {
			if e.Name == plan.Target {
				d.GitDir = e.GitDir
			}
		}
	}
	if d.Target == "" {
		d.Target = b.Environment
	}
	d.Perm, err = h.restorePerm(ctx, u, b, d.Target, d.Create)
	return d, err
}

// restorePerm: restoring needs the admin role for the backup's environment
// (its data is read) and for the target (its state is replaced); a new branch
// is a development environment.
func (h *Backups) restorePerm(ctx context.Context, u *db.User, b *db.Backup, target string, create bool) (views.Permission, error) {
	source, err := envType(ctx, h.store, b.Environment)
	if err != nil {
		return views.Permission{}, err
	}
	tt := db.EnvDevelopment
	if !create {
		if tt, err = envType(ctx, h.store, target); err != nil {
			return views.Permission{}, err
		}
	}
	return backupAdmin(u, source, tt), nil
}

// refusal is the message of a jobs.ErrRefused error, without the sentinel.
func refusal(err error) string {
	return strings.TrimSuffix(err.Error(), ": "+jobs.ErrRefused.Error())
}

// Restore is POST /backups/:id/restore (target, branch_from, confirm).
func (h *Backups) Restore(c echo.Context) error {
	u, err := user(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	req := restoreRequest(c, c.Param("id"))
	if err := h.requireRestore(ctx, u, req); err != nil {
		return err
	}
	if h.ops == nil {
		return errNoJobs
	}
	a, plan, err := h.ops.StartRestore(ctx, req)
	var ve *db.ValidationError
	if errors.As(err, &ve) {
		d, derr := h.restoreData(c, req, views.FromValidation(ve))
		if derr != nil {
			return derr
		}
		return render(c, http.StatusUnprocessableEntity, views.RestorePage(page(c, "Restore backup "+d.Backup.ID, "environments"), d))
	}
	if err != nil {
		return err
	}
	_ = h.session.Flash(c, "success", fmt.Sprintf("%s started (activity %d).", a.Summary, a.ID))
	return redirect(c, "/environments/"+url.PathEscape(plan.Target)+"/activity")
}

// requireRestore refuses a restore the user may not run (403), before the
// plan is checked.
func (h *Backups) requireRestore(ctx context.Context, u *db.User, req jobs.RestoreRequest) error {
	perm, err := h.mayRestore(ctx, u, req)
	if err != nil {
		return err
	}
	if !perm.Allowed {
		return forbidden(perm.Reason)
	}
	return nil
}

// mayRestore says whether the user may run the restore: admin of the backup's
// environment, of the target, and of the parent of a new branch.
func (h *Backups) mayRestore(ctx context.Context, u *db.User, req jobs.RestoreRequest) (views.Permission, error) {
	b, err := h.store.FindBackupByID(ctx, req.BackupID)
	if err != nil {
		return views.Permission{}, err
	}
	target, create := req.Target, false
	if target == "" {
		target = b.Environment
		if req.BranchFrom != "" {
			target = "restore-" + b.ID[:min(8, len(b.ID))]
		}
	}
	if req.BranchFrom != "" {
		if _, err := h.store.FindEnvironmentByName(ctx, target); errors.Is(err, db.ErrNotFound) {
			create = true
		}
	}
	perm, err := h.restorePerm(ctx, u, b, target, create)
	if err != nil || !perm.Allowed || !create {
		return perm, err
	}
	pt, err := envType(ctx, h.store, req.BranchFrom)
	if err != nil {
		return views.Permission{}, err
	}
	return backupAdmin(u, pt), nil
}

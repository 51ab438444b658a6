package handlers

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/jobs"
	"github.com/rewind/rewind/views"
)

// BackupsAPI is /api/v1/environments/{env}/backups, /api/v1/backups/{id} and
// /api/v1/activities/{id}/cancel. It shares the role rules of the pages
// (Backups); a refused action is 403, a refusal of the operation 409.
type BackupsAPI struct {
	pages *Backups
}

// NewBackupsAPI returns the API over the same store and operations as the pages.
func NewBackupsAPI(pages *Backups) *BackupsAPI { return &BackupsAPI{pages: pages} }

// List is GET /api/v1/environments/:env/backups[?before=ID|offset=&limit=&status=&kind=]
// → {"backups":[...],"total":N,"next_before":"ID"}, newest first. before=ID lists the backups older than backup
// ID (keyset paging: as fast at any depth and stable while backups are taken; total then counts those older);
// next_before is the before of the next page, "" on the last one. offset still works as before.
func (h *BackupsAPI) List(c echo.Context) error {
	ctx := c.Request().Context()
	e, err := h.pages.store.FindEnvironmentByName(ctx, c.Param("env"))
	if err != nil {
		return err
	}
	f := db.BackupFilter{Environment: &e.Name, Limit: db.DefaultBackupLimit}
	if f.Before = c.QueryParam("before"); f.Before == "" {
		f.Offset, _ = strconv.Atoi(c.QueryParam("offset"))
	}
	if l, err := strconv.Atoi(c.QueryParam("limit")); err == nil && l > 0 {
		f.Limit = min(l, 1000)
	}
	if s := c.QueryParam("status"); s != "" {
		f.Status = &s
	}
	if k := c.QueryParam("kind"); k != "" {
		f.Kind = &k
	}
	bs, total, err := h.pages.store.FindBackups(ctx, f)
	if err != nil {
		return err
	}
	next := ""
	if n := len(bs); n > 0 && f.Offset+n < total {
		next = bs[n-1].ID
	}
	return c.JSON(http.StatusOK, map[string]any{"backups": bs, "total": total, "next_before": next})
}

// Create is POST /api/v1/environments/:env/backups {"live": false} → 202
// {"activity":{...},"backup":{...}}.
func (h *BackupsAPI) Create(c echo.Context) error {
	u, err := user(c)
	if err != nil {
		return err
	}
	var body struct {
		Live bool `json:"live"`
		// ReplaceOldest confirms that a manual backup beyond the quota replaces
		// the oldest one; without it such a request is 409 with code "quota".
		ReplaceOldest bool `json:"replace_oldest"`
	}
	if err := decodeJSON(c, &body); err != nil {
		return err
	}
	ctx := c.Request().Context()
	e, err := h.pages.store.FindEnvironmentByName(ctx, c.Param("env"))
	if err != nil {
		return err
	}
	if perm := backupAdmin(u, e.Type); !perm.Allowed {
		return forbidden(perm.Reason)
	}
	if h.pages.ops == nil {
		return errNoJobs
	}
	a, b, err := h.pages.ops.StartBackup(ctx, jobs.BackupRequest{Environment: e.Name, Live: body.Live, Actor: actor(c),
		ReplaceOldest: body.ReplaceOldest})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, map[string]any{"activity": a, "backup": b})
}

// Get is GET /api/v1/backups/:id → {"backup":{...},"activity":{...}}.
func (h *BackupsAPI) Get(c echo.Context) error {
	ctx := c.Request().Context()
	b, err := h.pages.store.FindBackupByID(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	out := map[string]any{"backup": b}
	if b.ActivityID != 0 {
		a, err := h.pages.store.FindActivityByID(ctx, b.ActivityID)
		switch {
		case err == nil:
			out["activity"] = a
		case !errors.Is(err, db.ErrNotFound):
			return err
		}
	}
	return c.JSON(http.StatusOK, out)
}

// Delete is DELETE /api/v1/backups/:id → {"deleted":"ID"}.
func (h *BackupsAPI) Delete(c echo.Context) error {
	b, err := h.pages.requireBackupAdmin(c)
	if err != nil {
		return err
	}
	if err := h.pages.ops.DeleteBackup(c.Request().Context(), b.ID, actor(c)); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"deleted": b.ID})
}

// RestorePlanJSON is a restore plan as the API shows it (and the CLI reads it).
type RestorePlanJSON struct {
	BackupID    string          `json:"backup_id"`
	Environment string          `json:"environment"` // where the backup was taken
	Target      string          `json:"target"`
	Create      bool            `json:"create"`
	BranchFrom  string          `json:"branch_from,omitempty"`
	Mapping     []MappingJSON   `json:"mapping"`
	Problems    []db.FieldError `json:"problems,omitempty"`
	Commit      string          `json:"commit,omitempty"`
	TargetHead  string          `json:"target_head,omitempty"`
	// Services and Path are the scope of a partial restore (absent: the whole backup); Scope says it in words.
	Services []string `json:"services,omitempty"`
	Path     string   `json:"path,omitempty"`
	Scope    string   `json:"scope,omitempty"`
	// Preview is what the restore will change (GET only; absent when the plan has problems).
	Preview *views.RestorePreview `json:"preview,omitempty"`
}

// MappingJSON is where a restore puts one service of the backup.
type MappingJSON struct {
	Name   string `json:"name"`
	Type   string `json:"type"`
	Target string `json:"target"`
	// Path is the sub-tree of a files service's folder in the backup that is restored (absent: all of it).
	Path string `json:"path,omitempty"`
}

func toPlanJSON(p *jobs.RestorePlan) RestorePlanJSON {
	out := RestorePlanJSON{BackupID: p.Backup.ID, Environment: p.Backup.Environment, Target: p.Target, Create: p.Create,
		Mapping: []MappingJSON{}, Commit: p.Commit, TargetHead: p.TargetHead, Preview: toPreview(p.Preview),
		Services: p.Services, Path: p.Path, Scope: p.Scope()}
	if p.Create {
		out.BranchFrom = p.Parent
	}
	for _, m := range p.Mapping {
		out.Mapping = append(out.Mapping, MappingJSON{Name: m.Name, Type: m.Type, Target: m.Target, Path: m.Path})
	}
	if p.Problem != nil {
		out.Problems = p.Problem.Errors
	}
	return out
}

type restoreBody struct {
	Target     string   `json:"target"`
	BranchFrom string   `json:"branch_from"`
	Confirm    string   `json:"confirm"`
	Services   []string `json:"services"`
	Path       string   `json:"path"`
}

// Plan is GET /api/v1/backups/:id/restore[?target=&branch_from=&service=&path=] → {"plan":{...}}:
// what a restore would do, checked without touching anything, with its preview
// of what changes (the CLI shows it before asking for confirmation). service
// (repeated) and path scope a partial restore, as "services" and "path" do in
// the POST.
func (h *BackupsAPI) Plan(c echo.Context) error {
	if h.pages.ops == nil {
		return errNoJobs
	}
	u, err := user(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	req := jobs.RestoreRequest{BackupID: c.Param("id"), Target: c.QueryParam("target"), BranchFrom: c.QueryParam("branch_from"),
		Services: c.QueryParams()["service"], Path: c.QueryParam("path")}
	// The preview shows the target's tables and files: only to those who may run the restore.
	perm, permErr := h.pages.mayRestore(ctx, u, req) // an unknown target: PlanRestore says so
	req.Preview = permErr == nil && perm.Allowed
	plan, err := h.pages.ops.PlanRestore(ctx, req)
	if err != nil {
		return err
	}
	out := toPlanJSON(plan)
	if !req.Preview && plan.Problem == nil {
		out.Preview = &views.RestorePreview{Services: []views.ServicePreview{},
			Unavailable: "preview unavailable: it is shown to those who may run this restore: " + perm.Reason}
	}
	return c.JSON(http.StatusOK, map[string]any{"plan": out})
}

// Restore is POST /api/v1/backups/:id/restore {"target","branch_from","confirm","services","path"}
// → 202 {"activity":{...},"plan":{...}}; 422 with fields for a wrong
// confirmation, a service mapping that does not fit or a scope (services,
// path) the backup does not have, nothing touched.
func (h *BackupsAPI) Restore(c echo.Context) error {
	u, err := user(c)
	if err != nil {
		return err
	}
	var body restoreBody
	if err := decodeJSON(c, &body); err != nil {
		return err
	}
	ctx := c.Request().Context()
	req := jobs.RestoreRequest{BackupID: c.Param("id"), Target: body.Target, BranchFrom: body.BranchFrom,
		Confirm: body.Confirm, Actor: actor(c), Services: body.Services, Path: body.Path}
	if err := h.pages.requireRestore(ctx, u, req); err != nil {
		return err
	}
	if h.pages.ops == nil {
		return errNoJobs
	}
	a, plan, err := h.pages.ops.StartRestore(ctx, req)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, map[string]any{"activity": a, "plan": toPlanJSON(plan)})
}

// Cancel is POST /api/v1/activities/:id/cancel → 202 {"activity":{...}}.
func (h *BackupsAPI) Cancel(c echo.Context) error {
	a, err := h.pages.cancel(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, map[string]any{"activity": a})
}

// decodeJSON reads a small JSON body into v; an empty body leaves v as is.
func decodeJSON(c echo.Context, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(c.Response(), c.Request().Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return badRequest("The body is not valid JSON for this request: " + err.Error())
	}
	return nil
}

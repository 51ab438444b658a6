package handlers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/jobs"
	"github.com/rewind/rewind/views"
)

// BackupOperations start and check the long work on backups: jobs.Operations.
// Refusals (an inactive environment, a backup that is not complete) wrap
// jobs.ErrRefused; a restore that cannot run returns a *db.ValidationError
// naming the fields, and nothing is touched in either case.
type BackupOperations interface {
	StartBackup(ctx context.Context, req jobs.BackupRequest) (*db.Activity, *db.Backup, error)
	PlanRestore(ctx context.Context, req jobs.RestoreRequest) (*jobs.RestorePlan, error)
	StartRestore(ctx context.Context, req jobs.RestoreRequest) (*db.Activity, *jobs.RestorePlan, error)
	DeleteBackup(ctx context.Context, id, actor string) error
	// WriteTar streams a complete backup as a tar; nothing is written when it
	// is not complete.
	WriteTar(ctx context.Context, id string, w io.Writer) error
}

// Canceller stops a queued or running activity (the job runner); it returns
// jobs.ErrNotRunning for any other.
type Canceller interface {
	Cancel(ctx context.Context, id int64) error
}

type backupStore interface {
	FindEnvironmentByName(ctx context.Context, name string) (*db.Environment, error)
	FindEnvironments(ctx context.Context, f db.EnvironmentFilter) ([]*db.Environment, error)
	FindBackups(ctx context.Context, f db.BackupFilter) ([]*db.Backup, int, error)
	FindBackupsRecent(ctx context.Context, f db.BackupFilter) ([]*db.Backup, int, error)
	FindBackupByID(ctx context.Context, id string) (*db.Backup, error)
	FindActivityByID(ctx context.Context, id int64) (*db.Activity, error)
}

// Backups are the backup pages: start a backup from the Backups tab, a
// backup's page, the restore dialog, delete, download and cancel.
type Backups struct {
	store   backupStore
	ops     BackupOperations
	runner  Canceller
	session Session
	now     func() time.Time
}

// NewBackups returns the backup pages; ops and runner may be nil on a server
// without a job runner, which then answers 503 to backup actions.
func NewBackups(store backupStore, ops BackupOperations, runner Canceller, session Session, now func() time.Time) *Backups {
	return &Backups{store: store, ops: ops, runner: runner, session: session, now: now}
}

var errNoJobs = &Error{Status: http.StatusServiceUnavailable, Code: "unavailable",
	Message: "Backups are not available on this server: it runs without a job runner."}

// backupAdmin says whether u may back up, restore, download, delete and
// cancel for environments of the given types.
func backupAdmin(u *db.User, types ...string) views.Permission {
	for _, t := range types {
		role := u.Role
		if t != "" {
			role = u.RoleFor(t)
		}
		if role != db.RoleAdmin {
			if t == "" {
				return views.Deny("Only admins can back up and restore; your role is " + role + ".")
			}
			return views.Deny(fmt.Sprintf("Only admins can back up and restore %s environments; your role for them is %s.", t, role))
		}
	}
	return views.Allow
}

// envType is the type of the named environment, or "" when it no longer
// exists (the user's own role then decides).
func envType(ctx context.Context, store interface {
	FindEnvironmentByName(ctx context.Context, name string) (*db.Environment, error)
}, name string) (string, error) {
	if name == "" {
		return "", nil
	}
	e, err := store.FindEnvironmentByName(ctx, name)
	if errors.Is(err, db.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return e.Type, nil
}

// backupsPageSize is the number of backups on one page of the Backups tab.
const backupsPageSize = 25

// retentionMemo keeps each environment's retention explanation for a second. Explaining reads up to 2,000
// backups, which would otherwise dominate the Backups tab's cost when many people (or a polling tab) look at a
// long list; a change to the newest backup (one starting or completing) explains again at once.
type retentionMemo struct {
	mu sync.Mutex
	m  map[string]retentionMemoEntry
}

type retentionMemoEntry struct {
	at         time.Time
	head       string // the newest backup's id and status when explained
	data       views.RetentionData
	refreshing bool // one request explains again; the others use data meanwhile
}

const retentionMemoTTL = time.Second

func (m *retentionMemo) get(env, head string, now time.Time, explain func() (views.RetentionData, error)) (views.RetentionData, error) {
	if m == nil {
		return explain()
	}
	m.mu.Lock()
	e, ok := m.m[env]
	fresh := ok && e.head == head && now.Sub(e.at) >= 0 && now.Sub(e.at) < retentionMemoTTL
	if fresh || (ok && e.head == head && e.refreshing) {
		m.mu.Unlock()
		return e.data, nil
	}
	if ok && e.head == head {
		e.refreshing = true
		m.m[env] = e
	}
	m.mu.Unlock()
	d, err := explain()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = map[string]retentionMemoEntry{}
	}
	if err != nil {
		if cur, ok := m.m[env]; ok && cur.head == head {
			cur.refreshing = false
			m.m[env] = cur
		}
		return d, err
	}
	m.m[env] = retentionMemoEntry{at: now, head: head, data: d}
	return d, nil
}

// backupsTab fills the Backups tab of environment e for u.
func backupsTab(c echo.Context, store interface {
	FindBackups(ctx context.Context, f db.BackupFilter) ([]*db.Backup, int, error)
	// FindBackupsRecent may be a second old when another process changed the backups.
	FindBackupsRecent(ctx context.Context, f db.BackupFilter) ([]*db.Backup, int, error)
}, memo *retentionMemo, u *db.User, e *db.Environment, now time.Time) (views.BackupsData, error) {
	d := views.BackupsData{BaseURL: "/environments/" + url.PathEscape(e.Name), Limit: backupsPageSize, Now: now}
	d.Offset, _ = strconv.Atoi(c.QueryParam("offset"))
	d.Offset = max(d.Offset, 0)
	var err error
	// Count at most a thousand past this page: an exact count of a long list costs more than the page.
	countUpTo := d.Offset + d.Limit + 1000
	if d.Backups, d.Total, err = store.FindBackupsRecent(c.Request().Context(), db.BackupFilter{Environment: &e.Name,
		Offset: d.Offset, Limit: d.Limit, CountUpTo: countUpTo, Brief: true}); err != nil {
		return d, err
	}
	d.TotalAtLeast = d.Total == countUpTo
	if plans, ok := store.(planFinder); ok {
		head := ""
		if d.Offset == 0 && len(d.Backups) > 0 {
			head = d.Backups[0].ID + " " + d.Backups[0].Status
		}
		if d.Retention, err = memo.get(e.Name, head, now, func() (views.RetentionData, error) {
			return retentionData(c.Request().Context(), retentionStore{plans, store}, e, now)
		}); err != nil {
			return d, err
		}
	}
	d.Admin = backupAdmin(u, e.Type)
	d.Create = d.Admin
	if d.Create.Allowed && e.Status != db.StatusActive {
		d.Create = views.Deny("This environment is inactive: activate it before backing it up.")
	}
	return d, nil
}

// lastBackups returns each environment's newest complete backup and the
// number of complete backups.
func lastBackups(ctx context.Context, store interface {
	FindBackups(ctx context.Context, f db.BackupFilter) ([]*db.Backup, int, error)
}, envs []*db.Environment) (map[string]*db.Backup, int, error) {
	complete := db.BackupComplete
	out := map[string]*db.Backup{}
	for _, e := range envs {
		name := e.Name
		bs, _, err := store.FindBackups(ctx, db.BackupFilter{Environment: &name, Status: &complete, Limit: 1})
		if err != nil {
			return nil, 0, err
		}
		if len(bs) > 0 {
			out[name] = bs[0]
		}
	}
	_, total, err := store.FindBackups(ctx, db.BackupFilter{Status: &complete, Limit: 1})
	return out, total, err
}

// feedActions fills the restore, undo and cancel actions of the backup and
// restore entries of a feed page.
func feedActions(ctx context.Context, store interface {
	FindEnvironments(ctx context.Context, f db.EnvironmentFilter) ([]*db.Environment, error)
}, u *db.User, acts []*db.Activity) (map[int64]views.FeedActions, error) {
	types := map[string]string{}
	envs, err := store.FindEnvironments(ctx, db.EnvironmentFilter{})
	if err != nil {
		return nil, err
	}
	for _, e := range envs {
		types[e.Name] = e.Type
	}
	out := map[int64]views.FeedActions{}
	for _, a := range acts {
		var fa views.FeedActions
		switch {
		case a.Type == jobs.TypeBackup && a.State == db.ActivitySucceeded && a.BackupID != "":
			fa.Restore = "/backups/" + a.BackupID + "/restore"
		case a.Type == jobs.TypeRestore && a.State == db.ActivitySucceeded:
			if pre := jobs.PreRestoreBackupID(a); pre != "" {
				fa.Undo = "/backups/" + pre + "/restore?" + url.Values{"target": {a.Environment}}.Encode()
			}
		}
		if (a.State == db.ActivityQueued || a.State == db.ActivityRunning) &&
			(a.Type == jobs.TypeBackup || a.Type == jobs.TypeRestore || a.Type == jobs.TypeMaintenance || a.Type == jobs.TypeDrill) {
			perm := backupAdmin(u, types[a.Environment])
			fa.Cancel = &perm
		}
		if fa != (views.FeedActions{}) {
			out[a.ID] = fa
		}
	}
	return out, nil
}

// Create is POST /environments/:env/backups (the Backup button; live=true
// for a live backup).
func (h *Backups) Create(c echo.Context) error {
	u, err := user(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	e, err := h.store.FindEnvironmentByName(ctx, c.Param("env"))
	if err != nil {
		return err
	}
	if perm := backupAdmin(u, e.Type); !perm.Allowed {
		return forbidden(perm.Reason)
	}
	if h.ops == nil {
		return errNoJobs
	}
	live, _ := strconv.ParseBool(c.FormValue("live"))
	replace, _ := strconv.ParseBool(c.FormValue("replace_oldest"))
	_, b, err := h.ops.StartBackup(ctx, jobs.BackupRequest{Environment: e.Name, Live: live, Actor: actor(c),
		ReplaceOldest: replace})
	var qe *jobs.QuotaError
	if errors.As(err, &qe) {
		// Ask on the Backups tab whether to replace the oldest manual backup.
		d := views.EnvironmentData{Env: e.Masked(), Tab: "backups", Deactivate: envAdmin(u, e.Type)}
		if d.Backups, err = backupsTab(c, h.store, nil, u, e, h.now()); err != nil {
			return err
		}
		d.Backups.Quota, d.Backups.QuotaLive = qe.Error()+".", live
		return render(c, http.StatusConflict, views.EnvironmentPage(page(c, e.Name, "environments"), d))
	}
	if err != nil {
		return err
	}
	_ = h.session.Flash(c, "success", fmt.Sprintf("Backup %s of %s started: its progress shows below.", b.ID, e.Name))
	return redirect(c, "/environments/"+url.PathEscape(e.Name))
}

// Show is GET /backups/:id.
func (h *Backups) Show(c echo.Context) error {
	u, err := user(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	b, err := h.store.FindBackupByID(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	t, err := envType(ctx, h.store, b.Environment)
	if err != nil {
		return err
	}
	d := views.BackupData{Backup: b, Admin: backupAdmin(u, t), Now: h.now()}
	if b.ActivityID != 0 {
		if d.Activity, err = h.store.FindActivityByID(ctx, b.ActivityID); err != nil && !errors.Is(err, db.ErrNotFound) {
			return err
		}
	}
	return render(c, http.StatusOK, views.BackupPage(page(c, "Backup "+b.ID, "environments"), d))
}

// restoreRequest reads the restore dialog's choice: an existing target, or a
// new environment (new_name, or target) branched from branch_from.
func restoreRequest(c echo.Context, id string) jobs.RestoreRequest {
	req := jobs.RestoreRequest{BackupID: id, Target: strings.TrimSpace(c.FormValue("target")),
		BranchFrom: strings.TrimSpace(c.FormValue("branch_from")), Confirm: c.FormValue("confirm"), Actor: actor(c)}
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
	d := views.RestoreData{Backup: b, Target: req.Target, BranchFrom: req.BranchFrom, Errors: errs}
	if req.BranchFrom != "" {
		d.NewName = req.Target
	}
	for _, e := range envs {
		d.Envs = append(d.Envs, e.Name)
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
	_ = h.session.Flash(c, "success", fmt.Sprintf("Restore of backup %s into %s started (activity %d).", plan.Backup.ID, plan.Target, a.ID))
	return redirect(c, "/environments/"+url.PathEscape(plan.Target)+"/activity")
}

// requireRestore refuses a restore the user may not run (403), before the
// plan is checked.
func (h *Backups) requireRestore(ctx context.Context, u *db.User, req jobs.RestoreRequest) error {
	b, err := h.store.FindBackupByID(ctx, req.BackupID)
	if err != nil {
		return err
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
	if err != nil {
		return err
	}
	if !perm.Allowed {
		return forbidden(perm.Reason)
	}
	if create {
		pt, err := envType(ctx, h.store, req.BranchFrom)
		if err != nil {
			return err
		}
		if perm := backupAdmin(u, pt); !perm.Allowed {
			return forbidden(perm.Reason)
		}
	}
	return nil
}

// requireBackupAdmin finds the backup and refuses users who are not admins of
// its environment's type.
func (h *Backups) requireBackupAdmin(c echo.Context) (*db.Backup, error) {
	u, err := user(c)
	if err != nil {
		return nil, err
	}
	ctx := c.Request().Context()
	b, err := h.store.FindBackupByID(ctx, c.Param("id"))
	if err != nil {
		return nil, err
	}
	t, err := envType(ctx, h.store, b.Environment)
	if err != nil {
		return nil, err
	}
	if perm := backupAdmin(u, t); !perm.Allowed {
		return nil, forbidden(perm.Reason)
	}
	if h.ops == nil {
		return nil, errNoJobs
	}
	return b, nil
}

// Delete is POST /backups/:id/delete.
func (h *Backups) Delete(c echo.Context) error {
	b, err := h.requireBackupAdmin(c)
	if err != nil {
		return err
	}
	if err := h.ops.DeleteBackup(c.Request().Context(), b.ID, actor(c)); err != nil {
		return err
	}
	_ = h.session.Flash(c, "success", fmt.Sprintf("Backup %s deleted.", b.ID))
	return redirect(c, "/environments/"+url.PathEscape(b.Environment))
}

// Download is GET /backups/:id/download and /api/v1/backups/:id/download: the
// backup as a tar stream (rewind.json and one folder per service).
func (h *Backups) Download(c echo.Context) error {
	b, err := h.requireBackupAdmin(c)
	if err != nil {
		return err
	}
	if !b.Restorable() {
		return fmt.Errorf("backup %s is %s: only complete backups can be downloaded: %w", b.ID, b.Status, jobs.ErrRefused)
	}
	res := c.Response()
	res.Header().Set(echo.HeaderContentType, "application/x-tar")
	res.Header().Set(echo.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="rewind-%s-%s.tar"`,
		safeFilename(b.Environment), b.ID))
	res.Header().Set("Cache-Control", "no-store")
	res.WriteHeader(http.StatusOK)
	// Once the header is sent an error can only cut the stream short; a tar
	// without its end marker tells the client it is incomplete.
	return h.ops.WriteTar(c.Request().Context(), b.ID, res)
}

func safeFilename(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

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

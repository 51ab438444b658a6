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
	// Browse lists a directory of a complete backup's files or SQLite service, or a database service's tables
	// (backup.ErrBadPath, backup.ErrNotInBackup when the request names what is not there).
	Browse(ctx context.Context, id, service, path string) (*jobs.Listing, error)
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
	// Drills fills the restore drill card of the Backups tab it renders again (the quota question); nil
	// leaves it out.
	Drills *Drills
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
		if d.Backups.Drill, err = h.Drills.Card(ctx, u, e); err != nil {
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
	d, err := h.backupData(c)
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.BackupPage(page(c, "Backup "+d.Backup.ID, "environments"), d))
}

// backupData is the page of backup :id, with the Contents card listing its services when it is complete.
func (h *Backups) backupData(c echo.Context) (views.BackupData, error) {
	u, err := user(c)
	if err != nil {
		return views.BackupData{}, err
	}
	ctx := c.Request().Context()
	b, err := h.store.FindBackupByID(ctx, c.Param("id"))
	if err != nil {
		return views.BackupData{}, err
	}
	t, err := envType(ctx, h.store, b.Environment)
	if err != nil {
		return views.BackupData{}, err
	}
	d := views.BackupData{Backup: b, Admin: backupAdmin(u, t), Now: h.now()}
	if b.Restorable() {
		d.Contents = contents(b, d.Admin, nil)
	}
	if b.ActivityID != 0 {
		if d.Activity, err = h.store.FindActivityByID(ctx, b.ActivityID); err != nil && !errors.Is(err, db.ErrNotFound) {
			return views.BackupData{}, err
		}
	}
	return d, nil
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

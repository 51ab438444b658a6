package handlers

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/rewind/rewind/jobs"
	"github.com/rewind/rewind/views"
)

// StorageInspector reports on the backup repository's storage: jobs.StorageInspector over the open repository
// (local disk or S3).
type StorageInspector interface {
	// Status describes the storage (never with credentials) and measures it: used bytes, objects, newest write.
	// A storage that cannot be listed sets Error rather than failing.
	Status(ctx context.Context) jobs.StorageStatus
	// Test lists, writes, reads and deletes a test object and explains a failure in words an admin can act on.
	Test(ctx context.Context) jobs.StorageTest
	// SetCopyTarget tests and saves the second location (url: s3://… or file:///…; accessKey/secretKey: explicit
	// S3 credentials, "" for the server's AWS chain, secretKey "" keeps a saved one) and starts a copy. Its error
	// is a message for the admin.
	SetCopyTarget(ctx context.Context, url, accessKey, secretKey, actor string) error
	// RemoveCopyTarget stops copying (the copy made stays).
	RemoveCopyTarget(ctx context.Context, actor string) error
	// SyncCopy starts a copy now.
	SyncCopy(ctx context.Context)
	// StoredIn names the locations holding backup id: "primary", and "copy" once it was copied.
	StoredIn(ctx context.Context, id string) ([]string, error)
}

// Storage is the storage settings page: GET /settings/storage and its "Test connection" (POST
// /settings/storage/test). Admins only.
type Storage struct {
	storage StorageInspector // nil: the page says the storage is not available
	session Session
	now     func() time.Time
}

func NewStorage(storage StorageInspector, session Session, now func() time.Time) *Storage {
	return &Storage{storage: storage, session: session, now: now}
}

func requireStorageAdmin(c echo.Context) error {
	return requireProjectAdmin(c, "see the backup storage and test its connection")
}

// Show is GET /settings/storage.
func (h *Storage) Show(c echo.Context) error {
	if err := requireStorageAdmin(c); err != nil {
		return err
	}
	return render(c, http.StatusOK, views.StoragePage(page(c, "Storage", "storage"), h.status(c.Request().Context(), nil)))
}

// Test is POST /settings/storage/test: the result alone for HTMX, else the page with the result.
func (h *Storage) Test(c echo.Context) error {
	if err := requireStorageAdmin(c); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), 45*time.Second)
	defer cancel()
	res := &views.StorageTest{Problem: "unavailable", Message: "The backup storage is not open in this server."}
	if h.storage != nil {
		t := h.storage.Test(ctx)
		res = &views.StorageTest{OK: t.OK, Problem: t.Problem, Message: t.Message, Took: t.Took}
	}
	if isHTMX(c) {
		return render(c, http.StatusOK, views.StorageTestResult(res))
	}
	return render(c, http.StatusOK, views.StoragePage(page(c, "Storage", "storage"), h.status(c.Request().Context(), res)))
}

// SetCopy is POST /settings/storage/copy.
func (h *Storage) SetCopy(c echo.Context) error {
	if err := requireStorageAdmin(c); err != nil {
		return err
	}
	if h.storage == nil {
		return forbidden("The backup storage is not open in this server.")
	}
	form := views.CopyForm{URL: c.FormValue("url"), AccessKey: c.FormValue("access_key")}
	ctx, cancel := context.WithTimeout(c.Request().Context(), 45*time.Second)
	defer cancel()
	if err := h.storage.SetCopyTarget(ctx, form.URL, form.AccessKey, c.FormValue("secret_key"), actor(c)); err != nil {
		form.Error = err.Error()
		d := h.status(c.Request().Context(), nil)
		d.CopyForm = form
		return render(c, http.StatusUnprocessableEntity, views.StoragePage(page(c, "Storage", "storage"), d))
	}
	_ = h.session.Flash(c, "success", "Copy target saved; the repository is being copied there now.")
	return redirect(c, "/settings/storage")
}

// RemoveCopy is POST /settings/storage/copy/delete.
func (h *Storage) RemoveCopy(c echo.Context) error {
	if err := requireStorageAdmin(c); err != nil {
		return err
	}
	if h.storage != nil {
		if err := h.storage.RemoveCopyTarget(c.Request().Context(), actor(c)); err != nil {
			return err
		}
	}
	_ = h.session.Flash(c, "success", "Copying stopped. The copy already made stays where it is.")
	return redirect(c, "/settings/storage")
}

// SyncCopy is POST /settings/storage/copy/sync.
func (h *Storage) SyncCopy(c echo.Context) error {
	if err := requireStorageAdmin(c); err != nil {
		return err
	}
	if h.storage != nil {
		h.storage.SyncCopy(c.Request().Context())
	}
	_ = h.session.Flash(c, "info", "Copying to the copy target; the page shows when it is done.")
	return redirect(c, "/settings/storage")
}

// StoredIn is GET /backups/:id/stored-in, the "Stored in" of a backup's page (loaded by HTMX); any signed-in
// user may see it, as they see the backup.
func (h *Storage) StoredIn(c echo.Context) error {
	if _, err := user(c); err != nil {
		return err
	}
	where := []string{"primary"}
	if h.storage != nil {
		w, err := h.storage.StoredIn(c.Request().Context(), c.Param("id"))
		if err != nil {
			return err
		}
		where = w
	}
	return render(c, http.StatusOK, views.StoredIn(where))
}

func (h *Storage) status(ctx context.Context, test *views.StorageTest) views.StorageData {
	d := views.StorageData{Kind: "—", StatusError: "The backup storage is not open in this server."}
	if h.storage != nil {
		d = storageView(h.storage.Status(ctx))
	}
	d.Now, d.Test = h.now(), test
	if d.CopyForm.URL == "" && d.Copy != nil {
		d.CopyForm.URL = d.Copy.URL
	}
	return d
}

// storageView is the page's view of a storage status.
func storageView(s jobs.StorageStatus) views.StorageData {
	d := views.StorageData{Kind: s.Kind, Location: s.Location, UsedBytes: s.UsedBytes, Blobs: s.Blobs,
		LastWrite: s.LastWrite, CatalogSaved: s.CatalogSaved, CatalogError: s.CatalogError, StatusError: s.Error,
		CopyForm: views.CopyForm{Error: s.CopyError}}
	for _, dt := range s.Details {
		d.Details = append(d.Details, views.StorageDetail{Label: dt.Label, Value: dt.Value})
	}
	if c := s.Copy; c != nil {
		d.Copy = &views.CopyData{URL: c.URL, Credentials: c.Credentials, SyncedAt: c.SyncedAt, Error: c.Error, Running: c.Running}
	}
	for _, b := range s.Backups {
		d.Backups = append(d.Backups, views.StoredBackup{ID: b.ID, Environment: b.Environment, Kind: b.Kind,
			Completed: b.Completed, StoredIn: b.StoredIn})
	}
	return d
}

package handlers

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/views"
)

// StorageInspector reports on the backup repository's storage; rewind serve implements it over the open
// repository (local disk or S3).
type StorageInspector interface {
	// Status describes the storage (never with credentials) and measures it: used bytes, objects, newest write.
	// A storage that cannot be listed sets StatusError rather than failing.
	Status(ctx context.Context) views.StorageData
	// Test lists, writes, reads and deletes a test object and explains a failure in words an admin can act on.
	Test(ctx context.Context) *views.StorageTest
}

// Storage is the storage settings page: GET /settings/storage and its "Test connection" (POST
// /settings/storage/test). Admins only.
type Storage struct {
	storage StorageInspector // nil: the page says the storage is not available
	now     func() time.Time
}

func NewStorage(storage StorageInspector, now func() time.Time) *Storage {
	return &Storage{storage: storage, now: now}
}

func requireStorageAdmin(c echo.Context) error {
	u, err := user(c)
	if err != nil {
		return err
	}
	if u.Role != db.RoleAdmin {
		return forbidden("Only admins can see the backup storage and test its connection; your role is " + u.Role + ".")
	}
	return nil
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
		res = h.storage.Test(ctx)
	}
	if isHTMX(c) {
		return render(c, http.StatusOK, views.StorageTestResult(res))
	}
	return render(c, http.StatusOK, views.StoragePage(page(c, "Storage", "storage"), h.status(c.Request().Context(), res)))
}

func (h *Storage) status(ctx context.Context, test *views.StorageTest) views.StorageData {
	d := views.StorageData{Kind: "—", StatusError: "The backup storage is not open in this server."}
	if h.storage != nil {
		d = h.storage.Status(ctx)
	}
	d.Now, d.Test = h.now(), test
	return d
}

package handlers

import (
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/jobs"
	"github.com/rewind/rewind/views"
)

// contents is the Contents card of backup b for a user with permission admin: its services, and, when l is
// given, the directory or tables it lists.
func contents(b *db.Backup, admin views.Permission, l *jobs.Listing) *views.ContentsData {
	d := &views.ContentsData{BackupID: b.ID, Admin: admin}
	for _, s := range b.Services {
		d.Services = append(d.Services, views.ContentsService{Name: s.Name, Type: s.Type, Size: s.Size, Path: s.Path})
	}
	if l == nil {
		return d
	}
	d.Service, d.Type, d.Path, d.More = l.Service.Name, l.Service.Type, l.Path, l.More
	for _, e := range l.Entries {
		d.Entries = append(d.Entries, views.ContentsEntry{Name: e.Name, Path: e.Path, Type: e.Type, Size: e.Size,
			Mode: e.Mode, ModTime: e.ModTime})
	}
	if s := l.Summary; s != nil {
		for _, t := range s.Tables {
			d.Tables = append(d.Tables, views.ContentsTable{Name: t.Name, Rows: t.Rows})
		}
		for _, k := range s.Keyspaces {
			d.Keyspaces = append(d.Keyspaces, views.ContentsKeyspace{DB: k.DB, Keys: k.Keys})
		}
	} else if l.Service.Type != db.ServiceFiles {
		d.Unavailable = "This backup was taken before Rewind recorded what its " + l.Service.Type +
			" services hold: restore it to see its data."
	}
	return d
}

// Browse is GET /backups/:id/browse?service=&path=: the backup's page with its Contents card listing a
// directory of a files or SQLite service, or a database service's tables (no service: the services). An HTMX
// request targeting the card gets the card alone. A bad path is 400, a service or path not in the backup 404.
func (h *Backups) Browse(c echo.Context) error {
	d, err := h.backupData(c)
	if err != nil {
		return err
	}
	if svc := c.QueryParam("service"); svc != "" {
		if h.ops == nil {
			return errNoJobs
		}
		l, err := h.ops.Browse(c.Request().Context(), d.Backup.ID, svc, c.QueryParam("path"))
		if err != nil {
			return err
		}
		d.Contents = contents(d.Backup, d.Admin, l)
	}
	if d.Contents == nil {
		return fmt.Errorf("backup %s is %s: only complete backups can be browsed: %w", d.Backup.ID, d.Backup.Status,
			jobs.ErrRefused)
	}
	return render(c, http.StatusOK, views.BackupPage(page(c, "Backup "+d.Backup.ID, "environments"), d))
}

// BrowseJSON is one directory (or the tables) of a backup's service as the API shows it (and the CLI reads it).
type BrowseJSON struct {
	BackupID string `json:"backup_id"`
	Service  string `json:"service"`
	Type     string `json:"type"`
	// Root is the sub-tree of the mount the service's backup holds ("" the whole mount); Path the directory
	// listed, relative to the service's folder ("" its root).
	Root      string            `json:"root,omitempty"`
	Path      string            `json:"path"`
	Entries   []BrowseEntryJSON `json:"entries"`
	More      int               `json:"more"` // entries of the directory past those listed
	Tables    []TableJSON       `json:"tables,omitempty"`
	Keyspaces []KeyspaceJSON    `json:"keyspaces,omitempty"`
}

// TableJSON is one table of a database service's backup and its rows.
type TableJSON struct {
	Name string `json:"name"`
	Rows int64  `json:"rows"`
}

// KeyspaceJSON is one Redis database of a backup and its keys.
type KeyspaceJSON struct {
	DB   int   `json:"db"`
	Keys int64 `json:"keys"`
}

func toBrowseJSON(l *jobs.Listing) BrowseJSON {
	out := BrowseJSON{BackupID: l.Backup.ID, Service: l.Service.Name, Type: l.Service.Type, Root: l.Service.Path,
		Path: l.Path, Entries: []BrowseEntryJSON{}, More: l.More}
	for _, e := range l.Entries {
		out.Entries = append(out.Entries, BrowseEntryJSON{Name: e.Name, Path: e.Path, Type: e.Type, Size: e.Size,
			Mode: fmt.Sprintf("%04o", uint32(e.Mode.Perm())), Modified: e.ModTime.UTC()})
	}
	if s := l.Summary; s != nil {
		for _, t := range s.Tables {
			out.Tables = append(out.Tables, TableJSON{Name: t.Name, Rows: t.Rows})
		}
		for _, k := range s.Keyspaces {
			out.Keyspaces = append(out.Keyspaces, KeyspaceJSON{DB: k.DB, Keys: k.Keys})
		}
	}
	return out
}

// Browse is GET /api/v1/backups/:id/browse?service=&path= → {"listing":{...}}: one directory of a files or SQLite
// service of a complete backup (directories first, at most backup.BrowseLimit entries, "more" counts the
// rest), or a database service's tables and rows (Redis: keys per database). A bad path is 400, a service or
// path not in the backup 404, both with a message saying what to pass.
func (h *BackupsAPI) Browse(c echo.Context) error {
	if h.pages.ops == nil {
		return errNoJobs
	}
	svc := c.QueryParam("service")
	if svc == "" {
		return badRequest("Name the service to browse: ?service=NAME (GET /api/v1/backups/{id} lists them).")
	}
	l, err := h.pages.ops.Browse(c.Request().Context(), c.Param("id"), svc, c.QueryParam("path"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"listing": toBrowseJSON(l)})
}

// BrowseEntryJSON is one entry of a BrowseJSON.
type BrowseEntryJSON struct {
	Name     string    `json:"name"`
	Path     string    `json:"path"`
	Type     string    `json:"type"` // dir, file or symlink
	Size     int64     `json:"size"`
	Mode     string    `json:"mode"` // octal permission bits, e.g. "0644"
	Modified time.Time `json:"modified"`
}

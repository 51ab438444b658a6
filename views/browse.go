package views

import (
	"net/url"
	"os"
	"strings"
	"time"
)

// ContentsData is the Contents card of a backup's page: its services, and the directory or the tables of the
// one being browsed.
type ContentsData struct {
	BackupID string
	Services []ContentsService
	// Service is the service browsed ("" lists the services); Type its type, Path the directory listed ("" its
	// root).
	Service, Type, Path string
	Entries             []ContentsEntry
	More                int // entries past the listed ones
	Tables              []ContentsTable
	Keyspaces           []ContentsKeyspace
	Unavailable         string // why the browsed service shows no tables
	// Admin says whether the viewer may restore this backup (the "Restore this…" buttons).
	Admin Permission
}

// ContentsService is one service of a backup.
type ContentsService struct {
	Name, Type string
	Size       int64
	Path       string // the sub-tree of the mount a files service's backup holds ("" the whole mount)
}

// ContentsEntry is one entry of a directory of a backup.
type ContentsEntry struct {
	Name, Path, Type string // Type: "dir", "file" or "symlink"
	Size             int64
	Mode             os.FileMode
	ModTime          time.Time
}

// ContentsTable is one table of a database service's backup and its rows.
type ContentsTable struct {
	Name string
	Rows int64
}

// ContentsKeyspace is one Redis database of a backup and its keys.
type ContentsKeyspace struct {
	DB   int
	Keys int64
}

// browseURL is the address of the Contents card listing path of service of backup id.
func browseURL(id, service, path string) string {
	q := url.Values{}
	if service != "" {
		q.Set("service", service)
	}
	if path != "" {
		q.Set("path", path)
	}
	u := backupURL(id, "browse")
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// restoreScopeURL is the restore dialog of backup id scoped to service (and a path of it).
func restoreScopeURL(id, service, path string) string {
	q := url.Values{"service": {service}}
	if path != "" {
		q.Set("path", path)
	}
	return backupURL(id, "restore") + "?" + q.Encode()
}

// pathCrumb is one element of the path browsed, linking to its directory (the Last one is the directory shown).
type pathCrumb struct {
	Name, Path string
	Last       bool
}

func pathCrumbs(p string) []pathCrumb {
	if p == "" {
		return nil
	}
	parts := strings.Split(p, "/")
	out := make([]pathCrumb, len(parts))
	for i, el := range parts {
		out[i] = pathCrumb{Name: el, Path: strings.Join(parts[:i+1], "/"), Last: i == len(parts)-1}
	}
	return out
}

// parentPath is the directory holding p ("" for the root's children).
func parentPath(p string) string {
	i := strings.LastIndex(p, "/")
	if i < 0 {
		return ""
	}
	return p[:i]
}

func modeText(m os.FileMode) string { return (m & os.ModePerm).String()[1:] }

// entryNoun names an entry type in "Restore this …".
func entryNoun(typ string) string {
	switch typ {
	case "dir":
		return "directory"
	case "symlink":
		return "link"
	}
	return "file"
}

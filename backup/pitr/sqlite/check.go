package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/benbjohnson/litestream"
	"golang.org/x/sys/unix"
	_ "modernc.org/sqlite" // the driver Litestream uses: one SQLite in the process

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/pitr"
)

// networkFS names the file systems on which SQLite's locks (and so Litestream) cannot be trusted, by statfs type.
var networkFS = map[int64]string{
	unix.NFS_SUPER_MAGIC:   "NFS",
	unix.SMB_SUPER_MAGIC:   "SMB",
	unix.CIFS_SUPER_MAGIC:  "CIFS",
	unix.SMB2_SUPER_MAGIC:  "SMB2",
	unix.FUSE_SUPER_MAGIC:  "FUSE (sshfs, s3fs, ...)",
	unix.CEPH_SUPER_MAGIC:  "CephFS",
	unix.V9FS_MAGIC:        "9p",
	unix.AFS_SUPER_MAGIC:   "AFS",
	unix.CODA_SUPER_MAGIC:  "Coda",
	unix.OCFS2_SUPER_MAGIC: "OCFS2",
}

// Check verifies what following the database needs: the file exists on this host, is a SQLite database in WAL
// mode that Rewind may write, is not Rewind's catalog, and no other Litestream replicates it. It only reads.
func (k *Kind) Check(ctx context.Context, _ string, svc backup.ServiceSpec) []pitr.CheckResult {
	var out []pitr.CheckResult
	add := func(name, status, format string, args ...any) {
		out = append(out, pitr.CheckResult{Name: name, Status: status, Message: fmt.Sprintf(format, args...)})
	}
	path := svc.Path
	if !filepath.IsAbs(path) {
		add("path", pitr.CheckFailed, "the path %q is not absolute: give the database file's full path on the "+
			"host Rewind runs on", path)
		return out
	}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		add("path", pitr.CheckFailed, "%s does not exist on this host: point-in-time protection of SQLite runs "+
			"on the host that holds the file (Rewind must run there), and needs the database created first", path)
		return out
	case err != nil:
		add("path", pitr.CheckFailed, "cannot read %s: %v", path, err)
		return out
	case !fi.Mode().IsRegular():
		add("path", pitr.CheckFailed, "%s is not a regular file", path)
		return out
	}
	add("path", pitr.CheckOK, "%s exists on this host", path)

	if k.Catalog != "" {
		if cfi, err := os.Stat(k.Catalog); err == nil && os.SameFile(fi, cfi) {
			add("catalog", pitr.CheckFailed, "%s is Rewind's own catalog database, which Rewind never follows "+
				"(its copies are in every backup's rewind.json)", path)
			return out
		}
	}

	switch mode, err := journalMode(ctx, path, fi.Size()); {
	case err != nil:
		add("sqlite file", pitr.CheckFailed, "%v", err)
		return out
	case mode != "wal":
		add("journal mode", pitr.CheckFailed, "the database is in a rollback-journal mode: Litestream ships "+
			"the write-ahead log, so it needs WAL mode. Run `PRAGMA journal_mode=WAL;` on it once (the mode is "+
			"stored in the file; `sqlite3 %s 'PRAGMA journal_mode=WAL;'` while the application is stopped), or "+
			"have the application set it when it opens the database", path)
	default:
		add("journal mode", pitr.CheckOK, "the database is in WAL mode")
	}

	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		add("this host", pitr.CheckFailed, "cannot tell which file system holds %s: %v", path, err)
	} else if fsName, remote := networkFS[int64(st.Type)]; remote {
		add("this host", pitr.CheckFailed, "%s is on a network file system (%s), where SQLite's locks are not "+
			"reliable: Litestream (and so Rewind) must run on the host whose local disk holds the database", path,
			fsName)
	} else {
		add("this host", pitr.CheckOK, "the database is on a local file system")
	}

	dir := filepath.Dir(path)
	switch {
	case unix.Access(path, unix.W_OK) != nil:
		add("writable", pitr.CheckFailed, "Rewind (uid %d) cannot write %s: Litestream takes over "+
			"checkpointing (it writes the WAL's pages back into the database file), so give Rewind's user write "+
			"access to the file, or run Rewind as the application's user", os.Geteuid(), path)
	case unix.Access(dir, unix.W_OK|unix.X_OK) != nil:
		add("writable", pitr.CheckFailed, "Rewind (uid %d) cannot create files in %s: SQLite needs the "+
			"database's -wal and -shm files there; give Rewind's user write access to the directory",
			os.Geteuid(), dir)
	default:
		add("writable", pitr.CheckOK, "Rewind may write the database and its directory")
	}
	for _, f := range []string{path + "-wal", path + "-shm"} {
		if _, err := os.Stat(f); err == nil && unix.Access(f, unix.R_OK|unix.W_OK) != nil {
			add("writable", pitr.CheckFailed, "Rewind (uid %d) cannot write %s: give Rewind's user write access "+
				"to it, or run Rewind as the application's user", os.Geteuid(), f)
		}
	}

	other := filepath.Join(dir, "."+filepath.Base(path)+litestream.MetaDirSuffix)
	if _, err := os.Stat(other); err == nil {
		add("other litestream", pitr.CheckFailed, "%s exists: another Litestream (its command or a program "+
			"embedding it) replicates this database, and two would fight over its checkpoints. Stop it and "+
			"remove that directory to let Rewind follow the database, or keep that Litestream and do not "+
			"switch on Rewind's point-in-time protection for it", other)
	} else {
		add("other litestream", pitr.CheckOK, "no other Litestream replicates the database")
	}
	return out
}

// failedCheck is the first failed result of Check as an error, or nil.
func (k *Kind) failedCheck(ctx context.Context, env string, svc backup.ServiceSpec) error {
	for _, r := range k.Check(ctx, env, svc) {
		if r.Status == pitr.CheckFailed {
			return fmt.Errorf("sqlite service %q cannot be followed: %s", svc.Name, r.Message)
		}
	}
	return nil
}

// journalMode asks SQLite for the database's journal mode ("wal", or a rollback-journal mode). It reads through
// SQLite, read-only, and not through a file of its own: closing any descriptor of the database file drops every
// POSIX lock this process holds on it, such as those of a follower's Litestream (SQLite defers its own closes).
func journalMode(ctx context.Context, path string, size int64) (string, error) {
	if size == 0 {
		return "", fmt.Errorf("%s is empty: let the application create its database first", path)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		return "", fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close() //nolint:errcheck
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		if strings.Contains(err.Error(), "not a database") {
			return "", fmt.Errorf("%s is not a SQLite 3 database", path)
		}
		return "", fmt.Errorf("read the journal mode of %s: %w", path, err)
	}
	return strings.ToLower(mode), nil
}

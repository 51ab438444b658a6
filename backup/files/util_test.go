package files_test

import (
	"time"

	"golang.org/x/sys/unix"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/files"
)

func lutimes(p string, when time.Time) error {
	ts := []unix.Timespec{unix.NsecToTimespec(when.UnixNano()), unix.NsecToTimespec(when.UnixNano())}
	return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
}

func openEngineWith(r *backup.Repository, parallel int) *backup.Engine {
	return &backup.Engine{Repo: r, Parallel: parallel, Drivers: map[string]backup.Driver{backup.TypeFiles: files.Driver}}
}

package pgwal

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/pitr"
)

// RebuildRequest says what to rebuild where.
type RebuildRequest struct {
	Repo   *backup.Repository
	Choice *pitr.Choice
	Target time.Time
	Dir    string // work directory, created; Scratch.Close removes it
	BinDir string // server binaries; default: the base's major version under /usr/lib/postgresql
	User   string // the role to connect to the scratch server as (the service URL's user)
	// Timeout bounds the recovery; default 30 minutes.
	Timeout time.Duration
}

// Scratch is a private PostgreSQL server holding a cluster as it was at a moment: it listens only on a Unix
// socket in its own directory (no TCP port), trusts local connections, and archives nothing.
type Scratch struct {
	dir, sock string
	user      string
	cmd       *exec.Cmd
	done      chan struct{}
	log       *backup.Tail
	reached   *time.Time
}

// Reached is the newest commit the recovery replayed (nil when it replayed none after the base).
func (s *Scratch) Reached() *time.Time { return s.reached }

// ErrTargetNotReached is returned when the WAL in the repository ends before T (a base without the WAL after
// it): PostgreSQL refuses to promote such a recovery.
var ErrTargetNotReached = errors.New("the WAL in the repository ends before the moment asked for")

const scratchPort = 5432 // only names the socket file: the scratch server has no TCP listener

// Rebuild restores the chosen base and WAL into req.Dir, recovers it to req.Target (or to the end of the WAL
// when no commit after it was shipped) and promotes it. It returns only once the server accepts connections
// as a primary, or fails (naming what the server logged) without leaving a server running.
func Rebuild(ctx context.Context, req RebuildRequest) (s *Scratch, err error) {
	if req.Timeout <= 0 {
		req.Timeout = 30 * time.Minute
	}
	data, walDir, sock := filepath.Join(req.Dir, "data"), filepath.Join(req.Dir, "wal"), filepath.Join(req.Dir, "sock")
	for _, d := range []string{req.Dir, data, walDir, sock, filepath.Join(req.Dir, "base")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("create scratch directory: %w", err)
		}
	}
	defer func() {
		if err != nil {
			os.RemoveAll(req.Dir) //nolint:errcheck
		}
	}()
	// The WAL first, newest first: the growing segment is replaced by the follower about every second, so it
	// is read before anything slow (a base of gigabytes) can let its snapshot go (ErrReplaced: plan again).
	for i := len(req.Choice.Segments) - 1; i >= 0; i-- {
		if err := pitr.FetchDir(ctx, req.Repo, req.Choice.Segments[i], walDir); err != nil {
			return nil, fmt.Errorf("read WAL from the repository: %w", err)
		}
	}
	os.Remove(filepath.Join(walDir, "commits")) //nolint:errcheck
	base := filepath.Join(req.Dir, "base")
	if err := pitr.FetchDir(ctx, req.Repo, req.Choice.Base.Snapshot, base); err != nil {
		return nil, fmt.Errorf("read the base backup: %w", err)
	}
	if err := untar(ctx, filepath.Join(base, "base.tar"), data); err != nil {
		return nil, err
	}
	if err := untar(ctx, filepath.Join(base, "pg_wal.tar"), filepath.Join(data, "pg_wal")); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(base); err != nil {
		return nil, fmt.Errorf("remove the base's tar files: %w", err)
	}

	raw, err := os.ReadFile(filepath.Join(data, "PG_VERSION"))
	if err != nil {
		return nil, fmt.Errorf("read the base's PG_VERSION: %w", err)
	}
	major, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		return nil, fmt.Errorf("the base's PG_VERSION %q: %w", strings.TrimSpace(string(raw)), err)
	}
	bin, err := BinDir(req.BinDir, major)
	if err != nil {
		return nil, err
	}
	// The base carries the production server's configuration: the command line below overrides what could
	// reach out of the scratch server (archiving, replication, listening, preloaded extensions).
	if _, err := os.Stat(filepath.Join(data, "postgresql.conf")); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(filepath.Join(data, "postgresql.conf"), nil, 0o600); err != nil {
			return nil, fmt.Errorf("write scratch configuration: %w", err)
		}
	}
	hba := filepath.Join(req.Dir, "pg_hba.conf")
	if err := os.WriteFile(hba, []byte("local all all trust\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write scratch pg_hba.conf: %w", err)
	}
	for _, f := range []string{"postmaster.pid", "standby.signal", "postmaster.opts"} {
		os.Remove(filepath.Join(data, f)) //nolint:errcheck
	}
	if err := os.WriteFile(filepath.Join(data, "recovery.signal"), nil, 0o600); err != nil {
		return nil, fmt.Errorf("write recovery.signal: %w", err)
	}
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	if cred != nil {
		if err := chownTree(req.Dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, err
		}
	}
	args := []string{"-D", data,
		"-c", "port=" + strconv.Itoa(scratchPort), "-c", "listen_addresses=", "-c", "unix_socket_directories=" + sock,
		"-c", "hba_file=" + hba, "-c", "ident_file=" + hba, "-c", "ssl=off",
		"-c", "archive_mode=off", "-c", "archive_command=", "-c", "primary_conninfo=", "-c", "primary_slot_name=",
		"-c", "shared_preload_libraries=", "-c", "hot_standby=off", "-c", "fsync=off", "-c", "synchronous_commit=off",
		"-c", "shared_buffers=32MB", "-c", "max_connections=20", "-c", "max_wal_senders=0", "-c", "max_replication_slots=0",
		"-c", "logging_collector=off", "-c", "log_destination=stderr", "-c", "log_min_messages=log",
		"-c", "restore_command=cp " + walDir + "/%f %p",
	}
	if !req.Choice.ToEnd {
		args = append(args, "-c", "recovery_target_time="+req.Target.UTC().Format("2006-01-02 15:04:05.999999")+"+00",
			"-c", "recovery_target_inclusive=on", "-c", "recovery_target_action=promote")
	}
	cmd := exec.Command(filepath.Join(bin, "postgres"), args...)
	s = &Scratch{dir: req.Dir, sock: sock, user: req.User, cmd: cmd, done: make(chan struct{}), log: &backup.Tail{}}
	cmd.Stdout, cmd.Stderr = s.log, s.log
	cmd.Env = []string{"LC_ALL=C", "TZ=UTC"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the scratch server: %w", err)
	}
	go func() { cmd.Wait(); close(s.done) }() //nolint:errcheck
	if err := s.waitPromoted(ctx, req.Timeout); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// waitPromoted waits until the server runs as a primary. It also watches the process: a recovery that cannot
// reach its target makes the server exit, which a readiness check alone would miss.
func (s *Scratch) waitPromoted(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-s.done:
			log := s.log.String()
			if strings.Contains(log, "recovery ended before configured recovery target was reached") {
				return fmt.Errorf("%w: %s", ErrTargetNotReached, lastLines(log, 3))
			}
			return fmt.Errorf("the scratch server stopped during recovery: %s", lastLines(log, 6))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("recovery did not finish within %s: %s", timeout, lastLines(s.log.String(), 3))
		}
		c, err := s.connect(ctx, "template1")
		if err != nil {
			continue // starting, or still recovering (hot_standby is off)
		}
		var inRecovery bool
		var last *time.Time
		err = c.QueryRow(ctx, "SELECT pg_is_in_recovery(), pg_last_xact_replay_timestamp()").Scan(&inRecovery, &last)
		c.Close(ctx) //nolint:errcheck
		if err == nil && !inRecovery {
			if last != nil {
				t := last.UTC()
				s.reached = &t
			}
			return nil
		}
	}
}

func (s *Scratch) connect(ctx context.Context, database string) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return pgx.Connect(ctx, s.URL(database))
}

// URL is the connection URL of database on the scratch server, for the engine's PostgreSQL source.
func (s *Scratch) URL(database string) string {
	q := url.Values{"host": {s.sock}, "port": {strconv.Itoa(scratchPort)}, "sslmode": {"disable"}}
	return "postgres://" + url.User(s.user).String() + "@/" + url.PathEscape(database) + "?" + q.Encode()
}

// Close stops the scratch server and removes its directory.
func (s *Scratch) Close() error {
	s.stop()
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("remove scratch server: %w", err)
	}
	return nil
}

func (s *Scratch) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGQUIT) // immediate shutdown: the scratch state is thrown away
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

func untar(ctx context.Context, file, dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	out, err := exec.CommandContext(ctx, "tar", "-xf", file, "-C", dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("extract %s: %v: %s", filepath.Base(file), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// serverCredential is the user the scratch server runs as: PostgreSQL refuses root, so as root it is the
// postgres user; otherwise the current user (nil).
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL refuses to run as root and there is no postgres user to run the scratch server as: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func chownTree(root string, uid, gid int) error {
	return filepath.WalkDir(root, func(path string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(path, uid, gid); err != nil {
			return fmt.Errorf("hand the scratch directory to the postgres user: %w", err)
		}
		return nil
	})
}

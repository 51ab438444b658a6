package mariadb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/pitr"
	"github.com/rewind/rewind/backup/scratch"
)

// rebuilt is a scratch MariaDB server holding the service's database as it was at a moment.
type rebuilt struct {
	srv      *scratch.MariaDB
	dir      string
	database string
	reached  *time.Time
}

func (r *rebuilt) Spec(svc backup.ServiceSpec) backup.ServiceSpec {
	svc.URL = r.srv.URL(r.database)
	return svc
}

func (r *rebuilt) Reached() *time.Time { return r.reached }

func (r *rebuilt) Close() error {
	err := r.srv.Stop()
	if rerr := os.RemoveAll(r.dir); rerr != nil && err == nil {
		err = fmt.Errorf("remove the scratch directory: %w", rerr)
	}
	return err
}

// segment is one shipped binlog file fetched for a replay.
type segment struct {
	path string
	txns []txn
}

// Rebuild loads the chosen base into a private scratch server (listening only on a socket in spec.Dir) and
// replays the binlog from the base's position to the end of the last transaction at or before spec.Target, or
// to the end of the shipped binlog when spec.Choice.ToEnd. On error nothing is left running and spec.Dir is
// removed.
func (k *Kind) Rebuild(ctx context.Context, spec pitr.RebuildSpec) (_ pitr.Rebuilt, err error) {
	if spec.Timeout <= 0 {
		spec.Timeout = 30 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, spec.Timeout)
	defer cancel()
	cli, err := newClient(spec.Service)
	if err != nil {
		return nil, err
	}
	tools := map[string]string{}
	for _, t := range []string{"mariadb", "mariadb-binlog"} {
		if tools[t], err = k.tool(t); err != nil {
			return nil, err
		}
	}
	start, err := parsePosition(spec.Choice.Base.StartLSN)
	if err != nil {
		return nil, fmt.Errorf("the base's binlog position: %w", err)
	}
	if err := os.MkdirAll(spec.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create the scratch directory: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(spec.Dir) //nolint:errcheck
		}
	}()
	// The binlog first, newest first: the growing file is replaced by the follower about every second, so it is
	// read before the base dump (any size) can let its snapshot go (ErrReplaced: plan again).
	segs := make([]segment, len(spec.Choice.Segments))
	for i := len(spec.Choice.Segments) - 1; i >= 0; i-- {
		if segs[i], err = fetchSegment(ctx, spec.Repo, spec.Choice.Segments[i], filepath.Join(spec.Dir, "binlog",
			strconv.Itoa(i))); err != nil {
			return nil, err
		}
	}
	baseDir := filepath.Join(spec.Dir, "base")
	if err := os.Mkdir(baseDir, 0o700); err != nil {
		return nil, fmt.Errorf("create the scratch directory: %w", err)
	}
	if err := pitr.FetchDir(ctx, spec.Repo, spec.Choice.Base.Snapshot, baseDir); err != nil {
		return nil, fmt.Errorf("read the base from the repository: %w", err)
	}
	if ver, err := os.ReadFile(filepath.Join(baseDir, versionFile)); err == nil {
		if err := k.checkScratchVersion(ctx, string(ver)); err != nil {
			return nil, err
		}
	}
	if len(segs) == 0 || filepath.Base(segs[0].path) != start.File {
		return nil, fmt.Errorf("the base starts in binlog %s, which the chosen segments do not begin with", start.File)
	}
	files, stop, reached := replayRange(segs, start.Pos, spec.Target, spec.Choice.ToEnd)

	srv, err := scratch.StartMariaDB(filepath.Join(spec.Dir, "server"), scratch.MariaDBOptions{Socket: true,
		Args: []string{"--max-allowed-packet=1G", "--event-scheduler=OFF"}})
	if err != nil {
		return nil, fmt.Errorf("start the scratch MariaDB server: %w", err)
	}
	defer func() {
		if err != nil {
			srv.Stop() //nolint:errcheck
		}
	}()
	load := func(stdin *os.File) *exec.Cmd {
		cmd := exec.CommandContext(ctx, tools["mariadb"], "--no-defaults", "--socket="+srv.Socket(), "--user=root",
			"--binary-mode", "--max-allowed-packet=1G")
		cmd.Stdin = stdin
		cmd.Env = []string{"LC_ALL=C", "TZ=UTC"}
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		return cmd
	}
	base, err := os.Open(filepath.Join(baseDir, baseFile))
	if err != nil {
		return nil, fmt.Errorf("read the base: %w", err)
	}
	out, err := load(base).CombinedOutput()
	base.Close() //nolint:errcheck
	if err != nil {
		return nil, fmt.Errorf("load the base into the scratch server: %v: %s", err, strings.TrimSpace(string(out)))
	}
	if len(files) > 0 {
		args := []string{"--no-defaults", "--database=" + cli.database,
			"--start-position=" + strconv.FormatInt(start.Pos, 10)}
		if stop >= 0 {
			args = append(args, "--stop-position="+strconv.FormatInt(stop, 10))
		}
		if err := replay(ctx, tools["mariadb-binlog"], append(args, files...), load); err != nil {
			return nil, err
		}
	}
	return &rebuilt{srv: srv, dir: spec.Dir, database: cli.database, reached: reached}, nil
}

// replayRange picks what to replay of segs (the first holding the base's position start): the files, the
// offset in the last one to stop at (-1: its end) and the newest transaction replayed (nil: none).
func replayRange(segs []segment, start int64, target time.Time, toEnd bool) ([]string, int64, *time.Time) {
	var files []string
	var reached *time.Time
	for i, s := range segs {
		from := int64(0)
		if i == 0 {
			from = start
		}
		last, after := -1, false
		for j, t := range s.txns {
			if t.End <= from {
				continue // in the base already
			}
			if !toEnd && t.At.After(target) {
				after = true
				break
			}
			last = j
		}
		if last >= 0 {
			at := s.txns[last].At
			reached = &at
		}
		if !after {
			files = append(files, s.path)
			continue
		}
		switch {
		case last >= 0:
			return append(files, s.path), s.txns[last].End, reached
		case i == 0:
			return nil, -1, reached // nothing after the base is at or before target
		default:
			return files, -1, reached // the previous files, to their ends
		}
	}
	return files, -1, reached
}

// fetchSegment writes a shipped segment into dir and reads its transactions.
func fetchSegment(ctx context.Context, repo *backup.Repository, id, dir string) (segment, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return segment{}, fmt.Errorf("create the scratch directory: %w", err)
	}
	if err := pitr.FetchDir(ctx, repo, id, dir); err != nil {
		return segment{}, fmt.Errorf("read binlog from the repository: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return segment{}, fmt.Errorf("read the fetched binlog: %w", err)
	}
	var s segment
	for _, e := range ents {
		if e.Name() != commitsFile && e.Name() != positionsFile {
			s.path = filepath.Join(dir, e.Name())
		}
	}
	rawTimes, err := os.ReadFile(filepath.Join(dir, commitsFile))
	if err != nil {
		return segment{}, fmt.Errorf("read the segment's commits: %w", err)
	}
	rawPos, err := os.ReadFile(filepath.Join(dir, positionsFile))
	if err != nil {
		return segment{}, fmt.Errorf("read the segment's positions: %w", err)
	}
	if s.path == "" {
		return segment{}, fmt.Errorf("segment snapshot %s holds no binlog file", id)
	}
	s.txns, err = parseTxns(rawTimes, rawPos)
	if err != nil {
		return segment{}, fmt.Errorf("segment snapshot %s: %w", id, err)
	}
	return s, nil
}

// parseTxns pairs a segment's commits and positions files.
func parseTxns(commits, positions []byte) ([]txn, error) {
	times, err := pitr.ParseCommits(commits)
	if err != nil {
		return nil, err
	}
	lines := strings.Fields(string(positions))
	if len(lines) != len(times) {
		return nil, fmt.Errorf("%d commit times but %d positions", len(times), len(lines))
	}
	out := make([]txn, len(times))
	for i, l := range lines {
		end, err := strconv.ParseInt(l, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("positions file: %q is not an offset", l)
		}
		out[i] = txn{At: times[i], End: end}
	}
	return out, nil
}

// replay pipes mariadb-binlog's output into the scratch server's client.
func replay(ctx context.Context, binlog string, args []string, load func(*os.File) *exec.Cmd) error {
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("replay the binlog: %w", err)
	}
	dec := exec.CommandContext(ctx, binlog, args...)
	dec.Stdout = w
	var decErr, loadErr backup.Tail
	dec.Stderr = &decErr
	dec.Env = []string{"LC_ALL=C", "TZ=UTC"}
	dec.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	ld := load(r)
	ld.Stdout, ld.Stderr = &loadErr, &loadErr
	if err := ld.Start(); err != nil {
		r.Close() //nolint:errcheck
		w.Close() //nolint:errcheck
		return fmt.Errorf("replay the binlog: start mariadb: %w", err)
	}
	r.Close() //nolint:errcheck
	if err := dec.Start(); err != nil {
		w.Close() //nolint:errcheck
		ld.Wait() //nolint:errcheck
		return fmt.Errorf("replay the binlog: start mariadb-binlog: %w", err)
	}
	w.Close() //nolint:errcheck
	derr := dec.Wait()
	lerr := ld.Wait()
	if derr != nil {
		return fmt.Errorf("replay the binlog: mariadb-binlog: %v: %s", derr, decErr.String())
	}
	if lerr != nil {
		return fmt.Errorf("replay the binlog into the scratch server: %v: %s", lerr, loadErr.String())
	}
	if ctx.Err() != nil {
		return errors.Join(errors.New("replay the binlog: timed out or canceled"), ctx.Err())
	}
	return nil
}

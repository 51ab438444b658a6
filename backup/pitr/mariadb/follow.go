package mariadb

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/pitr"
)

// txn is one transaction of a binlog file: when Rewind received its end, and the offset just past it.
type txn struct {
	At  time.Time `json:"at"`
	End int64     `json:"end"`
}

// state is what the follower keeps in its spool across restarts (state.json).
type state struct {
	Epoch    string `json:"epoch"`     // when this unbroken stream started: the prefix of its segment names
	SystemID string `json:"system_id"` // the server followed
	File     string `json:"file"`      // the binlog file being followed (the first not shipped complete)
}

// The receive times of the transactions read are journaled in the spool as they are read, one file per binlog
// file (received/<file>: "<end offset> <unix nanoseconds>" lines), so a restart, which reads the files again,
// dates them as first received; a file's journal goes once the file is shipped complete.
const journalDir = "received"

// readJournal reads the receive times journaled for binlog file, by transaction end.
func readJournal(spool, file string) (map[int64]time.Time, error) {
	raw, err := os.ReadFile(filepath.Join(spool, journalDir, file))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the receive times of %s: %w", file, err)
	}
	out := map[int64]time.Time{}
	for _, line := range strings.Split(string(raw), "\n") {
		e, ns, ok := strings.Cut(line, " ")
		end, err1 := strconv.ParseInt(e, 10, 64)
		n, err2 := strconv.ParseInt(ns, 10, 64)
		if !ok || err1 != nil || err2 != nil {
			continue // a line cut short by a crash
		}
		out[end] = time.Unix(0, n).UTC()
	}
	return out, nil
}

// binlogFile is a binlog file as the tailer has read it.
type binlogFile struct {
	name     string
	txns     []txn
	complete bool // its rotate event is read: nothing more comes
}

// follower follows one service for one Follow call.
type follower struct {
	k       *Kind
	spec    pitr.FollowSpec
	cli     client
	db      *sql.DB
	blDir   string
	st      state
	known   map[string]map[int64]time.Time // receive times journaled before this run: file → end → time
	catchUp position                       // the server's position when the stream connected: what it had written before

	mu    sync.Mutex
	files []*binlogFile // read, oldest first; all but the last are complete
	read  position      // how far the tailer has read
	terr  error         // the tailer failed

	shipped    int // transactions of the growing file in its last shipped copy (-1: not shipped this run)
	lastCommit time.Time
}

func (f *follower) now() time.Time {
	if f.spec.Now != nil {
		return f.spec.Now()
	}
	return time.Now()
}

// Follow ships the service's binlog and bases until ctx ends (then it returns nil) or following fails; see the
// package documentation.
func (k *Kind) Follow(ctx context.Context, spec pitr.FollowSpec) error {
	if spec.ShipEvery <= 0 {
		spec.ShipEvery = time.Second
	}
	if spec.BaseEvery <= 0 {
		spec.BaseEvery = 24 * time.Hour
	}
	cli, err := newClient(spec.Service)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(spec.Spool, 0o700); err != nil {
		return fmt.Errorf("create the follower's spool: %w", err)
	}
	binlog, err := k.tool("mariadb-binlog")
	if err != nil {
		return err
	}
	db, err := cli.open()
	if err != nil {
		return err
	}
	defer db.Close() //nolint:errcheck
	f := &follower{k: k, spec: spec, cli: cli, db: db, blDir: filepath.Join(spec.Spool, "binlog"), shipped: -1}
	srv, err := readServer(ctx, db)
	if err != nil {
		return fmt.Errorf("mysql service %s: %w", spec.Service.Name, err)
	}
	newBase, err := f.resume(ctx, srv)
	if err != nil {
		return err
	}

	if err := os.RemoveAll(f.blDir); err != nil {
		return fmt.Errorf("clear the binlog spool: %w", err)
	}
	if err := os.MkdirAll(f.blDir, 0o700); err != nil {
		return fmt.Errorf("create the binlog spool: %w", err)
	}
	wake, closeWatch, err := watch(f.blDir)
	if err != nil {
		return err
	}
	defer closeWatch()
	opt, err := cli.optionFile(spec.Spool)
	if err != nil {
		return err
	}
	defer os.Remove(opt) //nolint:errcheck
	if err := os.MkdirAll(filepath.Join(spec.Spool, journalDir), 0o700); err != nil {
		return fmt.Errorf("create the receive times' journal: %w", err)
	}
	f.files = []*binlogFile{{name: f.st.File}}
	f.read = position{File: f.st.File}
	if f.catchUp, err = masterStatus(ctx, db); err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// --raw writes the files as the server sends them, starting at offset 4 of st.File: the offsets in the
	// spool are the server's positions.
	recv := exec.CommandContext(ctx, binlog, "--defaults-file="+opt, "--read-from-remote-server", "--raw",
		"--stop-never", "--stop-never-slave-server-id="+strconv.FormatUint(uint64(replicaID(spec.Environment,
			spec.Service.Name)), 10), "--result-file="+f.blDir+"/", f.st.File)
	var recvErr backup.Tail
	recv.Stdout, recv.Stderr = &recvErr, &recvErr
	recv.Env = []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C", "TZ=UTC"}
	recv.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	recv.Cancel = func() error { return recv.Process.Signal(syscall.SIGTERM) }
	recv.WaitDelay = 10 * time.Second
	if err := recv.Start(); err != nil {
		return fmt.Errorf("start mariadb-binlog: %w", err)
	}
	recvDone := make(chan error, 1)
	go func() { recvDone <- recv.Wait() }()
	tailDone := make(chan struct{})
	go func() { defer close(tailDone); f.tail(ctx, wake) }()
	defer func() {
		cancel()
		<-recvDone
		<-tailDone
	}()

	id, finished, ok, err := spec.Record.LatestBase(ctx)
	if err != nil {
		return err
	}
	return pitr.Loop{ShipEvery: spec.ShipEvery, BaseEvery: spec.BaseEvery, Now: f.now,
		Base:     func(ctx context.Context) error { return f.base(ctx, srv.ID, opt) },
		Round:    f.round,
		Received: recvDone,
		Stopped: func(err error) error {
			return fmt.Errorf("mariadb-binlog stopped (%v): %s", err, recvErr.String())
		},
	}.Run(ctx, newBase || !ok || id != srv.ID, finished)
}

// resume loads the spool's state and decides where the stream starts: where it stopped, or (when the server
// lost that position, or it is another server) at the server's current file with a new epoch and base, telling
// the Recorder of the gap. It reports whether a new base is needed.
func (f *follower) resume(ctx context.Context, srv server) (bool, error) {
	path := filepath.Join(f.spec.Spool, "state.json")
	raw, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("read the follower's state: %w", err)
	}
	gap := ""
	if err == nil {
		if err := json.Unmarshal(raw, &f.st); err != nil {
			return false, fmt.Errorf("read the follower's state %s: %w (remove it to start again from a new base)",
				path, err)
		}
		known, err := f.journaled()
		if err != nil {
			return false, err
		}
		var end int64
		for e := range known[f.st.File] {
			end = max(end, e)
		}
		size, listed := srv.Logs[f.st.File]
		switch {
		case f.st.SystemID != srv.ID:
			gap = fmt.Sprintf("the service's server is another one (server %s, was %s): its binlog is another "+
				"stream; starting again from a new base backup", srv.ID, f.st.SystemID)
		case !listed:
			gap = fmt.Sprintf("the server purged binlog %s before Rewind read all of it (raise "+
				"binlog_expire_logs_seconds, or keep Rewind running): starting again from a new base backup",
				f.st.File)
		case size < end:
			gap = fmt.Sprintf("binlog %s is shorter than what Rewind shipped of it (RESET MASTER?): starting "+
				"again from a new base backup", f.st.File)
		default:
			f.known = known
			return false, nil
		}
	} else if _, _, ok, err := f.spec.Record.LatestBase(ctx); err != nil {
		return false, err
	} else if ok {
		gap = "the follower's spool lost where the stream stopped: starting again from a new base backup"
	}
	if gap != "" {
		if err := f.spec.Record.Gap(ctx, gap); err != nil {
			return false, err
		}
	}
	f.st = state{Epoch: epochOf(f.now()), SystemID: srv.ID, File: srv.Master.File}
	if err := os.RemoveAll(filepath.Join(f.spec.Spool, journalDir)); err != nil {
		return false, fmt.Errorf("clear the receive times: %w", err)
	}
	if err := f.save(); err != nil {
		return false, err
	}
	return true, nil
}

// journaled reads the receive times journaled for the files from st.File on.
func (f *follower) journaled() (map[string]map[int64]time.Time, error) {
	ents, err := os.ReadDir(filepath.Join(f.spec.Spool, journalDir))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read the receive times: %w", err)
	}
	out := map[string]map[int64]time.Time{}
	for _, e := range ents {
		if e.Name() < f.st.File {
			continue
		}
		if out[e.Name()], err = readJournal(f.spec.Spool, e.Name()); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// save writes the state atomically.
func (f *follower) save() error {
	raw, err := json.Marshal(f.st)
	if err != nil {
		return fmt.Errorf("encode the follower's state: %w", err)
	}
	if err := pitr.WriteFileAtomic(filepath.Join(f.spec.Spool, "state.json"), raw); err != nil {
		return fmt.Errorf("save the follower's state: %w", err)
	}
	return nil
}

// watch wakes (a token on the channel) whenever a file in dir is created or written.
func watch(dir string) (<-chan struct{}, func(), error) {
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		return nil, nil, fmt.Errorf("watch the binlog spool: %w", err)
	}
	if _, err := syscall.InotifyAddWatch(fd, dir, syscall.IN_MODIFY|syscall.IN_CREATE); err != nil {
		syscall.Close(fd) //nolint:errcheck
		return nil, nil, fmt.Errorf("watch the binlog spool: %w", err)
	}
	file := os.NewFile(uintptr(fd), "inotify") // non-blocking: Close ends a Read
	ch := make(chan struct{}, 1)
	go func() {
		buf := make([]byte, 4096)
		for {
			if _, err := file.Read(buf); err != nil {
				return
			}
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}()
	return ch, func() { file.Close() }, nil //nolint:errcheck
}

// tail reads the spool's binlog files as they grow, until ctx ends.
func (f *follower) tail(ctx context.Context, wake <-chan struct{}) {
	var s scanner
	var file, journal *os.File
	defer func() {
		for _, fh := range []*os.File{file, journal} {
			if fh != nil {
				fh.Close() //nolint:errcheck
			}
		}
	}()
	buf := make([]byte, 0, 1<<20)
	for {
		if err := f.readMore(&s, &file, &journal, &buf); err != nil {
			f.mu.Lock()
			f.terr = err
			f.mu.Unlock()
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-time.After(200 * time.Millisecond): // a write inotify merged away
		}
	}
}

// readMore reads what was appended to the file being followed, moving to the next one at its rotate event.
func (f *follower) readMore(s *scanner, file, journal **os.File, buf *[]byte) error {
	for {
		f.mu.Lock()
		cur := f.files[len(f.files)-1]
		f.mu.Unlock()
		if *file == nil {
			fh, err := os.Open(filepath.Join(f.blDir, cur.name))
			if errors.Is(err, os.ErrNotExist) {
				return nil // mariadb-binlog has not created it yet
			}
			if err != nil {
				return fmt.Errorf("read the binlog spool: %w", err)
			}
			*file = fh
			j, err := os.OpenFile(filepath.Join(f.spec.Spool, journalDir, cur.name),
				os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
			if err != nil {
				return fmt.Errorf("journal the receive times: %w", err)
			}
			*journal = j
		}
		chunk := (*buf)[:cap(*buf)]
		n, err := (*file).ReadAt(chunk, s.off)
		at := time.Now() // the receive time: these bytes were not there at the last read
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read binlog %s: %w", cur.name, err)
		}
		ends, used, ferr := s.feed(chunk[:n])
		if ferr != nil {
			return fmt.Errorf("read binlog %s: %w", cur.name, ferr)
		}
		var lines []byte
		f.mu.Lock()
		for _, e := range ends {
			t := at
			if known, ok := f.known[cur.name][e.End]; ok {
				t = known
			} else if f.before(cur.name, e.End) && e.Event.Add(time.Second).Before(t) {
				t = e.Event.Add(time.Second) // written before the stream connected: the server's clock, to the second
			}
			if k := len(cur.txns); k > 0 && t.Before(cur.txns[k-1].At) {
				t = cur.txns[k-1].At
			}
			cur.txns = append(cur.txns, txn{At: t, End: e.End})
			lines = fmt.Appendf(lines, "%d %d\n", e.End, t.UnixNano())
		}
		f.read = position{File: cur.name, Pos: s.off}
		next := s.rotate
		if next == "" && s.stopped {
			// The server stopped and wrote no rotate: it starts the next file when it starts again, and the
			// stream (its next connection) moves on to it with a rotate event made up for the client.
			if next, err = nextFile(cur.name); err != nil {
				f.mu.Unlock()
				return err
			}
		}
		if next != "" {
			cur.complete = true
			f.files = append(f.files, &binlogFile{name: next})
		}
		f.mu.Unlock()
		if len(lines) > 0 {
			if _, err := (*journal).Write(lines); err != nil {
				return fmt.Errorf("journal the receive times: %w", err)
			}
		}
		if next == "" {
			if used == 0 && n == cap(*buf) {
				*buf = make([]byte, 0, 2*cap(*buf)) // one event larger than the buffer
				continue
			}
			if n < cap(*buf) {
				return nil
			}
			continue // more to read
		}
		(*file).Close()    //nolint:errcheck
		(*journal).Close() //nolint:errcheck
		*file, *journal = nil, nil
		*s = scanner{}
	}
}

// before reports whether the transaction ending at end of file was written before the stream connected.
func (f *follower) before(file string, end int64) bool {
	return file < f.catchUp.File || file == f.catchUp.File && end <= f.catchUp.Pos
}

// round ships what the tailer read: every completed file, then the growing one if it has new transactions,
// and reports how far the repository covers the stream.
func (f *follower) round(ctx context.Context) error {
	asked := time.Now()
	master, err := masterStatus(ctx, f.db)
	if err != nil {
		return err
	}
	// Wait a moment for the tailer to read up to the server's position: then every commit before asked is read.
	caughtUp := false
	for i := 0; i < 100; i++ {
		f.mu.Lock()
		read, terr := f.read, f.terr
		f.mu.Unlock()
		if terr != nil {
			return terr
		}
		if read.File > master.File || read.File == master.File && read.Pos >= master.Pos {
			caughtUp = true
			break
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(5 * time.Millisecond):
		}
	}
	f.mu.Lock()
	files := make([]binlogFile, len(f.files))
	for i, b := range f.files {
		files[i] = *b
		files[i].txns = append([]txn(nil), b.txns...)
	}
	read := f.read
	f.mu.Unlock()
	readAt := time.Now()

	for _, b := range files {
		if b.complete {
			if err := f.shipFile(ctx, b, -1, readAt); err != nil {
				return err
			}
			if err := os.Remove(filepath.Join(f.blDir, b.name)); err != nil {
				return fmt.Errorf("remove shipped binlog: %w", err)
			}
			f.mu.Lock()
			f.files = f.files[1:]
			f.mu.Unlock()
			next, err := nextFile(b.name)
			if err != nil {
				return err
			}
			f.st.File, f.shipped = next, -1
			if err := f.save(); err != nil {
				return err
			}
			if err := os.Remove(filepath.Join(f.spec.Spool, journalDir, b.name)); err != nil {
				return fmt.Errorf("remove the receive times of a shipped binlog: %w", err)
			}
			continue
		}
		if len(b.txns) != f.shipped && read.File == b.name && read.Pos > 0 {
			cut := read.Pos
			if n := len(b.txns); n > 0 {
				cut = b.txns[n-1].End
			}
			if err := f.shipFile(ctx, b, cut, readAt); err != nil {
				return err
			}
			f.shipped = len(b.txns)
		}
	}
	rep := pitr.Report{LastCommit: f.lastCommit, WALStatus: "streaming"}
	if caughtUp {
		rep.CoveredUntil = asked
	} else {
		rep.WALStatus = "behind"
	}
	if read.File == master.File && master.Pos > read.Pos {
		rep.LagBytes = master.Pos - read.Pos
	}
	return f.spec.Record.Report(ctx, rep)
}

// shipFile ships binlog file b as one segment: complete (cut < 0), or growing, its first cut bytes.
func (f *follower) shipFile(ctx context.Context, b binlogFile, cut int64, readAt time.Time) error {
	partial := cut >= 0
	name := segmentName(f.st.Epoch, b.name)
	stage := filepath.Join(f.spec.Spool, "ship")
	if err := os.RemoveAll(stage); err != nil {
		return fmt.Errorf("clear stage: %w", err)
	}
	if err := os.MkdirAll(stage, 0o700); err != nil {
		return fmt.Errorf("create stage: %w", err)
	}
	defer os.RemoveAll(stage) //nolint:errcheck
	src, dst := filepath.Join(f.blDir, b.name), filepath.Join(stage, b.name)
	if partial {
		if err := copyPrefix(src, dst, cut); err != nil {
			return err
		}
	} else if err := os.Link(src, dst); err != nil {
		return fmt.Errorf("stage binlog %s: %w", b.name, err)
	}
	times := make([]time.Time, len(b.txns))
	var pos strings.Builder
	for i, t := range b.txns {
		times[i] = t.At
		pos.WriteString(strconv.FormatInt(t.End, 10) + "\n")
	}
	if err := os.WriteFile(filepath.Join(stage, commitsFile), pitr.MarshalCommits(times), 0o600); err != nil {
		return fmt.Errorf("write commits of %s: %w", b.name, err)
	}
	if err := os.WriteFile(filepath.Join(stage, positionsFile), []byte(pos.String()), 0o600); err != nil {
		return fmt.Errorf("write positions of %s: %w", b.name, err)
	}
	env, svc := f.spec.Environment, f.spec.Service.Name
	snap, _, err := pitr.ShipDir(ctx, f.spec.Repo, env, svc, "wal", name, stage, "binlog "+b.name+" of "+env+"/"+svc)
	if err != nil {
		return err
	}
	seg := pitr.Segment{Name: name, Snapshot: snap, Partial: partial, Commits: times, ReadAt: readAt}
	if n := len(b.txns); n > 0 {
		seg.LastLSN = position{File: b.name, Pos: b.txns[n-1].End}.String()
		if b.txns[n-1].At.After(f.lastCommit) {
			f.lastCommit = b.txns[n-1].At
		}
	}
	replaced, err := f.spec.Record.SegmentShipped(ctx, seg)
	if err != nil {
		pitr.DeleteSnapshots(context.WithoutCancel(ctx), f.spec.Repo, snap) //nolint:errcheck
		return err
	}
	if replaced != "" && replaced != snap {
		return pitr.DeleteSnapshots(ctx, f.spec.Repo, replaced)
	}
	return nil
}

// Files in a segment's snapshot beside the binlog file.
const (
	commitsFile   = "commits"   // receive time of each transaction (pitr.MarshalCommits)
	positionsFile = "positions" // the offset just past each of those transactions, one a line
)

// copyPrefix copies the first n bytes of src to dst.
func copyPrefix(src, dst string, n int64) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy binlog %s: %w", filepath.Base(src), err)
	}
	defer in.Close() //nolint:errcheck
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("copy binlog %s: %w", filepath.Base(src), err)
	}
	if _, err := io.Copy(out, io.LimitReader(in, n)); err != nil {
		out.Close() //nolint:errcheck
		return fmt.Errorf("copy binlog %s: %w", filepath.Base(src), err)
	}
	return out.Close()
}

// changeMasterRE is the position a --master-data=2 dump is consistent with.
var changeMasterRE = regexp.MustCompile(`^-- CHANGE MASTER TO MASTER_LOG_FILE='([^']+)', MASTER_LOG_POS=(\d+);`)

// base dumps the service's database with its binlog position and ships it.
func (f *follower) base(ctx context.Context, systemID, opt string) error {
	dump, err := f.k.tool("mariadb-dump")
	if err != nil {
		return err
	}
	started := f.now()
	dir := filepath.Join(f.spec.Spool, fmt.Sprintf("base-%d", started.UnixNano()))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create the base's directory: %w", err)
	}
	defer os.RemoveAll(dir) //nolint:errcheck
	file := filepath.Join(dir, baseFile)
	cmd := exec.CommandContext(ctx, dump, "--defaults-file="+opt, "--single-transaction", "--master-data=2",
		"--gtid", "--routines", "--events", "--triggers", "--hex-blob", "--databases", f.cli.database,
		"--result-file="+file)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C", "TZ=UTC"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("mariadb-dump of %s: %v: %s", f.cli.database, err, strings.TrimSpace(string(out)))
	}
	finished := f.now()
	pos, err := dumpPosition(file)
	if err != nil {
		return err
	}
	var ver string
	if err := f.db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&ver); err != nil {
		return fmt.Errorf("read the server's version: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, versionFile), []byte(ver+"\n"), 0o600); err != nil {
		return fmt.Errorf("write the base's version: %w", err)
	}
	env, svc := f.spec.Environment, f.spec.Service.Name
	startWAL := segmentName(f.st.Epoch, pos.File)
	snap, size, err := pitr.ShipDir(ctx, f.spec.Repo, env, svc, "base", startWAL, dir, "base of "+env+"/"+svc)
	if err != nil {
		return err
	}
	b := pitr.Base{Snapshot: snap, SystemID: systemID, StartLSN: pos.String(), EndLSN: pos.String(),
		StartWAL: startWAL, StartedAt: started, FinishedAt: finished, Bytes: size}
	if err := f.spec.Record.BaseShipped(ctx, b); err != nil {
		pitr.DeleteSnapshots(context.WithoutCancel(ctx), f.spec.Repo, snap) //nolint:errcheck
		return err
	}
	return nil
}

// baseFile is the dump in a base's snapshot.
const baseFile = "base.sql"

// dumpPosition reads the binlog position from the head of a --master-data=2 dump.
func dumpPosition(path string) (position, error) {
	fh, err := os.Open(path)
	if err != nil {
		return position{}, fmt.Errorf("read the base: %w", err)
	}
	defer fh.Close() //nolint:errcheck
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for i := 0; i < 200 && sc.Scan(); i++ {
		if m := changeMasterRE.FindStringSubmatch(sc.Text()); m != nil {
			n, _ := strconv.ParseInt(m[2], 10, 64)
			return position{File: m[1], Pos: n}, nil
		}
	}
	return position{}, errors.New("the base names no binlog position (mariadb-dump wrote no CHANGE MASTER " +
		"line: is log_bin on?)")
}

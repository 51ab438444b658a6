package redisrepl

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/pitr"
)

// Follower follows one Redis service as a replica: PSYNC, the RDB of a full resynchronization as a base, then
// the command stream, each command stamped with the time it arrived, into sequential segment files shipped every
// ShipEvery (the growing one again each time it grew). Run it with the job runner's backoff: a new Run resumes
// with PSYNC <replid> <offset+1> where the spool ends; when the server cannot continue there (its backlog lost
// the position, or its history changed), the stream has a gap and starts again from a new base.
type Follower struct {
	Environment, Service string
	URL                  string // the service URL; its user needs +psync +replconf
	Repo                 *backup.Repository
	Spool                string // directory of this follower's segments and RDB (created; kept across runs)
	Record               pitr.Recorder
	ShipEvery            time.Duration // default 1s
	BaseEvery            time.Duration // a new base after this long, so replay stays short; default 24h
	SegmentBytes         int64         // a segment is completed past this size; default 16 MiB
	SegmentAge           time.Duration // ... or this long after it was started; default 1h
	Now                  func() time.Time

	mu       sync.Mutex // the current segment and the position, shared by the reader and the shipper
	cur      *segmentFile
	replid   string
	offset   int64  // replication offset of the last byte processed
	db       string // the database the stream has selected there
	opened   []openedSegment
	shipped  string
	shipSize int64
}

// openedSegment is a segment this run started, with the offset before its first command: where a base taken
// meanwhile starts its replay.
type openedSegment struct {
	name  string
	start int64
}

// segmentFile is the segment being written.
type segmentFile struct {
	name    string
	num     uint64
	path    string
	f       *os.File
	w       *bufio.Writer
	size    int64
	opened  time.Time
	commits []time.Time
	lastEnd int64
}

func (f *Follower) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

func (f *Follower) segDir() string { return filepath.Join(f.Spool, "segments") }

// Run follows the service until ctx ends (then it returns nil) or the stream fails.
func (f *Follower) Run(ctx context.Context) (err error) {
	if f.ShipEvery <= 0 {
		f.ShipEvery = time.Second
	}
	if f.SegmentBytes <= 0 {
		f.SegmentBytes = 16 << 20
	}
	if f.SegmentAge <= 0 {
		f.SegmentAge = time.Hour
	}
	if f.BaseEvery <= 0 {
		f.BaseEvery = 24 * time.Hour
	}
	srv, err := parseURL(f.URL)
	if err != nil {
		return fmt.Errorf("redis service %q: %w", f.Service, err)
	}
	if err := os.MkdirAll(f.segDir(), 0o700); err != nil {
		return fmt.Errorf("create the segment spool: %w", err)
	}
	resume, err := f.loadSpool(ctx)
	if err != nil {
		return err
	}
	defer f.closeSegment()

	c, err := srv.dial(ctx)
	if err != nil {
		return fmt.Errorf("follow %s: %w", f.Service, err)
	}
	stop := context.AfterFunc(ctx, c.close)
	defer stop()
	defer c.close()
	meta, err := serverMeta(ctx, c)
	if err != nil {
		return err
	}
	for _, args := range [][]string{{"REPLCONF", "listening-port", "0"}, {"REPLCONF", "capa", "eof", "capa", "psync2"}} {
		if _, err := c.do(ctx, args...); err != nil {
			return fmt.Errorf("%s refuses %s: %w (run Test on the Settings tab)", f.Service, strings.Join(args[:2], " "), err)
		}
	}
	psync := []string{"PSYNC", "?", "-1"}
	if resume {
		psync = []string{"PSYNC", f.replid, strconv.FormatInt(f.offset+1, 10)}
	}
	if _, err := c.c.Write(command(psync...)); err != nil {
		return fmt.Errorf("send PSYNC: %w", err)
	}
	started := f.now()
	answer, err := psyncAnswer(c.r)
	if err != nil {
		return f.stopped(ctx, fmt.Errorf("read the answer to PSYNC: %w", err))
	}
	switch {
	case strings.HasPrefix(answer, "+CONTINUE"):
		if id := strings.TrimSpace(strings.TrimPrefix(answer, "+CONTINUE")); id != "" && id != f.replid {
			// The history goes on under a new id (a failover, REPLICAOF NO ONE): a new segment says so.
			if err := f.rotate(ctx, id); err != nil {
				return err
			}
		}
	case strings.HasPrefix(answer, "+FULLRESYNC"):
		fields := strings.Fields(answer)
		if len(fields) != 3 {
			return fmt.Errorf("unexpected answer to PSYNC: %q", truncate(answer, 80))
		}
		off, err := strconv.ParseInt(fields[2], 10, 64)
		if err != nil {
			return fmt.Errorf("unexpected answer to PSYNC: %q", truncate(answer, 80))
		}
		if err := f.fullResync(ctx, c, resume, fields[1], off, started, meta); err != nil {
			return f.stopped(ctx, err)
		}
	case strings.HasPrefix(answer, "-"):
		return fmt.Errorf("%s refuses PSYNC: %s (run Test on the Settings tab: managed Redis services often "+
			"block replication)", f.Service, strings.TrimPrefix(answer, "-"))
	default:
		return fmt.Errorf("unexpected answer to PSYNC: %q", truncate(answer, 80))
	}

	_, lastBase, _, err := f.Record.LatestBase(ctx)
	if err != nil {
		return f.stopped(ctx, err)
	}
	rebased := make(chan error, 1)
	rebasing := false

	ackNow := make(chan struct{}, 1)
	readErr := make(chan error, 1)
	go func() { readErr <- f.read(c.r, ackNow) }()
	ship := time.NewTicker(f.ShipEvery)
	defer ship.Stop()
	// Acknowledge every 100 ms for the first 2 s: a master that sent the RDB diskless starts the command stream
	// only at an acknowledgement after it saw its transfer end; then every second, as replicas do.
	ack := time.NewTicker(100 * time.Millisecond)
	defer ack.Stop()
	acks := 0
	sendAck := func() error {
		f.mu.Lock()
		off := f.offset
		f.mu.Unlock()
		_ = c.c.SetReadDeadline(time.Now().Add(2 * time.Minute)) // the master pings every 10 s by default
		if _, err := c.c.Write(command("REPLCONF", "ACK", strconv.FormatInt(off, 10))); err != nil {
			return fmt.Errorf("acknowledge the stream: %w", err)
		}
		return nil
	}
	defer func() {
		if rebasing {
			<-rebased
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return f.stopped(ctx, nil)
		case err := <-readErr:
			if ctx.Err() != nil {
				return f.stopped(ctx, nil)
			}
			return f.stopped(ctx, fmt.Errorf("the replication stream of %s broke: %w", f.Service, err))
		case <-ackNow:
			err = sendAck()
		case <-ack.C:
			if acks++; acks == 20 {
				ack.Reset(time.Second)
			}
			err = sendAck()
		case err = <-rebased:
			rebasing = false
			if err == nil {
				lastBase = f.now()
			}
		case <-ship.C:
			err = f.ship(ctx)
			if err == nil && !rebasing && f.now().Sub(lastBase) > f.BaseEvery {
				rebasing = true
				go func() { rebased <- f.rebase(ctx, srv, meta) }()
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return f.stopped(ctx, nil)
			}
			return f.stopped(ctx, err)
		}
	}
}

// stopped ships what was received before Run returns err (nil when ctx ended).
func (f *Follower) stopped(ctx context.Context, err error) error {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if serr := f.ship(sctx); serr != nil && err == nil && ctx.Err() == nil {
		err = serr
	}
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// read processes the command stream until it fails: every command advances the offset, and the changes are
// written to the current segment, stamped as they arrive.
func (f *Follower) read(r *bufio.Reader, ackNow chan<- struct{}) error {
	var multi []byte // the commands of an open MULTI block
	inMulti := false
	db := "" // the database a SELECT of the record selects
	for {
		cmd, err := readCommand(r)
		if err != nil {
			return err
		}
		name := cmd.name()
		if name == "SELECT" && len(cmd.args) == 2 {
			db = cmd.args[1]
		}
		switch {
		case name == "PING" || name == "REPLCONF":
			f.mu.Lock()
			if !inMulti {
				f.offset += int64(len(cmd.raw))
			} else {
				multi = append(multi, cmd.raw...) // counted with the block
			}
			f.mu.Unlock()
			if name == "REPLCONF" && len(cmd.args) > 1 && strings.EqualFold(cmd.args[1], "GETACK") {
				select {
				case ackNow <- struct{}{}:
				default:
				}
			}
			continue
		case name == "MULTI":
			inMulti, multi = true, append(multi[:0], cmd.raw...)
			continue
		case inMulti && name != "EXEC":
			multi = append(multi, cmd.raw...)
			continue
		case inMulti:
			cmd.raw = append(multi, cmd.raw...)
			inMulti = false
		}
		if err := f.write(cmd.raw, db); err != nil {
			return err
		}
		db = ""
	}
}

// write appends one record to the current segment, stamped now (under the lock, so a ship that read the clock
// after it holds it).
func (f *Follower) write(raw []byte, db string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.offset += int64(len(raw))
	if db != "" {
		f.db = db
	}
	rec := record{at: f.now().UTC(), end: f.offset, raw: raw}
	b := rec.encode()
	if _, err := f.cur.w.Write(b); err != nil {
		return fmt.Errorf("write segment %s: %w", f.cur.name, err)
	}
	f.cur.size += int64(len(b))
	f.cur.commits = append(f.cur.commits, rec.at)
	f.cur.lastEnd = rec.end
	return nil
}

// fullResync receives the RDB of a full resynchronization, ships it as a new base and starts its first segment.
// A full resynchronization where the spool asked to resume, or where the catalog already has a base, is a gap.
func (f *Follower) fullResync(ctx context.Context, c *conn, resumed bool, replid string, off int64, started time.Time,
	meta baseMeta,
) error {
	_, _, hadBase, err := f.Record.LatestBase(ctx)
	if err != nil {
		return err
	}
	if resumed || hadBase {
		reason := "Rewind's spool of the stream was lost"
		if resumed {
			reason = fmt.Sprintf("the server could not continue the replication stream at offset %d: its backlog "+
				"no longer holds it (raise repl-backlog-size, or keep Rewind running), or its history changed (a "+
				"restart without persistence, a failover)", f.offset+1)
		}
		if err := f.Record.Gap(ctx, reason+"; starting again from a new base"); err != nil {
			return err
		}
	}
	// The segment of the old history is complete.
	if err := f.finishSegment(ctx); err != nil {
		return err
	}
	dir := filepath.Join(f.Spool, "base")
	if err := emptyDir(dir); err != nil {
		return err
	}
	defer os.RemoveAll(dir) //nolint:errcheck
	size, err := receiveRDB(c.r, filepath.Join(dir, "dump.rdb"))
	if err != nil {
		return err
	}
	finished := f.now()
	meta.replid, meta.offset = replid, off
	if err := os.WriteFile(filepath.Join(dir, "base"), meta.marshal(), 0o600); err != nil {
		return fmt.Errorf("write the base's description: %w", err)
	}
	last, err := f.lastSegmentNumber()
	if err != nil {
		return err
	}
	num := firstSegment(finished, last)
	f.mu.Lock()
	f.replid, f.offset, f.db = replid, off, "0" // a new replica's stream selects its database first
	err = f.openSegment(num, replid, off)
	f.mu.Unlock()
	if err != nil {
		return err
	}
	name := segmentName(num)
	snap, bytes, err := pitr.ShipDir(ctx, f.Repo, f.Environment, f.Service, "base", name, dir,
		"base of "+f.Environment+"/"+f.Service)
	if err != nil {
		return err
	}
	b := pitr.Base{Snapshot: snap, SystemID: replid, StartLSN: strconv.FormatInt(off, 10),
		EndLSN: strconv.FormatInt(off, 10), StartWAL: name, StartedAt: started, FinishedAt: finished, Bytes: max(bytes, size)}
	if err := f.Record.BaseShipped(ctx, b); err != nil {
		pitr.DeleteSnapshots(context.WithoutCancel(ctx), f.Repo, snap) //nolint:errcheck
		return err
	}
	return f.ship(ctx)
}

// rebase takes a new base while the stream goes on: a second connection gets a full resynchronization, whose
// RDB holds the data up to its offset; the base's replay starts in the segment of the stream holding that offset
// (records up to it are skipped), so the stream has no gap.
func (f *Follower) rebase(ctx context.Context, srv server, meta baseMeta) error {
	started := f.now()
	c, err := srv.dial(ctx)
	if err != nil {
		return fmt.Errorf("new base of %s: %w", f.Service, err)
	}
	defer c.close()
	stop := context.AfterFunc(ctx, c.close)
	defer stop()
	for _, args := range [][]string{{"REPLCONF", "listening-port", "0"}, {"REPLCONF", "capa", "eof", "capa", "psync2"}} {
		if _, err := c.do(ctx, args...); err != nil {
			return fmt.Errorf("new base of %s: %w", f.Service, err)
		}
	}
	if _, err := c.c.Write(command("PSYNC", "?", "-1")); err != nil {
		return fmt.Errorf("new base of %s: send PSYNC: %w", f.Service, err)
	}
	answer, err := psyncAnswer(c.r)
	if err != nil {
		return fmt.Errorf("new base of %s: read the answer to PSYNC: %w", f.Service, err)
	}
	fields := strings.Fields(answer)
	if len(fields) != 3 || fields[0] != "+FULLRESYNC" {
		return fmt.Errorf("new base of %s: unexpected answer to PSYNC: %q", f.Service, truncate(answer, 80))
	}
	off, err := strconv.ParseInt(fields[2], 10, 64)
	if err != nil {
		return fmt.Errorf("new base of %s: unexpected answer to PSYNC: %q", f.Service, truncate(answer, 80))
	}
	dir := filepath.Join(f.Spool, "rebase")
	if err := emptyDir(dir); err != nil {
		return err
	}
	defer os.RemoveAll(dir) //nolint:errcheck
	size, err := receiveRDB(c.r, filepath.Join(dir, "dump.rdb"))
	if err != nil {
		return fmt.Errorf("new base of %s: %w", f.Service, err)
	}
	c.close() // the second replica is done
	finished := f.now()
	f.mu.Lock()
	replid, start := f.replid, ""
	for _, o := range f.opened {
		if o.start <= off {
			start = o.name
		}
	}
	f.mu.Unlock()
	if fields[1] != replid || start == "" {
		return fmt.Errorf("new base of %s: the server's history changed meanwhile (replication id %s, offset %d): "+
			"the follower starts again", f.Service, fields[1], off)
	}
	meta.replid, meta.offset = replid, off
	if err := os.WriteFile(filepath.Join(dir, "base"), meta.marshal(), 0o600); err != nil {
		return fmt.Errorf("write the base's description: %w", err)
	}
	snap, n, err := pitr.ShipDir(ctx, f.Repo, f.Environment, f.Service, "base", start, dir,
		"base of "+f.Environment+"/"+f.Service)
	if err != nil {
		return err
	}
	b := pitr.Base{Snapshot: snap, SystemID: replid, StartLSN: strconv.FormatInt(off, 10),
		EndLSN: strconv.FormatInt(off, 10), StartWAL: start, StartedAt: started, FinishedAt: finished, Bytes: max(n, size)}
	if err := f.Record.BaseShipped(ctx, b); err != nil {
		pitr.DeleteSnapshots(context.WithoutCancel(ctx), f.Repo, snap) //nolint:errcheck
		return err
	}
	return nil
}

// lastSegmentNumber is the number of the newest segment in the spool (0 for none).
func (f *Follower) lastSegmentNumber() (uint64, error) {
	names, err := f.spoolSegments()
	if err != nil || len(names) == 0 {
		return 0, err
	}
	return segmentNumber(names[len(names)-1])
}

func (f *Follower) spoolSegments() ([]string, error) {
	ents, err := os.ReadDir(f.segDir())
	if err != nil {
		return nil, fmt.Errorf("read the segment spool: %w", err)
	}
	var names []string
	for _, e := range ents {
		if _, err := segmentNumber(e.Name()); err == nil {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// openSegment starts segment num (f.mu held).
func (f *Follower) openSegment(num uint64, replid string, start int64) error {
	name := segmentName(num)
	path := filepath.Join(f.segDir(), name)
	file, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("create segment %s: %w", name, err)
	}
	if f.db == "" {
		f.db = "0"
	}
	h := segmentHeader{replid: replid, start: start, db: f.db}.line()
	w := bufio.NewWriterSize(file, 64<<10)
	if _, err := w.WriteString(h); err != nil {
		file.Close() //nolint:errcheck
		return fmt.Errorf("write segment %s: %w", name, err)
	}
	f.cur = &segmentFile{name: name, num: num, path: path, f: file, w: w, size: int64(len(h)), opened: f.now(),
		lastEnd: start}
	f.opened = append(f.opened, openedSegment{name: name, start: start})
	return nil
}

// loadSpool reopens the newest segment of the spool to go on writing it, after shipping the older ones (complete:
// a run stopped right after rotating). It reports whether the spool has a position to resume at.
func (f *Follower) loadSpool(ctx context.Context) (bool, error) {
	names, err := f.spoolSegments()
	if err != nil || len(names) == 0 {
		return false, err
	}
	for _, name := range names[:len(names)-1] {
		if err := f.shipFile(ctx, filepath.Join(f.segDir(), name), name, false); err != nil {
			return false, err
		}
		if err := os.Remove(filepath.Join(f.segDir(), name)); err != nil {
			return false, fmt.Errorf("remove shipped segment: %w", err)
		}
	}
	name := names[len(names)-1]
	path := filepath.Join(f.segDir(), name)
	num, _ := segmentNumber(name)
	seg := &segmentFile{name: name, num: num, path: path, opened: f.now()}
	db := ""
	h, valid, err := readSegment(path, func(_ segmentHeader, r record) error {
		seg.commits = append(seg.commits, r.at)
		seg.lastEnd = r.end
		if sel := selected(r.raw); sel != "" {
			db = sel
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	if len(seg.commits) == 0 {
		seg.lastEnd = h.start
	}
	if err := os.Truncate(path, valid); err != nil {
		return false, fmt.Errorf("cut segment %s after its last complete record: %w", name, err)
	}
	if seg.f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
		return false, fmt.Errorf("open segment %s: %w", name, err)
	}
	seg.w, seg.size = bufio.NewWriterSize(seg.f, 64<<10), valid
	if db == "" {
		db = h.db
	}
	f.cur, f.replid, f.offset, f.db = seg, h.replid, seg.lastEnd, db
	f.opened = append(f.opened, openedSegment{name: name, start: h.start})
	if pos, err := os.ReadFile(filepath.Join(f.Spool, "position")); err == nil {
		// the offset past the stream's pings, when the position was written after this segment's last record
		if fields := strings.Fields(string(pos)); len(fields) == 2 && fields[0] == h.replid {
			if off, err := strconv.ParseInt(fields[1], 10, 64); err == nil && off > f.offset {
				f.offset = off
			}
		}
	}
	return true, nil
}

// rotate completes the current segment and starts the next, under replication id replid.
func (f *Follower) rotate(ctx context.Context, replid string) error {
	old, err := f.cutSegment(func() error {
		f.replid = replid
		return f.openSegment(f.cur.num+1, replid, f.offset)
	})
	if err != nil {
		return err
	}
	return f.shipDone(ctx, old)
}

// finishSegment completes the current segment (if any) without starting another.
func (f *Follower) finishSegment(ctx context.Context) error {
	if f.cur == nil {
		return nil
	}
	old, err := f.cutSegment(func() error { f.cur = nil; return nil })
	if err != nil {
		return err
	}
	return f.shipDone(ctx, old)
}

// cutSegment closes the current segment and runs next (under f.mu) to replace it; it returns the closed file.
func (f *Follower) cutSegment(next func() error) (*segmentFile, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.cur
	if err := old.w.Flush(); err != nil {
		return nil, fmt.Errorf("write segment %s: %w", old.name, err)
	}
	if err := old.f.Close(); err != nil {
		return nil, fmt.Errorf("close segment %s: %w", old.name, err)
	}
	return old, next()
}

// shipDone ships a completed segment a last time and removes it from the spool.
func (f *Follower) shipDone(ctx context.Context, s *segmentFile) error {
	if err := f.shipFile(ctx, s.path, s.name, false); err != nil {
		return err
	}
	return os.Remove(s.path) //nolint:wrapcheck
}

func (f *Follower) closeSegment() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cur != nil {
		_ = f.cur.w.Flush()
		_ = f.cur.f.Close()
		f.cur = nil
	}
}

// ship ships the current segment when it grew since it was last shipped (completing it first when it is big or
// old enough), and reports the stream covered up to the moment it was read.
func (f *Follower) ship(ctx context.Context) error {
	f.mu.Lock()
	if f.cur == nil {
		f.mu.Unlock()
		return nil
	}
	cur := f.cur
	full := len(cur.commits) > 0 && (cur.size >= f.SegmentBytes || f.now().Sub(cur.opened) >= f.SegmentAge)
	f.mu.Unlock()
	if full {
		if err := f.rotate(ctx, f.replid); err != nil {
			return err
		}
	}
	f.mu.Lock()
	cur = f.cur
	if err := cur.w.Flush(); err != nil {
		f.mu.Unlock()
		return fmt.Errorf("write segment %s: %w", cur.name, err)
	}
	readAt := f.now()
	replid, offset := f.replid, f.offset
	var last time.Time
	if n := len(cur.commits); n > 0 {
		last = cur.commits[n-1]
	}
	unchanged := cur.name == f.shipped && cur.size == f.shipSize
	var stage string
	var commits []time.Time
	var err error
	if !unchanged {
		stage, err = f.stage(cur.path, cur.name, cur.commits)
		commits = append(commits, cur.commits...)
	}
	size, name, lastEnd := cur.size, cur.name, cur.lastEnd
	f.mu.Unlock()
	if err != nil {
		return err
	}
	if err := pitr.WriteFileAtomic(filepath.Join(f.Spool, "position"), []byte(replid+" "+strconv.FormatInt(offset, 10)+"\n")); err != nil {
		return err
	}
	if !unchanged {
		defer os.RemoveAll(stage) //nolint:errcheck
		if err := f.shipStaged(ctx, stage, pitr.Segment{Name: name, Partial: true, Commits: commits,
			LastLSN: strconv.FormatInt(lastEnd, 10), ReadAt: readAt}); err != nil {
			return err
		}
		f.shipped, f.shipSize = name, size
	}
	return f.Record.Report(ctx, pitr.Report{CoveredUntil: readAt, LastCommit: last})
}

// shipFile ships the segment file at path (complete unless partial).
func (f *Follower) shipFile(ctx context.Context, path, name string, partial bool) error {
	var commits []time.Time
	var lastEnd int64
	if _, _, err := readSegment(path, func(_ segmentHeader, r record) error {
		commits, lastEnd = append(commits, r.at), r.end
		return nil
	}); err != nil {
		return err
	}
	stage, err := f.stage(path, name, commits)
	if err != nil {
		return err
	}
	defer os.RemoveAll(stage) //nolint:errcheck
	return f.shipStaged(ctx, stage, pitr.Segment{Name: name, Partial: partial, Commits: commits,
		LastLSN: strconv.FormatInt(lastEnd, 10), ReadAt: f.now()})
}

// stage copies a segment file and its commits file into a directory to ship.
func (f *Follower) stage(path, name string, commits []time.Time) (string, error) {
	stage := filepath.Join(f.Spool, "ship", name)
	if err := os.RemoveAll(stage); err != nil {
		return "", fmt.Errorf("clear stage: %w", err)
	}
	if err := os.MkdirAll(stage, 0o700); err != nil {
		return "", fmt.Errorf("create stage: %w", err)
	}
	if err := pitr.CopyFile(path, filepath.Join(stage, name)); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(stage, "commits"), pitr.MarshalCommits(commits), 0o600); err != nil {
		return "", fmt.Errorf("write commits of %s: %w", name, err)
	}
	return stage, nil
}

// shipStaged uploads a staged segment and records it, deleting the copy it replaced.
func (f *Follower) shipStaged(ctx context.Context, stage string, s pitr.Segment) error {
	snap, size, err := pitr.ShipDir(ctx, f.Repo, f.Environment, f.Service, "wal", s.Name, stage,
		"Redis stream segment "+s.Name+" of "+f.Environment+"/"+f.Service)
	if err != nil {
		return err
	}
	s.Snapshot, s.Bytes = snap, size
	replaced, err := f.Record.SegmentShipped(ctx, s)
	if err != nil {
		pitr.DeleteSnapshots(context.WithoutCancel(ctx), f.Repo, snap) //nolint:errcheck
		return err
	}
	if replaced != "" && replaced != snap {
		return pitr.DeleteSnapshots(ctx, f.Repo, replaced)
	}
	return nil
}

// baseMeta is the "base" file shipped beside the RDB: the position it holds and what a rebuild needs to load it.
type baseMeta struct {
	replid    string
	offset    int64
	databases int
	version   string
}

func (m baseMeta) marshal() []byte {
	return fmt.Appendf(nil, "replid %s\noffset %d\ndatabases %d\nversion %s\n", m.replid, m.offset, m.databases, m.version)
}

func parseBaseMeta(data []byte) (baseMeta, error) {
	var m baseMeta
	for _, l := range strings.Split(string(data), "\n") {
		k, v, _ := strings.Cut(l, " ")
		switch k {
		case "replid":
			m.replid = v
		case "offset":
			m.offset, _ = strconv.ParseInt(v, 10, 64)
		case "databases":
			m.databases, _ = strconv.Atoi(v)
		case "version":
			m.version = v
		}
	}
	if m.replid == "" {
		return m, errors.New("the base's description has no replication id")
	}
	return m, nil
}

// serverMeta reads the server's version and number of databases (CONFIG GET databases, or, when the user may
// not run CONFIG, one more than the highest database holding keys, at least 16).
func serverMeta(ctx context.Context, c *conn) (baseMeta, error) {
	info, err := c.str(ctx, "INFO", "server")
	if err != nil {
		return baseMeta{}, fmt.Errorf("read the server's version (INFO server): %w", err)
	}
	m := baseMeta{version: infoField(info, "redis_version"), databases: 16}
	if v, err := c.do(ctx, "CONFIG", "GET", "databases"); err == nil {
		if a, ok := v.([]any); ok && len(a) == 2 {
			if s, ok := a[1].(string); ok {
				if n, err := strconv.Atoi(s); err == nil && n > 0 {
					m.databases = n
					return m, nil
				}
			}
		}
	}
	if ks, err := c.str(ctx, "INFO", "keyspace"); err == nil {
		for _, l := range strings.Split(ks, "\n") {
			if db, ok := strings.CutPrefix(strings.TrimSpace(l), "db"); ok {
				n, _ := strconv.Atoi(strings.SplitN(db, ":", 2)[0])
				m.databases = max(m.databases, n+1)
			}
		}
	}
	return m, nil
}

// selected is the database the last SELECT among a record's commands selects ("" when none does).
func selected(raw []byte) string {
	r := bufio.NewReader(bytes.NewReader(raw))
	db := ""
	for {
		c, err := readCommand(r)
		if err != nil {
			return db
		}
		if c.name() == "SELECT" && len(c.args) == 2 {
			db = c.args[1]
		}
	}
}

// psyncAnswer reads the answer to PSYNC, skipping the newlines a master sends while it waits to start the
// transfer (repl-diskless-sync-delay).
func psyncAnswer(r *bufio.Reader) (string, error) {
	for {
		l, err := line(r)
		if err != nil || l != "" {
			return l, err
		}
	}
}

// emptyDir makes dir an empty directory (0700), removing what a run cut off left in it.
func emptyDir(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("clear %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	return nil
}

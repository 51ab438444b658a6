package pgwal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/pitr"
)

// Follower follows one PostgreSQL service. Run it with the job runner's backoff: it returns when ctx ends or
// something fails (the stream broke, the server is unreachable), and a new Run resumes where the slot is.
type Follower struct {
	Environment, Service string
	URL                  string // the service URL; its role needs REPLICATION
	Repo                 *backup.Repository
	Spool                string // directory of this follower's WAL spool and base backups (created)
	Record               pitr.Recorder
	BinDir               string        // PostgreSQL tools; default: the server's major under /usr/lib/postgresql
	ShipEvery            time.Duration // how often the growing segment is shipped; default 1s
	BaseEvery            time.Duration // a new base after this long, so replay stays short; default 24h
	Now                  func() time.Time

	// the growing segment as last shipped: its name, modification time and size, and when its copy began
	partialName   string
	partialMod    time.Time
	partialSize   int64
	partialCopied time.Time
}

func (f *Follower) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

// ErrSlotLost is returned when the server removed WAL the slot still needed (max_slot_wal_keep_size): the
// stream has a gap, and the next Run starts again from a new base.
var ErrSlotLost = errors.New("the replication slot lost WAL it needed")

// Run follows the service until ctx ends (then it returns nil) or the stream fails.
func (f *Follower) Run(ctx context.Context) error {
	if f.ShipEvery <= 0 {
		f.ShipEvery = time.Second
	}
	if f.BaseEvery <= 0 {
		f.BaseEvery = 24 * time.Hour
	}
	c, err := parseConn(f.URL)
	if err != nil {
		return fmt.Errorf("postgresql service %q: %w", f.Service, err)
	}
	db, err := c.connect(ctx)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", f.Service, err)
	}
	defer db.Close(context.WithoutCancel(ctx)) //nolint:errcheck
	major, err := serverMajor(ctx, db)
	if err != nil {
		return err
	}
	bin, err := BinDir(f.BinDir, major)
	if err != nil {
		return err
	}
	sys, err := c.identify(ctx)
	if err != nil {
		return fmt.Errorf("open a replication connection to %s: %w (run Test on the Settings tab)", f.Service, err)
	}
	slot := SlotName(f.Environment, f.Service)
	walDir := filepath.Join(f.Spool, "wal")
	newBase := false
	status, _, err := slotState(ctx, db, slot)
	if err != nil {
		return err
	}
	if status == "lost" {
		// The WAL after the last shipped segment is gone: start again from a new base.
		if err := f.Record.Gap(ctx, fmt.Sprintf("the server removed WAL that replication slot %s still "+
			"needed (raise max_slot_wal_keep_size, or keep Rewind running): starting again from a new base backup",
			slot)); err != nil {
			return err
		}
		if err := dropSlot(ctx, db, slot); err != nil {
			return err
		}
		if err := os.RemoveAll(walDir); err != nil {
			return fmt.Errorf("clear the WAL spool: %w", err)
		}
		newBase = true
	}
	if err := os.MkdirAll(walDir, 0o700); err != nil {
		return fmt.Errorf("create the WAL spool: %w", err)
	}
	// The slot reserves WAL as it is created. pg_receivewal --create-slot makes one without (its restart_lsn
	// is set only when streaming starts), and a checkpoint in between (the base backup's own, at once) could
	// recycle that WAL and invalidate the new slot: seen in tests as "invalidating slot ... restart_lsn exceeds
	// max_slot_wal_keep_size" with the limit unset.
	if _, err := db.Exec(ctx, `SELECT pg_create_physical_replication_slot($1, true)
		WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)`, slot); err != nil {
		return fmt.Errorf("create replication slot %s: %w", slot, err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	recv := f.tool(ctx, c, bin, "pg_receivewal", "-D", walDir, "--slot", slot, "--synchronous", "--no-loop",
		"-d", c.dsn)
	var recvErr backup.Tail
	recv.Stderr = &recvErr
	recv.Cancel = func() error { return recv.Process.Signal(syscall.SIGTERM) }
	recv.WaitDelay = 10 * time.Second
	if err := recv.Start(); err != nil {
		return fmt.Errorf("start pg_receivewal: %w", err)
	}
	recvDone := make(chan error, 1)
	go func() { recvDone <- recv.Wait() }()
	defer func() {
		cancel()
		<-recvDone
	}()

	id, finished, ok, err := f.Record.LatestBase(ctx)
	if err != nil {
		return err
	}
	return pitr.Loop{ShipEvery: f.ShipEvery, BaseEvery: f.BaseEvery, Now: f.now,
		Base:     func(ctx context.Context) error { return f.base(ctx, c, bin, sys) },
		Received: recvDone,
		Stopped: func(err error) error {
			return fmt.Errorf("pg_receivewal stopped (%v): %s", err, recvErr.String())
		},
		Round: func(ctx context.Context) error {
			rep, err := f.ship(ctx, bin, walDir)
			if err != nil {
				return err
			}
			if rep.WALStatus, rep.LagBytes, err = slotState(ctx, db, slot); err == nil {
				err = f.Record.Report(ctx, rep)
			}
			if err != nil {
				return err
			}
			if rep.WALStatus == "lost" {
				return ErrSlotLost
			}
			return nil
		},
	}.Run(ctx, newBase || !ok || id != sys.ID, finished)
}

func (f *Follower) tool(ctx context.Context, c conn, bin, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(bin, name), args...)
	cmd.Env = c.env()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	return cmd
}

// ship ships every completed segment of the spool and the growing one, and says up to when the repository
// now holds every commit.
func (f *Follower) ship(ctx context.Context, bin, walDir string) (pitr.Report, error) {
	var rep pitr.Report
	readAt := f.now()
	ents, err := os.ReadDir(walDir)
	if err != nil {
		return rep, fmt.Errorf("read the WAL spool: %w", err)
	}
	var done []string
	partial := ""
	for _, e := range ents {
		name := e.Name()
		switch {
		case ValidWALName(name):
			done = append(done, name)
		case strings.HasSuffix(name, ".partial") && ValidWALName(strings.TrimSuffix(name, ".partial")):
			if n := strings.TrimSuffix(name, ".partial"); n > partial {
				partial = n
			}
		}
	}
	sort.Strings(done)
	note := func(s pitr.Segment) {
		if n := len(s.Commits); n > 0 && s.Commits[n-1].After(rep.LastCommit) {
			rep.LastCommit = s.Commits[n-1]
		}
	}
	for _, name := range done {
		s, err := f.shipSegment(ctx, bin, filepath.Join(walDir, name), name, false, readAt)
		if err != nil {
			return rep, err
		}
		note(s)
		if err := os.Remove(filepath.Join(walDir, name)); err != nil {
			return rep, fmt.Errorf("remove shipped segment: %w", err)
		}
	}
	if partial != "" {
		path := filepath.Join(walDir, partial+".partial")
		st, err := os.Stat(path)
		if errors.Is(err, os.ErrNotExist) {
			return rep, nil // completed meanwhile: the next round ships it
		}
		if err != nil {
			return rep, fmt.Errorf("read the WAL spool: %w", err)
		}
		// Unchanged since the last copy, which began well after its last write: nothing new to ship. (The
		// kernel stamps modification times with a coarse clock, so a write just before a copy may not
		// change the stamp: such a copy is not trusted to hold it, and the segment is shipped again.)
		unchanged := partial == f.partialName && st.ModTime().Equal(f.partialMod) && st.Size() == f.partialSize &&
			f.partialCopied.Sub(st.ModTime()) > 50*time.Millisecond
		if !unchanged {
			copied := time.Now() // compared with the file system's clock, not an injected one
			s, err := f.shipSegment(ctx, bin, path, partial, true, readAt)
			if errors.Is(err, os.ErrNotExist) {
				return rep, nil
			}
			if err != nil {
				return rep, err
			}
			note(s)
			f.partialName, f.partialMod, f.partialSize, f.partialCopied = partial, st.ModTime(), st.Size(), copied
		}
	}
	if partial != "" || len(done) > 0 {
		rep.CoveredUntil = readAt.Add(-Margin)
	}
	return rep, nil
}

// shipSegment uploads one WAL file (as name, with its commits file) and records it.
func (f *Follower) shipSegment(ctx context.Context, bin, path, name string, partial bool, readAt time.Time) (pitr.Segment, error) {
	stage := filepath.Join(f.Spool, "ship", name)
	if err := os.RemoveAll(stage); err != nil {
		return pitr.Segment{}, fmt.Errorf("clear stage: %w", err)
	}
	if err := os.MkdirAll(stage, 0o700); err != nil {
		return pitr.Segment{}, fmt.Errorf("create stage: %w", err)
	}
	defer os.RemoveAll(stage) //nolint:errcheck
	dst := filepath.Join(stage, name)
	if partial {
		// pg_receivewal keeps writing the .partial file: ship a copy, every byte of it read at once
		if err := pitr.CopyFile(path, dst); err != nil {
			return pitr.Segment{}, err
		}
	} else if err := os.Link(path, dst); err != nil {
		return pitr.Segment{}, fmt.Errorf("stage segment %s: %w", name, err)
	}
	commits, err := readCommits(ctx, filepath.Join(bin, "pg_waldump"), dst)
	if err != nil {
		return pitr.Segment{}, err
	}
	if err := os.WriteFile(filepath.Join(stage, "commits"), pitr.MarshalCommits(commits.Times), 0o600); err != nil {
		return pitr.Segment{}, fmt.Errorf("write commits of %s: %w", name, err)
	}
	snap, size, err := pitr.ShipDir(ctx, f.Repo, f.Environment, f.Service, "wal", name, stage,
		"WAL "+name+" of "+f.Environment+"/"+f.Service)
	if err != nil {
		return pitr.Segment{}, err
	}
	s := pitr.Segment{Name: name, Snapshot: snap, Partial: partial, Commits: commits.Times, LastLSN: commits.LastLSN,
		ReadAt: readAt, Bytes: size}
	replaced, err := f.Record.SegmentShipped(ctx, s)
	if err != nil {
		pitr.DeleteSnapshots(context.WithoutCancel(ctx), f.Repo, snap) //nolint:errcheck
		return pitr.Segment{}, err
	}
	if replaced != "" && replaced != snap {
		if err := pitr.DeleteSnapshots(ctx, f.Repo, replaced); err != nil {
			return pitr.Segment{}, err
		}
	}
	return s, nil
}

// base takes a base backup (tar, with the WAL it needs) and ships it.
func (f *Follower) base(ctx context.Context, c conn, bin string, sys system) error {
	started := f.now()
	dir := filepath.Join(f.Spool, fmt.Sprintf("base-%d", started.UnixNano()))
	defer os.RemoveAll(dir) //nolint:errcheck
	if out, err := f.tool(ctx, c, bin, "pg_basebackup", "-D", dir, "-F", "tar", "-X", "stream", "-c", "fast",
		"--no-sync", "-d", c.dsn).CombinedOutput(); err != nil {
		return fmt.Errorf("pg_basebackup: %v: %s", err, strings.TrimSpace(string(out)))
	}
	finished := f.now()
	var man struct {
		Ranges []struct {
			Timeline int    `json:"Timeline"`
			Start    string `json:"Start-LSN"`
			End      string `json:"End-LSN"`
		} `json:"WAL-Ranges"`
	}
	raw, err := os.ReadFile(filepath.Join(dir, "backup_manifest"))
	if err != nil {
		return fmt.Errorf("read the base backup's manifest: %w", err)
	}
	if err := json.Unmarshal(raw, &man); err != nil || len(man.Ranges) == 0 {
		return fmt.Errorf("read the base backup's manifest: no WAL range (%v)", err)
	}
	r := man.Ranges[0]
	startWAL, err := WALForLSN(r.Timeline, r.Start)
	if err != nil {
		return err
	}
	snap, size, err := pitr.ShipDir(ctx, f.Repo, f.Environment, f.Service, "base", startWAL, dir,
		"base of "+f.Environment+"/"+f.Service)
	if err != nil {
		return err
	}
	b := pitr.Base{Snapshot: snap, SystemID: sys.ID, Timeline: r.Timeline, StartLSN: r.Start, EndLSN: r.End,
		StartWAL: startWAL, StartedAt: started, FinishedAt: finished, Bytes: size}
	if err := f.Record.BaseShipped(ctx, b); err != nil {
		pitr.DeleteSnapshots(context.WithoutCancel(ctx), f.Repo, snap) //nolint:errcheck
		return err
	}
	return nil
}

// slotState returns the slot's wal_status ("" when the slot does not exist) and how many bytes of WAL the
// server wrote past what the slot's client confirmed.
func slotState(ctx context.Context, db *pgx.Conn, slot string) (string, int64, error) {
	var status string
	var lag int64
	err := db.QueryRow(ctx, `SELECT COALESCE(wal_status, ''),
		COALESCE((pg_current_wal_lsn() - restart_lsn)::bigint, 0) FROM pg_replication_slots WHERE slot_name = $1`,
		slot).Scan(&status, &lag)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, fmt.Errorf("read replication slot %s: %w", slot, err)
	}
	return status, lag, nil
}

func dropSlot(ctx context.Context, db *pgx.Conn, slot string) error {
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		// the walsender of a client that just stopped may hold the slot for a moment
		_, err = db.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
			WHERE slot_name = $1`, slot)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("drop replication slot %s: %w", slot, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("drop replication slot %s: %w", slot, err)
}

// DropSlot removes env's service's replication slot from its server (nothing when it does not exist), so the
// server no longer keeps WAL for Rewind. Call it after the follower stopped.
func DropSlot(ctx context.Context, rawURL, env, service string) error {
	c, err := parseConn(rawURL)
	if err != nil {
		return fmt.Errorf("postgresql service %q: %w", service, err)
	}
	db, err := c.connect(ctx)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", service, err)
	}
	defer db.Close(context.WithoutCancel(ctx)) //nolint:errcheck
	return dropSlot(ctx, db, SlotName(env, service))
}

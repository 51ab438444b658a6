// Package backuptest is the round-trip contract suite every backup.Source runs against a real service:
// fill → checksum → pin → write more → stream → damage → prepare → switch → compare checksums, plus the
// undo paths (Replaced.Pin, Replaced.Revert) and Prepared.Discard.
//
// A Case describes one service under test. The suite stands in for the repository by copying a capture's
// folder into a temporary directory and handing it back to Prepare through kopia's localfs, so it needs no
// kopia repository.
package backuptest

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kopia/kopia/fs"
	"github.com/kopia/kopia/fs/localfs"

	"github.com/rewind/rewind/backup"
)

// State is a service's full state as comparable digests: one entry per object (a table, a key, a file), e.g.
// "table public.users" → sha256 of its sorted rows. Two states are equal when they have the same entries.
type State map[string]string

// Case is one service under test.
type Case struct {
	// Source is the Source under test, built on the service's live state.
	Source backup.Source
	// Fill puts varied data into the empty service.
	Fill func(t testing.TB)
	// Checksum returns the service's full live state.
	Checksum func(t testing.TB) State
	// Write makes a small change that alters the state (e.g. inserts a row); n counts the calls from 1. The
	// suite calls it right after Pin returns: such writes must not be in the backup.
	Write func(t testing.TB, n int)
	// Damage changes the state substantially: updates, deletes, drops an object, adds one.
	Damage func(t testing.TB)
}

// Counter is a backup.Progress that counts, safe for concurrent use.
type Counter struct {
	total atomic.Int64
	done  atomic.Int64
}

// SetTotal implements backup.Progress.
func (c *Counter) SetTotal(n int64) { c.total.Store(n) }

// Add implements backup.Progress.
func (c *Counter) Add(n int64) { c.done.Add(n) }

// Total returns the last total set.
func (c *Counter) Total() int64 { return c.total.Load() }

// Done returns the bytes added.
func (c *Counter) Done() int64 { return c.done.Load() }

// Context returns a context for one test step with a generous deadline.
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// RoundTrip runs the contract suite on c.
func RoundTrip(t *testing.T, c Case) {
	ctx := Context(t)
	c.Fill(t)
	a := c.Checksum(t)
	if len(a) == 0 {
		t.Fatal("Checksum after Fill is empty: the case fills nothing")
	}

	// Pin, then write: the write must not be in the backup.
	capture, err := c.Source.Pin(ctx)
	if err != nil {
		t.Fatalf("Pin: %v", err)
	}
	// What the backup records of its data for previews is the state at the pin, as the live one reads then.
	var atPin *backup.Summary
	if sz, ok := c.Source.(backup.Summarizer); ok {
		if atPin, err = sz.Summarize(ctx); err != nil {
			t.Fatalf("Summarize: %v", err)
		}
	}
	c.Write(t, 1)
	info := capture.Info()
	if info.PinnedAt.IsZero() {
		t.Errorf("Info().PinnedAt is zero")
	}
	if info.Version == "" {
		t.Errorf("Info().Version is empty")
	}
	var progress Counter
	backupDir := Stream(t, capture, &progress)
	if progress.Done() == 0 {
		t.Errorf("Folder reported no progress")
	}
	if cs, ok := capture.(backup.CaptureSummarizer); ok {
		got, err := cs.Summary()
		if err != nil {
			t.Fatalf("capture's Summary: %v", err)
		}
		if atPin == nil {
			t.Fatal("the capture has a Summary, its Source no Summarize")
		}
		if g, w := fmt.Sprintf("%+v", *got), fmt.Sprintf("%+v", *atPin); g != w {
			t.Errorf("capture's Summary = %s,\nthe live Summarize at the pin = %s", g, w)
		}
		if len(got.Tables)+len(got.Keyspaces) == 0 {
			t.Errorf("capture's Summary lists nothing: %+v", *got)
		}
		if after, err := c.Source.(backup.Summarizer).Summarize(ctx); err != nil {
			t.Fatalf("Summarize after Write: %v", err)
		} else if fmt.Sprintf("%+v", *after) == fmt.Sprintf("%+v", *atPin) {
			t.Errorf("Summarize after Write = %+v, the same as at the pin", *after)
		}
	}
	if err := capture.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := capture.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	b := c.Checksum(t)
	if Equal(a, b) {
		t.Fatalf("Write did not change the state")
	}

	// Damage the live state; Prepare must leave it alone, and Discard too.
	c.Damage(t)
	damaged := c.Checksum(t)
	if Equal(a, damaged) || Equal(b, damaged) {
		t.Fatalf("Damage did not change the state")
	}
	prep, err := c.Source.Prepare(ctx, Dir(t, backupDir), backup.NopProgress)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	MustEqual(t, "live state after Prepare", damaged, c.Checksum(t))
	if err := prep.Discard(ctx); err != nil {
		t.Fatalf("Discard: %v", err)
	}
	if err := prep.Discard(ctx); err != nil {
		t.Fatalf("second Discard: %v", err)
	}
	MustEqual(t, "live state after Prepare+Discard", damaged, c.Checksum(t))

	// A crash after Prepare, before any switch: Sweep removes the prepared state by the operation's scratch id
	// and leaves the live state alone; the restore's own Discard (had it survived) still succeeds after it.
	if sw, ok := c.Source.(backup.Sweeper); ok {
		sctx := backup.WithScratch(ctx, "contract crash "+t.Name())
		prep, err := c.Source.Prepare(sctx, Dir(t, backupDir), backup.NopProgress)
		if err != nil {
			t.Fatalf("Prepare: %v", err)
		}
		removed, err := sw.Sweep(ctx, backup.ScratchID(sctx))
		if err != nil || len(removed) == 0 {
			t.Fatalf("Sweep after Prepare = %v, %v; want the prepared state removed", removed, err)
		}
		if again, err := sw.Sweep(ctx, backup.ScratchID(sctx)); err != nil || len(again) != 0 {
			t.Fatalf("second Sweep = %v, %v; want nothing left to remove", again, err)
		}
		if other, err := sw.Sweep(ctx, backup.ScratchID(backup.WithScratch(ctx, "another operation"))); err != nil || len(other) != 0 {
			t.Fatalf("Sweep of another operation = %v, %v; want nothing", other, err)
		}
		MustEqual(t, "live state after Prepare+Sweep", damaged, c.Checksum(t))
		if err := prep.Discard(ctx); err != nil {
			t.Fatalf("Discard after Sweep: %v", err)
		}
		MustEqual(t, "live state after Prepare+Sweep+Discard", damaged, c.Checksum(t))
	}

	// Prepare again and switch: the live state is the pinned one, exactly.
	progress = Counter{}
	prep, err = c.Source.Prepare(ctx, Dir(t, backupDir), &progress)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	MustEqual(t, "live state after Prepare", damaged, c.Checksum(t))
	replaced, err := prep.Switch(ctx)
	if err != nil {
		t.Fatalf("Switch: %v", err)
	}
	MustEqual(t, "live state after Switch (the state at Pin)", a, c.Checksum(t))
	if err := prep.Discard(ctx); err != nil {
		t.Fatalf("Discard after Switch: %v", err)
	}
	MustEqual(t, "live state after Switch and Discard of the prepared state", a, c.Checksum(t))

	// The replaced state can be captured: it is the damaged state.
	rc, err := replaced.Pin(ctx)
	if err != nil {
		t.Fatalf("Replaced.Pin: %v", err)
	}
	replacedDir := Stream(t, rc, backup.NopProgress)
	if err := rc.Close(); err != nil {
		t.Fatalf("Replaced capture Close: %v", err)
	}

	// Revert puts the damaged state back.
	if err := replaced.Revert(ctx); err != nil {
		t.Fatalf("Revert: %v", err)
	}
	MustEqual(t, "live state after Revert (the state before Switch)", damaged, c.Checksum(t))
	if err := replaced.Discard(ctx); err != nil {
		t.Fatalf("Discard after Revert: %v", err)
	}
	MustEqual(t, "live state after Revert and Discard", damaged, c.Checksum(t))

	// Restoring the capture of the replaced state gives the damaged state back, after one more write.
	c.Write(t, 2)
	prep, err = c.Source.Prepare(ctx, Dir(t, replacedDir), backup.NopProgress)
	if err != nil {
		t.Fatalf("Prepare of the replaced state's capture: %v", err)
	}
	replaced, err = prep.Switch(ctx)
	if err != nil {
		t.Fatalf("Switch to the replaced state's capture: %v", err)
	}
	MustEqual(t, "live state after restoring the replaced state's capture", damaged, c.Checksum(t))
	if err := replaced.Discard(ctx); err != nil {
		t.Fatalf("Replaced.Discard: %v", err)
	}
	if err := replaced.Discard(ctx); err != nil {
		t.Fatalf("second Replaced.Discard: %v", err)
	}
	MustEqual(t, "live state after Replaced.Discard", damaged, c.Checksum(t))
}

// Stream reads capture's folder into a new temporary directory, as the repository would, and returns the
// directory. It fails t when any file of the folder fails to read.
func Stream(t testing.TB, capture backup.Capture, p backup.Progress) string {
	t.Helper()
	dst := t.TempDir()
	if err := StreamErr(Context(t), capture, p, dst); err != nil {
		t.Fatalf("stream capture: %v", err)
	}
	return dst
}

// StreamErr reads capture's folder into dst and returns the first error.
func StreamErr(ctx context.Context, capture backup.Capture, p backup.Progress, dst string) error {
	dir, err := capture.Folder(ctx, p)
	if err != nil {
		return fmt.Errorf("folder: %w", err)
	}
	return CopyDir(ctx, dir, dst)
}

// CopyDir copies a kopia directory tree (static, streaming or local) into the local directory dst.
func CopyDir(ctx context.Context, dir fs.Directory, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	return fs.IterateEntries(ctx, dir, func(ctx context.Context, e fs.Entry) error {
		name := e.Name()
		if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
			return fmt.Errorf("bad entry name %q", name)
		}
		path := filepath.Join(dst, name)
		switch e := e.(type) {
		case fs.Directory:
			return CopyDir(ctx, e, path)
		case fs.StreamingFile:
			r, err := e.GetReader(ctx)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			defer r.Close()
			return writeFile(path, r)
		case fs.File:
			r, err := e.Open(ctx)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			defer r.Close()
			return writeFile(path, r)
		default:
			return fmt.Errorf("%s: unsupported entry %T", name, e)
		}
	})
}

func writeFile(path string, r io.Reader) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return f.Close()
}

// Dir opens the local directory path as a kopia directory, as Prepare receives it.
func Dir(t testing.TB, path string) fs.Directory {
	t.Helper()
	d, err := localfs.Directory(path)
	if err != nil {
		t.Fatalf("localfs.Directory(%s): %v", path, err)
	}
	return d
}

// Equal reports whether two states are the same.
func Equal(a, b State) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// Diff describes how got differs from want, one line per object, at most 20 lines.
func Diff(want, got State) string {
	var lines []string
	for k, v := range want {
		if w, ok := got[k]; !ok {
			lines = append(lines, "missing "+k)
		} else if w != v {
			lines = append(lines, fmt.Sprintf("changed %s: got %.60s, want %.60s", k, w, v))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			lines = append(lines, "extra "+k)
		}
	}
	sort.Strings(lines)
	if len(lines) > 20 {
		lines = append(lines[:20], fmt.Sprintf("... and %d more", len(lines)-20))
	}
	return strings.Join(lines, "\n")
}

// MustEqual fails t when got differs from want.
func MustEqual(t testing.TB, what string, want, got State) {
	t.Helper()
	if !Equal(want, got) {
		t.Fatalf("%s differs:\n%s", what, Diff(want, got))
	}
}

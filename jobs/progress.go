package jobs

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/rewind/rewind/db"
)

// Progress is a running job's view of its activity: bytes done against an estimated total (it implements
// backup.Progress) and log lines. Updates are buffered and written to the catalog about once a second, so a fast
// job never floods the catalog and a slow one still shows movement.
type Progress struct {
	r  *Runner
	id int64

	flushMu sync.Mutex // held through a flush, so OnPercent(nil) waits out one in flight
	mu      sync.Mutex
	total   int64
	done    int64
	written int      // percent last written
	lines   []string // log lines not yet written
	mirror  func(ctx context.Context, pct int)
	quit    chan struct{}
	flushed chan struct{}
}

func newProgress(r *Runner, id int64) *Progress {
	p := &Progress{r: r, id: id, written: -1, quit: make(chan struct{}), flushed: make(chan struct{})}
	go p.loop()
	return p
}

// SetTotal sets the estimated number of bytes of the whole job.
func (p *Progress) SetTotal(bytes int64) {
	p.mu.Lock()
	p.total = bytes
	p.mu.Unlock()
}

// Add records n more bytes done.
func (p *Progress) Add(n int64) {
	p.mu.Lock()
	p.done += n
	p.mu.Unlock()
}

// OnPercent calls fn with the percentage each time progress is written, so a job can mirror it on its own
// record (a backup's row). OnPercent(nil) stops that; when it returns, fn is not running and won't run again.
func (p *Progress) OnPercent(fn func(ctx context.Context, pct int)) {
	p.flushMu.Lock()
	defer p.flushMu.Unlock()
	p.mu.Lock()
	p.mirror = fn
	p.mu.Unlock()
}

// Logf appends a line to the activity's log.
func (p *Progress) Logf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	p.mu.Lock()
	p.lines = append(p.lines, strings.TrimRight(line, "\n"))
	p.mu.Unlock()
}

// Write appends output (of a hook, say) to the activity's log, line by line.
func (p *Progress) Write(b []byte) (int, error) {
	p.Logf("%s", b)
	return len(b), nil
}

// Percent is the share of the work done, 0–99 while the job runs: 100 is written only when it succeeds.
func (p *Progress) Percent() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.percentLocked()
}

func (p *Progress) percentLocked() int {
	if p.total <= 0 {
		return 0
	}
	pct := int(p.done * 100 / p.total)
	return min(max(pct, 0), 99)
}

func (p *Progress) loop() {
	defer close(p.flushed)
	t := time.NewTicker(p.r.ProgressInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			p.flush()
		case <-p.quit:
			p.flush()
			return
		}
	}
}

// Flush writes what is pending now, for a line that must survive a crash that follows.
func (p *Progress) Flush() { p.flush() }

// stop writes what is pending and ends the loop.
func (p *Progress) stop() {
	close(p.quit)
	<-p.flushed
}

func (p *Progress) flush() {
	p.flushMu.Lock()
	defer p.flushMu.Unlock()
	p.mu.Lock()
	pct := p.percentLocked()
	lines := p.lines
	p.lines = nil
	changed := pct != p.written
	p.written = pct
	mirror := p.mirror
	p.mu.Unlock()
	if !changed && len(lines) == 0 {
		return
	}
	upd := db.ActivityUpdate{Progress: &pct}
	if len(lines) > 0 {
		log := strings.Join(lines, "\n")
		upd.AppendLog = &log
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := p.r.store.UpdateActivity(ctx, p.id, upd); err != nil {
		p.r.log.Error("write progress", "activity", p.id, "err", err)
	}
	if changed && mirror != nil {
		mirror(ctx, pct)
	}
}

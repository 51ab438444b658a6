package views

import (
	"context"
	"html"
	"io"
	"net/url"
	"strconv"
	"sync"

	"github.com/a-h/templ"

	"github.com/rewind/rewind/db"
)

// backupRows is the rows of the Backups tab, one per backup of d. They are the one part of the dashboard
// rendered once per backup, so they are written here in Go rather than in templ: templ passes every value
// through fmt.Sprint and every class attribute through a map, and with 25 rows of 17 values each that was 40%
// of the tab's CPU under 50 concurrent clients (bench/backups_tab.sh). Each row is built in one pooled buffer
// and written at once. The markup is what the templ row rendered, byte for byte; TestBackupListGolden pins it
// (and its escaping) so a change to it is a deliberate one.
func backupRows(d *BackupsData) templ.Component { return backupRowsComponent{d} }

type backupRowsComponent struct{ d *BackupsData }

// rowBuffers recycles the buffer a row is built in (a row is about 1.2 KB).
var rowBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

const maxPooledRow = 64 << 10

func (r backupRowsComponent) Render(ctx context.Context, w io.Writer) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	bp := rowBuffers.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= maxPooledRow { // a row with a huge error message does not pin its buffer
			rowBuffers.Put(bp)
		}
	}()
	for _, b := range r.d.Backups {
		*bp = appendBackupRow((*bp)[:0], r.d, b)
		if _, err := w.Write(*bp); err != nil {
			return err
		}
	}
	return nil
}

// appendBackupRow appends the <tr> of backup b.
func appendBackupRow(dst []byte, d *BackupsData, b *db.Backup) []byte {
	state := backupState(b)
	dst = append(dst, `<tr data-testid="backup-row" data-id="`...)
	dst = appendHTML(dst, b.ID)
	dst = append(dst, `" data-status="`...)
	dst = appendHTML(dst, b.Status)
	dst = append(dst, `"><td class="nowrap" title="`...)
	start := len(dst)
	dst = appendTime(dst, b)
	created := dst[start:]
	dst = append(dst, `">`...)
	dst = append(dst, created...)
	dst = append(dst, `</td><td data-label="Complete"><div class="progress-cell"><progress class="p-`...)
	dst = appendHTML(dst, state)
	dst = append(dst, `" value="`...)
	dst = strconv.AppendInt(dst, int64(b.Progress), 10)
	dst = append(dst, `" max="100" aria-label="% complete"></progress> <span data-testid="backup-progress">`...)
	dst = strconv.AppendInt(dst, int64(b.Progress), 10)
	dst = append(dst, `%</span></div></td><td><a class="mono" href="/backups/`...)
	id := url.PathEscape(b.ID) // as backupURL
	dst = appendHTML(dst, id)
	dst = append(dst, `" data-testid="backup-link">`...)
	dst = appendHTML(dst, b.ID)
	dst = append(dst, `</a>`...)
	if n := d.Retention.Notes[b.ID]; n != "" { // RetentionNote
		dst = append(dst, `<div class="muted small retention-note" data-testid="retention-note">`...)
		dst = appendHTML(dst, n)
		dst = append(dst, `</div>`...)
	}
	dst = append(dst, `</td><td data-label="Kind"><span class="badge plain" data-testid="backup-kind">`...)
	dst = appendHTML(dst, b.Kind)
	dst = append(dst, `</span><div class="muted small" data-testid="backup-mode">`...)
	dst = append(dst, modeWord(b.Live)...)
	dst = append(dst, `</div></td><td class="nowrap" data-label="Size" data-testid="backup-size">`...)
	start = len(dst)
	dst = appendEscapedTail(appendSizeOrDash(dst, b.SizeBytes, b.Status), start)
	dst = append(dst, `</td><td class="hide-sm hide-md nowrap" data-testid="backup-new-bytes">`...)
	start = len(dst)
	dst = appendEscapedTail(appendSizeOrDash(dst, b.NewBytes, ""), start)
	dst = append(dst, `</td><td class="hide-sm nowrap" data-testid="backup-pause">`...)
	start = len(dst)
	dst = appendEscapedTail(appendPause(dst, b), start)
	dst = append(dst, `</td><td><span class="badge b-`...)
	dst = appendHTML(dst, state)
	dst = append(dst, `" data-testid="backup-status" title="`...)
	dst = appendHTML(dst, b.Error)
	dst = append(dst, `">`...)
	dst = appendHTML(dst, b.Status)
	dst = append(dst, `</span></td><td data-testid="backup-restorable">`...)
	if b.Restorable() {
		dst = append(dst, `yes`...)
	} else {
		dst = append(dst, `<span class="muted">no</span>`...)
	}
	dst = append(dst, `</td><td class="actions-cell">`...)
	if b.Restorable() {
		dst = append(dst, `<a class="btn btn-sm" href="/backups/`...)
		dst = appendHTML(dst, id)
		dst = append(dst, `/restore" data-testid="backup-restore">Restore</a>`...)
	}
	return append(dst, `</td></tr>`...)
}

// appendTime appends fmtTime(b.CreatedAt).
func appendTime(dst []byte, b *db.Backup) []byte {
	if b.CreatedAt.IsZero() {
		return dst
	}
	return b.CreatedAt.Local().AppendFormat(dst, timeFormat)
}

// appendEscapedTail escapes dst[start:] when it holds a character HTML escapes (the "<" of "< 1 ms"); sizes
// and durations mostly do not.
func appendEscapedTail(dst []byte, start int) []byte {
	for _, c := range dst[start:] {
		if c == '<' || c == '>' || c == '&' || c == '\'' || c == '"' {
			tail := string(dst[start:])
			return appendHTML(dst[:start], tail)
		}
	}
	return dst
}

// appendHTML appends s escaped as templ escapes text and attribute values. html.EscapeString returns s itself
// when nothing needs escaping, as for nearly every value here, so that costs no allocation.
func appendHTML(dst []byte, s string) []byte { return append(dst, html.EscapeString(s)...) }

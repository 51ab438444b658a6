package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/rewind/rewind/backup/pitr/pgwal"
	"github.com/rewind/rewind/backup/pitr/pitrtest"
	"github.com/rewind/rewind/backup/testserver"
	"github.com/rewind/rewind/db"
)

// TestBrowserRestoreAt drives the environment page in headless chromium: the point-in-time card shows the
// follower, Test lists the prerequisites (HTMX), then a moment picked in the date-time field and the typed name
// restore the environment, and the database holds exactly the markers committed by then.
func TestBrowserRestoreAt(t *testing.T) {
	b := startBrowser(t, "browser-pitr")
	b.StepTimeout = 90 * time.Second
	m := startDashboard(t, false)
	ctx := context.Background()
	srv := testserver.StartPostgres(t)
	dbName := srv.CreateDatabase(t, "")
	pgURL := srv.URL(dbName)
	env := testserver.UniqueName("web")
	t.Cleanup(func() { pgwal.DropSlot(context.Background(), pgURL, env, "db") }) //nolint:errcheck
	stop := make(chan struct{})
	markers := pitrtest.Writer(t, pgURL, stop)
	if err := m.Catalog.CreateEnvironment(ctx, &db.Environment{Name: env, Type: db.EnvProduction,
		Services: []db.Service{{Name: "db", Type: db.ServicePostgreSQL, URL: pgURL}}, PITR: &db.PITR{Enabled: true}}); err != nil {
		t.Fatal(err)
	}
	var base time.Time
	waitFor := func(what string, cond func(*db.PITRStream) bool) {
		t.Helper()
		for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			if st, err := m.Catalog.FindPITRStream(ctx, env, "db"); err == nil && cond(st) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	waitFor("a base", func(st *db.PITRStream) bool {
		bases, _ := m.Catalog.FindPITRBases(ctx, st.ID)
		if len(bases) > 0 {
			base = bases[0].FinishedAt
		}
		return len(bases) > 0
	})
	time.Sleep(3 * time.Second)
	close(stop)
	ms := markers()
	last := ms[len(ms)-1].After
	waitFor("the last marker shipped", func(st *db.PITRStream) bool {
		return st.CoveredUntil != nil && st.CoveredUntil.After(last.Add(200*time.Millisecond))
	})
	// The form takes whole seconds: the first one after the base that no commit straddles.
	at := base.Truncate(time.Second).Add(time.Second)
	for pitrtest.Ambiguous(ms, at) {
		at = at.Add(time.Second)
	}
	if !at.Before(last) {
		t.Fatalf("no whole second between the base %s and the last marker %s", base, last)
	}
	want := pitrtest.UpTo(ms, at)

	base0 := m.URL()
	b.signIn(base0+"/environments/"+env, `[data-testid="pitr-card"] [data-testid="pitr-state"]`)
	b.run("test the prerequisites",
		chromedp.WaitVisible(css(`[data-testid="pitr-timeline"][data-service="db"] [data-testid="pitr-span"]`)),
		chromedp.Click(css(`[data-testid="pitr-test"]`)),
		chromedp.WaitVisible(css(`[data-testid="pitr-check"]`)),
		b.shot("01-pitr-card"),
	)
	if s, err := chromedp.Run(b.ctx, chromedp.Text(css(`[data-testid="pitr-checks"]`))); err != nil ||
		!strings.Contains(s, "replication role") || strings.Contains(s, "failed") {
		t.Fatalf("Test results = %q, %v", s, err)
	}
	b.run("pick the moment: the preview names the commit it restores to",
		chromedp.SetValue(css(`[data-testid="pitr-at"]`), at.UTC().Format("2006-01-02T15:04:05")),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('[data-testid="pitr-at"]').dispatchEvent(new Event('change', {bubbles: true}))`),
		chromedp.WaitVisible(css(`[data-testid="pitr-plan-row"][data-service="db"]`)),
	)
	if s, err := chromedp.Run(b.ctx, chromedp.Text(css(`[data-testid="pitr-plan-row"]`))); err != nil ||
		!strings.Contains(s, "last commit at or before then") {
		t.Fatalf("preview = %q, %v", s, err)
	}
	b.run("type the name, restore",
		chromedp.SendKeys(css(`[data-testid="pitr-confirm"]`), env),
		b.shot("02-restore-form"),
		chromedp.Click(css(`[data-testid="pitr-restore"]`)),
		chromedp.WaitVisible(css(`[data-testid="activity"][data-type="backup.restore"][data-state="succeeded"]`)),
		b.shot("03-restored"),
	)
	if got := pitrtest.Count(t, pgURL); got != want {
		t.Fatalf("after the restore to %s from the page: %d markers, want %d", at, got, want)
	}
	b.checkProblems()
}

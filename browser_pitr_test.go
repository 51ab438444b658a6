package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
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
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (apt-get install chromium): skipping the browser tests")
	}
	artifacts := os.Getenv("REWIND_ARTIFACTS")
	if artifacts == "" {
		artifacts = t.TempDir()
	}
	artifacts = filepath.Join(artifacts, "browser-pitr")
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	m := NewMain()
	m.DataDir, m.Addr = t.TempDir(), "127.0.0.1:0"
	m.Console, m.Getenv, m.Logger = io.Discard, func(string) string { return "" }, slog.New(slog.DiscardHandler)
	if err := m.Run(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if _, err := m.Catalog.CreateUser(ctx, "ada@example.com", browserPassword, db.RoleAdmin); err != nil {
		t.Fatal(err)
	}
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

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1366, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	if err := chromedp.Do(bctx); err != nil { // starts the browser with bctx: a step's shorter context would end it
		t.Fatal(err)
	}
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			buf, err := chromedp.FullScreenshot(100)(ctx, t)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(artifacts, name+".png"), buf, 0o644)
		})
	}
	run := func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(bctx, 90*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			if buf, serr := chromedp.Run(bctx, chromedp.FullScreenshot(100)); serr == nil {
				_ = os.WriteFile(filepath.Join(artifacts, "failure.png"), buf, 0o644)
			}
			t.Fatalf("%s: %v (see %s)", step, err, filepath.Join(artifacts, "failure.png"))
		}
	}
	base0 := m.URL()
	run("sign in and open the environment",
		chromedp.Navigate(base0+"/environments/"+env),
		chromedp.WaitVisible(css(`[data-testid="login-form"]`)),
		chromedp.SendKeys(css(`#email`), "ada@example.com"),
		chromedp.SendKeys(css(`#password`), browserPassword),
		chromedp.Click(css(`[data-testid="login-submit"]`)),
		chromedp.WaitVisible(css(`[data-testid="pitr-card"] [data-testid="pitr-state"]`)),
		chromedp.Click(css(`[data-testid="pitr-test"]`)),
		chromedp.WaitVisible(css(`[data-testid="pitr-check"]`)),
		shot("01-pitr-card"),
	)
	if s, err := chromedp.Run(bctx, chromedp.Text(css(`[data-testid="pitr-checks"]`))); err != nil ||
		!strings.Contains(s, "replication role") || strings.Contains(s, "failed") {
		t.Fatalf("Test results = %q, %v", s, err)
	}
	run("pick the moment: the preview names the commit it restores to",
		chromedp.SetValue(css(`[data-testid="pitr-at"]`), at.UTC().Format("2006-01-02T15:04:05")),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('[data-testid="pitr-at"]').dispatchEvent(new Event('change', {bubbles: true}))`),
		chromedp.WaitVisible(css(`[data-testid="pitr-plan-row"][data-service="db"]`)),
	)
	if s, err := chromedp.Run(bctx, chromedp.Text(css(`[data-testid="pitr-plan-row"]`))); err != nil ||
		!strings.Contains(s, "last commit at or before then") {
		t.Fatalf("preview = %q, %v", s, err)
	}
	run("type the name, restore",
		chromedp.SendKeys(css(`[data-testid="pitr-confirm"]`), env),
		shot("02-restore-form"),
		chromedp.Click(css(`[data-testid="pitr-restore"]`)),
		chromedp.WaitVisible(css(`[data-testid="activity"][data-type="backup.restore"][data-state="succeeded"]`)),
		shot("03-restored"),
	)
	if got := pitrtest.Count(t, pgURL); got != want {
		t.Fatalf("after the restore to %s from the page: %d markers, want %d", at, got, want)
	}
}

package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/rewind/rewind/db"
)

const browserPassword = "browser test password"

// TestBrowser drives the real dashboard in headless Debian chromium: sign in,
// create an environment with two services (the second added through HTMX),
// find it in the list and its activity in the feed, watch a running activity
// finish without a reload, and take screenshots at laptop and phone widths.
// Screenshots go to $REWIND_ARTIFACTS (or a temp dir); with
// REWIND_UPDATE_SCREENSHOT=1 the demo's environment list is written to
// docs/screenshot.png for the README.
func TestBrowser(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (apt-get install chromium): skipping the browser tests")
	}
	artifacts := os.Getenv("REWIND_ARTIFACTS")
	if artifacts == "" {
		artifacts = t.TempDir()
	}
	artifacts = filepath.Join(artifacts, "browser")
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", artifacts)

	m := NewMain()
	m.DataDir, m.Addr, m.Demo = t.TempDir(), "127.0.0.1:0", true
	m.Console, m.Getenv = io.Discard, func(string) string { return "" }
	m.Logger = slog.New(slog.DiscardHandler)
	ctx := context.Background()
	if err := m.Run(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	if _, err := m.Catalog.CreateUser(ctx, "ada@example.com", browserPassword, db.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	base := m.URL()

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1366, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()

	// Any script error or CSP violation in the pages fails the test.
	var (
		mu       sync.Mutex
		problems []string
	)
	cctx, stopConsole := context.WithCancel(bctx)
	messages := chromedp.Console(cctx) // starts the browser
	go func() {
		for msg, err := range messages {
			if err != nil {
				return
			}
			// A form refused with 422 is expected; any other error is not.
			if strings.Contains(msg.Text, "status of 422") {
				continue
			}
			if msg.Type == chromedp.ConsoleError || msg.Type == chromedp.ConsoleException {
				mu.Lock()
				problems = append(problems, msg.String())
				mu.Unlock()
			}
		}
	}()
	defer stopConsole()

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
		sctx, cancel := context.WithTimeout(bctx, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			if buf, serr := chromedp.Run(bctx, chromedp.FullScreenshot(100)); serr == nil {
				_ = os.WriteFile(filepath.Join(artifacts, "failure.png"), buf, 0o644)
			}
			t.Fatalf("%s: %v (see failure.png)", step, err)
		}
	}
	read := func(sel string) string {
		t.Helper()
		sctx, cancel := context.WithTimeout(bctx, 10*time.Second)
		defer cancel()
		s, err := chromedp.Run(sctx, chromedp.Text(css(sel)))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return s
	}

	run("sign in",
		chromedp.EmulateViewport(1366, 900),
		chromedp.Navigate(base+"/environments"),
		chromedp.WaitVisible(css(`[data-testid="login-form"]`)),
		shot("01-login"),
		chromedp.SendKeys(css(`#email`), "ada@example.com"),
		chromedp.SendKeys(css(`#password`), browserPassword),
		chromedp.Click(css(`[data-testid="login-submit"]`)),
		chromedp.WaitVisible(css(`[data-testid="environments"]`)),
		shot("02-environments-laptop"),
	)
	if got, want := read(`[data-testid="page-title"]`), "Environments"; got != want {
		t.Fatalf("after sign-in the page is %q, want %q", got, want)
	}

	row1, row2 := `#services .svc:nth-of-type(1) `, `#services .svc:nth-of-type(2) `
	run("create an environment with two services",
		chromedp.Click(css(`[data-testid="new-environment"]`)),
		chromedp.WaitVisible(css(`[data-testid="environment-form"]`)),
		chromedp.SendKeys(css(`input[name="name"]`), "shop"),
		chromedp.SendKeys(css(`input[name="title"]`), "Shop review app"),
		chromedp.SetValue(css(`select[name="type"]`), "staging"),
		chromedp.SetValue(css(`select[name="parent"]`), "main"),
		chromedp.SendKeys(css(row1+`[name="svc_name"]`), "db"),
		chromedp.SendKeys(css(row1+`[name="svc_url"]`), "postgres://shop:hunter2@/shop"), // no host: refused
		chromedp.Click(css(`[data-testid="add-service"]`)),                               // HTMX fetches a blank row
		chromedp.WaitVisible(css(row2+`[name="svc_name"]`)),
		chromedp.SendKeys(css(row2+`[name="svc_name"]`), "uploads"),
		chromedp.SetValue(css(row2+`select[name="svc_type"]`), "files"),
		chromedp.WaitVisible(css(row2+`[name="svc_path"]`)), // the path field appears for files
		chromedp.SendKeys(css(row2+`[name="svc_path"]`), "/srv/shop/uploads"),
		chromedp.SendKeys(css(row2+`[name="svc_exclude"]`), "cache/"),
		shot("03-new-environment-form"),
		chromedp.Click(css(`[data-testid="save-environment"]`)),
		chromedp.WaitVisible(css(`[data-testid="error-services[0].url"]`)),
		shot("03b-validation-error"),
	)
	if v, err := chromedp.Run(bctx, chromedp.Value(css(row2+`[name="svc_path"]`))); err != nil || v != "/srv/shop/uploads" {
		t.Fatalf("after the validation error the second service's path is %q (%v), want it kept", v, err)
	}
	run("fix the URL and save",
		chromedp.SetValue(css(row1+`[name="svc_url"]`), "postgres://shop:hunter2@127.0.0.1:5432/shop"),
		chromedp.Click(css(`[data-testid="save-environment"]`)),
		chromedp.WaitVisible(css(`[data-testid="services"]`)),
		shot("04-environment-page"),
	)
	if got, want := read(`[data-testid="page-title"]`), "shop"; got != want {
		t.Fatalf("after saving, the page is %q, want %q", got, want)
	}
	locations := read(`[data-testid="services"]`)
	if !strings.Contains(locations, "postgres://shop:****@127.0.0.1:5432/shop") || strings.Contains(locations, "hunter2") ||
		!strings.Contains(locations, "/srv/shop/uploads") {
		t.Fatalf("services table = %q", locations)
	}

	run("see it in the list",
		chromedp.Click(css(`[data-testid="nav-environments"]`)),
		chromedp.WaitVisible(css(`[data-testid="environment-row"][data-env="shop"]`)),
		shot("05-environments-with-shop"),
	)
	if got := read(`[data-testid="environments"] tbody`); !strings.Contains(got, "main") || !strings.Contains(got, "staging") {
		t.Fatalf("environment list = %q", got)
	}

	run("see the activity",
		chromedp.Click(css(`[data-testid="nav-activities"]`)),
		chromedp.WaitVisible(css(`[data-testid="activity"]`)),
		shot("06-activity"),
	)
	if got := read(`[data-testid="activity"]:first-child [data-testid="activity-summary"]`); !strings.Contains(got, "shop") {
		t.Fatalf("newest activity = %q, want the creation of shop", got)
	}

	// A running activity updates live, then the feed stops polling.
	a := &db.Activity{Type: "backup", Environment: "shop", Actor: "ada@example.com", State: db.ActivityRunning, Progress: 30,
		Summary: "Backing up shop", Log: "pinning db\nstreaming uploads"}
	if err := m.Catalog.CreateActivity(ctx, a); err != nil {
		t.Fatal(err)
	}
	run("running activity shown", chromedp.Reload(), chromedp.WaitVisible(css(`[data-state="running"]`)),
		chromedp.Click(css(`[data-state="running"] summary`)), shot("07-activity-running"))
	progress, state := 100, db.ActivitySucceeded
	finished := time.Now()
	if _, err := m.Catalog.UpdateActivity(ctx, a.ID, db.ActivityUpdate{Progress: &progress, State: &state, FinishedAt: &finished}); err != nil {
		t.Fatal(err)
	}
	run("it finishes without a reload",
		chromedp.WaitVisible(css(`[data-testid="activity"][data-state="succeeded"][data-type="backup"]`)),
		chromedp.WaitNotPresent(css(`[data-testid="feed"][data-live]`)),
	)

	run("users and tokens",
		chromedp.Navigate(base+"/users"),
		chromedp.WaitVisible(css(`[data-testid="users"]`)),
		shot("11-users"),
		chromedp.Navigate(base+"/tokens"),
		chromedp.SendKeys(css(`#f-name`), "ci"),
		chromedp.Click(css(`[data-testid="create-token"]`)),
		chromedp.WaitVisible(css(`[data-testid="token-secret"]`)),
		shot("12-token-created"),
		chromedp.Click(css(`[data-testid="revoke-token-open"]`)),
		chromedp.WaitVisible(css(`[data-testid="revoke-token"]`)), // the confirmation dialog
		shot("13-revoke-dialog"),
		chromedp.Click(css(`[data-testid="revoke-token"]`)),
		chromedp.WaitVisible(css(`[data-testid="flash"]`)),
	)
	if got := read(`[data-testid="token-row"]`); !strings.Contains(got, "revoked") {
		t.Fatalf("token row after revoking = %q", got)
	}

	run("phone width",
		chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile),
		chromedp.Navigate(base+"/environments"),
		chromedp.WaitVisible(css(`[data-testid="environments"]`)),
		shot("08-environments-phone"),
		chromedp.Navigate(base+"/environments/shop/settings"),
		chromedp.WaitVisible(css(`[data-testid="environment-form"]`)),
		shot("09-settings-phone"),
		chromedp.Navigate(base+"/activities"),
		chromedp.WaitVisible(css(`[data-testid="feed"]`)),
		shot("10-activity-phone"),
		chromedp.Navigate(base+"/users"),
		chromedp.WaitVisible(css(`[data-testid="users"]`)),
		shot("14-users-phone"),
	)

	if os.Getenv("REWIND_UPDATE_SCREENSHOT") == "1" {
		run("README screenshot",
			chromedp.EmulateViewport(1280, 760),
			chromedp.Navigate(base+"/environments"),
			chromedp.WaitVisible(css(`[data-testid="environments"]`)),
			chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
				buf, err := chromedp.CaptureScreenshot()(ctx, t)
				if err != nil {
					return err
				}
				return os.WriteFile(filepath.Join("docs", "screenshot.png"), buf, 0o644)
			}),
		)
	}
	stopConsole()
	mu.Lock()
	defer mu.Unlock()
	if len(problems) > 0 {
		t.Fatalf("the browser reported problems:\n%s", strings.Join(problems, "\n"))
	}
}

package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
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

	b := startBrowser(t, "browser", 30*time.Second)
	bctx, css, shot, run, read := b.ctx, b.css, b.shot, b.run, b.read

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

	// Back up the demo's main environment, watch % complete reach 100, change its data in the demo shop behind
	// the gate, restore from the activity feed's link by typing the name, and see the old data in the shop.
	mainEnv, err := m.Catalog.FindEnvironmentByName(ctx, "main")
	if err != nil || mainEnv.Gate.Listen == "" {
		t.Fatalf("demo main has no gate: %v", err)
	}
	shop := "http://" + mainEnv.Gate.Listen + "/"
	shopStep := func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		b.Foreign.Store(true)
		run(step, append(actions, chromedp.Sleep(300*time.Millisecond))...)
		b.Foreign.Store(false)
	}
	shopStep("the demo shop before", chromedp.Navigate(shop), chromedp.WaitVisible(css(`[data-testid="orders"]`)), shot("15a-shop-before"))
	ordersBefore := read(`h2`)
	run("back up main",
		chromedp.EmulateViewport(1366, 900),
		chromedp.Navigate(base+"/environments/main"),
		chromedp.WaitVisible(css(`[data-testid="backup"]`)),
		chromedp.Click(css(`[data-testid="backup"]`)),
		chromedp.WaitVisible(css(`[data-testid="backup-row"]`)),
		shot("15-backup-started"),
		chromedp.WaitVisible(css(`[data-testid="backup-row"][data-status="complete"]`)), // the list polls itself
		chromedp.WaitNotPresent(css(`#backups[data-live]`)),
		shot("16-backup-complete"),
	)
	if got := read(`[data-testid="backup-row"] [data-testid="backup-progress"]`); got != "100%" {
		t.Fatalf("%% complete of the finished backup = %q, want 100%%", got)
	}
	run("restore drill of main, then its badge",
		chromedp.WaitVisible(css(`[data-testid="last-verified"]`)),
		chromedp.Click(css(`[data-testid="run-drill"]`)),
		chromedp.WaitVisible(css(`[data-testid="flash"]`)),
		chromedp.WaitNotPresent(css(`#drills[data-live]`)), // the card polls itself until the drill ends
		chromedp.WaitVisible(css(`[data-testid="predicted-rto"] strong`)),
		shot("16c-drill-verified"),
	)
	if got := strings.Join(strings.Fields(read(`[data-testid="last-verified"]`)), " "); !strings.Contains(got, "Last verified restore: just now,") {
		t.Fatalf("the drill card says %q, want the last verified restore just now", got)
	}
	count := func(expr string) int {
		t.Helper()
		sctx, cancel := context.WithTimeout(bctx, 10*time.Second)
		defer cancel()
		n, err := chromedp.Run(sctx, chromedp.Evaluate[int](expr))
		if err != nil {
			t.Fatalf("count %s: %v", expr, err)
		}
		return n
	}
	run("RPO, predicted RTO and the history chart after the backup and the drill",
		chromedp.Reload(),
		chromedp.WaitVisible(css(`[data-testid="recovery"] [data-testid="rto-value"]`)),
		chromedp.WaitVisible(css(`[data-testid="history-chart"] svg circle`)),
		chromedp.ScrollIntoView(css(`[data-testid="recovery"]`)),
		shot("16d-recovery-objectives"),
	)
	if got := read(`[data-testid="rpo-value"]`); got != "< 1 min" && !strings.HasSuffix(got, " min") {
		t.Fatalf("the RPO after a backup is %q, want minutes", got)
	}
	if got := read(`[data-testid="rpo-promise"]`); got != "(plan promises 24 h)" {
		t.Fatalf("the RPO's promise says %q", got)
	}
	if got := read(`[data-testid="rto-value"]`); !strings.HasSuffix(got, " s") {
		t.Fatalf("the predicted RTO after the drill is %q", got)
	}
	// One point per complete backup of main (the demo may have taken some; they fit the first page).
	chartPoints := count(`document.querySelectorAll('[data-testid="history-chart"] svg circle[data-series="size"]').length`)
	complete := count(`document.querySelectorAll('[data-testid="backup-row"][data-status="complete"]').length`)
	if chartPoints == 0 || chartPoints != complete {
		t.Fatalf("the chart has %d size points, want one per complete backup (%d)", chartPoints, complete)
	}
	run("the backup's page",
		chromedp.Click(css(`[data-testid="backup-link"]`)),
		chromedp.WaitVisible(css(`[data-testid="backup-services"]`)),
		shot("16b-backup-page"),
	)
	if got := read(`[data-testid="backup-log"]`); !strings.Contains(got, "complete") {
		t.Fatalf("backup log = %q", got)
	}
	shopStep("change the data in the shop",
		chromedp.Navigate(shop),
		chromedp.Click(css(`form[action="/orders/clear"] button`)),
		chromedp.Sleep(500*time.Millisecond), // the form posts and redirects back
		chromedp.Navigate(shop),
		chromedp.WaitVisible(css(`h2`)),
		shot("16a-shop-changed"),
	)
	if got := read(`h2`); got != "0 orders" || ordersBefore == "0 orders" {
		t.Fatalf("after clearing, the shop shows %q (before: %q)", got, ordersBefore)
	}
	run("restore from the activity feed",
		chromedp.Navigate(base+"/environments/main/activity"),
		chromedp.WaitVisible(css(`[data-testid="activity-restore"]`)),
		chromedp.Click(css(`[data-testid="activity-restore"]`)),
		chromedp.WaitVisible(css(`[data-testid="restore-dialog"]`)),
		chromedp.WaitVisible(css(`[data-testid="restore-preview-card"]`)),
		chromedp.ScrollIntoView(css(`[data-testid="restore-preview-card"]`)),
		shot("17a-restore-preview"),
	)
	// The preview shows the cleared orders: a table with 0 rows now and some in the backup.
	if got := read(`[data-testid="preview-table"][data-change="changed"]`); !strings.Contains(got, "rows change") ||
		!strings.Contains(got, "0") {
		t.Fatalf("the restore preview's changed table = %q, want the cleared orders", got)
	}
	run("confirm the restore",
		chromedp.SendKeys(css(`[data-testid="restore-confirm"]`), "main"),
		shot("17-restore-dialog"),
		chromedp.Click(css(`[data-testid="restore-submit"]`)),
		chromedp.WaitVisible(css(`[data-testid="activity"][data-type="backup.restore"]`)),
		chromedp.WaitVisible(css(`[data-testid="activity"][data-type="backup.restore"][data-state="succeeded"]`)),
		chromedp.WaitVisible(css(`[data-testid="activity-undo"]`)),
		shot("18-restored"),
	)
	shopStep("the old data is back in the shop", chromedp.Navigate(shop), chromedp.WaitVisible(css(`[data-testid="orders"]`)),
		shot("18a-shop-restored"))
	if got := read(`h2`); got != ordersBefore {
		t.Fatalf("after the restore the shop shows %q, want %q", got, ordersBefore)
	}

	// A viewer sees the backup and restore buttons disabled, with the reason.
	if _, err := m.Catalog.CreateUser(ctx, "vic@example.com", browserPassword, db.RoleViewer); err != nil {
		t.Fatal(err)
	}
	run("viewer",
		chromedp.Navigate(base+"/environments"),
		chromedp.Click(css(`[data-testid="logout"]`)),
		chromedp.WaitVisible(css(`[data-testid="login-form"]`)),
		chromedp.SendKeys(css(`#email`), "vic@example.com"),
		chromedp.SendKeys(css(`#password`), browserPassword),
		chromedp.Click(css(`[data-testid="login-submit"]`)),
		chromedp.WaitVisible(css(`[data-testid="environments"]`)),
		chromedp.Navigate(base+"/environments/main"),
		chromedp.WaitVisible(css(`[data-testid="backup-row"]`)),
		shot("19-viewer-backups"),
	)
	if got := read(`[data-testid="backups-card"] [data-testid="denied-reason"]`); !strings.Contains(got, "Only admins can back up") {
		t.Fatalf("viewer's reason = %q", got)
	}
	run("viewer restore dialog",
		chromedp.WaitNotPresent(css(`[data-testid="backups-card"] [data-testid="backup"]`)), // only the disabled one
		chromedp.Click(css(`[data-testid="backup-restore"]`)),
		chromedp.WaitVisible(css(`[data-testid="restore-submit"][disabled]`)),
		shot("20-viewer-restore-disabled"),
		chromedp.Click(css(`[data-testid="logout"]`)), // back to the admin for the rest
		chromedp.WaitVisible(css(`[data-testid="login-form"]`)),
		chromedp.SendKeys(css(`#email`), "ada@example.com"),
		chromedp.SendKeys(css(`#password`), browserPassword),
		chromedp.Click(css(`[data-testid="login-submit"]`)),
		chromedp.WaitVisible(css(`[data-testid="environments"]`)),
	)

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
	b.checkProblems()
}

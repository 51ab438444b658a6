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

// startDashboard runs Rewind on a free port with an empty data directory (and the demo project when demo is
// set) and an admin ada@example.com with browserPassword; it is closed when the test ends.
func startDashboard(t *testing.T, demo bool) *Main {
	t.Helper()
	m := NewMain()
	m.DataDir, m.Addr, m.Demo = t.TempDir(), "127.0.0.1:0", demo
	m.Console, m.Getenv, m.Logger = io.Discard, func(string) string { return "" }, slog.New(slog.DiscardHandler)
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
	return m
}

// browser is one test's headless Debian chromium: its steps fail the test with a screenshot, and every script
// error or CSP violation the pages log is kept for checkProblems.
type browser struct {
	t         *testing.T
	ctx       context.Context // the browser's: a step's shorter context would end the browser
	artifacts string          // screenshots: $REWIND_ARTIFACTS/<name>, or a temp dir
	// StepTimeout bounds each run; 30 s unless set.
	StepTimeout time.Duration
	// Ignore, when set, drops console messages that are expected (a form refused with 422, say).
	Ignore func(text string) bool

	mu       sync.Mutex
	problems []string
}

// startBrowser starts chromium for t, or skips t when chromium is not installed.
func startBrowser(t *testing.T, name string) *browser {
	t.Helper()
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (apt-get install chromium): skipping the browser tests")
	}
	artifacts := os.Getenv("REWIND_ARTIFACTS")
	if artifacts == "" {
		artifacts = t.TempDir()
	}
	artifacts = filepath.Join(artifacts, name)
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", artifacts)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		// Without these, chromium's connections to Google are refused by the closed network, many at a time.
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1366, 900))...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	b := &browser{t: t, ctx: bctx, artifacts: artifacts}
	cctx, stopConsole := context.WithCancel(bctx)
	messages := chromedp.Console(cctx) // starts the browser
	go func() {
		for msg, err := range messages {
			if err != nil {
				return
			}
			if msg.Type != chromedp.ConsoleError && msg.Type != chromedp.ConsoleException {
				continue
			}
			if b.Ignore != nil && b.Ignore(msg.Text) {
				continue
			}
			b.mu.Lock()
			b.problems = append(b.problems, msg.String())
			b.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		stopConsole()
		cancelBrowser()
		cancelAlloc()
	})
	return b
}

// run does one step's actions; on failure it saves failure.png and fails the test naming the step.
func (b *browser) run(step string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	timeout := b.StepTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	sctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		failure := filepath.Join(b.artifacts, "failure.png")
		if buf, serr := chromedp.Run(b.ctx, chromedp.FullScreenshot(100)); serr == nil {
			_ = os.WriteFile(failure, buf, 0o644)
		}
		b.t.Fatalf("%s: %v (see %s)", step, err, failure)
	}
}

// shot saves a full-page screenshot as <name>.png among the artifacts.
func (b *browser) shot(name string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		buf, err := chromedp.FullScreenshot(100)(ctx, t)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(b.artifacts, name+".png"), buf, 0o644)
	})
}

// read returns the text of the first element matching sel.
func (b *browser) read(sel string) string {
	b.t.Helper()
	sctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(sctx, chromedp.Text(css(sel)))
	if err != nil {
		b.t.Fatalf("read %s: %v", sel, err)
	}
	return s
}

// signIn signs ada in from the login page that url leads to, and waits for sel.
func (b *browser) signIn(url, sel string) {
	b.t.Helper()
	b.run("sign in",
		chromedp.Navigate(url),
		chromedp.WaitVisible(css(`[data-testid="login-form"]`)),
		chromedp.SendKeys(css(`#email`), "ada@example.com"),
		chromedp.SendKeys(css(`#password`), browserPassword),
		chromedp.Click(css(`[data-testid="login-submit"]`)),
		chromedp.WaitVisible(css(sel)),
	)
}

// checkProblems fails the test when a page logged a script error or a CSP violation.
func (b *browser) checkProblems() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.problems) > 0 {
		b.t.Fatalf("the browser reported problems:\n%s", strings.Join(b.problems, "\n"))
	}
}

func css(sel string) chromedp.CSS { return chromedp.CSS(sel) }

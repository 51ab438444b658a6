package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// browserSession is a headless Debian chromium for one browser test, with the flags this machine needs, a fresh
// profile, and every script error or CSP violation of its pages collected (Problems).
type browserSession struct {
	t         *testing.T
	ctx       context.Context // the browser's; a step runs in a shorter one below it
	artifacts string          // where screenshots go
	stepLimit time.Duration

	mu          sync.Mutex
	problems    []string
	stopConsole context.CancelFunc
	// Foreign is set while the browser shows a page that is not Rewind's (the demo shop): its own misses
	// (favicon.ico) are not the dashboard's problems.
	Foreign atomic.Bool
}

// startBrowser starts chromium for t, or skips t when it is not installed. Screenshots go to
// $REWIND_ARTIFACTS/name (or a temp dir); each step may take up to stepLimit.
func startBrowser(t *testing.T, name string, stepLimit time.Duration) *browserSession {
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
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(cancelBrowser)
	b := &browserSession{t: t, ctx: bctx, artifacts: artifacts, stepLimit: stepLimit}
	cctx, stopConsole := context.WithCancel(bctx)
	b.stopConsole = stopConsole
	t.Cleanup(stopConsole)
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
			if b.Foreign.Load() && strings.Contains(msg.Text, "status of 404") {
				continue
			}
			if msg.Type == chromedp.ConsoleError || msg.Type == chromedp.ConsoleException {
				b.mu.Lock()
				b.problems = append(b.problems, msg.String())
				b.mu.Unlock()
			}
		}
	}()
	return b
}

func (b *browserSession) css(sel string) chromedp.CSS { return chromedp.CSS(sel) }

// shot saves a full-page screenshot as name.png in the artifacts.
func (b *browserSession) shot(name string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		buf, err := chromedp.FullScreenshot(100)(ctx, t)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(b.artifacts, name+".png"), buf, 0o644)
	})
}

// run runs one step's actions, failing the test with a screenshot (failure.png) when one fails.
func (b *browserSession) run(step string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	sctx, cancel := context.WithTimeout(b.ctx, b.stepLimit)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		if buf, serr := chromedp.Run(b.ctx, chromedp.FullScreenshot(100)); serr == nil {
			_ = os.WriteFile(filepath.Join(b.artifacts, "failure.png"), buf, 0o644)
		}
		b.t.Fatalf("%s: %v (see %s)", step, err, filepath.Join(b.artifacts, "failure.png"))
	}
}

// read returns the text of the first element matching sel.
func (b *browserSession) read(sel string) string {
	b.t.Helper()
	sctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(sctx, chromedp.Text(b.css(sel)))
	if err != nil {
		b.t.Fatalf("read %s: %v", sel, err)
	}
	return s
}

// checkProblems stops collecting the console and fails the test if a page reported a script error or a CSP
// violation.
func (b *browserSession) checkProblems() {
	b.t.Helper()
	b.stopConsole()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.problems) > 0 {
		b.t.Fatalf("the browser reported problems:\n%s", strings.Join(b.problems, "\n"))
	}
}

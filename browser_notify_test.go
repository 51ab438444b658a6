package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
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

// TestBrowserNotifications adds a Slack channel on the notifications page in headless chromium and sends it a
// test: the result appears inline (HTMX), a local receiver gets the message, and the page never shows the
// channel's token.
func TestBrowserNotifications(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (apt-get install chromium): skipping the browser tests")
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
	var mu sync.Mutex
	var got []string
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.URL.Path+" "+string(b))
		mu.Unlock()
	}))
	defer rcv.Close()
	const token = "B0TtokenInPath"

	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1366, 900))...)
	defer cancelAlloc()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	var problems []string
	cctx, stopConsole := context.WithCancel(bctx)
	defer stopConsole()
	messages := chromedp.Console(cctx)
	go func() {
		for msg, err := range messages {
			if err != nil {
				return
			}
			if msg.Type == chromedp.ConsoleError || msg.Type == chromedp.ConsoleException {
				mu.Lock()
				problems = append(problems, msg.String())
				mu.Unlock()
			}
		}
	}()
	run := func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(bctx, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }

	base := m.URL()
	run("sign in",
		chromedp.Navigate(base+"/login"),
		chromedp.WaitVisible(css(`[data-testid="login-form"]`)),
		chromedp.SendKeys(css(`#email`), "ada@example.com"),
		chromedp.SendKeys(css(`#password`), browserPassword),
		chromedp.Click(css(`[data-testid="login-submit"]`)),
		chromedp.WaitVisible(css(`[data-testid="nav-notifications"]`)),
	)
	run("add a Slack channel",
		chromedp.Click(css(`[data-testid="nav-notifications"]`)),
		chromedp.WaitVisible(css(`[data-testid="channel-form"]`)),
		chromedp.SendKeys(css(`#ch-name`), "ops-slack"),
		chromedp.SetValue(css(`#ch-kind`), db.ChannelSlack),
		chromedp.SendKeys(css(`#ch-url`), rcv.URL+"/services/"+token),
		chromedp.Click(css(`[data-testid="channel-save"]`)),
		chromedp.WaitVisible(css(`[data-testid="channel"][data-name="ops-slack"]`)),
	)
	run("send a test",
		chromedp.Click(css(`[data-testid="channel"][data-name="ops-slack"] [data-testid="channel-test"]`)),
		chromedp.WaitVisible(css(`[data-testid="channel"][data-name="ops-slack"] [data-testid="test-ok"]`)),
		chromedp.WaitVisible(css(`[data-testid="delivery"][data-event="test"][data-status="delivered"]`)), // swapped out of band
	)
	if dir := os.Getenv("REWIND_ARTIFACTS"); dir != "" {
		if buf, err := chromedp.Run(bctx, chromedp.FullScreenshot(100)); err == nil {
			os.MkdirAll(filepath.Join(dir, "browser"), 0o755)
			os.WriteFile(filepath.Join(dir, "browser", "notifications.png"), buf, 0o644)
		}
	}
	html, err := chromedp.Run(bctx, chromedp.OuterHTML(css("html")))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(html, token) {
		t.Fatal("the notifications page shows the channel's token")
	}
	if !strings.Contains(html, rcv.URL+"/****") {
		t.Fatal("the page does not show the channel's masked URL")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || !strings.HasPrefix(got[0], "/services/"+token+" ") || !strings.Contains(got[0], "Test notification from Rewind") {
		t.Fatalf("receiver got %q", got)
	}
	if len(problems) > 0 {
		t.Fatalf("the pages logged errors: %q", problems)
	}
}

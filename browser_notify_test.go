package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/rewind/rewind/db"
)

// TestBrowserNotifications adds a Slack channel on the notifications page in headless chromium and sends it a
// test: the result appears inline (HTMX), a local receiver gets the message, and the page never shows the
// channel's token.
func TestBrowserNotifications(t *testing.T) {
	b := startBrowser(t, "browser")
	m := startDashboard(t, false)
	var mu sync.Mutex
	var got []string
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.URL.Path+" "+string(body))
		mu.Unlock()
	}))
	defer rcv.Close()
	const token = "B0TtokenInPath"

	base := m.URL()
	b.signIn(base+"/login", `[data-testid="nav-notifications"]`)
	b.run("add a Slack channel",
		chromedp.Click(css(`[data-testid="nav-notifications"]`)),
		chromedp.WaitVisible(css(`[data-testid="channel-form"]`)),
		chromedp.SendKeys(css(`#ch-name`), "ops-slack"),
		chromedp.SetValue(css(`#ch-kind`), db.ChannelSlack),
		chromedp.SendKeys(css(`#ch-url`), rcv.URL+"/services/"+token),
		chromedp.Click(css(`[data-testid="channel-save"]`)),
		chromedp.WaitVisible(css(`[data-testid="channel"][data-name="ops-slack"]`)),
	)
	b.run("send a test",
		chromedp.Click(css(`[data-testid="channel"][data-name="ops-slack"] [data-testid="channel-test"]`)),
		chromedp.WaitVisible(css(`[data-testid="channel"][data-name="ops-slack"] [data-testid="test-ok"]`)),
		chromedp.WaitVisible(css(`[data-testid="delivery"][data-event="test"][data-status="delivered"]`)), // swapped out of band
	)
	b.run("screenshot", b.shot("notifications"))
	html, err := chromedp.Run(b.ctx, chromedp.OuterHTML(css("html")))
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
	b.checkProblems()
	if len(got) != 1 || !strings.HasPrefix(got[0], "/services/"+token+" ") || !strings.Contains(got[0], "Test notification from Rewind") {
		t.Fatalf("receiver got %q", got)
	}
}

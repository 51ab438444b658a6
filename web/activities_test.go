package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"github.com/rewind/rewind/db"
)

func TestActivityFeed(t *testing.T) {
	app := newTestApp(t)
	app.user("ada@example.com", db.RoleAdmin, nil)
	ctx := context.Background()
	for i := range 25 {
		if err := app.cat.CreateActivity(ctx, &db.Activity{Type: "environment.update", Environment: "main", Actor: "ada@example.com",
			Summary: fmt.Sprintf("change %d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	failed := &db.Activity{Type: "backup", Environment: "main", Actor: "system", State: db.ActivityFailed, Summary: "backup failed", Log: "step 1\nstep 2: disk full"}
	if err := app.cat.CreateActivity(ctx, failed); err != nil {
		t.Fatal(err)
	}
	c := app.client()
	c.login("ada@example.com")

	doc := c.get("/activities").doc(t)
	items := doc.Find(testid("activity"))
	if got, want := items.Length(), 20; got != want {
		t.Fatalf("first page has %d entries, want %d", got, want)
	}
	if got, want := items.First().Find(testid("activity-summary")).Text(), "backup failed"; got != want {
		t.Fatalf("newest entry = %q, want %q", got, want)
	}
	if got := items.First().Find(testid("activity-log")).Text(); !strings.Contains(got, "disk full") {
		t.Fatalf("log = %q", got)
	}
	if items.First().Find("progress").Length() != 1 || items.First().Find(testid("activity-state")).Text() != "failed" {
		t.Fatal("entry lacks a progress bar or state badge")
	}
	if got, want := doc.Find(testid("feed-count")).Text(), "1–20 of 26"; got != want {
		t.Fatalf("count = %q, want %q", got, want)
	}
	if _, live := doc.Find(testid("feed")).Attr("hx-trigger"); live {
		t.Fatal("the feed polls although nothing runs")
	}
	older, _ := doc.Find(testid("older")).Attr("href")
	if got := c.get(older).doc(t).Find(testid("activity")).Length(); got != 6 {
		t.Fatalf("second page (%s) has %d entries, want 6", older, got)
	}

	doc = c.get("/activities?" + url.Values{"state": {"failed"}}.Encode()).doc(t)
	if got := doc.Find(testid("activity")).Length(); got != 1 {
		t.Fatalf("state filter: %d entries, want 1", got)
	}
	doc = c.get("/activities?" + url.Values{"type": {"environment.update"}}.Encode()).doc(t)
	if got, want := doc.Find(testid("feed-count")).Text(), "1–20 of 25"; got != want {
		t.Fatalf("type filter count = %q, want %q", got, want)
	}

	// A running entry makes the feed poll itself, as a fragment.
	running := &db.Activity{Type: "backup", Environment: "main", Actor: "ada@example.com", State: db.ActivityRunning, Progress: 40, Summary: "backing up"}
	if err := app.cat.CreateActivity(ctx, running); err != nil {
		t.Fatal(err)
	}
	doc = c.get("/activities").doc(t)
	feed := doc.Find(testid("feed"))
	if got, want := feed.AttrOr("hx-trigger", ""), "every 2s"; got != want {
		t.Fatalf("feed hx-trigger = %q, want %q", got, want)
	}
	if got, want := feed.AttrOr("hx-get", ""), "/activities"; got != want {
		t.Fatalf("feed hx-get = %q, want %q", got, want)
	}
	if got, want := doc.Find(`[data-state="running"] progress`).AttrOr("value", ""), "40"; got != want {
		t.Fatalf("running progress = %q, want %q", got, want)
	}
	progress := 80
	if _, err := app.cat.UpdateActivity(ctx, running.ID, db.ActivityUpdate{Progress: &progress}); err != nil {
		t.Fatal(err)
	}
	r := c.get("/activities", "HX-Request", "true", "HX-Target", "feed")
	if strings.Contains(r.body, "<html") || strings.Contains(r.body, "sidebar") {
		t.Fatalf("the partial is a whole page: %s", excerpt(r.body))
	}
	frag := r.doc(t)
	if got, want := frag.Find(`[data-state="running"] progress`).AttrOr("value", ""), "80"; got != want {
		t.Fatalf("partial progress = %q, want %q", got, want)
	}
	done := db.ActivitySucceeded
	if _, err := app.cat.UpdateActivity(ctx, running.ID, db.ActivityUpdate{State: &done}); err != nil {
		t.Fatal(err)
	}
	frag = c.get("/activities", "HX-Request", "true", "HX-Target", "feed").doc(t)
	if _, live := frag.Find(testid("feed")).Attr("hx-trigger"); live {
		t.Fatal("the feed keeps polling after the last running entry finished")
	}

	// The environment's Activity tab shows only its entries and polls its own URL.
	if err := app.cat.CreateActivity(ctx, &db.Activity{Type: "user.create", Actor: "ada@example.com", Summary: "global"}); err != nil {
		t.Fatal(err)
	}
	app.env("main", db.EnvProduction)
	doc = c.get("/environments/main/activity").doc(t)
	doc.Find(testid("activity")).Each(func(_ int, s *goquery.Selection) {
		if s.Find(testid("activity-summary")).Text() == "global" {
			t.Fatal("an activity of no environment shows on the environment's tab")
		}
	})

	// A poll after the session ended sends the browser to sign in.
	anon := app.client()
	r = anon.get("/activities", "HX-Request", "true", "HX-Target", "feed")
	if got, want := r.StatusCode, http.StatusUnauthorized; got != want || !strings.HasPrefix(r.Header.Get("HX-Redirect"), "/login") {
		t.Fatalf("anonymous poll: %d HX-Redirect %q", r.StatusCode, r.Header.Get("HX-Redirect"))
	}

	r = c.get("/activities", "HX-Request", "true")
	if r.StatusCode != http.StatusOK || !strings.Contains(r.body, "<html") {
		t.Fatalf("an HTMX request without a fragment target gets the whole page, got %d", r.StatusCode)
	}
}

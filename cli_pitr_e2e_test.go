package main

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/rewind/rewind/backup/pitr/pgwal"
	"github.com/rewind/rewind/backup/pitr/pitrtest"
	"github.com/rewind/rewind/backup/testserver"
	"github.com/rewind/rewind/db"
)

// TestRestoreAtEndToEnd switches point-in-time protection on through the API for an environment on a private
// PostgreSQL server, sees the follower and the Test of the prerequisites on the environment's page, and restores
// the environment to a moment with `rewind backup:restore --at`: exactly the markers committed by then are back.
func TestRestoreAtEndToEnd(t *testing.T) {
	m, token := startRewind(t, db.RoleAdmin)
	t.Setenv("REWIND_URL", m.URL())
	t.Setenv("REWIND_TOKEN", token)
	ctx := context.Background()
	srv := testserver.StartPostgres(t)
	dbName := srv.CreateDatabase(t, "")
	pgURL := srv.URL(dbName)
	env := testserver.UniqueName("pitr")
	t.Cleanup(func() { pgwal.DropSlot(context.Background(), pgURL, env, "db") }) //nolint:errcheck

	stop := make(chan struct{})
	markers := pitrtest.Writer(t, pgURL, stop)
	api := func(method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, m.URL()+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := api(http.MethodPut, "/api/v1/environments/"+env, `{"type":"production","services":[{"name":"db",`+
		`"type":"postgresql","url":"`+pgURL+`"}],"pitr":{"enabled":true}}`); code != http.StatusCreated {
		t.Fatalf("PUT environment: %d %s", code, body)
	}
	var base time.Time
	wait := func(what string, cond func(*db.PITRStream) bool) {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for {
			st, err := m.Catalog.FindPITRStream(ctx, env, "db")
			if err == nil && cond(st) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s: %+v, %v", what, st, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	wait("a base", func(st *db.PITRStream) bool {
		bases, _ := m.Catalog.FindPITRBases(ctx, st.ID)
		if len(bases) > 0 {
			base = bases[0].FinishedAt
		}
		return len(bases) > 0
	})
	time.Sleep(2 * time.Second)
	close(stop)
	ms := markers()
	last := ms[len(ms)-1].After
	wait("the last marker shipped", func(st *db.PITRStream) bool {
		return st.CoveredUntil != nil && st.CoveredUntil.After(last.Add(200*time.Millisecond))
	})

	// The environment's page shows the follower running, and the Test passes every check.
	c := signIn(t, m.URL(), "ops@example.com", "ops password")
	res, err := c.Get(m.URL() + "/environments/" + env)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := goquery.NewDocumentFromReader(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if got := doc.Find(`[data-testid="pitr-stream"][data-service="db"] [data-testid="pitr-state"]`).Text(); got != db.PITRRunning {
		t.Fatalf("the page shows the follower as %q, want running", got)
	}
	csrf, _ := doc.Find(`[data-testid="pitr-card"] input[name="_csrf"]`).Attr("value")
	res, err = c.PostForm(m.URL()+"/environments/"+env+"/pitr/test", url.Values{"_csrf": {csrf}})
	if err != nil {
		t.Fatal(err)
	}
	checks, err := goquery.NewDocumentFromReader(res.Body)
	res.Body.Close()
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("Test: %d, %v", res.StatusCode, err)
	}
	if n, failed := checks.Find(`[data-testid="pitr-check"]`).Length(), checks.Find(`[data-status="failed"]`).Text(); n < 5 || failed != "" {
		t.Fatalf("Test: %d checks, failed: %q", n, failed)
	}

	// Restore to a moment between the base and the last marker.
	var later []pitrtest.Marker
	for _, mk := range ms {
		if mk.Before.After(base) {
			later = append(later, mk)
		}
	}
	at := pitrtest.Clear(ms, later[len(later)/2].After.Add(10*time.Millisecond))
	want := pitrtest.UpTo(ms, at)
	out, errOut, err := runCommand(t, "backup:restore", "", "--at", at.Format(time.RFC3339Nano), "-e", env, "--yes")
	if err != nil {
		t.Fatalf("backup:restore --at: %v\n%s", err, errOut)
	}
	if !strings.Contains(errOut, "restored to its last commit at or before then") || !strings.Contains(out, "restored to") {
		t.Fatalf("backup:restore --at output does not state the moment reached:\n%s\n%s", errOut, out)
	}
	if got := pitrtest.Count(t, pgURL); got != want {
		t.Fatalf("after backup:restore --at %s: %d markers, want %d", at, got, want)
	}

	// Then, from the environment's page, a later moment: the WAL still holds what the first restore replaced.
	at2 := pitrtest.Clear(ms, later[3*len(later)/4].After.Add(10*time.Millisecond))
	res, err = c.PostForm(m.URL()+"/environments/"+env+"/restore-at", url.Values{"_csrf": {csrf},
		"at": {at2.UTC().Format("2006-01-02T15:04:05.999999999")}, "confirm": {env}})
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.Request.URL.Path != "/environments/"+env+"/activity" || !strings.Contains(string(page), "started") {
		t.Fatalf("restore from the page landed on %s:\n%s", res.Request.URL, page)
	}
	acts, _, err := m.Catalog.FindActivities(ctx, db.ActivityFilter{Environment: &env, Type: ptr("backup.restore")})
	if err != nil || len(acts) == 0 {
		t.Fatalf("restore activities: %d, %v", len(acts), err)
	}
	if a := waitActivityDone(t, m.Catalog, acts[0].ID); a.State != db.ActivitySucceeded {
		t.Fatalf("restore from the page: %s\n%s", a.State, a.Log)
	}
	if got, want := pitrtest.Count(t, pgURL), pitrtest.UpTo(ms, at2); got != want {
		t.Fatalf("after the page's restore to %s: %d markers, want %d", at2, got, want)
	}
	want = pitrtest.UpTo(ms, at2)

	// Refused: the future (422, through the CLI) and before the window (422 from the API).
	if _, _, err := runCommand(t, "backup:restore", "", "--at", time.Now().Add(time.Hour).Format(time.RFC3339),
		"-e", env, "--yes"); err == nil || !strings.Contains(err.Error(), "in the future") {
		t.Fatalf("backup:restore --at an hour ahead = %v, want a refusal", err)
	}
	code, body := api(http.MethodPost, "/api/v1/environments/"+env+"/restore",
		`{"at":"`+time.Now().Add(-30*24*time.Hour).Format(time.RFC3339)+`","confirm":"`+env+`"}`)
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "before the point-in-time window") {
		t.Fatalf("POST restore 30 days ago: %d %s, want 422 naming the window", code, body)
	}
	if got := pitrtest.Count(t, pgURL); got != want {
		t.Fatalf("a refused restore changed the data: %d markers", got)
	}
}

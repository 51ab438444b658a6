package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/rewind/rewind/db"
)

func TestPITRSettingAPIAndForm(t *testing.T) {
	app := newTestApp(t)
	tok := app.token(app.user("ada@example.com", db.RoleAdmin, nil))
	body := `{"type":"production","services":[{"name":"db","type":"postgresql","url":"postgres://app:pw@127.0.0.1:5432/app"}],"pitr":{"enabled":true,"window_days":14}}`
	r := app.api(http.MethodPut, "/api/v1/environments/main", tok, body)
	if got, want := r.StatusCode, http.StatusUnprocessableEntity; got != want || !strings.Contains(r.body, "pitr.window_days") {
		t.Fatalf("14 days on the basic schedule: %d %s, want %d naming pitr.window_days", got, r.body, want)
	}
	body = strings.Replace(body, `"window_days":14`, `"window_days":5`, 1)
	if r = app.api(http.MethodPut, "/api/v1/environments/main", tok, body); r.StatusCode != http.StatusCreated {
		t.Fatalf("PUT with pitr: %d %s", r.StatusCode, r.body)
	}
	var got struct{ Environment db.Environment }
	app.api(http.MethodGet, "/api/v1/environments/main", tok, "").json(t, &got)
	if p := got.Environment.PITR; p == nil || !p.Enabled || p.WindowDays != 5 {
		t.Fatalf("GET pitr = %+v, want enabled for 5 days", p)
	}
	// A PUT without pitr keeps it.
	if r = app.api(http.MethodPut, "/api/v1/environments/main", tok, `{"type":"production","title":"Main","services":[{"name":"db","type":"postgresql","url":"postgres://app:****@127.0.0.1:5432/app"}]}`); r.StatusCode != http.StatusOK {
		t.Fatalf("PUT without pitr: %d %s", r.StatusCode, r.body)
	}
	if e, _ := app.cat.FindEnvironmentByName(context.Background(), "main"); !e.PITR.Enabled || e.PITR.WindowDays != 5 {
		t.Fatalf("after a PUT without pitr: %+v, want it kept", e.PITR)
	}

	// The Settings tab shows it and saves it; unticking switches it off.
	c := app.client()
	c.login("ada@example.com")
	doc := c.get("/environments/main/settings").doc(t)
	box := doc.Find(testid("pitr-enabled"))
	if _, checked := box.Attr("checked"); box.Length() != 1 || !checked {
		t.Fatalf("settings tab: pitr checkbox %d, checked %v; want one, ticked", box.Length(), checked)
	}
	if v, _ := doc.Find(`input[name="pitr.window_days"]`).Attr("value"); v != "5" {
		t.Fatalf("window field = %q, want 5", v)
	}
	form := serviceForm(url.Values{"name": {"main"}, "title": {"Main"}, "type": {"production"}, "pitr.form": {"1"},
		"pitr.window_days": {"3"}}, [4]string{"db", "postgresql", "postgres://app:****@127.0.0.1:5432/app", ""})
	if r = c.post("/environments/main", form); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("save settings: %d\n%s", r.StatusCode, excerpt(r.body))
	}
	if e, _ := app.cat.FindEnvironmentByName(context.Background(), "main"); e.PITR.Enabled || e.PITR.WindowDays != 3 {
		t.Fatalf("after saving the form unticked: %+v, want off with 3 days", e.PITR)
	}
}

// TestPITRCardShowsEachKind: the card of an environment with a PostgreSQL and a Redis stream shows the replication
// lag and slot warnings only for the stream with a slot, and names the covered types.
func TestPITRCardShowsEachKind(t *testing.T) {
	app := newBackupApp(t)
	ctx := context.Background()
	app.user("ada@example.com", db.RoleAdmin, nil)
	env := &db.Environment{Name: "main", Type: db.EnvProduction, PITR: &db.PITR{Enabled: true}, Services: []db.Service{
		{Name: "db", Type: db.ServicePostgreSQL, URL: "postgres://app@127.0.0.1:1/app"},
		{Name: "cache", Type: db.ServiceRedis, URL: "redis://127.0.0.1:1/0"}}}
	if err := app.cat.CreateEnvironment(ctx, env); err != nil {
		t.Fatal(err)
	}
	lag, lost := int64(3<<20), "lost"
	for _, s := range []struct{ service, slot string }{{"db", "rewind_main_db"}, {"cache", ""}} {
		st, err := app.cat.EnsurePITRStream(ctx, "main", s.service, s.slot)
		if err != nil {
			t.Fatal(err)
		}
		if err := app.cat.UpdatePITRStream(ctx, st.ID, db.PITRStreamUpdate{LagBytes: &lag, WALStatus: &lost}); err != nil {
			t.Fatal(err)
		}
	}
	// The PostgreSQL stream is restorable for the last hour: its timeline shows that span and the gap before it.
	st, err := app.cat.FindPITRStream(ctx, "main", "db")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	base, commit, covered := now.Add(-time.Hour), now.Add(-time.Minute), now.Add(-time.Second)
	if err := app.cat.CreatePITRBase(ctx, &db.PITRBase{StreamID: st.ID, Snapshot: "b", SystemID: "1", Timeline: 1,
		StartLSN: "0/0", EndLSN: "0/0", StartWAL: "000000010000000000000001", StartedAt: base, FinishedAt: base}); err != nil {
		t.Fatal(err)
	}
	if _, err := app.cat.PutPITRSegment(ctx, &db.PITRSegment{StreamID: st.ID, Name: "000000010000000000000001",
		Snapshot: "s", FirstCommitAt: &commit, LastCommitAt: &commit, ReadAt: covered}); err != nil {
		t.Fatal(err)
	}
	if err := app.cat.UpdatePITRStream(ctx, st.ID, db.PITRStreamUpdate{CoveredUntil: &covered}); err != nil {
		t.Fatal(err)
	}
	c := app.client()
	c.login("ada@example.com")
	doc := c.get("/environments/main").doc(t)
	tl := doc.Find(testid("pitr-timeline") + `[data-service="db"]`)
	if tl.Find(testid("pitr-span")).Length() != 1 || tl.Find(testid("pitr-gap")).Length() != 1 {
		t.Errorf("db timeline: %d spans and %d gaps, want 1 and 1 (before the base)",
			tl.Find(testid("pitr-span")).Length(), tl.Find(testid("pitr-gap")).Length())
	}
	if got := doc.Find(testid("pitr-timeline")+`[data-service="cache"]`).AttrOr("data-gaps", ""); got != "1" {
		t.Errorf("cache timeline gaps = %q, want 1 (nothing restorable yet)", got)
	}
	row := func(service string) *goquery.Selection {
		return doc.Find(testid("pitr-stream") + `[data-service="` + service + `"]`)
	}
	if got := row("db").Find(testid("pitr-lag")).Text(); !strings.Contains(got, "3.0 MiB") {
		t.Errorf("PostgreSQL lag = %q, want the bytes behind", got)
	}
	if row("db").Find(testid("pitr-wal-warning")).Length() != 1 {
		t.Errorf("PostgreSQL row has no warning about its lost slot")
	}
	if got := strings.TrimSpace(row("cache").Find(testid("pitr-lag")).Text()); got != "—" {
		t.Errorf("Redis lag = %q, want — (no slot)", got)
	}
	if row("cache").Find(testid("pitr-wal-warning")).Length() != 0 {
		t.Errorf("Redis row shows a slot warning")
	}
	if got := row("cache").Find(testid("pitr-usage")).Text(); strings.Contains(got, "WAL") {
		t.Errorf("Redis usage = %q, want segments, not WAL segments", got)
	}
	if got := doc.Find(testid("pitr-card")).Text(); !strings.Contains(got, "postgresql and redis services only") {
		t.Errorf("card text does not name the covered types:\n%s", got)
	}
}

package web_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"
	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/jobs"
)

// TestRecoveryObjectives drives the RPO/RTO figures through the real router with real backups and a real drill:
// before any backup the Backups tab says nothing is restorable and no restore was measured; after two backups
// and a drill it shows the RPO against the plan's 24 hours, the predicted RTO and a chart with one point per
// backup per series; the environment list and the API (list and get) carry the same figures.
func TestRecoveryObjectives(t *testing.T) {
	ctx := context.Background()
	a := newBackupApp(t)
	a.user("admin@example.com", db.RoleAdmin, nil)
	token := a.token(a.userByEmail("admin@example.com"))
	a.filesEnv("main", db.EnvProduction, "v1")
	a.filesEnv("dev", db.EnvDevelopment, "d1")
	admin := a.client()
	admin.login("admin@example.com")

	doc := admin.get("/environments/main").doc(t)
	if got := doc.Find(testid("rpo-value")).Text(); got != "nothing restorable yet" {
		t.Fatalf("before any backup the RPO is %q", got)
	}
	if got := doc.Find(testid("rto")).Text(); !strings.Contains(got, "no restore measured yet — run a drill") {
		t.Fatalf("before any restore the RTO says %q", got)
	}
	if doc.Find(testid("history-chart")).Length() != 0 {
		t.Fatal("a chart without backups")
	}

	a.backup("main")
	b2 := a.backup("main")
	act, err := a.ops.StartDrill(ctx, jobs.DrillRequest{Environment: "main", Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if got := a.waitActivity(act.ID); got.State != db.ActivitySucceeded {
		t.Fatalf("drill: %s\n%s", got.State, got.Log)
	}

	doc = admin.get("/environments/main").doc(t)
	if got := doc.Find(testid("rpo-value")).Text(); got != "< 1 min" {
		t.Fatalf("RPO just after a backup = %q, want < 1 min", got)
	}
	if got := doc.Find(testid("rpo-promise")).Text(); got != "(plan promises 24 h)" {
		t.Fatalf("promise = %q", got)
	}
	if got := doc.Find(testid("rpo-basis")).Text(); !strings.Contains(got, b2.ID) {
		t.Fatalf("basis %q does not name the newest backup %s", got, b2.ID)
	}
	if got := doc.Find(testid("rto-value")).Text(); !strings.HasSuffix(got, " s") {
		t.Fatalf("predicted RTO after a drill = %q", got)
	}
	chart := doc.Find(testid("history-chart") + " svg")
	if n := chart.Find(`circle[data-series="size"]`).Length(); n != 2 {
		t.Fatalf("%d size points, want 2 (one per complete backup; the drill's restore is no backup of main)", n)
	}
	if id, _ := chart.Find(`circle[data-series="took"]`).Last().Attr("data-id"); id != b2.ID {
		t.Fatalf("the newest duration point is %s, want %s", id, b2.ID)
	}
	if label, _ := chart.Attr("aria-labelledby"); label == "" || chart.Find("title").First().Text() == "" {
		t.Fatal("the chart has no accessible name")
	}

	row := admin.get("/environments").doc(t).Find(`[data-testid="environment-row"][data-env="main"] ` + testid("environment-rpo"))
	if got := strings.Join(strings.Fields(row.Text()), " "); got != "< 1 min plan promises 24 h" {
		t.Fatalf("environment list RPO = %q", got)
	}

	var got struct {
		Environment struct {
			Name               string   `json:"name"`
			RPOSeconds         *int64   `json:"rpo_seconds"`
			RPOBasis           string   `json:"rpo_basis"`
			RPOBackupID        string   `json:"rpo_backup_id"`
			RPOPromisedSeconds int64    `json:"rpo_promised_seconds"`
			RTO                *float64 `json:"rto_predicted_seconds"`
			RTOBasis           string   `json:"rto_basis"`
		} `json:"environment"`
	}
	a.api(http.MethodGet, "/api/v1/environments/main", token, "").json(t, &got)
	e := got.Environment
	if e.Name != "main" || e.RPOSeconds == nil || *e.RPOSeconds > 60 || e.RPOBasis != "backup" || e.RPOBackupID != b2.ID ||
		e.RPOPromisedSeconds != 86400 || e.RTO == nil || *e.RTO <= 0 || !strings.Contains(e.RTOBasis, "measured") {
		t.Fatalf("GET environment = %+v", e)
	}
	var list struct {
		Environments []struct {
			Name       string `json:"name"`
			RPOSeconds *int64 `json:"rpo_seconds"`
			Promised   int64  `json:"rpo_promised_seconds"`
			RTOBasis   string `json:"rto_basis"`
		} `json:"environments"`
	}
	a.api(http.MethodGet, "/api/v1/environments", token, "").json(t, &list)
	for _, e := range list.Environments {
		switch e.Name {
		case "main":
			if e.RPOSeconds == nil || e.Promised != 86400 {
				t.Fatalf("main in the list: %+v", e)
			}
		case "dev": // no backup, no automated backups, nothing measured
			if e.RPOSeconds != nil || e.Promised != 0 || !strings.Contains(e.RTOBasis, "run a drill") {
				t.Fatalf("dev in the list: %+v", e)
			}
		}
	}
}

// TestBackupsKeysetPaging follows the Backups tab's Older links through 60 backups: each page starts right
// after the last one of the page before, also when a backup is taken in between; the API pages the same way
// with before and next_before, and a starting point that names no backup is 404.
func TestBackupsKeysetPaging(t *testing.T) {
	ctx := context.Background()
	a := newTestApp(t)
	a.user("admin@example.com", db.RoleAdmin, nil)
	token := a.token(a.userByEmail("admin@example.com"))
	a.env("main", db.EnvProduction)
	add := func(i int) {
		if err := a.cat.CreateBackup(ctx, &db.Backup{ID: fmt.Sprintf("%020x", i), Environment: "main",
			Kind: db.BackupManual, Status: db.BackupComplete, Progress: 100}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 60; i++ {
		add(i)
	}
	c := a.client()
	c.login("admin@example.com")
	var seen []string
	path := "/environments/main"
	for page := 0; path != ""; page++ {
		doc := c.get(path).doc(t)
		doc.Find(testid("backup-row")).Each(func(_ int, s *goquery.Selection) { seen = append(seen, s.AttrOr("data-id", "")) })
		if page == 0 {
			add(61) // a new backup does not shift the next pages
		} else if doc.Find(testid("newest")).Length() != 1 {
			t.Fatalf("page %d has no link to the newest backups", page)
		}
		path = doc.Find(testid("older")).AttrOr("href", "")
		if path != "" && !strings.Contains(path, "before=") {
			t.Fatalf("the Older link %q does not page by keyset", path)
		}
	}
	if len(seen) != 60 || seen[0] != fmt.Sprintf("%020x", 60) || seen[59] != fmt.Sprintf("%020x", 1) {
		t.Fatalf("pages showed %d backups, %v ... %v: want each of the 60 once, newest first", len(seen), seen[0], seen[len(seen)-1])
	}
	for i := 1; i < len(seen); i++ {
		if seen[i] >= seen[i-1] {
			t.Fatalf("backup %s follows %s: a page repeated or skipped backups", seen[i], seen[i-1])
		}
	}

	var list struct {
		Backups    []db.Backup `json:"backups"`
		Total      int         `json:"total"`
		NextBefore string      `json:"next_before"`
	}
	a.api(http.MethodGet, "/api/v1/environments/main/backups?limit=10&before="+fmt.Sprintf("%020x", 21), token, "").json(t, &list)
	if len(list.Backups) != 10 || list.Backups[0].ID != fmt.Sprintf("%020x", 20) || list.Total != 20 ||
		list.NextBefore != fmt.Sprintf("%020x", 11) {
		t.Fatalf("API page before 21: %d backups from %v, total %d, next %q", len(list.Backups), list.Backups[0].ID, list.Total, list.NextBefore)
	}
	if r := a.api(http.MethodGet, "/api/v1/environments/main/backups?before=ffffffffffffffffffff", token, ""); r.StatusCode != http.StatusNotFound {
		t.Fatalf("before an unknown backup = %d %s, want 404", r.StatusCode, r.body)
	}
}

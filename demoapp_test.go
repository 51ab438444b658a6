package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/jobs"
)

// TestDemoShopBehindGate boots the demo, changes the shop's data through its gate, backs it up, breaks it and
// restores it: what a newcomer does first.
func TestDemoShopBehindGate(t *testing.T) {
	m := NewMain()
	m.DataDir, m.Addr, m.Demo = t.TempDir(), "127.0.0.1:0", true
	var console strings.Builder
	m.Console, m.Logger = &console, slog.New(slog.DiscardHandler)
	m.Getenv = func(string) string { return "" }
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()

	shop := regexp.MustCompile(`demo shop of main .* is at (http://\S+)`).FindStringSubmatch(console.String())
	if shop == nil {
		t.Fatalf("the demo shop's address was not printed:\n%s", console.String())
	}
	env, err := m.Catalog.FindEnvironmentByName(context.Background(), "main")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := shop[1], "http://"+env.Gate.Listen; got != want {
		t.Fatalf("shop printed at %s, want its gate %s", got, want)
	}
	orders := func() int {
		res, err := http.Get(shop[1])
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		m := regexp.MustCompile(`<h2>(\d+) orders</h2>`).FindSubmatch(body)
		if m == nil {
			t.Fatalf("no order count in the shop page:\n%s", body)
		}
		n := 0
		for _, c := range m[1] {
			n = n*10 + int(c-'0')
		}
		return n
	}
	post := func(path string, form url.Values) {
		res, err := http.PostForm(shop[1]+path, form)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("POST %s: %d", path, res.StatusCode)
		}
	}
	post("/orders", url.Values{"customer": {"new@example.com"}, "product": {"1"}})
	before := orders()

	wait := func(id int64) {
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			a, err := m.Catalog.FindActivityByID(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if a.Done() {
				if a.State != db.ActivitySucceeded {
					t.Fatalf("activity %d %s:\n%s", id, a.State, a.Log)
				}
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("activity %d did not finish", id)
	}
	a, b, err := m.Ops.StartBackup(context.Background(), jobs.BackupRequest{Environment: "main", Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	wait(a.ID)
	post("/orders/clear", nil)
	if got := orders(); got != 0 {
		t.Fatalf("orders after clearing = %d", got)
	}
	ra, _, err := m.Ops.StartRestore(context.Background(), jobs.RestoreRequest{BackupID: b.ID, Confirm: "main", Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	wait(ra.ID)
	if got := orders(); got != before {
		t.Fatalf("orders after restore = %d, want %d", got, before)
	}
	if st := m.Gates.Gate("main").Stats(); st.Holds < 2 {
		t.Fatalf("gate holds = %d, want the backup's and the restore's", st.Holds)
	}
}

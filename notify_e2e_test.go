package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rewind/rewind/db"
)

// TestNotificationsEndToEnd boots rewind serve, adds channels through the API, and fails a backup for real (its
// files mount vanished) and the storage (its directory replaced by a file): a local receiver gets the failed
// backup as a webhook, a Slack and a Discord message linking the dashboard, and the catalog saver's failure as
// storage.unreachable; no secret reaches the server's log.
func TestNotificationsEndToEnd(t *testing.T) {
	ctx := context.Background()
	var logs syncedBuffer
	m := NewMain()
	m.DataDir, m.Addr, m.CatalogSaveInterval = t.TempDir(), "127.0.0.1:0", time.Hour
	m.Console, m.Logger = io.Discard, slog.New(slog.NewTextHandler(&logs, nil))
	m.Getenv = func(string) string { return "" }
	if err := m.Run(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	admin, err := m.Catalog.CreateUser(ctx, "ops@example.com", "a long passphrase", db.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := m.Catalog.CreateToken(ctx, admin.ID, "test")
	if err != nil {
		t.Fatal(err)
	}
	mount := filepath.Join(t.TempDir(), "uploads")
	if err := m.Catalog.CreateEnvironment(ctx, &db.Environment{Name: "main", Type: db.EnvProduction,
		Status: db.StatusActive, Services: []db.Service{{Name: "uploads", Type: db.ServiceFiles, Path: mount}}}); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	got := map[string][]string{}
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got[r.URL.Path] = append(got[r.URL.Path], string(b))
		mu.Unlock()
	}))
	defer rcv.Close()
	const secret = "XoxbSecretPart"
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
	for _, kind := range []string{"webhook", "slack", "discord"} {
		status, body := api("POST", "/api/v1/notifications/channels", `{"name":"`+kind+`","kind":"`+kind+`",
			"events":["backup.failed","storage.unreachable"],"url":"`+rcv.URL+"/"+kind+"/"+secret+`"}`)
		if status != http.StatusCreated || strings.Contains(body, secret) {
			t.Fatalf("create %s channel: %d %s", kind, status, body)
		}
	}

	status, body := api("POST", "/api/v1/environments/main/backups", `{"live": true}`)
	if status != http.StatusAccepted {
		t.Fatalf("start backup: %d %s", status, body)
	}
	var started struct {
		Activity struct{ ID int64 }  `json:"activity"`
		Backup   struct{ ID string } `json:"backup"`
	}
	json.Unmarshal([]byte(body), &started)
	waitFor(t, "the three failed-backup messages", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got["/webhook/"+secret]) == 1 && len(got["/slack/"+secret]) == 1 && len(got["/discord/"+secret]) == 1
	})
	link := m.URL() + "/backups/" + started.Backup.ID
	mu.Lock()
	for _, kind := range []string{"webhook", "slack", "discord"} {
		if msg := got["/"+kind+"/"+secret][0]; !strings.Contains(msg, link) || !strings.Contains(msg, "main") {
			t.Errorf("%s message lacks the link %s or the environment: %s", kind, link, msg)
		}
	}
	mu.Unlock()

	// The storage goes away: the catalog saver's next write fails and the check reports it once.
	repoDir := filepath.Join(m.DataDir, "repo")
	if err := os.RemoveAll(repoDir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(repoDir, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := m.CatalogSaver.Save(ctx); err == nil {
		t.Fatal("saving the catalog into a storage that is a file worked")
	}
	for range 2 {
		if err := m.Notifier.Check(ctx); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "storage.unreachable", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got["/webhook/"+secret]) == 2
	})
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	if n := len(got["/webhook/"+secret]); n != 2 || !strings.Contains(got["/webhook/"+secret][1], `"storage.unreachable"`) {
		t.Errorf("after the storage failed: %d webhook messages, want 2, the second storage.unreachable: %q", n, got["/webhook/"+secret])
	}
	mu.Unlock()
	if strings.Contains(logs.String(), secret) {
		t.Fatalf("the server log holds a channel's token:\n%s", logs.String())
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// syncedBuffer is a bytes.Buffer the server's goroutines can log into.
type syncedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

package web_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/web"
)

// BenchmarkBackupsTab measures the Backups tab of an environment with 10,000 backups through the real router
// (session cookie, CSRF, user lookup, queries, rendering), without the network: per-request CPU and
// allocations. Only -bench runs it (seeding takes a few seconds):
//
//	go test -run '^$' -bench BackupsTab -benchmem ./web/
//
// bench/backups_tab.sh measures the same page over HTTP under 50 concurrent clients.
func BenchmarkBackupsTab(b *testing.B) {
	srv, cookie := backupsTabServer(b, 10000)
	for _, bc := range []struct{ name, path, hx string }{
		{"first", "/environments/main", ""},
		{"first_htmx", "/environments/main", "true"},
		{"offset9000", "/environments/main?offset=9000", ""},
		{"before9000", "/environments/main?before=" + fmt.Sprintf("%020x", 10000-9000+1), ""}, // the same page, keyset
	} {
		get := func() *http.Request {
			r := httptest.NewRequest(http.MethodGet, bc.path, nil)
			r.Header.Set("Cookie", cookie)
			if bc.hx != "" {
				r.Header.Set("HX-Request", bc.hx)
			}
			return r
		}
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, get())
		if rows := strings.Count(w.Body.String(), `data-testid="backup-row"`); w.Code != http.StatusOK || rows != 25 {
			b.Fatalf("GET %s: status %d, %d rows, want 200 and 25", bc.path, w.Code, rows)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				srv.ServeHTTP(discardWriter{h: http.Header{}}, get())
			}
		})
		b.Run(bc.name+"_parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(25) // 50 clients on 2 CPUs
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					srv.ServeHTTP(discardWriter{h: http.Header{}}, get())
				}
			})
		})
	}
}

// discardWriter is a ResponseWriter that keeps nothing, so the benchmark counts the server's work only.
type discardWriter struct{ h http.Header }

func (w discardWriter) Header() http.Header         { return w.h }
func (w discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w discardWriter) WriteHeader(int)             {}

// backupsTabServer is the real server over a catalog with environment "main" holding n complete backups and a
// signed-in admin; it returns the server and the session's Cookie header.
func backupsTabServer(b *testing.B, n int) (http.Handler, string) {
	b.Helper()
	ctx := context.Background()
	key := make([]byte, 32)
	cat, err := db.Open(ctx, filepath.Join(b.TempDir(), "rewind.db"), key)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cat.Close() })
	if _, err := cat.CreateUser(ctx, "bench@example.com", testPassword, "admin"); err != nil {
		b.Fatal(err)
	}
	if err := cat.CreateEnvironment(ctx, &db.Environment{Name: "main", Type: "production",
		Services: []db.Service{{Name: "uploads", Type: "files", Path: b.TempDir()}}}); err != nil {
		b.Fatal(err)
	}
	clock := time.Now().Add(-time.Duration(n) * time.Minute)
	cat.Now = func() time.Time { return clock }
	for i := 1; i <= n; i++ {
		clock = clock.Add(time.Minute)
		bk := &db.Backup{ID: fmt.Sprintf("%020x", i), Environment: "main", Kind: db.BackupManual, Status: db.BackupComplete,
			Progress: 100, SizeBytes: 1 << 20, NewBytes: int64(i) * 10, Pause: time.Duration(i%7) * time.Millisecond,
			Services: []db.BackupService{{Name: "uploads", Type: "files", Size: 1 << 20}}, CompletedAt: &clock}
		if i%3 == 0 {
			bk.Kind, bk.Live = db.BackupAutomated, true
		}
		if err := cat.CreateBackup(ctx, bk); err != nil {
			b.Fatal(err)
		}
	}
	cat.Now = time.Now
	srv, err := web.NewServer(web.Config{Catalog: cat, SessionKey: []byte("0123456789abcdef0123456789abcdef"),
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}

	// Sign in through the form, as a browser does.
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/login", nil))
	m := regexp.MustCompile(`name="_csrf" value="([^"]*)"`).FindStringSubmatch(w.Body.String())
	if m == nil {
		b.Fatal("no CSRF token on the sign-in page")
	}
	form := url.Values{"_csrf": {m[1]}, "email": {"bench@example.com"}, "password": {testPassword}}
	req := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range w.Result().Cookies() {
		req.AddCookie(c)
	}
	w = httptest.NewRecorder()
	srv.ServeHTTP(w, req)
	if w.Code != http.StatusSeeOther || len(w.Result().Cookies()) == 0 {
		b.Fatalf("sign in: status %d", w.Code)
	}
	c := w.Result().Cookies()[0]
	return srv, c.Name + "=" + c.Value
}

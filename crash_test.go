package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/db"
)

// crashServer is `rewind serve` run as a child process of the test (the test binary acting as rewind), to be
// killed with SIGKILL.
type crashServer struct {
	t          *testing.T
	data       string
	addr       string
	token      string
	cmd        *exec.Cmd
	log        *bytes.Buffer
	repoSecret string
}

// newCrashServer prepares a data directory for `rewind serve` with an admin and its API token; start runs it.
func newCrashServer(t *testing.T, data string) *crashServer {
	t.Helper()
	s := &crashServer{t: t, data: data, addr: freeAddr(t), repoSecret: "crash test password"}
	add := rewindCommand("users:add", "ops@example.com", "--role", "admin", "--password-stdin", "--data", s.data)
	add.Stdin = strings.NewReader("crash test admin password\n")
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("users:add: %v\n%s", err, out)
	}
	out, err := rewindCommand("tokens:create", "--user", "ops@example.com", "--data", s.data).Output()
	if err != nil {
		t.Fatalf("tokens:create: %v", err)
	}
	s.token = strings.TrimSpace(string(out))
	return s
}

func (s *crashServer) start() {
	s.t.Helper()
	s.log = &bytes.Buffer{}
	s.cmd = rewindCommand("serve", "--addr", s.addr, "--data", s.data, "--log-level", "warn")
	s.cmd.Env = append(s.cmd.Env, "REWIND_REPO_PASSWORD="+s.repoSecret)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Get("http://" + s.addr + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("rewind serve did not come up: %v\n%s", err, s.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *crashServer) kill() {
	s.t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	_ = s.cmd.Wait()
}

func (s *crashServer) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	_ = s.cmd.Wait()
}

// api sends a JSON request and decodes the answer into out; it returns the status.
func (s *crashServer) api(method, path string, body, out any) int {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://"+s.addr+path, rd)
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 300 {
		s.t.Fatalf("%s %s: %d %s", method, path, res.StatusCode, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			s.t.Fatalf("%s %s: %v: %s", method, path, err, data)
		}
	}
	return res.StatusCode
}

func (s *crashServer) waitActivity(id int64) db.Activity {
	s.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var got struct{ Activity db.Activity }
		s.api(http.MethodGet, fmt.Sprintf("/api/v1/activities/%d", id), nil, &got)
		if got.Activity.Done() {
			return got.Activity
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("activity %d still %s", id, got.Activity.State)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// crashData is the environment's live data: a SQLite database whose rows all carry one generation, and a
// files mount whose files all carry it too. A service is consistent when it holds exactly one generation.
type crashData struct {
	t              *testing.T
	dbPath, mount  string
	files, rowsPer int
}

func (d *crashData) write(gen string) {
	d.t.Helper()
	conn, err := sql.Open("sqlite", d.dbPath+"?_pragma=busy_timeout(5000)")
	if err != nil {
		d.t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Exec(`CREATE TABLE IF NOT EXISTS kv (k INTEGER PRIMARY KEY, v TEXT);
		DELETE FROM kv`); err != nil {
		d.t.Fatal(err)
	}
	tx, _ := conn.Begin()
	for i := range d.rowsPer {
		if _, err := tx.Exec(`INSERT INTO kv VALUES (?, ?)`, i, gen+strings.Repeat("x", 200)); err != nil {
			d.t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		d.t.Fatal(err)
	}
	if err := os.MkdirAll(d.mount, 0o755); err != nil {
		d.t.Fatal(err)
	}
	noise := make([]byte, 1<<20)
	for i := range d.files {
		rand.Read(noise) // incompressible, so a backup takes a while
		content := append([]byte(gen+"\n"), noise...)
		if err := os.WriteFile(filepath.Join(d.mount, fmt.Sprintf("f%02d.bin", i)), content, 0o644); err != nil {
			d.t.Fatal(err)
		}
	}
}

// generations returns the generation of each service ("A", "B", or a description of what is wrong).
func (d *crashData) generations() (sqliteGen, filesGen string) {
	d.t.Helper()
	conn, err := sql.Open("sqlite", d.dbPath+"?_pragma=busy_timeout(5000)")
	if err != nil {
		d.t.Fatal(err)
	}
	defer conn.Close()
	var check string
	if err := conn.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		sqliteGen = fmt.Sprintf("corrupt (%s %v)", check, err)
	} else {
		rows, err := conn.Query(`SELECT DISTINCT substr(v, 1, 1), COUNT(*) FROM kv GROUP BY 1`)
		if err != nil {
			d.t.Fatal(err)
		}
		var gens []string
		for rows.Next() {
			var g string
			var n int
			rows.Scan(&g, &n)
			if n != d.rowsPer {
				g += fmt.Sprintf("(%d rows)", n)
			}
			gens = append(gens, g)
		}
		rows.Close()
		sqliteGen = strings.Join(gens, "+")
	}
	seen := map[string]int{}
	for i := range d.files {
		f, err := os.Open(filepath.Join(d.mount, fmt.Sprintf("f%02d.bin", i)))
		if err != nil {
			seen["missing"]++
			continue
		}
		head := make([]byte, 2)
		io.ReadFull(f, head)
		f.Close()
		seen[string(head[:1])]++
	}
	var gens []string
	for g, n := range seen {
		if n != d.files {
			g += fmt.Sprintf("(%d files)", n)
		}
		gens = append(gens, g)
	}
	return sqliteGen, strings.Join(gens, "+")
}

// TestCrash kills `rewind serve` (SIGKILL) during backups and restores at several points and restarts it:
// the interrupted activities end failed with a clear message, no backup is listed restorable that is not
// complete, every restorable backup reads back whole (and verifies offline with its checksums), and each
// service's live data holds exactly one state, the old or the restored one, never a mix or a corrupt file.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills rewind serve several times")
	}
	dir := t.TempDir()
	s := newCrashServer(t, filepath.Join(dir, "data"))
	data := &crashData{t: t, dbPath: filepath.Join(dir, "app", "app.db"), mount: filepath.Join(dir, "app", "uploads"),
		files: 24, rowsPer: 2000}
	os.MkdirAll(filepath.Dir(data.dbPath), 0o755)
	data.write("A")

	s.start()
	defer func() { s.stop() }()
	s.api(http.MethodPut, "/api/v1/environments/app", map[string]any{"type": "production", "services": []map[string]any{
		{"name": "db", "type": "sqlite", "path": data.dbPath},
		{"name": "uploads", "type": "files", "path": data.mount},
	}}, nil)
	var started struct {
		Activity db.Activity
		Backup   db.Backup
	}

	// check restarts the killed server and checks the catalog: the interrupted activity is finished (failed
	// with the interruption named, or it had finished before the kill) and no backup is pending or running.
	check := func(what string, id int64) db.Activity {
		t.Helper()
		s.start()
		a := s.waitActivity(id)
		if a.State == db.ActivityFailed && !strings.Contains(a.Log+a.Summary, "interrupted") {
			t.Errorf("%s: activity failed without naming the interruption:\n%s", what, a.Log)
		}
		var list struct{ Backups []db.Backup }
		s.api(http.MethodGet, "/api/v1/environments/app/backups?limit=1000", nil, &list)
		for _, b := range list.Backups {
			if b.Status == db.BackupPending || b.Status == db.BackupRunning {
				// A queued backup resumes; wait for it instead.
				continue
			}
			if b.Status == db.BackupFailed && b.Error == "" {
				t.Errorf("%s: backup %s failed without a message", what, b.ID)
			}
		}
		t.Logf("%s: activity %s: %s", what, a.State, lastLine(a.Log))
		return a
	}
	// scratch lists what Rewind keeps beside the app's data (stages, prepared and replaced copies).
	scratch := func() []string {
		left, _ := filepath.Glob(filepath.Join(filepath.Dir(data.dbPath), ".rewind-*"))
		return left
	}

	for _, delay := range []time.Duration{20 * time.Millisecond, 150 * time.Millisecond, 400 * time.Millisecond} {
		what := fmt.Sprintf("kill %s into a backup", delay)
		s.api(http.MethodPost, "/api/v1/environments/app/backups", map[string]any{"replace_oldest": true}, &started)
		time.Sleep(delay)
		s.kill()
		a := check(what, started.Activity.ID)
		if left := scratch(); len(left) != 0 {
			t.Errorf("%s: left beside the live data after the restart: %v\n%s", what, left, a.Log)
		}
		var b struct{ Backup db.Backup }
		s.api(http.MethodGet, "/api/v1/backups/"+started.Backup.ID, nil, &b)
		if (a.State == db.ActivitySucceeded) != b.Backup.Restorable() {
			t.Errorf("%s: activity %s but backup %s", what, a.State, b.Backup.Status)
		}
	}

	// The backup the restores restore (taken last, so the manual quota does not expire it), then other data.
	s.api(http.MethodPost, "/api/v1/environments/app/backups", map[string]any{"replace_oldest": true}, &started)
	if a := s.waitActivity(started.Activity.ID); a.State != db.ActivitySucceeded {
		t.Fatalf("backup of A: %s\n%s", a.State, a.Log)
	}
	backupA := started.Backup.ID
	data.write("B")

	for _, delay := range []time.Duration{20 * time.Millisecond, 150 * time.Millisecond, 300 * time.Millisecond, 600 * time.Millisecond} {
		what := fmt.Sprintf("kill %s into a restore", delay)
		var restore struct{ Activity db.Activity }
		s.api(http.MethodPost, "/api/v1/backups/"+backupA+"/restore", map[string]any{"confirm": "app"}, &restore)
		time.Sleep(delay)
		s.kill()
		sg, fg := data.generations()
		a := check(what, restore.Activity.ID)
		if (sg != "A" && sg != "B") || (fg != "A" && fg != "B") {
			t.Errorf("%s: live data is sqlite %q, files %q: want each wholly A or B", what, sg, fg)
		}
		t.Logf("%s: sqlite %s, files %s", what, sg, fg)
		if a.State == db.ActivitySucceeded && (sg != "A" || fg != "A") {
			t.Errorf("%s: the restore succeeded but the data is sqlite %s, files %s", what, sg, fg)
		}
		// The interruption says whether the switch happened ("after the switch" only once it did).
		if a.State == db.ActivityFailed && strings.Contains(a.Log, "after the switch") && (sg != "A" || fg != "A") {
			t.Errorf("%s: the activity says the switch happened but the data is sqlite %s, files %s:\n%s", what, sg, fg, a.Log)
		}
		// Nothing switched: "before the switch", or "during the switch" when the kill fell between the switching
		// line and the first switch (that message says some services may run the restored data, not that any do).
		if a.State == db.ActivityFailed && sg == "B" && fg == "B" &&
			!strings.Contains(a.Log, "before the switch") && !strings.Contains(a.Log, "during the switch") {
			t.Errorf("%s: nothing was switched but the activity does not say so:\n%s", what, a.Log)
		}
		// Before the switch, what the restore prepared is removed on restart; after it, what the switch
		// replaced is kept (the activity says where) and removed here, as its admin would.
		left := scratch()
		if a.State == db.ActivityFailed && strings.Contains(a.Log, "before the switch") && len(left) != 0 {
			t.Errorf("%s: left beside the live data after the restart: %v\n%s", what, left, a.Log)
		}
		for _, p := range left {
			os.RemoveAll(p)
		}
		data.write("B")
	}

	// Every restorable backup reads back whole through the server ...
	var list struct{ Backups []db.Backup }
	s.api(http.MethodGet, "/api/v1/environments/app/backups?limit=1000", nil, &list)
	var complete []string
	for _, b := range list.Backups {
		if !b.Restorable() {
			continue
		}
		complete = append(complete, b.ID)
		req, _ := http.NewRequest(http.MethodGet, "http://"+s.addr+"/api/v1/backups/"+b.ID+"/download", nil)
		req.Header.Set("Authorization", "Bearer "+s.token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		tr, n := tar.NewReader(res.Body), 0
		for {
			_, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Errorf("backup %s (%s) does not read back: %v", b.ID, b.Kind, err)
				break
			}
			io.Copy(io.Discard, tr)
			n++
		}
		res.Body.Close()
	}
	s.stop()
	// ... and verifies offline against its checksums.
	ctx := context.Background()
	repo, err := backup.OpenRepository(ctx, backup.RepositoryOptions{Storage: backup.FileStorage(filepath.Join(s.data, "repo")),
		Password: s.repoSecret, ConfigDir: filepath.Join(dir, "verify-kopia")})
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close(ctx)
	engine := &backup.Engine{Repo: repo}
	for _, id := range complete {
		if err := engine.VerifyBackup(ctx, id, nil); err != nil {
			t.Errorf("verify %s: %v", id, err)
		}
	}
	t.Logf("%d restorable backups read back and verified", len(complete))
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndex(s, "\n")+1:]
}

package sqlite_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/backuptest"
	"github.com/rewind/rewind/backup/sqlite"
)

// openApp opens the database as an application would: WAL, a busy timeout, a pool kept open throughout.
func openApp(t testing.TB, path string) *sql.DB {
	t.Helper()
	return openAppMode(t, path, "wal")
}

func openAppMode(t testing.TB, path, mode string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode("+mode+")&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(4)
	t.Cleanup(func() { db.Close() })
	return db
}

func exec(t testing.TB, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func blob(seed, n int) []byte {
	b := make([]byte, n)
	x := uint32(seed*2654435761 + 1)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

func fill(t testing.TB, db *sql.DB) {
	exec(t, db, `CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT UNIQUE, bio TEXT, score REAL)`)
	exec(t, db, `CREATE INDEX users_name ON users(name)`)
	exec(t, db, `CREATE TABLE files (id INTEGER PRIMARY KEY, data BLOB)`)
	exec(t, db, `CREATE TABLE kv (k TEXT PRIMARY KEY, v ANY) WITHOUT ROWID`)
	exec(t, db, `CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, what TEXT)`)
	exec(t, db, `CREATE VIEW user_names AS SELECT name FROM users WHERE bio IS NOT NULL`)
	exec(t, db, `CREATE TRIGGER users_log AFTER INSERT ON users BEGIN INSERT INTO events(what) VALUES ('user ' || NEW.id); END`)
	for i := range 200 {
		var bio any
		if i%3 != 0 {
			bio = fmt.Sprintf("bio %d — ünïcødé 日本語 🎉", i)
		}
		exec(t, db, `INSERT INTO users (name, email, bio, score) VALUES (?, ?, ?, ?)`, fmt.Sprintf("user%d", i), fmt.Sprintf("u%d@example.com", i), bio, float64(i)/7)
	}
	for i := range 5 {
		exec(t, db, `INSERT INTO files (data) VALUES (?)`, blob(i, 1<<20+i))
	}
	exec(t, db, `INSERT INTO files (data) VALUES (NULL)`)
	exec(t, db, `INSERT INTO kv VALUES ('int', 42), ('text', 'x'), ('null', NULL), ('blob', x'00ff')`)
}

// state is every schema object's SQL and every table's rows, hashed.
func state(t testing.TB, db *sql.DB) backuptest.State {
	t.Helper()
	s := backuptest.State{}
	rows, err := db.Query(`SELECT type, name, coalesce(sql, '') FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var typ, name, q string
		if err := rows.Scan(&typ, &name, &q); err != nil {
			t.Fatal(err)
		}
		s[typ+" "+name] = q
		if typ == "table" {
			tables = append(tables, name)
		}
	}
	rows.Close()
	for _, tb := range tables {
		rows, err := db.Query(`SELECT * FROM "` + tb + `"`)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		var lines []string
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			for _, v := range vals {
				switch v := v.(type) {
				case []byte:
					sum := sha256.Sum256(v)
					fmt.Fprintf(&b, "blob:%x|", sum)
				default:
					fmt.Fprintf(&b, "%T:%v|", v, v)
				}
			}
			lines = append(lines, b.String())
		}
		rows.Close()
		sort.Strings(lines)
		sum := sha256.Sum256([]byte(strings.Join(lines, "\n")))
		s["rows "+tb] = fmt.Sprintf("%d %s", len(lines), hex.EncodeToString(sum[:]))
	}
	return s
}

func damage(t testing.TB, db *sql.DB) {
	exec(t, db, `UPDATE users SET name = 'changed' WHERE id % 5 = 0`)
	exec(t, db, `DELETE FROM users WHERE id > 150`)
	exec(t, db, `DROP TABLE files`)
	exec(t, db, `CREATE TABLE added (x)`)
	exec(t, db, `INSERT INTO added VALUES (1)`)
}

func TestContract(t *testing.T) {
	for _, mode := range []string{"wal", "delete"} {
		t.Run(mode, func(t *testing.T) { contract(t, mode) })
	}
}

func contract(t *testing.T, mode string) {
	path := filepath.Join(t.TempDir(), "app.db")
	db := openAppMode(t, path, mode)
	src, err := sqlite.New(path)
	if err != nil {
		t.Fatal(err)
	}
	backuptest.RoundTrip(t, backuptest.Case{
		Source:   src,
		Fill:     func(t testing.TB) { fill(t, db) },
		Checksum: func(t testing.TB) backuptest.State { return state(t, db) },
		Write: func(t testing.TB, n int) {
			exec(t, db, `INSERT INTO kv VALUES (?, ?)`, fmt.Sprintf("write%d", n), n)
		},
		Damage: func(t testing.TB) { damage(t, db) },
	})
}

// TestEngineRoundTripWithWriter backs up through a real kopia repository while a writer keeps inserting; the
// writer is held only during the pause. The restore, seen through the application's still-open pool, is
// exactly the state at the pause.
func TestEngineRoundTripWithWriter(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	path := filepath.Join(base, "app.db")
	db := openApp(t, path)
	fill(t, db)

	var gate sync.Mutex // the "pause": the writer takes it for each insert
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	inserted := 0
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			gate.Lock()
			_, err := db.Exec(`INSERT INTO events (what) VALUES (?)`, fmt.Sprintf("writer %d %s", i, strings.Repeat("x", i%500)))
			gate.Unlock()
			if err != nil {
				t.Errorf("writer: %v", err)
				return
			}
			inserted++
		}
	}()

	r, err := backup.OpenRepository(ctx, backup.RepositoryOptions{
		Storage: backup.FileStorage(filepath.Join(base, "repo")), Password: "pw", ConfigDir: filepath.Join(base, "kopia"),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	e := &backup.Engine{Repo: r, Drivers: map[string]backup.Driver{backup.TypeSQLite: sqlite.Driver}}
	spec := backup.ServiceSpec{Name: "local", Type: backup.TypeSQLite, Path: path}

	var atPause backuptest.State
	hold := func(context.Context) (func(), error) {
		gate.Lock()
		atPause = state(t, db)
		return gate.Unlock, nil
	}
	m, err := e.Backup(ctx, backup.BackupRequest{Environment: "main", Kind: backup.KindManual, Services: []backup.ServiceSpec{spec}, Hold: hold}, nil)
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	close(stop)
	wg.Wait()
	if got := m.Service("local").Version; !strings.HasPrefix(got, "SQLite 3.") {
		t.Fatalf("version = %q", got)
	}
	after := state(t, db)
	if backuptest.Equal(after, atPause) {
		t.Fatalf("the writer wrote nothing after the pause (%d inserts)", inserted)
	}

	damage(t, db)
	res, err := e.Restore(ctx, backup.RestoreRequest{ID: m.ID, Services: []backup.ServiceSpec{spec}}, nil)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	backuptest.MustEqual(t, "database after restore, through the open pool", atPause, state(t, db))
	var check string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check = %q, %v", check, err)
	}
	for _, rs := range res.Replaced {
		if err := rs.Replaced.Discard(ctx); err != nil {
			t.Fatal(err)
		}
	}
	leftovers, _ := filepath.Glob(filepath.Join(base, ".rewind-*"))
	if len(leftovers) != 0 {
		t.Fatalf("files left beside the database: %v", leftovers)
	}
}

// TestRestoreIntoNewDatabase restores into a path that does not exist yet (a branch environment); the replaced
// state is an empty database, and Revert removes the new file.
func TestRestoreIntoNewDatabase(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	path := filepath.Join(base, "app.db")
	db := openApp(t, path)
	fill(t, db)
	want := state(t, db)
	src, _ := sqlite.New(path)
	c, err := src.Pin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dir := backuptest.Stream(t, c, backup.NopProgress)
	c.Close()

	newPath := filepath.Join(base, "branch", "data", "app.db")
	dst, _ := sqlite.New(newPath)
	prep, err := dst.Prepare(ctx, backuptest.Dir(t, dir), backup.NopProgress)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	rep, err := prep.Switch(ctx)
	if err != nil {
		t.Fatalf("Switch: %v", err)
	}
	backuptest.MustEqual(t, "new database", want, state(t, openApp(t, newPath)))
	rc, err := rep.Pin(ctx)
	if err != nil {
		t.Fatalf("Replaced.Pin: %v", err)
	}
	backuptest.Stream(t, rc, backup.NopProgress)
	rc.Close()
	if err := rep.Revert(ctx); err != nil {
		t.Fatalf("Revert: %v", err)
	}
	if _, err := os.Stat(newPath); !os.IsNotExist(err) {
		t.Fatalf("database after Revert: %v, want it gone", err)
	}
}

// TestLiveBackupWithWriter takes a live backup (no pause) while a writer inserts without stopping: the restored
// database is consistent (integrity_check, no gap in the writer's rows) and lies between the states before and
// after the backup.
func TestLiveBackupWithWriter(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	path := filepath.Join(base, "app.db")
	db := openApp(t, path)
	fill(t, db)
	exec(t, db, `CREATE TABLE seq (n INTEGER PRIMARY KEY, payload BLOB)`)
	stop := make(chan struct{})
	done := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				done <- n
				return
			default:
			}
			tx, err := db.Begin()
			if err == nil {
				_, err = tx.Exec(`INSERT INTO seq (n, payload) VALUES (?, ?)`, n+1, blob(n, 2000))
				if err == nil {
					err = tx.Commit()
				} else {
					tx.Rollback()
				}
			}
			if err != nil {
				t.Errorf("writer: %v", err)
				done <- n
				return
			}
			n++
		}
	}()
	countRows := func(db *sql.DB) int {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM seq`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for countRows(db) < 50 {
	}
	before := countRows(db)

	r, err := backup.OpenRepository(ctx, backup.RepositoryOptions{
		Storage: backup.FileStorage(filepath.Join(base, "repo")), Password: "pw", ConfigDir: filepath.Join(base, "kopia"),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	e := &backup.Engine{Repo: r, Drivers: map[string]backup.Driver{backup.TypeSQLite: sqlite.Driver}}
	spec := backup.ServiceSpec{Name: "local", Type: backup.TypeSQLite, Path: path}
	m, err := e.Backup(ctx, backup.BackupRequest{Environment: "main", Kind: backup.KindAutomated, Live: true, Services: []backup.ServiceSpec{spec}}, nil)
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	after := countRows(db)
	close(stop)
	total := <-done
	if total <= after {
		t.Logf("writer stopped at %d", total)
	}

	if _, err := e.Restore(ctx, backup.RestoreRequest{ID: m.ID, Services: []backup.ServiceSpec{spec}}, nil); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	var check string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check = %q, %v", check, err)
	}
	var n, maxN int
	if err := db.QueryRow(`SELECT count(*), coalesce(max(n), 0) FROM seq`).Scan(&n, &maxN); err != nil {
		t.Fatal(err)
	}
	if n != maxN {
		t.Fatalf("restored %d rows up to %d: a gap, the copy is not one snapshot", n, maxN)
	}
	if n < before || n > after {
		t.Fatalf("restored %d rows, want between %d (before the backup) and %d (after)", n, before, after)
	}
}

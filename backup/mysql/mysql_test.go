package mysql

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kopia/kopia/fs"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/backuptest"
	"github.com/rewind/rewind/backup/internal/testserver"
)

func TestMain(m *testing.M) { testserver.Main(m) }

func run(t testing.TB, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("exec %.100q: %v", q, err)
	}
}

const fillSQL = `
CREATE TABLE users (
	id INT AUTO_INCREMENT PRIMARY KEY, email VARCHAR(190) NOT NULL UNIQUE, name VARCHAR(100) NULL,
	bio MEDIUMTEXT, avatar BLOB, score DECIMAL(12,4), ratio FLOAT, weight DOUBLE, born DATE, seen DATETIME(6),
	touched TIMESTAMP NULL, dur TIME, prefs JSON, kind ENUM('a','b','c'), flags SET('x','y','z'), bits BIT(8),
	lower_name VARCHAR(100) AS (LOWER(name)) VIRTUAL, name_len INT AS (CHAR_LENGTH(name)) STORED,
	KEY name_idx (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE orders (
	id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, user_id INT NOT NULL, qty SMALLINT NOT NULL DEFAULT 1,
	note VARCHAR(255), CONSTRAINT fk_orders_user FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE=InnoDB;
CREATE TABLE legacy (id INT PRIMARY KEY, txt VARCHAR(50)) ENGINE=InnoDB DEFAULT CHARSET=latin1;
CREATE TABLE empty_table (id INT) ENGINE=InnoDB;
CREATE TABLE zero_id (id INT AUTO_INCREMENT PRIMARY KEY, v INT) ENGINE=InnoDB;
CREATE SEQUENCE invoice_no START WITH 1000 INCREMENT BY 1;
CREATE VIEW user_orders AS SELECT u.id, u.email, COUNT(o.id) AS n FROM users u LEFT JOIN orders o ON o.user_id = u.id GROUP BY u.id, u.email;
CREATE VIEW big_users AS SELECT id, email FROM user_orders WHERE n > 2;
CREATE FUNCTION double_it(x INT) RETURNS INT DETERMINISTIC RETURN x * 2;
CREATE TRIGGER orders_note BEFORE INSERT ON orders FOR EACH ROW SET NEW.note = COALESCE(NEW.note, 'auto; note');
CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY STARTS '2037-01-01 00:00:00' DO DELETE FROM orders WHERE qty < 0;
`

func fill(t testing.TB, db *sql.DB) {
	for _, q := range strings.Split(fillSQL, ";\n") {
		if q = strings.TrimSpace(q); q != "" {
			run(t, db, q)
		}
	}
	run(t, db, "CREATE PROCEDURE add_order(IN uid INT, IN q INT)\nBEGIN\n\tDECLARE s VARCHAR(20) DEFAULT 'semi;colon';\n\tINSERT INTO orders (user_id, qty, note) VALUES (uid, q, s);\nEND")
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 300; i++ {
		var name, avatar, bits any
		if i%7 != 0 {
			name = fmt.Sprintf("Zoë %d 日本語 🚀", i)
		}
		if i%5 != 0 {
			avatar = []byte{0, byte(i), 0xff, '\'', '\\', '\n', 0x1a, '"'}
		}
		if i%3 != 0 {
			bits = []byte{byte(i)}
		}
		bio := "line\nbreak\ttab 'quote' \"dq\" \\ backslash \x00 nul \x1a ctrl-z ; -- not a comment /* nor this */ `tick`"
		if i == 3 {
			bio = strings.Repeat("large value ", 50000)
		}
		if _, err := tx.Exec(`INSERT INTO users (email, name, bio, avatar, score, ratio, weight, born, seen, touched, dur, prefs, kind, flags, bits)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			fmt.Sprintf("u%d@example.com", i), name, bio, avatar, float64(i)*1.2345, float32(i)/3, float64(i)/7,
			fmt.Sprintf("2000-01-%02d", 1+i%28), fmt.Sprintf("2024-01-01 %02d:%02d:%02d.%06d", i%24, i%60, i%60, i*37),
			"2024-06-01 12:00:00", fmt.Sprintf("%d:00:01", i%800), fmt.Sprintf(`{"i": %d, "s": "é\"x"}`, i),
			[]string{"a", "b", "c"}[i%3], "x,z", bits); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 1000; i++ {
		if _, err := tx.Exec("INSERT INTO orders (user_id, qty) VALUES (?, ?)", 1+i%300, 1+i%3); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	run(t, db, "INSERT INTO legacy VALUES (1, 'café'), (2, NULL), (3, 'naïve')")
	run(t, db, "SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO'")
	run(t, db, "INSERT INTO zero_id VALUES (0, 0), (5, 5)")
	run(t, db, "SELECT NEXTVAL(invoice_no)")
}

// checksum returns every table's CHECKSUM TABLE and definition, every sequence's position, and the
// definitions of views, routines, triggers and events.
func checksum(t testing.TB, pool *sql.DB, schema string) backuptest.State {
	ctx := context.Background()
	conn, err := pool.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "USE "+quoteIdent(schema)); err != nil {
		t.Fatal(err)
	}
	st := backuptest.State{}
	tables, err := readTables(ctx, conn, schema)
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		if tb.Sequence {
			var next string
			if err := conn.QueryRowContext(ctx, "SELECT next_not_cached_value FROM "+quoteIdent(tb.Name)).Scan(&next); err != nil {
				t.Fatal(err)
			}
			st["sequence "+tb.Name] = next + " " + digest(tb.Create)
			continue
		}
		var name string
		var sum sql.NullInt64
		if err := conn.QueryRowContext(ctx, "CHECKSUM TABLE "+quoteIdent(tb.Name)+" EXTENDED").Scan(&name, &sum); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+quoteIdent(tb.Name)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		st["table "+tb.Name] = fmt.Sprintf("rows=%d checksum=%d ddl=%s", n, sum.Int64, digest(tb.Create))
	}
	objs, err := readObjects(ctx, conn, schema)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		st[strings.ToLower(o.Kind)+" "+o.Name] = digest(o.SQLMode + o.TimeZone + o.Create)
	}
	return st
}

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:6])
}

func newSource(t testing.TB, url string) *Source {
	src, err := New(backup.ServiceSpec{Name: "shop", Type: backup.TypeMySQL, URL: url})
	if err != nil {
		t.Fatal(err)
	}
	return src.(*Source)
}

func newCase(t *testing.T, srv *testserver.MariaDB, schema string) backuptest.Case {
	return newCaseAs(t, srv.Open(t, schema), newSource(t, srv.URL(schema)), schema)
}

// newCaseAs builds a case whose data is written through pool (whose user defines the views, routines,
// triggers and events).
func newCaseAs(t *testing.T, pool *sql.DB, src *Source, schema string) backuptest.Case {
	return backuptest.Case{
		Source:   src,
		Fill:     func(t testing.TB) { fill(t, pool) },
		Checksum: func(t testing.TB) backuptest.State { return checksum(t, pool, schema) },
		Write: func(t testing.TB, n int) {
			run(t, pool, "INSERT INTO legacy VALUES (?, 'late')", 100+n)
		},
		Damage: func(t testing.TB) {
			run(t, pool, "UPDATE users SET name = 'damaged' WHERE id % 3 = 0")
			run(t, pool, "DELETE FROM orders WHERE id % 2 = 0")
			run(t, pool, "DROP VIEW big_users")
			run(t, pool, "DROP PROCEDURE add_order")
			run(t, pool, "DROP TRIGGER orders_note")
			run(t, pool, "DROP TABLE empty_table")
			run(t, pool, "CREATE TABLE added (x INT)")
			run(t, pool, "INSERT INTO added VALUES (1)")
			run(t, pool, "CREATE VIEW added_view AS SELECT x FROM added")
		},
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	srv := testserver.StartMariaDB(t)
	backuptest.RoundTrip(t, newCase(t, srv, srv.CreateDatabase(t)))
}

// TestRoundTripSocket: a URL with socket=PATH reaches the server through that Unix socket (a scratch server's,
// which has no TCP port); the host, which resolves nowhere, is not used.
func TestRoundTripSocket(t *testing.T) {
	t.Parallel()
	srv := testserver.StartMariaDB(t)
	schema := srv.CreateDatabase(t)
	url := "mysql://root:@nowhere.invalid/" + schema + "?socket=" + srv.Socket()
	backuptest.RoundTrip(t, newCaseAs(t, srv.Open(t, schema), newSource(t, url), schema))
}

func TestPinErrors(t *testing.T) {
	t.Parallel()
	srv := testserver.StartMariaDB(t)
	root := srv.Open(t, "")
	run(t, root, "CREATE USER IF NOT EXISTS 'rewindtest'@'%' IDENTIFIED BY 'right-password'")
	t.Cleanup(func() { root.Exec("DROP USER IF EXISTS 'rewindtest'@'%'") })
	for _, tc := range []struct{ name, url, want string }{
		{"unreachable", "mysql://app:hunter2@127.0.0.1:1/app", "connect"},
		{"wrong password", fmt.Sprintf("mysql://rewindtest:hunter2@127.0.0.1:%d/mysql", srv.Port), "Access denied"},
		{"missing database", fmt.Sprintf("mysql://root:@127.0.0.1:%d/no_such_db", srv.Port), "no_such_db"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			_, err := newSource(t, tc.url).Pin(ctx)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Pin: %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error shows the password: %v", err)
			}
		})
	}
	for _, u := range []string{"postgres://a@h/db", "mysql://u:topsecret@h:3306/"} {
		if _, err := New(backup.ServiceSpec{Name: "db", URL: u}); err == nil || strings.Contains(err.Error(), "topsecret") {
			t.Errorf("New(%q): %v", u, err)
		}
	}
}

// TestDumpKilled kills the pinned session halfway through the dump: reading the folder fails, naming the
// cause, instead of ending as if the dump were complete.
func TestDumpKilled(t *testing.T) {
	t.Parallel()
	srv := testserver.StartMariaDB(t)
	schema := srv.CreateDatabase(t)
	pool := srv.Open(t, schema)
	run(t, pool, "CREATE TABLE big (id INT PRIMARY KEY, v VARCHAR(300))")
	run(t, pool, "INSERT INTO big SELECT seq, REPEAT('x', 250) FROM seq_1_to_100000")
	ctx := context.Background()
	cp, err := newSource(t, srv.URL(schema)).Pin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	dir, err := cp.Folder(ctx, backup.NopProgress)
	if err != nil {
		t.Fatal(err)
	}
	entry, _ := dir.Child(ctx, DumpFile)
	r, _ := entry.(fs.StreamingFile).GetReader(ctx)
	if _, err := io.ReadFull(r, make([]byte, 64<<10)); err != nil {
		t.Fatalf("read start of dump: %v", err)
	}
	run(t, srv.Open(t, ""), fmt.Sprintf("KILL %d", cp.(*capture).connID))
	_, err = io.Copy(io.Discard, r)
	if err == nil || !strings.Contains(err.Error(), "dump mysql database") || !strings.Contains(err.Error(), "table big") {
		t.Fatalf("reading a dump whose session was killed: %v", err)
	}
	t.Logf("error: %v", err)
}

// TestFailedPrepareLeavesLiveUntouched restores a truncated dump and a dump that fails on the server.
func TestFailedPrepareLeavesLiveUntouched(t *testing.T) {
	t.Parallel()
	srv := testserver.StartMariaDB(t)
	schema := srv.CreateDatabase(t)
	c := newCase(t, srv, schema)
	c.Fill(t)
	cp, err := c.Source.Pin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	dir := backuptest.Stream(t, cp, backup.NopProgress)
	cp.Close()
	c.Damage(t)
	before := c.Checksum(t)
	path := filepath.Join(dir, DumpFile)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{
		"truncated":  string(good[:len(good)/2]),
		"no end":     strings.Replace(string(good), "DO 0;", "", 1),
		"bad insert": strings.Replace(string(good), "INSERT INTO `legacy`", "INSERT INTO `no_such_table`", 1),
	} {
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := c.Source.Prepare(context.Background(), backuptest.Dir(t, dir), backup.NopProgress)
		if err == nil {
			t.Fatalf("%s: Prepare succeeded", name)
		}
		t.Logf("%s: %v", name, err)
	}
	backuptest.MustEqual(t, "live state after failed Prepare", before, c.Checksum(t))
	var n int
	if err := srv.Open(t, "").QueryRow("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name LIKE ?", schema+"%").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("%d schemas named %s*, want 1 (a restored copy was left behind)", n, schema)
	}
}

// TestPinConsistency: while a writer commits numbered rows, the backup holds exactly rows 1..k for a k between
// the rows committed before Pin started and those committed when it returned.
func TestPinConsistency(t *testing.T) {
	t.Parallel()
	srv := testserver.StartMariaDB(t)
	schema := srv.CreateDatabase(t)
	pool := srv.Open(t, schema)
	run(t, pool, "CREATE TABLE seq (n INT PRIMARY KEY) ENGINE=InnoDB")
	src := newSource(t, srv.URL(schema))
	var committed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := int64(1); ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := pool.Exec("INSERT INTO seq VALUES (?)", n); err != nil {
				t.Error(err)
				return
			}
			committed.Store(n)
		}
	}()
	for committed.Load() < 100 {
		time.Sleep(time.Millisecond)
	}
	lo := committed.Load()
	cp, err := src.Pin(context.Background())
	hi := committed.Load()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	dir := backuptest.Stream(t, cp, backup.NopProgress)
	cp.Close()
	close(stop)
	wg.Wait()
	after := committed.Load()
	prep, err := src.Prepare(context.Background(), backuptest.Dir(t, dir), backup.NopProgress)
	if err != nil {
		t.Fatal(err)
	}
	defer prep.Discard(context.Background())
	var count, max int64
	if err := srv.Open(t, prep.(*prepared).tmp).QueryRow("SELECT COUNT(*), COALESCE(MAX(n), 0) FROM seq").Scan(&count, &max); err != nil {
		t.Fatal(err)
	}
	t.Logf("committed before Pin %d, when Pin returned %d, at the end %d; backup has %d rows; Pin took %s",
		lo, hi, after, count, cp.Info().PinDuration)
	if count != max || count < lo || count > hi {
		t.Fatalf("backup has %d rows, max %d; want exactly 1..k with k in [%d, %d]", count, max, lo, hi)
	}
	if after <= hi {
		t.Fatalf("no writes after the pin: the test proves nothing")
	}
}

// TestSwitchFailureRollsBack: when the backup's objects cannot be created at the switch, Switch undoes the
// table exchange and puts the live objects back; the prepared schema can still be discarded.
func TestSwitchFailureRollsBack(t *testing.T) {
	t.Parallel()
	srv := testserver.StartMariaDB(t)
	schema := srv.CreateDatabase(t)
	c := newCase(t, srv, schema)
	c.Fill(t)
	cp, err := c.Source.Pin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	dir := backuptest.Stream(t, cp, backup.NopProgress)
	cp.Close()
	c.Damage(t)
	before := c.Checksum(t)
	path := filepath.Join(dir, DumpFile)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(good), "INSERT ON orders FOR EACH ROW", "INSERT ON missing_table FOR EACH ROW", 1)
	if bad == string(good) {
		t.Fatal("trigger not found in the dump")
	}
	if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	prep, err := c.Source.Prepare(context.Background(), backuptest.Dir(t, dir), backup.NopProgress)
	if err != nil {
		t.Fatal(err)
	}
	_, err = prep.Switch(context.Background())
	if err == nil || !strings.Contains(err.Error(), "missing_table") {
		t.Fatalf("Switch with a broken trigger: %v", err)
	}
	t.Logf("Switch: %v", err)
	backuptest.MustEqual(t, "live state after a failed Switch", before, c.Checksum(t))
	if err := prep.Discard(context.Background()); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := srv.Open(t, "").QueryRow("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name LIKE ?", schema+"%").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("%d schemas named %s*, want 1", n, schema)
	}
}

// TestRoundTripAppUser runs the suite as an application user who has all privileges on its database and on
// the sibling schemas Rewind creates (`db\_rewind\_%`), and nothing else.
func TestRoundTripAppUser(t *testing.T) {
	t.Parallel()
	srv := testserver.StartMariaDB(t)
	schema := srv.CreateDatabase(t)
	user := testserver.UniqueName("app_")
	root := srv.Open(t, "")
	run(t, root, fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY 'app pass'", user))
	t.Cleanup(func() { root.Exec(fmt.Sprintf("DROP USER IF EXISTS '%s'@'%%'", user)) })
	run(t, root, fmt.Sprintf("GRANT ALL ON `%s`.* TO '%s'@'%%'", schema, user))
	run(t, root, fmt.Sprintf("GRANT ALL ON `%s\\_rewind\\_%%`.* TO '%s'@'%%'", strings.ReplaceAll(schema, "_", "\\_"), user))

	url := fmt.Sprintf("mysql://%s:%s@127.0.0.1:%d/%s", user, "app%20pass", srv.Port, schema)
	appPool, err := sql.Open("mysql", fmt.Sprintf("%s:app pass@tcp(127.0.0.1:%d)/%s", user, srv.Port, schema))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { appPool.Close() })
	backuptest.RoundTrip(t, newCaseAs(t, appPool, newSource(t, url), schema))
}

// TestDDLAfterPin: DDL on a table after the pin either fails the dump with the server's reason or leaves the
// pinned rows in it; it never yields the post-DDL rows as if they were the pinned ones.
func TestDDLAfterPin(t *testing.T) {
	t.Parallel()
	srv := testserver.StartMariaDB(t)
	for _, ddl := range []string{
		"TRUNCATE TABLE a",
		"ALTER TABLE a ADD COLUMN extra INT DEFAULT 7",
		"ALTER TABLE a ENGINE=InnoDB", // rebuild
		"DROP TABLE a",
		"DELETE FROM a", // DML, for contrast: never in the backup
	} {
		t.Run(ddl, func(t *testing.T) {
			schema := srv.CreateDatabase(t)
			pool := srv.Open(t, schema)
			run(t, pool, "CREATE TABLE a (id INT PRIMARY KEY, v VARCHAR(10)) ENGINE=InnoDB")
			run(t, pool, "INSERT INTO a VALUES (1, 'one'), (2, 'two')")
			src := newSource(t, srv.URL(schema))
			cp, err := src.Pin(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			defer cp.Close()
			run(t, pool, ddl)
			dir := t.TempDir()
			err = backuptest.StreamErr(context.Background(), cp, backup.NopProgress, dir)
			if err != nil {
				t.Logf("dump failed: %v", err)
				if !strings.Contains(err.Error(), "table a") {
					t.Fatalf("error does not name the table: %v", err)
				}
				return
			}
			prep, err := src.Prepare(context.Background(), backuptest.Dir(t, dir), backup.NopProgress)
			if err != nil {
				t.Fatal(err)
			}
			defer prep.Discard(context.Background())
			var n int
			if err := srv.Open(t, prep.(*prepared).tmp).QueryRow("SELECT COUNT(*) FROM a WHERE v IN ('one', 'two')").Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 2 {
				t.Fatalf("backup has %d of the 2 pinned rows", n)
			}
			t.Logf("dump succeeded with the pinned rows")
		})
	}
}

// TestRestoreIntoNewDatabase restores into a database that does not exist yet (a branch environment).
func TestRestoreIntoNewDatabase(t *testing.T) {
	t.Parallel()
	srv := testserver.StartMariaDB(t)
	schema := srv.CreateDatabase(t)
	c := newCase(t, srv, schema)
	c.Fill(t)
	want := c.Checksum(t)
	ctx := context.Background()
	cp, err := c.Source.Pin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dir := backuptest.Stream(t, cp, backup.NopProgress)
	cp.Close()
	branch := schema + "_branch"
	src := newSource(t, srv.URL(branch))
	prep, err := src.Prepare(ctx, backuptest.Dir(t, dir), backup.NopProgress)
	if err != nil {
		t.Fatalf("Prepare into a new database: %v", err)
	}
	rep, err := prep.Switch(ctx)
	if err != nil {
		t.Fatalf("Switch into a new database: %v", err)
	}
	backuptest.MustEqual(t, "new database", want, checksum(t, srv.Open(t, ""), branch))
	rc, err := rep.Pin(ctx)
	if err != nil {
		t.Fatalf("Pin of the replaced (absent) database: %v", err)
	}
	backuptest.Stream(t, rc, backup.NopProgress)
	rc.Close()
	if err := rep.Discard(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestDumpLoadsWithStockClient: dump.sql loads with the stock mariadb client into an empty database, without
// Rewind, and gives the same state.
func TestDumpLoadsWithStockClient(t *testing.T) {
	t.Parallel()
	client, err := exec.LookPath("mariadb")
	if err != nil {
		t.Skip("mariadb client not installed")
	}
	srv := testserver.StartMariaDB(t)
	schema := srv.CreateDatabase(t)
	c := newCase(t, srv, schema)
	c.Fill(t)
	want := c.Checksum(t)
	cp, err := c.Source.Pin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	dir := backuptest.Stream(t, cp, backup.NopProgress)
	cp.Close()
	target := schema + "_cli"
	run(t, srv.Open(t, ""), "CREATE DATABASE "+target)
	f, err := os.Open(filepath.Join(dir, DumpFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(client, "--no-defaults", "-h127.0.0.1", fmt.Sprintf("-P%d", srv.Port), "-uroot", target)
	cmd.Stdin = f
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mariadb < dump.sql: %v: %s", err, out)
	}
	backuptest.MustEqual(t, "state loaded by the mariadb client", want, checksum(t, srv.Open(t, ""), target))
}

// Package postgres is Rewind's source for PostgreSQL databases.
//
// Capture: Pin opens a REPEATABLE READ READ ONLY transaction and exports its snapshot
// (pg_export_snapshot()); the transaction stays open until the Capture is closed. Folder then runs
// `pg_dump --snapshot=ID --format=custom --compress=0` on that snapshot, so the backup holds exactly the
// committed state at the moment Pin returned, whatever is written afterwards, and is uncompressed so the
// repository deduplicates consecutive backups. One exception, from PostgreSQL itself: sequences are not
// transactional, so pg_dump records their position when it reads them, which can be ahead of the snapshot
// (never behind, so restored sequences never hand out values already used). The folder holds dump.pgc (the pg_dump custom-format archive,
// restorable with the stock pg_restore) and info.json.
//
// Restore: Prepare creates a sibling database `<name>_rewind_<id>` (same encoding and locale) and runs
// `pg_restore --no-owner --exit-on-error` into it. When the backup's dump.pgc is a local file (a restored kopia
// snapshot on disk, or tests) pg_restore --jobs N reads it in place. From the repository, the dump is read once,
// as a stream (restoreStream): its table of contents goes to a spool file in Options.SpoolDir (default
// os.TempDir()) for pg_restore --section=pre-data; Rewind loads the tables' data itself (COPY ... FREEZE, one
// connection per table, so rows keep their physical order; up to N tables at once); then pg_restore --jobs N runs the rest (sequences, indexes, constraints) from the spool,
// which also receives any data Rewind does not load itself (large objects; at worst, for an archive it cannot
// read, the whole dump). The spool is removed when Prepare returns. pg_restore's sessions commit
// asynchronously and sort with a larger maintenance_work_mem (restoreOptions); Prepare ends with a synchronous
// commit, so the restored database is durable before Switch. Switch closes the live database to new
// connections, terminates the sessions still connected to it, and renames live → `<name>_rewind_old_<id>`
// and the prepared database → live in one transaction. The old database is the Replaced state.
//
// The connecting role needs CREATEDB (or superuser) and must own the database (or be a member of its owner);
// Prepare checks both before creating anything. Database-level settings (ALTER DATABASE ... SET, database
// comments and GRANTs on the database itself) are not part of a pg_dump archive and are not restored.
//
// Passwords go to pg_dump and pg_restore through PGPASSWORD, never on the command line, and never into
// errors or logs.
package postgres

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rewind/rewind/backup"
)

// Names of the files in a service's folder.
const (
	DumpFile = "dump.pgc"
	InfoFile = "info.json"
)

// Options tune a Source beyond its ServiceSpec.
type Options struct {
	// ToolDirs, when set, are the only directories searched for pg_dump and pg_restore. By default Rewind
	// searches PATH, then /usr/lib/postgresql/*/bin, and picks the oldest client not older than the server.
	ToolDirs []string
	// SpoolDir holds the temporary copy of a dump Prepare needs when the backup's file is not on local disk;
	// default os.TempDir().
	SpoolDir string
	// Jobs is pg_restore's --jobs; default min(4, number of CPUs).
	Jobs int
	// TerminateWait is how long Switch waits for the live database's other sessions to end after
	// terminating them; default 10s.
	TerminateWait time.Duration
	// NoPrivileges restores without the dump's GRANTs and REVOKEs (pg_restore --no-privileges): for a server
	// that lacks the roles they name, such as a restore drill's private one.
	NoPrivileges bool
	// CountBudget is how long Summarize counts the live tables' rows exactly before it answers with the
	// planner's estimates; default 3s.
	CountBudget time.Duration
}

// Source is the PostgreSQL source of one database.
type Source struct {
	name     string // service name, for errors
	url      *url.URL
	password string
	database string
	opts     Options

	mu    sync.Mutex
	tools map[string][]tool // "pg_dump" → candidates, found once
}

var _ backup.Source = (*Source)(nil)

// New builds the Source of spec (a backup.Driver).
func New(spec backup.ServiceSpec) (backup.Source, error) {
	return NewWithOptions(spec, Options{})
}

// NewWithOptions builds the Source of spec with opts.
func NewWithOptions(spec backup.ServiceSpec, opts Options) (*Source, error) {
	u, err := url.Parse(spec.URL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || (u.Host == "" && u.Query().Get("host") == "") {
		// never echo the URL: it may hold a password
		return nil, fmt.Errorf("postgresql service %q: url must look like postgres://user:password@host:5432/dbname", spec.Name)
	}
	s := &Source{name: spec.Name, url: u, opts: opts}
	s.database = strings.TrimPrefix(u.Path, "/")
	if s.database == "" {
		return nil, fmt.Errorf("postgresql service %q: url names no database", spec.Name)
	}
	if u.User != nil {
		s.password, _ = u.User.Password()
	}
	if q := u.Query(); q.Get("password") != "" {
		s.password = q.Get("password")
	}
	if s.opts.TerminateWait <= 0 {
		s.opts.TerminateWait = 10 * time.Second
	}
	if s.opts.CountBudget <= 0 {
		s.opts.CountBudget = 3 * time.Second
	}
	if s.opts.Jobs <= 0 {
		s.opts.Jobs = min(4, runtime.NumCPU())
	}
	return s, nil
}

// connURL returns the URL of database db, with the password when withPassword (for pgx) or without it (for
// the command line of pg_dump and pg_restore, which get it through PGPASSWORD).
func (s *Source) connURL(db string, withPassword bool) string {
	u := *s.url
	u.Path = "/" + db
	u.RawPath = ""
	if !withPassword {
		if u.User != nil {
			u.User = url.User(u.User.Username())
		}
		q := u.Query()
		q.Del("password")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// connect opens a connection to database db.
func (s *Source) connect(ctx context.Context, db string) (*pgx.Conn, error) {
	c, err := pgx.Connect(ctx, s.connURL(db, true))
	if err != nil {
		return nil, fmt.Errorf("connect to postgresql database %q: %w", db, s.redact(err))
	}
	return c, nil
}

// redact removes the password from an error.
func (s *Source) redact(err error) error {
	if err == nil || s.password == "" || !strings.Contains(err.Error(), s.password) {
		return err
	}
	return redacted{msg: strings.ReplaceAll(err.Error(), s.password, "xxxxx"), err: err}
}

type redacted struct {
	msg string
	err error
}

func (r redacted) Error() string { return r.msg }

// Unwrap keeps errors.Is/As working on the original error.
func (r redacted) Unwrap() error { return r.err }

// cmd builds a pg_dump / pg_restore command with the password in its environment.
func (s *Source) cmd(ctx context.Context, path string, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, path, args...)
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "PGPASSWORD=") {
			env = append(env, e)
		}
	}
	if s.password != "" {
		env = append(env, "PGPASSWORD="+s.password)
	}
	c.Env = env
	return c
}

// tool is one installed pg_dump or pg_restore.
type tool struct {
	path  string
	major int
}

var versionRe = regexp.MustCompile(`\(PostgreSQL\) (\d+)`)

// findTool returns the best name (pg_dump or pg_restore) for a server of the given major version: the
// oldest client not older than the server.
func (s *Source) findTool(name string, serverMajor int) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tools == nil {
		s.tools = map[string][]tool{}
	}
	cands, ok := s.tools[name]
	if !ok {
		cands = listTools(name, s.opts.ToolDirs)
		s.tools[name] = cands
	}
	if len(cands) == 0 {
		return "", fmt.Errorf("%s not found on PATH nor in /usr/lib/postgresql/*/bin: install the PostgreSQL client tools (e.g. apt install postgresql-client-%d)", name, serverMajor)
	}
	for _, c := range cands { // sorted by major, ascending
		if c.major >= serverMajor {
			return c.path, nil
		}
	}
	newest := cands[len(cands)-1]
	return "", fmt.Errorf("%s %d (%s) is older than the PostgreSQL %d server: install postgresql-client-%d", name, newest.major, newest.path, serverMajor, serverMajor)
}

// warmTools finds the installed copies of name once, so later lookups are instant.
func (s *Source) warmTools(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tools == nil {
		s.tools = map[string][]tool{}
	}
	if _, ok := s.tools[name]; !ok {
		s.tools[name] = listTools(name, s.opts.ToolDirs)
	}
}

func listTools(name string, dirs []string) []tool {
	var paths []string
	if dirs != nil {
		for _, d := range dirs {
			paths = append(paths, filepath.Join(d, name))
		}
	} else {
		for _, d := range filepath.SplitList(os.Getenv("PATH")) {
			if d != "" {
				paths = append(paths, filepath.Join(d, name))
			}
		}
		g, _ := filepath.Glob(filepath.Join("/usr/lib/postgresql/*/bin", name))
		paths = append(paths, g...)
	}
	seen := map[string]bool{}
	var out []tool
	for _, p := range paths {
		real, err := filepath.EvalSymlinks(p)
		if err != nil || seen[real] {
			continue
		}
		seen[real] = true
		if st, err := os.Stat(real); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			continue
		}
		// Debian's /usr/bin/pg_dump is a wrapper that picks a version itself; ask it.
		outb, err := exec.Command(p, "--version").Output()
		if err != nil {
			continue
		}
		m := versionRe.FindSubmatch(outb)
		if m == nil {
			continue
		}
		major, _ := strconv.Atoi(string(m[1]))
		out = append(out, tool{path: p, major: major})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].major < out[j].major })
	return out
}

// sibling returns the name of a database beside base: base + "_rewind_" + kind + id, shortened to
// PostgreSQL's 63-byte limit.
func sibling(base, infix, id string) string {
	suffix := "_rewind_" + infix + id
	if len(base)+len(suffix) > 63 {
		base = base[:63-len(suffix)]
	}
	return base + suffix
}

// toolError describes a failed pg_dump / pg_restore run from its exit error and stderr tail.
func (s *Source) toolError(name string, err error, stderr *backup.Tail) error {
	msg := stderr.String()
	if s.password != "" {
		msg = strings.ReplaceAll(msg, s.password, "xxxxx")
	}
	if msg == "" {
		return fmt.Errorf("%s: %w", name, err)
	}
	return fmt.Errorf("%s: %w: %s", name, err, msg)
}

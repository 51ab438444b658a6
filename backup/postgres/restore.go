package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/kopia/kopia/fs"

	"github.com/rewind/rewind/backup"
)

// ErrNoCreateDB is returned by Prepare when the service's role may not create databases.
var ErrNoCreateDB = errors.New("role may not create databases")

// Prepare restores dir's dump into a new database beside the live one.
func (s *Source) Prepare(ctx context.Context, dir fs.Directory, p backup.Progress) (backup.Prepared, error) {
	entry, err := dir.Child(ctx, DumpFile)
	if err != nil {
		return nil, fmt.Errorf("restore postgresql database %q: backup has no %s: %w", s.database, DumpFile, err)
	}
	file, ok := entry.(fs.File)
	if !ok {
		return nil, fmt.Errorf("restore postgresql database %q: %s is not a file", s.database, DumpFile)
	}

	// The live database may not exist yet (a new branch environment): then the restored one is created with
	// the server's defaults (template1's encoding and locale) and simply renamed into place by Switch.
	conn, err := s.connect(ctx, s.database)
	like := "current_database()"
	if isNoDatabase(err) {
		conn, err = s.maintenance(ctx)
		like = "'template1'"
	}
	if err != nil {
		return nil, fmt.Errorf("restore postgresql database %q: %w", s.database, err)
	}
	defer conn.Close(context.Background())
	var (
		user, ownerName          string
		super, createdb, owner   bool
		encoding, collate, ctype string
		major                    int
		workMem                  int64
	)
	err = conn.QueryRow(ctx, `SELECT current_user, pg_get_userbyid(d.datdba), r.rolsuper, r.rolcreatedb,
			pg_has_role(current_user, d.datdba, 'MEMBER'), pg_encoding_to_char(d.encoding), d.datcollate, d.datctype,
			current_setting('server_version_num')::int / 10000, pg_size_bytes(current_setting('maintenance_work_mem'))
		FROM pg_roles r, pg_database d WHERE r.rolname = current_user AND d.datname = `+like).
		Scan(&user, &ownerName, &super, &createdb, &owner, &encoding, &collate, &ctype, &major, &workMem)
	if err != nil {
		return nil, fmt.Errorf("restore postgresql database %q: read privileges: %w", s.database, s.redact(err))
	}
	if !super && !createdb {
		return nil, fmt.Errorf("restore postgresql database %q: %w: role %q needs CREATEDB to build the restored copy beside the live database; grant it as a superuser with: ALTER ROLE %s CREATEDB",
			s.database, ErrNoCreateDB, user, pgx.Identifier{user}.Sanitize())
	}
	if !super && !owner && like == "current_database()" {
		return nil, fmt.Errorf("restore postgresql database %q: role %q does not own it, so it cannot rename it; make it the owner with: ALTER DATABASE %s OWNER TO %s",
			s.database, user, pgx.Identifier{s.database}.Sanitize(), pgx.Identifier{user}.Sanitize())
	}
	pgRestore, err := s.findTool("pg_restore", major)
	if err != nil {
		return nil, fmt.Errorf("restore postgresql database %q: %w", s.database, err)
	}

	id := backup.ScratchID(ctx)
	prep := &prepared{src: s, id: id, tmp: sibling(s.database, "", id), workMem: max(workMem, restoreWorkMem)}
	// The restored database and everything in it belong to the live database's owner, even when Rewind
	// connects as a superuser or another member of the owner role (pg_restore --role).
	if ownerName != user && like == "current_database()" {
		prep.role = ownerName
	}
	create := fmt.Sprintf("CREATE DATABASE %s TEMPLATE template0 ENCODING %s LC_COLLATE %s LC_CTYPE %s",
		pgx.Identifier{prep.tmp}.Sanitize(), quote(encoding), quote(collate), quote(ctype))
	if prep.role != "" {
		create += " OWNER " + pgx.Identifier{prep.role}.Sanitize()
	}
	_, err = conn.Exec(ctx, create)
	if err != nil {
		return nil, fmt.Errorf("restore postgresql database %q: create %q: %w", s.database, prep.tmp, s.redact(err))
	}
	if err := prep.restore(ctx, file, pgRestore, p); err != nil {
		if derr := s.dropDatabase(context.Background(), prep.tmp); derr != nil {
			err = fmt.Errorf("%w (and dropping it failed: %v)", err, derr)
		}
		return nil, fmt.Errorf("restore postgresql database %q into %q: %w", s.database, prep.tmp, err)
	}
	// pg_restore committed asynchronously (restoreOptions): one synchronous commit now flushes the write-ahead
	// log up to here, so the restored database is durable before Switch can make it live, even if the server
	// crashes in between. txid_current() gives this transaction an id, so its commit waits for the flush.
	if _, err := conn.Exec(ctx, "SET synchronous_commit = on; SELECT pg_catalog.txid_current()"); err != nil {
		err = fmt.Errorf("restore postgresql database %q into %q: flush: %w", s.database, prep.tmp, s.redact(err))
		if derr := s.dropDatabase(context.Background(), prep.tmp); derr != nil {
			err = fmt.Errorf("%w (and dropping it failed: %v)", err, derr)
		}
		return nil, err
	}
	return prep, nil
}

// restoreWorkMem is the maintenance_work_mem of pg_restore's sessions (unless the server's is larger): index
// builds sort in memory instead of spilling to disk (at pgbench scale 50, the 5-million-row primary key).
// Each of the --jobs sessions may use it, plus its parallel workers' share.
const restoreWorkMem = 256 << 20

// restoreOptions returns the session settings of pg_restore's connections to the prepared database (PGOPTIONS;
// all of them settable by any role, none changes the server's configuration):
//   - synchronous_commit=off: pg_restore commits every object separately, and each commit would wait for its
//     write-ahead log to reach the disk. Nothing reads the prepared database before Switch, and Prepare ends
//     with one synchronous commit that flushes all of it, so this loses nothing.
//   - maintenance_work_mem: see restoreWorkMem.
func (prep *prepared) restoreOptions() string {
	return fmt.Sprintf("-c synchronous_commit=off -c maintenance_work_mem=%dkB", prep.workMem>>10)
}

func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// restore runs pg_restore from file into the prepared database: in place when file is on local disk, else
// through restoreStream.
func (prep *prepared) restore(ctx context.Context, file fs.File, pgRestore string, p backup.Progress) error {
	s := prep.src
	p.SetTotal(file.Size())
	args := []string{"--no-owner", "--exit-on-error", "--no-password"}
	if s.opts.NoPrivileges {
		args = append(args, "--no-privileges")
	}
	if prep.role != "" {
		args = append(args, "--role="+prep.role)
	}
	args = append(args, "--dbname="+s.connURL(prep.tmp, false))
	path := file.LocalFilesystemPath()
	if path == "" {
		return prep.restoreStream(ctx, file, pgRestore, args, p)
	}
	if err := prep.runRestore(ctx, pgRestore, append(args, "--jobs", fmt.Sprint(s.opts.Jobs), path)); err != nil {
		return err
	}
	p.Add(file.Size())
	return nil
}

// pgRestore builds a pg_restore command whose sessions have restoreOptions (after the PGOPTIONS of Rewind's
// own environment, if any).
func (prep *prepared) pgRestore(ctx context.Context, path string, args ...string) *exec.Cmd {
	cmd := prep.src.cmd(ctx, path, args...)
	opts := prep.restoreOptions()
	for i, e := range cmd.Env {
		if v, ok := strings.CutPrefix(e, "PGOPTIONS="); ok {
			cmd.Env = slices.Delete(cmd.Env, i, i+1)
			opts = v + " " + opts
			break
		}
	}
	cmd.Env = append(cmd.Env, "PGOPTIONS="+opts)
	return cmd
}

func (prep *prepared) runRestore(ctx context.Context, pgRestore string, args []string) error {
	s := prep.src
	stderr := &backup.Tail{}
	cmd := prep.pgRestore(ctx, pgRestore, args...)
	cmd.Stderr = stderr
	cmd.Stdout = stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return s.toolError("pg_restore", err, stderr)
	}
	return nil
}

// readErr remembers the first error (other than io.EOF) of its reader.
type readErr struct {
	r   io.Reader
	err error
}

func (r *readErr) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	if err != nil && !errors.Is(err, io.EOF) && r.err == nil {
		r.err = err
	}
	return n, err
}

// dropDatabase drops db, ending the sessions still connected to it.
func (s *Source) dropDatabase(ctx context.Context, db string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	conn, err := s.maintenance(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop postgresql database %q: %w", db, s.redact(err))
	}
	return nil
}

// maintenance connects to a database other than the ones Rewind renames: postgres, else template1.
func (s *Source) maintenance(ctx context.Context) (*pgx.Conn, error) {
	var first error
	for _, db := range []string{"postgres", "template1"} {
		if db == s.database {
			continue
		}
		c, err := s.connect(ctx, db)
		if err == nil {
			return c, nil
		}
		if first == nil {
			first = err
		}
	}
	return nil, first
}

// isNoDatabase reports whether err says the database does not exist.
func isNoDatabase(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "3D000"
}

// swap renames live → aside and incoming → live in one transaction, after closing live to new connections
// and terminating the sessions connected to it. On failure nothing is renamed. When live does not exist, an
// empty database stands in for it as aside.
func (s *Source) swap(ctx context.Context, live, aside, incoming string) error {
	conn, err := s.maintenance(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	id := func(n string) string { return pgx.Identifier{n}.Sanitize() }

	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", live).Scan(&exists); err != nil {
		return fmt.Errorf("look up postgresql database %q: %w", live, s.redact(err))
	}
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+id(aside)+" TEMPLATE template0"); err != nil {
			return fmt.Errorf("create empty postgresql database %q: %w", aside, s.redact(err))
		}
		if _, err := conn.Exec(ctx, "ALTER DATABASE "+id(incoming)+" RENAME TO "+id(live)); err != nil {
			_, _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+id(aside))
			return fmt.Errorf("rename postgresql database %q to %q: %w", incoming, live, s.redact(err))
		}
		return nil
	}

	if _, err := conn.Exec(ctx, "ALTER DATABASE "+id(live)+" WITH ALLOW_CONNECTIONS false"); err != nil {
		return fmt.Errorf("close postgresql database %q to new connections: %w", live, s.redact(err))
	}
	reopen := func() {
		_, _ = conn.Exec(context.Background(), "ALTER DATABASE "+id(live)+" WITH ALLOW_CONNECTIONS true")
	}
	if err := s.terminate(ctx, conn, live); err != nil {
		reopen()
		return err
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		reopen()
		return fmt.Errorf("rename postgresql databases: %w", s.redact(err))
	}
	for _, q := range []string{
		"ALTER DATABASE " + id(live) + " RENAME TO " + id(aside),
		"ALTER DATABASE " + id(incoming) + " RENAME TO " + id(live),
		"ALTER DATABASE " + id(aside) + " WITH ALLOW_CONNECTIONS true",
		"ALTER DATABASE " + id(live) + " WITH ALLOW_CONNECTIONS true",
	} {
		if _, err := tx.Exec(ctx, q); err != nil {
			_ = tx.Rollback(context.Background())
			reopen()
			return fmt.Errorf("rename postgresql databases (%s): %w", q, s.redact(err))
		}
	}
	if err := tx.Commit(ctx); err != nil {
		reopen()
		return fmt.Errorf("rename postgresql databases: %w", s.redact(err))
	}
	return nil
}

// terminate ends every other session connected to db and waits until they are gone.
func (s *Source) terminate(ctx context.Context, conn *pgx.Conn, db string) error {
	deadline := time.Now().Add(s.opts.TerminateWait)
	for {
		rows, err := conn.Query(ctx, "SELECT pid, usename FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", db)
		if err != nil {
			return fmt.Errorf("list sessions of postgresql database %q: %w", db, s.redact(err))
		}
		type session struct {
			pid  int32
			user string
		}
		var sessions []session
		for rows.Next() {
			var ss session
			var u *string
			if err := rows.Scan(&ss.pid, &u); err != nil {
				rows.Close()
				return err
			}
			if u != nil {
				ss.user = *u
			}
			sessions = append(sessions, ss)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("list sessions of postgresql database %q: %w", db, s.redact(err))
		}
		if len(sessions) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgresql database %q still has %d session(s) (first: pid %d of role %q) that could not be terminated: grant the service's role pg_signal_backend or stop them",
				db, len(sessions), sessions[0].pid, sessions[0].user)
		}
		for _, ss := range sessions {
			// A role may only terminate its own sessions unless it has pg_signal_backend: ignore refusals.
			_, _ = conn.Exec(ctx, "SELECT pg_terminate_backend($1)", ss.pid)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// prepared is a restored database beside the live one.
type prepared struct {
	src  *Source
	id   string
	tmp  string
	role string // owner of the live database when it is not the connecting role
	// workMem is the maintenance_work_mem of pg_restore's sessions, in bytes (restoreWorkMem).
	workMem int64

	mu       sync.Mutex
	switched bool
	dropped  bool
}

var _ backup.Prepared = (*prepared)(nil)

// Switch renames the live database aside and the prepared one to the live name.
func (prep *prepared) Switch(ctx context.Context) (backup.Replaced, error) {
	prep.mu.Lock()
	defer prep.mu.Unlock()
	s := prep.src
	if prep.switched || prep.dropped {
		return nil, fmt.Errorf("switch postgresql database %q: prepared state already used", s.database)
	}
	old := sibling(s.database, "old_", prep.id)
	if err := s.swap(ctx, s.database, old, prep.tmp); err != nil {
		return nil, fmt.Errorf("switch postgresql database %q: %w", s.database, err)
	}
	prep.switched = true
	return &replaced{src: s, id: prep.id, old: old}, nil
}

// Discard drops the prepared database unless it was switched in.
func (prep *prepared) Discard(ctx context.Context) error {
	prep.mu.Lock()
	defer prep.mu.Unlock()
	if prep.switched || prep.dropped {
		return nil
	}
	if err := prep.src.dropDatabase(ctx, prep.tmp); err != nil {
		return err
	}
	prep.dropped = true
	return nil
}

// replaced is the live database a Switch renamed aside.
type replaced struct {
	src *Source
	id  string
	old string

	mu       sync.Mutex
	reverted bool
	dropped  bool
}

var _ backup.Replaced = (*replaced)(nil)

// Pin captures the moved-aside database.
func (r *replaced) Pin(ctx context.Context) (backup.Capture, error) {
	return r.src.pin(ctx, r.old)
}

// Revert renames the restored database aside and the old one back, then drops the restored one.
func (r *replaced) Revert(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.src
	if r.reverted || r.dropped {
		return fmt.Errorf("revert postgresql database %q: already reverted or discarded", s.database)
	}
	restored := sibling(s.database, "undone_", r.id)
	if err := s.swap(ctx, s.database, restored, r.old); err != nil {
		return fmt.Errorf("revert postgresql database %q: %w", s.database, err)
	}
	r.reverted = true
	if err := s.dropDatabase(ctx, restored); err != nil {
		return fmt.Errorf("revert postgresql database %q: reverted, but %w", s.database, err)
	}
	return nil
}

// Discard drops the moved-aside database (nothing after a Revert).
func (r *replaced) Discard(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.reverted || r.dropped {
		return nil
	}
	if err := r.src.dropDatabase(ctx, r.old); err != nil {
		return err
	}
	r.dropped = true
	return nil
}

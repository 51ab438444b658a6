package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"

	"github.com/kopia/kopia/fs"

	"github.com/rewind/rewind/backup"
)

// Prepare loads dir's dump into a new schema beside the live one.
func (s *Source) Prepare(ctx context.Context, dir fs.Directory, p backup.Progress) (backup.Prepared, error) {
	entry, err := dir.Child(ctx, DumpFile)
	if err != nil {
		return nil, fmt.Errorf("restore mysql database %q: backup has no %s: %w", s.database, DumpFile, err)
	}
	file, ok := entry.(fs.File)
	if !ok {
		return nil, fmt.Errorf("restore mysql database %q: %s is not a file", s.database, DumpFile)
	}
	db, conn, err := s.session(ctx)
	if err != nil {
		return nil, fmt.Errorf("restore mysql database %q: %w", s.database, err)
	}
	defer db.Close()
	defer conn.Close()
	prep := &prepared{src: s, id: backup.ScratchID(ctx)}
	prep.tmp = sibling(s.database, "", prep.id)
	if err := createSibling(ctx, conn, s.database, prep.tmp); err != nil {
		return nil, fmt.Errorf("restore mysql database %q: %w", s.database, err)
	}
	if err := prep.load(ctx, conn, file, p); err != nil {
		if _, derr := conn.ExecContext(context.WithoutCancel(ctx), "DROP DATABASE IF EXISTS "+quoteIdent(prep.tmp)); derr != nil {
			err = fmt.Errorf("%w (and dropping it failed: %v)", err, derr)
		}
		return nil, fmt.Errorf("restore mysql database %q into %q: %w", s.database, prep.tmp, err)
	}
	return prep, nil
}

// createSibling creates schema name with live's character set and collation (the server's defaults when live
// does not exist yet, e.g. for a new branch environment).
func createSibling(ctx context.Context, conn *sql.Conn, live, name string) error {
	var cs, coll string
	err := conn.QueryRowContext(ctx, `SELECT default_character_set_name, default_collation_name
		FROM information_schema.schemata WHERE schema_name = ?`, live).Scan(&cs, &coll)
	if errors.Is(err, sql.ErrNoRows) {
		err = conn.QueryRowContext(ctx, "SELECT @@character_set_server, @@collation_server").Scan(&cs, &coll)
	}
	if err != nil {
		return err
	}
	q := "CREATE DATABASE " + quoteIdent(name) + " CHARACTER SET " + quoteIdent(cs) + " COLLATE " + quoteIdent(coll)
	if _, err := conn.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("create database %q beside it (the user needs CREATE and DROP on `%s_rewind_%%`): %w", name, live, err)
	}
	return nil
}

var (
	setModeRe = regexp.MustCompile(`(?is)^SET SESSION sql_mode = ('(?:[^'\\]|\\.|'')*')(?:, time_zone = ('(?:[^'\\]|\\.|'')*'))?$`)
)

// unquote reverses quoteString for the simple strings of SQL modes and time zones.
func unquote(q string) string {
	q = q[1 : len(q)-1]
	r := strings.NewReplacer(`\'`, `'`, `\\`, `\`, `''`, `'`)
	return r.Replace(q)
}

// load runs the dump's header and tables sections in the prepared schema and keeps its objects.
func (prep *prepared) load(ctx context.Context, conn *sql.Conn, file fs.File, p backup.Progress) error {
	p.SetTotal(file.Size())
	r, err := file.Open(ctx)
	if err != nil {
		return fmt.Errorf("open %s: %w", DumpFile, err)
	}
	defer r.Close()
	if _, err := conn.ExecContext(ctx, "USE "+quoteIdent(prep.tmp)); err != nil {
		return err
	}
	sp := newSplitter(backup.ProgressReader(r, p))
	var pending object // SQL mode / time zone of the next object
	ended := false
	for {
		st, err := sp.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", DumpFile, err)
		}
		if ended {
			return fmt.Errorf("read %s: statements after its end", DumpFile)
		}
		switch st.Section {
		case "header", "tables":
			if _, err := conn.ExecContext(ctx, st.SQL); err != nil {
				return fmt.Errorf("%s line %d: %w", DumpFile, sp.line, err)
			}
		case "routines", "views", "triggers", "events":
			if m := setModeRe.FindStringSubmatch(st.SQL); m != nil {
				pending = object{SQLMode: unquote(m[1])}
				if m[2] != "" {
					pending.TimeZone = unquote(m[2])
				}
				continue
			}
			kind := map[string]string{"routines": kindProcedure, "views": kindView, "triggers": kindTrigger, "events": kindEvent}[st.Section]
			prep.objects = append(prep.objects, object{Kind: kind, SQLMode: pending.SQLMode, TimeZone: pending.TimeZone, Create: st.SQL})
		case "end":
			if st.SQL == "DO 0" {
				ended = true
			}
		default:
			return fmt.Errorf("read %s: statement outside the known sections at line %d", DumpFile, sp.line)
		}
	}
	if !ended {
		return fmt.Errorf("read %s: the file is incomplete (no end marker)", DumpFile)
	}
	return nil
}

// listTables lists the names of the base tables and sequences of schema.
func listTables(ctx context.Context, conn *sql.Conn, schema string) ([]string, error) {
	rows, err := conn.QueryContext(ctx, `SELECT table_name FROM information_schema.tables
		WHERE table_schema = ? AND table_type IN ('BASE TABLE', 'SEQUENCE') ORDER BY table_name`, schema)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	return names, rows.Err()
}

// exchange moves every table of live into aside and every table of incoming into live, in one atomic RENAME
// TABLE, after dropping live's views, routines, triggers and events (returned) and before creating objs in
// live. On failure it undoes what it did and returns live's objects to it.
func exchange(ctx context.Context, conn *sql.Conn, live, aside, incoming string, objs []object) ([]object, error) {
	// A live database that does not exist yet (a new branch environment) is created empty first.
	var n int
	if err := conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ?", live).Scan(&n); err != nil {
		return nil, err
	}
	if n == 0 {
		if err := createSibling(ctx, conn, incoming, live); err != nil {
			return nil, err
		}
	}
	if _, err := conn.ExecContext(ctx, "USE "+quoteIdent(live)); err != nil {
		return nil, err
	}
	old, err := readObjects(ctx, conn, live)
	if err != nil {
		return nil, err
	}
	liveTables, err := listTables(ctx, conn, live)
	if err != nil {
		return nil, err
	}
	inTables, err := listTables(ctx, conn, incoming)
	if err != nil {
		return nil, err
	}
	rename := func(pairs ...[3]string) error { // {from schema, to schema, table} groups
		var parts []string
		for _, p := range pairs {
			parts = append(parts, quoteIdent(p[0])+"."+quoteIdent(p[2])+" TO "+quoteIdent(p[1])+"."+quoteIdent(p[2]))
		}
		if len(parts) == 0 {
			return nil
		}
		_, err := conn.ExecContext(ctx, "RENAME TABLE "+strings.Join(parts, ", "))
		return err
	}
	var forward, back []([3]string)
	for _, t := range liveTables {
		forward = append(forward, [3]string{live, aside, t})
	}
	for _, t := range inTables {
		forward = append(forward, [3]string{incoming, live, t})
		back = append(back, [3]string{live, incoming, t})
	}
	for _, t := range liveTables {
		back = append(back, [3]string{aside, live, t})
	}
	restoreOld := func(cause error) error {
		bg := context.WithoutCancel(ctx)
		if err := createObjects(bg, conn, live, old); err != nil {
			return fmt.Errorf("%w; putting back the live views, routines, triggers and events failed too: %v", cause, err)
		}
		return cause
	}
	if err := dropObjects(ctx, conn, live, old); err != nil {
		return nil, restoreOld(err)
	}
	if err := rename(forward...); err != nil {
		return nil, restoreOld(fmt.Errorf("rename tables: %w", err))
	}
	if err := createObjects(ctx, conn, live, objs); err != nil {
		bg := context.WithoutCancel(ctx)
		cause := err
		if cur, err := readObjects(bg, conn, live); err == nil {
			_ = dropObjects(bg, conn, live, cur)
		}
		if err := rename(back...); err != nil {
			return nil, fmt.Errorf("%w; renaming the tables back failed too: %v", cause, err)
		}
		return nil, restoreOld(cause)
	}
	return old, nil
}

// prepared is a restored schema beside the live one, with the objects to create at the switch.
type prepared struct {
	src     *Source
	id      string
	tmp     string
	objects []object

	mu   sync.Mutex
	used bool
}

var _ backup.Prepared = (*prepared)(nil)

// Switch moves the live tables aside and the prepared ones in, and replaces the live objects.
func (prep *prepared) Switch(ctx context.Context) (backup.Replaced, error) {
	prep.mu.Lock()
	defer prep.mu.Unlock()
	s := prep.src
	if prep.used {
		return nil, fmt.Errorf("switch mysql database %q: prepared state already used", s.database)
	}
	db, conn, err := s.session(ctx)
	if err != nil {
		return nil, fmt.Errorf("switch mysql database %q: %w", s.database, err)
	}
	defer db.Close()
	defer conn.Close()
	old := sibling(s.database, "old_", prep.id)
	if err := createSibling(ctx, conn, s.database, old); err != nil {
		return nil, fmt.Errorf("switch mysql database %q: %w", s.database, err)
	}
	oldObjects, err := exchange(ctx, conn, s.database, old, prep.tmp, prep.objects)
	if err != nil {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), "DROP DATABASE IF EXISTS "+quoteIdent(old))
		return nil, fmt.Errorf("switch mysql database %q: %w", s.database, err)
	}
	prep.used = true
	// The prepared schema is empty now.
	_, _ = conn.ExecContext(context.WithoutCancel(ctx), "DROP DATABASE IF EXISTS "+quoteIdent(prep.tmp))
	if oldObjects == nil {
		oldObjects = []object{}
	}
	return &replaced{src: s, id: prep.id, old: old, objects: oldObjects}, nil
}

// Discard drops the prepared schema unless it was switched in.
func (prep *prepared) Discard(ctx context.Context) error {
	prep.mu.Lock()
	defer prep.mu.Unlock()
	if prep.used {
		return nil
	}
	if err := prep.src.dropSchema(ctx, prep.tmp); err != nil {
		return err
	}
	prep.used = true
	return nil
}

// Sweep drops the schema a Prepare of the operation with scratch id left beside the live database. (Once the
// switch's RENAME TABLE has run, that schema is empty; the replaced tables are in another one, never swept.)
func (s *Source) Sweep(ctx context.Context, id string) ([]string, error) {
	db, conn, err := s.session(ctx)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	defer conn.Close()
	tmp := sibling(s.database, "", id)
	var n int
	err = conn.QueryRowContext(ctx, "SELECT count(*) FROM information_schema.schemata WHERE schema_name = ?", tmp).Scan(&n)
	if err != nil || n == 0 {
		return nil, err
	}
	if _, err := conn.ExecContext(ctx, "DROP DATABASE IF EXISTS "+quoteIdent(tmp)); err != nil {
		return nil, fmt.Errorf("drop mysql database %q: %w", tmp, err)
	}
	return []string{fmt.Sprintf("database %s", tmp)}, nil
}

func (s *Source) dropSchema(ctx context.Context, schema string) error {
	db, conn, err := s.session(ctx)
	if err != nil {
		return fmt.Errorf("drop mysql database %q: %w", schema, err)
	}
	defer db.Close()
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "DROP DATABASE IF EXISTS "+quoteIdent(schema)); err != nil {
		return fmt.Errorf("drop mysql database %q: %w", schema, err)
	}
	return nil
}

// replaced is the live state a Switch moved aside: the old schema's tables and the live objects' SQL.
type replaced struct {
	src     *Source
	id      string
	old     string
	objects []object

	mu   sync.Mutex
	done bool
}

var _ backup.Replaced = (*replaced)(nil)

// Pin captures the moved-aside tables and objects.
func (r *replaced) Pin(ctx context.Context) (backup.Capture, error) {
	return r.src.pin(ctx, r.old, r.objects)
}

// Revert moves the restored tables out and the old ones back, and puts the old objects back.
func (r *replaced) Revert(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.src
	if r.done {
		return fmt.Errorf("revert mysql database %q: already reverted or discarded", s.database)
	}
	db, conn, err := s.session(ctx)
	if err != nil {
		return fmt.Errorf("revert mysql database %q: %w", s.database, err)
	}
	defer db.Close()
	defer conn.Close()
	undone := sibling(s.database, "undone_", r.id)
	if err := createSibling(ctx, conn, s.database, undone); err != nil {
		return fmt.Errorf("revert mysql database %q: %w", s.database, err)
	}
	if _, err := exchange(ctx, conn, s.database, undone, r.old, r.objects); err != nil {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), "DROP DATABASE IF EXISTS "+quoteIdent(undone))
		return fmt.Errorf("revert mysql database %q: %w", s.database, err)
	}
	r.done = true
	var errs []error
	for _, schema := range []string{undone, r.old} {
		if _, err := conn.ExecContext(ctx, "DROP DATABASE IF EXISTS "+quoteIdent(schema)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("revert mysql database %q: reverted, but cleaning up failed: %w", s.database, err)
	}
	return nil
}

// Discard drops the moved-aside schema (nothing after a Revert).
func (r *replaced) Discard(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return nil
	}
	if err := r.src.dropSchema(ctx, r.old); err != nil {
		return err
	}
	r.done = true
	return nil
}

package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// table is a base table or sequence of a schema.
type table struct {
	Name     string
	Create   string   // SHOW CREATE TABLE
	Sequence bool     // a MariaDB sequence
	Columns  []string // stored (non-generated) columns, in order
	Floats   map[string]bool
}

// Kinds of schema objects other than tables, in the order they are created.
const (
	kindProcedure = "PROCEDURE"
	kindFunction  = "FUNCTION"
	kindView      = "VIEW"
	kindTrigger   = "TRIGGER"
	kindEvent     = "EVENT"
)

var kindOrder = map[string]int{kindProcedure: 0, kindFunction: 0, kindView: 1, kindTrigger: 2, kindEvent: 3}

// object is a view, routine, trigger or event: how to create it again. Name is empty for objects read back
// from a dump (only live objects are ever dropped by name).
type object struct {
	Kind     string
	Name     string
	SQLMode  string
	TimeZone string // events only
	Create   string
}

// readTables lists the base tables and sequences of schema with their definitions.
func readTables(ctx context.Context, conn *sql.Conn, schema string) ([]table, error) {
	rows, err := conn.QueryContext(ctx, `SELECT table_name, table_type FROM information_schema.tables
		WHERE table_schema = ? AND table_type IN ('BASE TABLE', 'SEQUENCE') ORDER BY table_name`, schema)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	var tables []table
	for rows.Next() {
		var t table
		var typ string
		if err := rows.Scan(&t.Name, &typ); err != nil {
			rows.Close()
			return nil, err
		}
		t.Sequence = typ == "SEQUENCE"
		tables = append(tables, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	cols := map[string][]string{}
	floats := map[string]map[string]bool{}
	rows, err = conn.QueryContext(ctx, `SELECT table_name, column_name, extra, data_type FROM information_schema.columns
		WHERE table_schema = ? ORDER BY table_name, ordinal_position`, schema)
	if err != nil {
		return nil, fmt.Errorf("list columns: %w", err)
	}
	for rows.Next() {
		var t, c, extra, typ string
		if err := rows.Scan(&t, &c, &extra, &typ); err != nil {
			rows.Close()
			return nil, err
		}
		if e := strings.ToUpper(extra); strings.Contains(e, "VIRTUAL GENERATED") || strings.Contains(e, "STORED GENERATED") ||
			strings.Contains(e, "PERSISTENT GENERATED") {
			continue
		}
		cols[t] = append(cols[t], c)
		if strings.EqualFold(typ, "float") {
			if floats[t] == nil {
				floats[t] = map[string]bool{}
			}
			floats[t][c] = true
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list columns: %w", err)
	}
	for i := range tables {
		t := &tables[i]
		t.Columns = cols[t.Name]
		t.Floats = floats[t.Name]
		var name string
		if err := conn.QueryRowContext(ctx, "SHOW CREATE TABLE "+quoteIdent(schema)+"."+quoteIdent(t.Name)).
			Scan(&name, &t.Create); err != nil {
			return nil, fmt.Errorf("show create table %s: %w", t.Name, err)
		}
	}
	return tables, nil
}

// showCreate runs a SHOW CREATE statement and returns its columns by name.
func showCreate(ctx context.Context, conn *sql.Conn, q string) (map[string]string, error) {
	rows, err := conn.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	names, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, err
		}
		return nil, errors.New("no result")
	}
	vals := make([]sql.NullString, len(names))
	ptrs := make([]any, len(names))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, err
	}
	m := map[string]string{}
	for i, n := range names {
		m[strings.ToLower(n)] = vals[i].String
	}
	return m, rows.Err()
}

// readObjects returns the views, routines, triggers and events of schema. The connection's default database
// must be schema (USE), so that definitions name the schema's own objects without a schema qualifier.
func readObjects(ctx context.Context, conn *sql.Conn, schema string) ([]object, error) {
	type ref struct{ kind, name string }
	var refs []ref
	for _, q := range []struct{ kind, sql string }{
		{kindView, "SELECT table_name FROM information_schema.views WHERE table_schema = ? ORDER BY table_name"},
		{"ROUTINE", "SELECT routine_type, routine_name FROM information_schema.routines WHERE routine_schema = ? AND routine_type IN ('PROCEDURE', 'FUNCTION') ORDER BY routine_type, routine_name"},
		{kindTrigger, "SELECT trigger_name FROM information_schema.triggers WHERE trigger_schema = ? ORDER BY event_object_table, action_timing, event_manipulation, action_order"},
		{kindEvent, "SELECT event_name FROM information_schema.events WHERE event_schema = ? ORDER BY event_name"},
	} {
		rows, err := conn.QueryContext(ctx, q.sql, schema)
		if err != nil {
			return nil, fmt.Errorf("list %ss: %w", strings.ToLower(q.kind), err)
		}
		for rows.Next() {
			r := ref{kind: q.kind}
			if q.kind == "ROUTINE" {
				err = rows.Scan(&r.kind, &r.name)
			} else {
				err = rows.Scan(&r.name)
			}
			if err != nil {
				rows.Close()
				return nil, err
			}
			refs = append(refs, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	var objs []object
	for _, r := range refs {
		m, err := showCreate(ctx, conn, "SHOW CREATE "+r.kind+" "+quoteIdent(schema)+"."+quoteIdent(r.name))
		if err != nil {
			return nil, fmt.Errorf("show create %s %s: %w", strings.ToLower(r.kind), r.name, err)
		}
		o := object{Kind: r.kind, Name: r.name, SQLMode: m["sql_mode"], TimeZone: m["time_zone"]}
		switch r.kind {
		case kindView:
			o.Create = m["create view"]
		case kindTrigger:
			o.Create = m["sql original statement"]
		case kindProcedure:
			o.Create = m["create procedure"]
		case kindFunction:
			o.Create = m["create function"]
		case kindEvent:
			o.Create = m["create event"]
		}
		if o.Create == "" {
			return nil, fmt.Errorf("show create %s %s: no definition (does the user lack privileges on it?)", strings.ToLower(r.kind), r.name)
		}
		objs = append(objs, o)
	}
	return orderViews(objs), nil
}

// orderViews puts each view after the views its definition names, so that the dump loads in order with the
// stock client (Rewind itself also retries). Dependencies are found textually (a quoted view name in the
// definition); a cycle, which only a false match can make, keeps the remaining views in name order.
func orderViews(objs []object) []object {
	var views, others []object
	for _, o := range objs {
		if o.Kind == kindView {
			views = append(views, o)
		} else {
			others = append(others, o)
		}
	}
	var ordered []object
	placed := map[string]bool{}
	for len(views) > 0 {
		var rest []object
		for _, v := range views {
			ready := true
			for _, w := range views {
				if w.Name != v.Name && !placed[w.Name] && strings.Contains(v.Create, quoteIdent(w.Name)) {
					ready = false
					break
				}
			}
			if ready {
				ordered = append(ordered, v)
				placed[v.Name] = true
			} else {
				rest = append(rest, v)
			}
		}
		if len(rest) == len(views) { // cycle
			ordered = append(ordered, rest...)
			break
		}
		views = rest
	}
	return append(others, ordered...)
}

// dropObjects drops objs (which have names) from schema.
func dropObjects(ctx context.Context, conn *sql.Conn, schema string, objs []object) error {
	for i := len(objs) - 1; i >= 0; i-- {
		o := objs[i]
		q := "DROP " + o.Kind + " IF EXISTS " + quoteIdent(schema) + "." + quoteIdent(o.Name)
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("drop %s %s: %w", strings.ToLower(o.Kind), o.Name, err)
		}
	}
	return nil
}

// createObjects creates objs in schema: routines, then views (retrying until those they depend on exist),
// then triggers, then events, each under its own SQL mode and time zone.
func createObjects(ctx context.Context, conn *sql.Conn, schema string, objs []object) error {
	if len(objs) == 0 {
		return nil
	}
	sorted := append([]object(nil), objs...)
	sort.SliceStable(sorted, func(i, j int) bool { return kindOrder[sorted[i].Kind] < kindOrder[sorted[j].Kind] })
	if _, err := conn.ExecContext(ctx, "USE "+quoteIdent(schema)); err != nil {
		return err
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO', time_zone = '+00:00'")
	create := func(o object) error {
		q := "SET SESSION sql_mode = " + quoteString(o.SQLMode)
		if o.TimeZone != "" {
			q += ", time_zone = " + quoteString(o.TimeZone)
		}
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return err
		}
		_, err := conn.ExecContext(ctx, o.Create)
		return err
	}
	var views []object
	for _, o := range sorted {
		if o.Kind == kindView {
			views = append(views, o)
			continue
		}
		if len(views) > 0 { // all views before the first trigger
			if err := createViews(views, create); err != nil {
				return err
			}
			views = nil
		}
		if err := create(o); err != nil {
			return fmt.Errorf("create %s %s: %w", strings.ToLower(o.Kind), objectName(o), err)
		}
	}
	return createViews(views, create)
}

func createViews(views []object, create func(object) error) error {
	for len(views) > 0 {
		var failed []object
		var lastErr error
		for _, v := range views {
			if err := create(v); err != nil {
				failed = append(failed, v)
				lastErr = fmt.Errorf("create view %s: %w", objectName(v), err)
			}
		}
		if len(failed) == len(views) {
			return lastErr
		}
		views = failed
	}
	return nil
}

var createNameRe = regexp.MustCompile("(?is)\\b(?:VIEW|PROCEDURE|FUNCTION|TRIGGER|EVENT)\\s+(?:IF\\s+NOT\\s+EXISTS\\s+)?(`(?:[^`]|``)+`|\\w+)")

// objectName returns o's name, from its definition when o was read back from a dump.
func objectName(o object) string {
	if o.Name != "" {
		return o.Name
	}
	if m := createNameRe.FindStringSubmatch(o.Create); m != nil {
		return m[1]
	}
	return "(unnamed)"
}

package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"
)

// Environment types.
const (
	EnvProduction  = "production"
	EnvStaging     = "staging"
	EnvDevelopment = "development"
)

// Environment statuses.
const (
	StatusActive   = "active"
	StatusInactive = "inactive"
)

// EnvironmentTypes lists the environment types.
func EnvironmentTypes() []string { return []string{EnvProduction, EnvStaging, EnvDevelopment} }

// ValidEnvironmentType reports whether t is an environment type.
func ValidEnvironmentType(t string) bool { return contains(EnvironmentTypes(), t) }

// Gate puts an environment's app behind Rewind's reverse proxy.
type Gate struct {
	Listen   string `json:"listen" yaml:"listen"`
	Upstream string `json:"upstream" yaml:"upstream"`
}

// Hooks are shell commands run around pauses and restores.
type Hooks struct {
	PrePause    string `json:"pre_pause" yaml:"pre_pause"`
	PostPause   string `json:"post_pause" yaml:"post_pause"`
	PostRestore string `json:"post_restore" yaml:"post_restore"`
}

// Environment is one deployment of the project's app and its services.
type Environment struct {
	ID     int64  `json:"id" yaml:"-"`
	Name   string `json:"name" yaml:"name"`
	Title  string `json:"title" yaml:"title,omitempty"`
	Type   string `json:"type" yaml:"type"`
	Parent string `json:"parent" yaml:"parent,omitempty"`
	Status string `json:"status" yaml:"status,omitempty"`
	GitDir string `json:"git_dir" yaml:"git_dir,omitempty"`
	Gate   Gate   `json:"gate,omitzero" yaml:"gate,omitempty"`
	Hooks  Hooks  `json:"hooks,omitzero" yaml:"hooks,omitempty"`
	// Drill is the environment's restore drill schedule and smoke command (schedule off unless set).
	Drill    DrillSettings `json:"drill" yaml:"drill,omitempty"`
	Services []Service     `json:"services" yaml:"services,omitempty"`
	// PITR is continuous protection (point-in-time restore). Read from the catalog it is never nil; given as
	// nil to an update it keeps the stored setting.
	PITR *PITR `json:"pitr,omitempty" yaml:"pitr,omitempty"`

	CreatedAt time.Time `json:"created_at" yaml:"-"`
	UpdatedAt time.Time `json:"updated_at" yaml:"-"`
}

// Service returns the service named name, or nil.
func (e *Environment) Service(name string) *Service {
	for i := range e.Services {
		if e.Services[i].Name == name {
			return &e.Services[i]
		}
	}
	return nil
}

// Masked returns a copy of e whose service URLs are masked, fit to send to
// a browser or API client.
func (e *Environment) Masked() *Environment {
	c := *e
	c.Services = make([]Service, len(e.Services))
	for i, s := range e.Services {
		s.URL = s.MaskedURL()
		s.Exclude = slices.Clone(s.Exclude)
		c.Services[i] = s
	}
	c.PITR = e.PITR.clone()
	return &c
}

// normalize fills defaults: status active, title = name.
func (e *Environment) normalize() {
	e.Name = strings.TrimSpace(e.Name)
	e.Title = strings.TrimSpace(e.Title)
	e.Parent = strings.TrimSpace(e.Parent)
	if e.Status == "" {
		e.Status = StatusActive
	}
	if e.Title == "" {
		e.Title = e.Name
	}
	e.Drill.Schedule = strings.TrimSpace(e.Drill.Schedule)
	if e.Drill.Schedule == "" {
		e.Drill.Schedule = DrillOff
	}
	for i := range e.Services {
		s := &e.Services[i]
		s.Name = strings.TrimSpace(s.Name)
		s.Type = strings.TrimSpace(s.Type)
		s.URL = strings.TrimSpace(s.URL)
		s.Path = strings.TrimSpace(s.Path)
	}
}

// Validate checks every field that can be checked without the catalog and
// returns a *ValidationError listing all problems, or nil. Whether the parent
// exists and would not make a cycle is checked when saving.
func (e *Environment) Validate() error {
	ve := &ValidationError{}
	if !ValidSlug(e.Name) {
		ve.add("name", slugMessage(e.Name, "environment name"))
	}
	if len(e.Title) > 200 || hasControl(e.Title) {
		ve.add("title", "title must be at most 200 printable characters")
	}
	switch {
	case e.Type == "":
		ve.add("type", "type is required: one of production, staging, development")
	case !ValidEnvironmentType(e.Type):
		ve.add("type", fmt.Sprintf("unknown environment type %q: use production, staging or development", e.Type))
	}
	if e.Status != "" && e.Status != StatusActive && e.Status != StatusInactive {
		ve.add("status", fmt.Sprintf("unknown status %q: use active or inactive", e.Status))
	}
	if e.Parent != "" {
		switch {
		case !ValidSlug(e.Parent):
			ve.add("parent", slugMessage(e.Parent, "parent environment name"))
		case e.Parent == e.Name:
			ve.add("parent", "an environment cannot be its own parent: name another environment or leave parent empty")
		}
	}
	if e.GitDir != "" {
		if msg := validateAbsPath(e.GitDir, "git_dir"); msg != "" {
			ve.add("git_dir", msg)
		}
	}
	if e.Gate != (Gate{}) {
		if e.Gate.Listen == "" {
			ve.add("gate.listen", "gate needs a listen address for the proxy, e.g. 127.0.0.1:8081")
		} else if msg := validateHostPort(e.Gate.Listen); msg != "" {
			ve.add("gate.listen", msg)
		}
		if e.Gate.Upstream == "" {
			ve.add("gate.upstream", "gate needs the upstream URL of your app, e.g. http://127.0.0.1:3000")
		} else if msg := validateUpstream(e.Gate.Upstream); msg != "" {
			ve.add("gate.upstream", msg)
		} else if u, err := url.Parse(e.Gate.Upstream); err == nil && u.Host == e.Gate.Listen {
			ve.add("gate.upstream", fmt.Sprintf("upstream %s is the gate's own listen address: point it at your app, which listens elsewhere", u.Host))
		}
	}
	for field, h := range map[string]string{"hooks.pre_pause": e.Hooks.PrePause, "hooks.post_pause": e.Hooks.PostPause, "hooks.post_restore": e.Hooks.PostRestore} {
		if strings.ContainsRune(h, 0) || len(h) > 4096 {
			ve.add(field, "hook must be a shell command of at most 4096 bytes without NUL characters")
		}
	}
	validateDrill(ve, e.Drill)
	validateServices(ve, e.Services)
	validatePITR(ve, e.PITR)
	sortFieldErrors(ve)
	return ve.err()
}

// fieldOrder gives the position of a top-level field in messages, so problems
// read in the order of a form or rewind.yaml.
var fieldOrder = []string{"name", "title", "type", "parent", "status", "git_dir", "gate", "hooks", "drill", "services", "pitr"}

// checkGateListen reports a gate listen address another environment uses.
func checkGateListen(ctx context.Context, tx *sql.Tx, ve *ValidationError, e *Environment, selfID int64) error {
	if e.Gate.Listen == "" || ve.For("gate.listen") != "" {
		return nil
	}
	var other string
	err := tx.QueryRowContext(ctx, `SELECT name FROM environments WHERE gate_listen = ? AND id <> ? LIMIT 1`, e.Gate.Listen, selfID).Scan(&other)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check gate address: %w", err)
	}
	ve.add("gate.listen", fmt.Sprintf("%s is already the gate of environment %q: give each gate its own port", e.Gate.Listen, other))
	return nil
}

// checkMasked reports URLs that still carry a masked password after the
// stored secrets were restored: a copy of a masked URL for a new service.
func checkMasked(ve *ValidationError, services []Service) {
	for i, s := range services {
		if usesURL(s.Type) && s.URL != "" && ve.For(fmt.Sprintf("services[%d].url", i)) == "" {
			if u, err := url.Parse(s.URL); err == nil && u.User != nil {
				if pw, _ := u.User.Password(); pw == MaskedPassword {
					ve.add(fmt.Sprintf("services[%d].url", i), "url holds the masked password ****: type the real password (only an existing service keeps its stored one)")
				}
			}
		}
	}
}

func sortFieldErrors(ve *ValidationError) {
	rank := func(f string) int {
		head, _, _ := strings.Cut(f, ".")
		head, _, _ = strings.Cut(head, "[")
		if i := slices.Index(fieldOrder, head); i >= 0 {
			return i
		}
		return len(fieldOrder)
	}
	sort.SliceStable(ve.Errors, func(i, j int) bool {
		ri, rj := rank(ve.Errors[i].Field), rank(ve.Errors[j].Field)
		if ri != rj {
			return ri < rj
		}
		if ri == slices.Index(fieldOrder, "hooks") {
			return ve.Errors[i].Field < ve.Errors[j].Field
		}
		return false
	})
}

// EnvironmentFilter selects environments; nil fields match all.
type EnvironmentFilter struct {
	Status *string
	Type   *string
}

const envColumns = `e.id, e.name, e.title, e.type, COALESCE(p.name, ''), e.status, e.git_dir,
	e.gate_listen, e.gate_upstream, e.hook_pre_pause, e.hook_post_pause, e.hook_post_restore, e.drill_schedule, e.drill_smoke, e.created_at,
	e.updated_at, e.pitr_enabled, e.pitr_window_days`

func scanEnvironment(row interface{ Scan(...any) error }) (*Environment, error) {
	e := &Environment{PITR: &PITR{}}
	err := row.Scan(&e.ID, &e.Name, &e.Title, &e.Type, &e.Parent, &e.Status, &e.GitDir,
		&e.Gate.Listen, &e.Gate.Upstream, &e.Hooks.PrePause, &e.Hooks.PostPause, &e.Hooks.PostRestore,
		&e.Drill.Schedule, &e.Drill.Smoke, timeCol{&e.CreatedAt}, timeCol{&e.UpdatedAt}, &e.PITR.Enabled, &e.PITR.WindowDays)
	return e, err
}

// FindEnvironmentByName returns the environment with its services, or ErrNotFound.
func (db *DB) FindEnvironmentByName(ctx context.Context, name string) (*Environment, error) {
	return db.findEnvironmentByName(ctx, db.sql, name)
}

func (db *DB) findEnvironmentByName(ctx context.Context, q execQuerier, name string) (*Environment, error) {
	e, err := scanEnvironment(q.QueryRowContext(ctx, `SELECT `+envColumns+`
		FROM environments e LEFT JOIN environments p ON p.id = e.parent_id WHERE e.name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("environment %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("find environment %q: %w", name, err)
	}
	if err := db.loadServices(ctx, q, []*Environment{e}); err != nil {
		return nil, err
	}
	return e, nil
}

// FindEnvironmentByNameRecent is FindEnvironmentByName for pages that only show the environment: it may
// answer from a read of up to a second ago (recentCache). Changes made through this process are seen at once;
// by another process on the same catalog, within a second. The environment is the caller's to modify.
func (db *DB) FindEnvironmentByNameRecent(ctx context.Context, name string) (*Environment, error) {
	v, err := db.recent.get("environment "+name, func() (any, error) { return db.FindEnvironmentByName(ctx, name) })
	if err != nil {
		return nil, err
	}
	e := *v.(*Environment) // a copy: the cached environment is shared
	e.Services = slices.Clone(e.Services)
	for i := range e.Services {
		e.Services[i].Exclude = slices.Clone(e.Services[i].Exclude)
	}
	e.PITR = e.PITR.clone()
	return &e, nil
}

// FindEnvironmentChildren returns the names of the environments whose parent is name, sorted (none for an
// unknown name). It reads no services, so it costs one small query however many environments there are.
func (db *DB) FindEnvironmentChildren(ctx context.Context, name string) ([]string, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT e.name FROM environments e JOIN environments p ON p.id = e.parent_id
		WHERE p.name = ? ORDER BY e.name`, name)
	if err != nil {
		return nil, fmt.Errorf("find children of %q: %w", name, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("find children of %q: %w", name, err)
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find children of %q: %w", name, err)
	}
	return out, nil
}

// FindEnvironmentChildrenRecent is FindEnvironmentChildren for the environment page, which reads the environment
// itself through FindEnvironmentByNameRecent: it may answer from a read of up to a second ago (recentCache).
// Changes made through this process are seen at once; by another process, within a second.
func (db *DB) FindEnvironmentChildrenRecent(ctx context.Context, name string) ([]string, error) {
	v, err := db.recent.get("children "+name, func() (any, error) { return db.FindEnvironmentChildren(ctx, name) })
	if err != nil {
		return nil, err
	}
	return slices.Clone(v.([]string)), nil // a copy: the cached names are shared
}

// FindEnvironmentByID returns the environment with its services, or ErrNotFound.
func (db *DB) FindEnvironmentByID(ctx context.Context, id int64) (*Environment, error) {
	var name string
	err := db.sql.QueryRowContext(ctx, `SELECT name FROM environments WHERE id = ?`, id).Scan(&name)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("environment %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("find environment %d: %w", id, err)
	}
	return db.FindEnvironmentByName(ctx, name)
}

// FindEnvironments returns the environments matching f with their services,
// ordered so that parents precede their children (then by name).
func (db *DB) FindEnvironments(ctx context.Context, f EnvironmentFilter) ([]*Environment, error) {
	return db.findEnvironments(ctx, db.sql, f)
}

func (db *DB) findEnvironments(ctx context.Context, q execQuerier, f EnvironmentFilter) ([]*Environment, error) {
	where, args := []string{"1 = 1"}, []any{}
	if f.Status != nil {
		where, args = append(where, "e.status = ?"), append(args, *f.Status)
	}
	if f.Type != nil {
		where, args = append(where, "e.type = ?"), append(args, *f.Type)
	}
	rows, err := q.QueryContext(ctx, `SELECT `+envColumns+`
		FROM environments e LEFT JOIN environments p ON p.id = e.parent_id
		WHERE `+strings.Join(where, " AND ")+` ORDER BY e.name`, args...)
	if err != nil {
		return nil, fmt.Errorf("find environments: %w", err)
	}
	defer rows.Close()
	var envs []*Environment
	for rows.Next() {
		e, err := scanEnvironment(rows)
		if err != nil {
			return nil, fmt.Errorf("find environments: %w", err)
		}
		envs = append(envs, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find environments: %w", err)
	}
	rows.Close()
	if err := db.loadServices(ctx, q, envs); err != nil {
		return nil, err
	}
	return parentsFirst(envs), nil
}

// parentsFirst orders envs depth-first from the roots, children by name, so
// every parent precedes its children and a tree reads naturally. envs must
// be sorted by name. Environments whose parent is not in envs count as roots.
func parentsFirst(envs []*Environment) []*Environment {
	byName := map[string]bool{}
	for _, e := range envs {
		byName[e.Name] = true
	}
	children := map[string][]*Environment{}
	var roots []*Environment
	for _, e := range envs {
		if e.Parent != "" && byName[e.Parent] {
			children[e.Parent] = append(children[e.Parent], e)
		} else {
			roots = append(roots, e)
		}
	}
	out := make([]*Environment, 0, len(envs))
	var walk func(e *Environment)
	walk = func(e *Environment) {
		out = append(out, e)
		for _, c := range children[e.Name] {
			walk(c)
		}
	}
	for _, r := range roots {
		walk(r)
	}
	return out
}

// loadServices fills the Services of envs, decrypting URLs.
func (db *DB) loadServices(ctx context.Context, q execQuerier, envs []*Environment) error {
	if len(envs) == 0 {
		return nil
	}
	byID := map[int64]*Environment{}
	ids := make([]string, 0, len(envs))
	for _, e := range envs {
		byID[e.ID] = e
		e.Services = []Service{}
		ids = append(ids, fmt.Sprint(e.ID))
	}
	rows, err := q.QueryContext(ctx, `SELECT environment_id, name, type, url_enc, path, exclude FROM services
		WHERE environment_id IN (`+strings.Join(ids, ",")+`) ORDER BY environment_id, position`)
	if err != nil {
		return fmt.Errorf("load services: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var envID int64
		var s Service
		var enc []byte
		var exclude string
		if err := rows.Scan(&envID, &s.Name, &s.Type, &enc, &s.Path, &exclude); err != nil {
			return fmt.Errorf("load services: %w", err)
		}
		if enc != nil {
			plain, err := db.open("service.url", enc)
			if err != nil {
				return fmt.Errorf("service %q of environment %q: %w", s.Name, byID[envID].Name, err)
			}
			s.URL = string(plain)
		}
		if err := json.Unmarshal([]byte(exclude), &s.Exclude); err != nil {
			return fmt.Errorf("service %q excludes: %w", s.Name, err)
		}
		if len(s.Exclude) == 0 {
			s.Exclude = nil
		}
		byID[envID].Services = append(byID[envID].Services, s)
	}
	return rows.Err()
}

// CreateEnvironment validates e and saves it with its services, setting
// ID, CreatedAt and UpdatedAt. Bad input returns a *ValidationError (an
// unknown parent is one); an existing name returns ErrConflict.
func (db *DB) CreateEnvironment(ctx context.Context, e *Environment) error {
	return db.inTx(ctx, func(tx *sql.Tx) error { return db.createEnvironment(ctx, tx, e) })
}

// UpdateEnvironment validates e and replaces the stored environment's fields
// and services (matched by name; missing ones are removed). The environment
// is found by e.ID when set, else by e.Name; it cannot be renamed. An empty
// Status keeps the stored one. A masked password ("****", as MaskedURL shows
// it) in a service URL keeps the stored secret. When nothing changes,
// nothing is written and UpdatedAt stays as it was.
func (db *DB) UpdateEnvironment(ctx context.Context, e *Environment) error {
	return db.inTx(ctx, func(tx *sql.Tx) error {
		_, err := db.updateEnvironment(ctx, tx, e)
		return err
	})
}

// Change says what PutEnvironmentChange did.
type Change string

// Changes reported by PutEnvironmentChange.
const (
	Created   Change = "created"
	Updated   Change = "updated"
	Unchanged Change = "unchanged"
)

// PutEnvironment creates e, or updates the environment of the same name.
func (db *DB) PutEnvironment(ctx context.Context, e *Environment) (created bool, err error) {
	ch, err := db.PutEnvironmentChange(ctx, e)
	return ch == Created, err
}

// PutEnvironmentChange is PutEnvironment reporting whether the environment
// was created, updated or left unchanged.
func (db *DB) PutEnvironmentChange(ctx context.Context, e *Environment) (Change, error) {
	var ch Change
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		var id int64
		err := tx.QueryRowContext(ctx, `SELECT id FROM environments WHERE name = ?`, strings.TrimSpace(e.Name)).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			ch = Created
			return db.createEnvironment(ctx, tx, e)
		}
		if err != nil {
			return fmt.Errorf("put environment %q: %w", e.Name, err)
		}
		e.ID = id
		changed, err := db.updateEnvironment(ctx, tx, e)
		ch = Unchanged
		if changed {
			ch = Updated
		}
		return err
	})
	if err != nil {
		return "", err
	}
	return ch, nil
}

func (db *DB) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() { tx.Rollback(); db.sql.wrote() }() // counted once committed (Rollback then does nothing)
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// resolveParent returns the parent's id (0 for none) or records why it is
// not acceptable: unknown, or (for an existing environment selfID) a
// descendant of the environment, which would make a cycle.
func resolveParent(ctx context.Context, tx *sql.Tx, ve *ValidationError, name, parent string, selfID int64) (int64, error) {
	if parent == "" {
		return 0, nil
	}
	var pid int64
	err := tx.QueryRowContext(ctx, `SELECT id FROM environments WHERE name = ?`, parent).Scan(&pid)
	if errors.Is(err, sql.ErrNoRows) {
		ve.add("parent", fmt.Sprintf("unknown parent %q: create environment %q first, or leave parent empty", parent, parent))
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("find parent %q: %w", parent, err)
	}
	if selfID == 0 {
		return pid, nil
	}
	// Walk up from the parent; meeting ourselves means a cycle.
	chain := []string{parent}
	for cur, depth := pid, 0; cur != 0 && depth < 1000; depth++ {
		if cur == selfID {
			ve.add("parent", fmt.Sprintf("parent %q would make a cycle (%s -> %s): %q descends from %q, pick an environment outside its subtree",
				parent, name, strings.Join(chain, " -> "), parent, name))
			return 0, nil
		}
		var next sql.NullInt64
		var nextName sql.NullString
		if err := tx.QueryRowContext(ctx, `SELECT e.parent_id, p.name FROM environments e LEFT JOIN environments p ON p.id = e.parent_id WHERE e.id = ?`, cur).
			Scan(&next, &nextName); err != nil {
			return 0, fmt.Errorf("walk parents of %q: %w", parent, err)
		}
		cur = next.Int64
		if nextName.Valid {
			chain = append(chain, nextName.String)
		}
	}
	return pid, nil
}

func (db *DB) createEnvironment(ctx context.Context, tx *sql.Tx, e *Environment) error {
	e.normalize()
	ve := &ValidationError{}
	if err := e.Validate(); err != nil {
		ve = err.(*ValidationError)
	}
	checkMasked(ve, e.Services)
	var pid int64
	if ve.For("parent") == "" {
		var err error
		if pid, err = resolveParent(ctx, tx, ve, e.Name, e.Parent, 0); err != nil {
			return err
		}
	}
	if e.PITR == nil {
		e.PITR = &PITR{}
	}
	if err := checkPITRPlan(ctx, tx, ve, e.PITR, nil); err != nil {
		return err
	}
	sortFieldErrors(ve)
	if err := ve.err(); err != nil {
		return err
	}
	var exists int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM environments WHERE name = ?`, e.Name).Scan(&exists); err != nil {
		return fmt.Errorf("create environment %q: %w", e.Name, err)
	}
	if exists > 0 {
		return fmt.Errorf("environment %q: %w", e.Name, ErrConflict)
	}
	if err := checkGateListen(ctx, tx, ve, e, 0); err != nil {
		return err
	}
	if err := ve.err(); err != nil {
		return err
	}
	now := db.now()
	res, err := tx.ExecContext(ctx, `INSERT INTO environments (name, title, type, parent_id, status, git_dir,
		gate_listen, gate_upstream, hook_pre_pause, hook_post_pause, hook_post_restore, drill_schedule, drill_smoke,
		created_at, updated_at, pitr_enabled, pitr_window_days)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.Name, e.Title, e.Type, nullID(pid), e.Status, e.GitDir, e.Gate.Listen, e.Gate.Upstream,
		e.Hooks.PrePause, e.Hooks.PostPause, e.Hooks.PostRestore, e.Drill.Schedule, e.Drill.Smoke, formatTime(now),
		formatTime(now), e.PITR.Enabled, e.PITR.WindowDays)
	if isUniqueViolation(err) {
		return fmt.Errorf("environment %q: %w", e.Name, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("create environment %q: %w", e.Name, err)
	}
	if e.ID, err = res.LastInsertId(); err != nil {
		return fmt.Errorf("create environment %q: %w", e.Name, err)
	}
	if err := db.insertServices(ctx, tx, e.ID, e.Services); err != nil {
		return err
	}
	e.CreatedAt, e.UpdatedAt = now, now
	return nil
}

func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// serviceColumns are the stored forms of a service's URL (sealed: it holds the password) and exclude patterns.
func (db *DB) serviceColumns(s Service) (urlEnc []byte, exclude string, err error) {
	if s.URL != "" {
		if urlEnc, err = db.seal("service.url", []byte(s.URL)); err != nil {
			return nil, "", err
		}
	}
	ex, err := json.Marshal(nonNil(s.Exclude))
	if err != nil {
		return nil, "", fmt.Errorf("service %q: %w", s.Name, err)
	}
	return urlEnc, string(ex), nil
}

func (db *DB) insertServices(ctx context.Context, tx *sql.Tx, envID int64, services []Service) error {
	for i, s := range services {
		enc, exclude, err := db.serviceColumns(s)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO services (environment_id, position, name, type, url_enc, path, exclude)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, envID, i, s.Name, s.Type, enc, s.Path, exclude); err != nil {
			return fmt.Errorf("save service %q: %w", s.Name, err)
		}
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// updateEnvironment saves e over the stored environment and reports whether
// anything changed.
func (db *DB) updateEnvironment(ctx context.Context, tx *sql.Tx, e *Environment) (bool, error) {
	keepStatus := strings.TrimSpace(e.Status) == ""
	e.normalize()
	var old *Environment
	var err error
	if e.ID != 0 {
		var name string
		err = tx.QueryRowContext(ctx, `SELECT name FROM environments WHERE id = ?`, e.ID).Scan(&name)
		if errors.Is(err, sql.ErrNoRows) {
			return false, fmt.Errorf("environment %d: %w", e.ID, ErrNotFound)
		}
		if err != nil {
			return false, fmt.Errorf("update environment %d: %w", e.ID, err)
		}
		if old, err = db.findEnvironmentByName(ctx, tx, name); err != nil {
			return false, err
		}
		if e.Name == "" {
			e.Name = old.Name
			if e.Title == "" {
				e.Title = old.Name
			}
		}
	} else if old, err = db.findEnvironmentByName(ctx, tx, e.Name); err != nil {
		return false, err
	}

	// Status is operational state: a rewind.yaml or API call that does not
	// mention it leaves a deactivated environment deactivated.
	if keepStatus {
		e.Status = old.Status
	}
	if e.PITR == nil { // not mentioned: keep the stored setting
		p := *old.PITR
		e.PITR = &p
	}
	// A masked password sent back keeps the stored secret.
	for i := range e.Services {
		s := &e.Services[i]
		if prev := old.Service(s.Name); prev != nil && prev.URL != "" && s.URL != prev.URL {
			s.URL = unmaskURL(s.URL, prev.URL)
		}
	}

	ve := &ValidationError{}
	if err := e.Validate(); err != nil {
		ve = err.(*ValidationError)
	}
	if e.Name != old.Name && ve.For("name") == "" {
		ve.add("name", fmt.Sprintf("environments cannot be renamed (this one is %q): create a new environment instead", old.Name))
	}
	checkMasked(ve, e.Services)
	if err := checkGateListen(ctx, tx, ve, e, old.ID); err != nil {
		return false, err
	}
	if err := checkPITRPlan(ctx, tx, ve, e.PITR, old.PITR); err != nil {
		return false, err
	}
	var pid int64
	if ve.For("parent") == "" {
		if pid, err = resolveParent(ctx, tx, ve, old.Name, e.Parent, old.ID); err != nil {
			return false, err
		}
	}
	sortFieldErrors(ve)
	if err := ve.err(); err != nil {
		return false, err
	}
	e.ID, e.CreatedAt = old.ID, old.CreatedAt
	if sameEnvironment(old, e) {
		e.UpdatedAt = old.UpdatedAt
		return false, nil
	}
	now := db.now()
	if _, err := tx.ExecContext(ctx, `UPDATE environments SET title = ?, type = ?, parent_id = ?, status = ?, git_dir = ?,
		gate_listen = ?, gate_upstream = ?, hook_pre_pause = ?, hook_post_pause = ?, hook_post_restore = ?,
		drill_schedule = ?, drill_smoke = ?, updated_at = ?, pitr_enabled = ?, pitr_window_days = ?
		WHERE id = ?`,
		e.Title, e.Type, nullID(pid), e.Status, e.GitDir, e.Gate.Listen, e.Gate.Upstream,
		e.Hooks.PrePause, e.Hooks.PostPause, e.Hooks.PostRestore, e.Drill.Schedule, e.Drill.Smoke, formatTime(now),
		e.PITR.Enabled, e.PITR.WindowDays, old.ID); err != nil {
		return false, fmt.Errorf("update environment %q: %w", old.Name, err)
	}
	if err := db.replaceServices(ctx, tx, old, e.Services); err != nil {
		return false, err
	}
	e.UpdatedAt = now
	return true, nil
}

// replaceServices makes the stored services of old equal to services,
// updating rows in place by name so their ids stay stable.
func (db *DB) replaceServices(ctx context.Context, tx *sql.Tx, old *Environment, services []Service) error {
	keep := map[string]bool{}
	for _, s := range services {
		keep[s.Name] = true
	}
	for _, s := range old.Services {
		if !keep[s.Name] {
			if _, err := tx.ExecContext(ctx, `DELETE FROM services WHERE environment_id = ? AND name = ?`, old.ID, s.Name); err != nil {
				return fmt.Errorf("remove service %q: %w", s.Name, err)
			}
		}
	}
	for i, s := range services {
		enc, exclude, err := db.serviceColumns(s)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO services (environment_id, position, name, type, url_enc, path, exclude)
			VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (environment_id, name) DO UPDATE SET position = excluded.position, type = excluded.type,
				url_enc = excluded.url_enc, path = excluded.path, exclude = excluded.exclude`,
			old.ID, i, s.Name, s.Type, enc, s.Path, exclude); err != nil {
			return fmt.Errorf("save service %q: %w", s.Name, err)
		}
	}
	return nil
}

func sameEnvironment(a, b *Environment) bool {
	if a.Name != b.Name || a.Title != b.Title || a.Type != b.Type || a.Parent != b.Parent || a.Status != b.Status ||
		a.GitDir != b.GitDir || a.Gate != b.Gate || a.Hooks != b.Hooks || a.Drill != b.Drill || len(a.Services) != len(b.Services) ||
		(a.PITR == nil) != (b.PITR == nil) || (a.PITR != nil && *a.PITR != *b.PITR) {
		return false
	}
	for i := range a.Services {
		x, y := a.Services[i], b.Services[i]
		if x.Name != y.Name || x.Type != y.Type || x.URL != y.URL || x.Path != y.Path || !slices.Equal(x.Exclude, y.Exclude) {
			return false
		}
	}
	return true
}

// SetEnvironmentStatus activates or deactivates an environment.
func (db *DB) SetEnvironmentStatus(ctx context.Context, name, status string) (*Environment, error) {
	if status != StatusActive && status != StatusInactive {
		return nil, &ValidationError{Errors: []FieldError{{Field: "status", Message: fmt.Sprintf("unknown status %q: use active or inactive", status)}}}
	}
	if _, err := db.sql.ExecContext(ctx, `UPDATE environments SET status = ?, updated_at = ? WHERE name = ? AND status <> ?`,
		status, formatTime(db.now()), name, status); err != nil {
		return nil, fmt.Errorf("set status of %q: %w", name, err)
	}
	return db.FindEnvironmentByName(ctx, name)
}

// DeleteEnvironment removes an environment and its services. It refuses
// (ErrConflict) while the environment has children.
func (db *DB) DeleteEnvironment(ctx context.Context, name string) error {
	return db.inTx(ctx, func(tx *sql.Tx) error {
		var id int64
		err := tx.QueryRowContext(ctx, `SELECT id FROM environments WHERE name = ?`, name).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("environment %q: %w", name, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("delete environment %q: %w", name, err)
		}
		var children []string
		rows, err := tx.QueryContext(ctx, `SELECT name FROM environments WHERE parent_id = ? ORDER BY name`, id)
		if err != nil {
			return fmt.Errorf("delete environment %q: %w", name, err)
		}
		for rows.Next() {
			var c string
			if err := rows.Scan(&c); err != nil {
				rows.Close()
				return fmt.Errorf("delete environment %q: %w", name, err)
			}
			children = append(children, c)
		}
		rows.Close()
		if len(children) > 0 {
			return fmt.Errorf("environment %q has children (%s): delete or re-parent them first: %w", name, strings.Join(children, ", "), ErrConflict)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM environments WHERE id = ?`, id); err != nil {
			return fmt.Errorf("delete environment %q: %w", name, err)
		}
		return nil
	})
}

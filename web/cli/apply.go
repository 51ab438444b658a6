package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/rewind/rewind/db"
)

// applyConfig is a parsed rewind.yaml.
type applyConfig struct {
	Environments []db.Environment `yaml:"environments"`

	file string
	// pos maps a field path ("environments[0].services[1].url") to where
	// it is in the file.
	pos map[string]yamlPos
}

type yamlPos struct{ line, column int }

// configError is one problem in rewind.yaml, located by file, line, column
// and field path.
type configError struct {
	file         string
	line, column int
	field        string
	message      string
}

func (e *configError) Error() string {
	var b strings.Builder
	b.WriteString(e.file)
	if e.line > 0 {
		b.WriteString(":" + strconv.Itoa(e.line))
		if e.column > 0 {
			b.WriteString(":" + strconv.Itoa(e.column))
		}
	}
	b.WriteString(": ")
	if e.field != "" {
		b.WriteString(e.field + ": ")
	}
	b.WriteString(e.message)
	return b.String()
}

// configErrors lists every problem found, in file order.
type configErrors []*configError

func (es configErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

func (es configErrors) err() error {
	if len(es) == 0 {
		return nil
	}
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].line != es[j].line {
			return es[i].line < es[j].line
		}
		return es[i].column < es[j].column
	})
	return es
}

// Allowed keys of each mapping of rewind.yaml, in documentation order.
var (
	configKeys      = []string{"environments"}
	environmentKeys = []string{"name", "title", "type", "parent", "status", "git_dir", "gate", "hooks", "drill", "pitr", "services"}
	serviceKeys     = []string{"name", "type", "url", "path", "exclude"}
	// settingsKeys are the keys of the environment's mappings of scalars.
	settingsKeys = map[string][]string{
		"gate":  {"listen", "upstream"},
		"hooks": {"pre_pause", "post_pause", "post_restore"},
		"drill": {"schedule", "smoke"},
		"pitr":  {"enabled", "window_days"},
	}
)

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseConfig parses rewind.yaml. Every problem of structure (syntax, unknown
// or repeated fields, a list where a string belongs...) is reported with its
// file:line:column and field path; values are checked by validateConfig.
func parseConfig(file string, data []byte) (*applyConfig, error) {
	cfg := &applyConfig{file: file, pos: map[string]yamlPos{}}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, cfg.syntaxError(data, err)
	}
	w := &configWalker{cfg: cfg}
	if len(root.Content) == 0 {
		return nil, configErrors{{file: file, message: "file is empty: it needs an environments: list (see `rewind apply --help`)"}}
	}
	w.config(root.Content[0])
	if err := w.errs.err(); err != nil {
		return nil, err
	}
	// The walk accepted the structure; decoding with KnownFields is the
	// second line of defence against a field the walk let through.
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		return nil, cfg.yamlError(err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, cfg.yamlError(err)
	case len(extra.Content) == 0 || isNull(extra.Content[0]):
		// an empty document after a trailing ---
	default:
		line := extra.Line
		if len(extra.Content) > 0 {
			line = extra.Content[0].Line
		}
		return nil, configErrors{{file: file, line: line, message: "a second YAML document (after ---) is not supported: list every environment under the one environments: key"}}
	}
	if len(cfg.Environments) == 0 {
		return nil, configErrors{cfg.at("environments", "no environments: list at least one under environments:")}
	}
	return cfg, nil
}

// yamlError turns a yaml.v3 error into configErrors with file and line.
func (cfg *applyConfig) yamlError(err error) error {
	var te *yaml.TypeError
	var msgs []string
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	var es configErrors
	for _, m := range msgs {
		e := &configError{file: cfg.file, message: m}
		if sm := yamlLineRE.FindStringSubmatch("yaml: " + strings.TrimPrefix(m, "yaml: ")); sm != nil {
			e.line, _ = strconv.Atoi(sm[1])
			e.message = sm[2]
		}
		es = append(es, e)
	}
	return es.err()
}

// syntaxError locates a YAML syntax error. yaml.v3 reports the line where
// the enclosing block starts; the line that breaks it is the first one whose
// prefix of the file fails with the same message, so it is looked for from
// the reported line on.
func (cfg *applyConfig) syntaxError(data []byte, err error) error {
	es, ok := cfg.yamlError(err).(configErrors)
	if !ok || len(es) != 1 || es[0].line == 0 {
		return cfg.yamlError(err)
	}
	e := es[0]
	lines := strings.SplitAfter(string(data), "\n")
	if len(lines) <= 2000 {
		for n := e.line; n < len(lines); n++ {
			var probe yaml.Node
			perr := yaml.Unmarshal([]byte(strings.Join(lines[:n], "")), &probe)
			if perr == nil {
				continue
			}
			if pe, ok := cfg.yamlError(perr).(configErrors); ok && len(pe) == 1 && pe[0].message == e.message {
				e.line = n
			}
			break
		}
	}
	if e.line <= len(lines) {
		line := lines[e.line-1]
		if indent := line[:len(line)-len(strings.TrimLeft(line, " \t"))]; strings.Contains(indent, "\t") {
			e.message += " (a tab in the indentation: YAML indents with spaces only)"
		}
	}
	return es
}

// at returns an error located at field (or its nearest located ancestor).
func (cfg *applyConfig) at(field, msg string) *configError {
	e := &configError{file: cfg.file, field: field, message: msg}
	for f := field; f != ""; f = parentField(f) {
		if p, ok := cfg.pos[f]; ok {
			e.line, e.column = p.line, p.column
			break
		}
	}
	return e
}

// parentField strips the last segment: "a[1].b" → "a[1]" → "a" → "".
func parentField(f string) string {
	if i := strings.LastIndexAny(f, ".["); i >= 0 {
		return f[:i]
	}
	return ""
}

// maxConfigNodes bounds the walk, so aliases repeating aliases (a
// "billion laughs" file) cannot make it run for ever.
const maxConfigNodes = 200_000

// configWalker checks the node tree of rewind.yaml and records positions.
type configWalker struct {
	cfg   *applyConfig
	errs  configErrors
	nodes int
}

// budget counts a visited node and reports whether the walk may go on.
func (w *configWalker) budget(n *yaml.Node) bool {
	w.nodes++
	if w.nodes == maxConfigNodes {
		w.fail(n, "", "the file expands to too many entries (aliases repeating aliases?): write the entries out")
	}
	return w.nodes < maxConfigNodes
}

func (w *configWalker) fail(n *yaml.Node, field, msg string) {
	w.errs = append(w.errs, &configError{file: w.cfg.file, line: n.Line, column: n.Column, field: field, message: msg})
}

func yamlDeref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return "a single value"
	}
	return "something else"
}

// mapping walks the keys of a mapping node, calling fn for each known key
// and reporting unknown and repeated ones.
func (w *configWalker) mapping(n *yaml.Node, field string, keys []string, fn func(key string, v *yaml.Node, field string)) {
	n = yamlDeref(n)
	if !w.budget(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		what := field
		if what == "" {
			what = "the file"
		}
		w.fail(n, field, fmt.Sprintf("%s must be a mapping of %s, not %s", what, strings.Join(keys, ", "), kindName(n)))
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := yamlDeref(n.Content[i]), n.Content[i+1]
		sub := k.Value
		if field != "" {
			sub = field + "." + k.Value
		}
		if k.Kind != yaml.ScalarNode {
			w.fail(k, field, "a key must be a plain name")
			continue
		}
		if !inList(keys, k.Value) {
			msg := fmt.Sprintf("unknown field %q", k.Value)
			if s := closestName(k.Value, keys); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			w.fail(k, sub, msg+"; known fields: "+strings.Join(keys, ", "))
			continue
		}
		if line, dup := seen[k.Value]; dup {
			w.fail(k, sub, fmt.Sprintf("field %q is given twice (first on line %d): keep one", k.Value, line))
			continue
		}
		seen[k.Value] = k.Line
		w.cfg.pos[sub] = yamlPos{v.Line, v.Column}
		fn(k.Value, yamlDeref(v), sub)
	}
}

// scalar checks that v is a single value (or empty).
func (w *configWalker) scalar(v *yaml.Node, field string) {
	if v.Kind != yaml.ScalarNode {
		w.fail(v, field, fmt.Sprintf("must be a single value, not %s", kindName(v)))
	}
}

// list walks a sequence node (an empty value counts as an empty list).
func (w *configWalker) list(v *yaml.Node, field string, fn func(item *yaml.Node, field string)) {
	if isNull(v) {
		return
	}
	if v.Kind != yaml.SequenceNode {
		w.fail(v, field, fmt.Sprintf("must be a list (- item per line, or [a, b]), not %s", kindName(v)))
		return
	}
	for i, item := range v.Content {
		if !w.budget(item) {
			return
		}
		sub := fmt.Sprintf("%s[%d]", field, i)
		w.cfg.pos[sub] = yamlPos{item.Line, item.Column}
		fn(yamlDeref(item), sub)
	}
}

func (w *configWalker) config(n *yaml.Node) {
	w.mapping(n, "", configKeys, func(_ string, v *yaml.Node, field string) {
		w.list(v, field, w.environment)
	})
}

func (w *configWalker) environment(n *yaml.Node, field string) {
	w.mapping(n, field, environmentKeys, func(key string, v *yaml.Node, field string) {
		if keys, ok := settingsKeys[key]; ok {
			if !isNull(v) {
				w.mapping(v, field, keys, func(_ string, v *yaml.Node, field string) { w.scalar(v, field) })
			}
			return
		}
		if key == "services" {
			w.list(v, field, w.service)
			return
		}
		w.scalar(v, field)
	})
}

func (w *configWalker) service(n *yaml.Node, field string) {
	w.mapping(n, field, serviceKeys, func(key string, v *yaml.Node, field string) {
		if key == "exclude" {
			w.list(v, field, func(item *yaml.Node, field string) { w.scalar(item, field) })
			return
		}
		w.scalar(v, field)
	})
}

// closest returns the known name nearest to s, if it is a likely typo.
func closestName(s string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if d := editDistance(strings.ToLower(s), n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

func inList(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

var envVarRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expandEnv replaces ${VAR} in service URLs with the value of environment
// variable VAR, so passwords can stay out of rewind.yaml. An unset
// variable is an error.
func (cfg *applyConfig) expandEnv(getenv func(string) string) error {
	var es configErrors
	for i := range cfg.Environments {
		for j := range cfg.Environments[i].Services {
			s := &cfg.Environments[i].Services[j]
			s.URL = envVarRE.ReplaceAllStringFunc(s.URL, func(m string) string {
				name := m[2 : len(m)-1]
				v := getenv(name)
				if v == "" {
					es = append(es, cfg.at(fmt.Sprintf("environments[%d].services[%d].url", i, j),
						fmt.Sprintf("environment variable %s is not set: export it before running rewind apply", name)))
				}
				return v
			})
		}
	}
	return es.err()
}

// validateConfig checks every entry of cfg, as the server will, before
// anything is sent: each environment's fields and services, names unique
// in the file, parents present in the file or on the server (existing), and
// no parent cycle.
func validateConfig(cfg *applyConfig, existing []db.Environment) error {
	var es configErrors
	names := map[string]int{}
	for i := range cfg.Environments {
		e := &cfg.Environments[i]
		prefix := fmt.Sprintf("environments[%d]", i)
		var ve *db.ValidationError
		if err := e.Validate(); errors.As(err, &ve) {
			for _, fe := range ve.Prefix(prefix).Errors {
				es = append(es, cfg.at(fe.Field, fe.Message))
			}
		} else if err != nil {
			es = append(es, cfg.at(prefix, err.Error()))
		}
		if j, dup := names[e.Name]; dup && e.Name != "" {
			es = append(es, cfg.at(prefix+".name", fmt.Sprintf("environment %q is also defined at environments[%d]: define each environment once", e.Name, j)))
		} else {
			names[e.Name] = i
		}
	}
	// Gates: one environment per listen address, the file's entries
	// overriding the server's.
	gates := map[string]string{}
	for _, e := range existing {
		if e.Gate.Listen != "" {
			gates[e.Gate.Listen] = e.Name
		}
	}
	inFile := map[string]bool{}
	for _, e := range cfg.Environments {
		inFile[e.Name] = true
	}
	for addr, name := range gates {
		if inFile[name] {
			delete(gates, addr)
		}
	}
	for i, e := range cfg.Environments {
		if e.Gate.Listen == "" {
			continue
		}
		if other, ok := gates[e.Gate.Listen]; ok && other != e.Name {
			es = append(es, cfg.at(fmt.Sprintf("environments[%d].gate.listen", i),
				fmt.Sprintf("%s is already the gate of environment %q: give each gate its own port", e.Gate.Listen, other)))
			continue
		}
		gates[e.Gate.Listen] = e.Name
	}
	// Parents: the file's entries override the server's.
	parent := map[string]string{}
	for _, e := range existing {
		parent[e.Name] = e.Parent
	}
	for _, e := range cfg.Environments {
		parent[e.Name] = e.Parent
	}
	for i, e := range cfg.Environments {
		if e.Parent == "" || e.Parent == e.Name || !db.ValidSlug(e.Parent) {
			continue // no parent, or already reported by Validate
		}
		field := fmt.Sprintf("environments[%d].parent", i)
		if _, ok := parent[e.Parent]; !ok {
			known := make([]string, 0, len(parent))
			for name := range parent {
				known = append(known, name)
			}
			sort.Strings(known)
			hint := ""
			if s := closestName(e.Parent, known); s != "" {
				hint = fmt.Sprintf(" (did you mean %q?)", s)
			}
			es = append(es, cfg.at(field, fmt.Sprintf("unknown parent %q%s: it is neither in this file nor on the server; add it to the file or leave parent empty", e.Parent, hint)))
			continue
		}
		chain := []string{e.Name}
		for cur, n := e.Parent, 0; cur != "" && n <= len(parent); cur, n = parent[cur], n+1 {
			chain = append(chain, cur)
			if cur == e.Name {
				es = append(es, cfg.at(field, fmt.Sprintf("parent %q makes a cycle (%s): break it by changing one parent", e.Parent, strings.Join(chain, " -> "))))
				break
			}
		}
	}
	return es.err()
}

// parentsFirst returns the indexes of cfg.Environments ordered so every
// environment comes after its parent when the parent is in the file too.
// Assumes validateConfig passed (no cycles).
func parentsFirst(envs []db.Environment) []int {
	index := map[string]int{}
	for i, e := range envs {
		index[e.Name] = i
	}
	done := make([]bool, len(envs))
	var order []int
	var visit func(i, depth int)
	visit = func(i, depth int) {
		if done[i] || depth > len(envs) {
			return
		}
		if p, ok := index[envs[i].Parent]; ok && p != i {
			visit(p, depth+1)
		}
		if !done[i] {
			done[i] = true
			order = append(order, i)
		}
	}
	for i := range envs {
		visit(i, 0)
	}
	return order
}

// environmentsResponse is GET /api/v1/environments.
type environmentsResponse struct {
	Environments []db.Environment `json:"environments"`
}

// putResponse accepts the shapes a PUT /api/v1/environments/{env} answer may
// take: {"environment": {...}, "change": "..."} or the environment itself.
type putResponse struct {
	Change      string          `json:"change"`
	Created     *bool           `json:"created"`
	Environment *db.Environment `json:"environment"`
	UpdatedAt   time.Time       `json:"updated_at"`
}

// applyOptions configure runApply.
type applyOptions struct {
	file   string
	dryRun bool
	getenv func(string) string
}

// runApply parses and validates the whole file, then creates or updates each
// environment, parents first, printing what happened to each.
func runApply(ctx context.Context, out io.Writer, c *apiClient, data []byte, opt applyOptions) error {
	cfg, err := parseConfig(opt.file, data)
	if err != nil {
		return err
	}
	if err := cfg.expandEnv(opt.getenv); err != nil {
		return err
	}
	var server environmentsResponse
	if _, err := c.do(ctx, http.MethodGet, "/api/v1/environments", nil, &server); err != nil {
		return fmt.Errorf("list environments: %w", err)
	}
	if err := validateConfig(cfg, server.Environments); err != nil {
		return err
	}
	before := map[string]db.Environment{}
	for _, e := range server.Environments {
		before[e.Name] = e
	}
	var done []string
	for _, i := range parentsFirst(cfg.Environments) {
		e := cfg.Environments[i]
		if opt.dryRun {
			verb := "create"
			if _, ok := before[e.Name]; ok {
				verb = "update"
			}
			fmt.Fprintf(out, "%s: valid (would %s)\n", e.Name, verb)
			continue
		}
		var resp putResponse
		status, err := c.do(ctx, http.MethodPut, "/api/v1/environments/"+url.PathEscape(e.Name), &e, &resp)
		if err != nil {
			var ae *apiError
			if errors.As(err, &ae) && len(ae.Fields) > 0 {
				var es configErrors
				for _, f := range ae.Fields {
					es = append(es, cfg.at(fmt.Sprintf("environments[%d].%s", i, f.Field), f.Message))
				}
				err = es.err()
			}
			if len(done) > 0 {
				return fmt.Errorf("environment %q: %w\n(already applied: %s)", e.Name, err, strings.Join(done, ", "))
			}
			return fmt.Errorf("environment %q: %w", e.Name, err)
		}
		done = append(done, e.Name)
		fmt.Fprintf(out, "%s: %s\n", e.Name, classifyPut(status, resp, before, e.Name))
	}
	return nil
}

// classifyPut says whether a PUT created, updated or left an environment
// unchanged, from the server's answer and the state before.
func classifyPut(status int, resp putResponse, before map[string]db.Environment, name string) db.Change {
	switch db.Change(resp.Change) {
	case db.Created, db.Updated, db.Unchanged:
		return db.Change(resp.Change)
	}
	prev, existed := before[name]
	if status == http.StatusCreated || (resp.Created != nil && *resp.Created) || !existed {
		return db.Created
	}
	updated := resp.UpdatedAt
	if resp.Environment != nil {
		updated = resp.Environment.UpdatedAt
	}
	if !updated.IsZero() && !prev.UpdatedAt.IsZero() && updated.Equal(prev.UpdatedAt) {
		return db.Unchanged
	}
	return db.Updated
}

const applyHelp = `Create or update the environments and services described in rewind.yaml.

The whole file is checked before anything is sent: a YAML error, an unknown
field or an invalid entry is reported with file:line:column and the entry
(environments[1].services[0].url) and nothing changes on the server.
Environments are applied parents first; each is reported as created,
updated or unchanged. Environments on the server that the file does not
mention are left alone.

Service URLs may use ${VAR} to read a secret from the environment, e.g.
  url: "postgres://app:${DB_PASSWORD}@127.0.0.1:5432/app"

Example rewind.yaml:

environments:
  - name: main
    type: production
    git_dir: /srv/app
    gate: {listen: "127.0.0.1:8081", upstream: "http://127.0.0.1:3000"}
    services:
      - {name: db, type: postgresql, url: "postgres://app:${DB_PASSWORD}@127.0.0.1:5432/app"}
      - {name: uploads, type: files, path: /srv/app/uploads, exclude: ["cache/", "*.tmp"]}
  - name: staging
    type: staging
    parent: main
    services:
      - {name: local, type: sqlite, path: /srv/staging/data/app.db}`

func newApplyCommand() *cobra.Command {
	var flags clientFlags
	var file string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "apply -f rewind.yaml",
		Short: "Create or update environments and services from rewind.yaml",
		Long:  applyHelp,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var data []byte
			var err error
			if file == "-" {
				data, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), 16<<20))
			} else {
				data, err = os.ReadFile(file)
			}
			if err != nil {
				return fmt.Errorf("read %s: %w", file, err)
			}
			c, err := flags.client()
			if err != nil {
				return err
			}
			name := file
			if name == "-" {
				name = "<stdin>"
			}
			return runApply(cmd.Context(), cmd.OutOrStdout(), c, data, applyOptions{file: name, dryRun: dryRun, getenv: os.Getenv})
		},
	}
	flags.register(cmd, false)
	cmd.Flags().StringVarP(&file, "file", "f", "rewind.yaml", "the file to apply (- for standard input)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "check the file against the server and print what would change, without changing anything")
	return WithEnv(cmd)
}

// Package views holds the dashboard's templ components: the layout, one file
// per page and the partials HTMX swaps in. Partials are fragments
// (templ.Fragment) of the full-page components, so a page and its
// live-updating parts never drift. views renders plain records from db and the
// view models below; it never imports echo or the handlers.
package views

import (
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rewind/rewind/db"
)

// Page is what every full page needs: who is looking, the CSRF token for its
// forms and HTMX requests, and the messages to show once.
type Page struct {
	Title   string
	Nav     string // "environments", "activities", "users", "tokens"
	User    *db.User
	CSRF    string
	Flashes []Flash
}

// Flash is a one-time message shown at the top of the next page.
type Flash struct {
	Kind    string // "success", "error", "info", "warning"
	Message string
}

// Permission says whether the viewer may do something and, if not, why; the
// button is rendered disabled with the reason beside it.
type Permission struct {
	Allowed bool
	Reason  string
}

// Allow is the Permission for an allowed action.
var Allow = Permission{Allowed: true}

// Deny is a Permission refused for a reason the user can read.
func Deny(reason string) Permission { return Permission{Reason: reason} }

// Field errors of a form, by field name ("name", "services[1].url").
type Errors map[string]string

// FromValidation turns a *db.ValidationError into Errors (nil-safe).
func FromValidation(err *db.ValidationError) Errors {
	if err == nil {
		return nil
	}
	e := Errors{}
	for _, f := range err.Errors {
		if _, ok := e[f.Field]; !ok {
			e[f.Field] = f.Message
		}
	}
	return e
}

func csrfHeaders(token string) string {
	b, _ := json.Marshal(map[string]string{"X-CSRF-Token": token})
	return string(b)
}

func envURL(name string, tab ...string) string {
	u := "/environments/" + url.PathEscape(name)
	if len(tab) > 0 && tab[0] != "" {
		u += "/" + tab[0]
	}
	return u
}

func navCurrent(p Page, nav string) string {
	if p.Nav == nav {
		return "page"
	}
	return "false"
}

func isAdmin(u *db.User) bool { return u != nil && u.Role == db.RoleAdmin }

// timeFormat is how pages show a time, in the server's timezone.
const timeFormat = "2006-01-02 15:04:05"

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Local().Format(timeFormat)
}

func fmtTimePtr(t *time.Time) string {
	if t == nil {
		return ""
	}
	return fmtTime(*t)
}

// ago renders a short relative time ("3 min ago").
func ago(t, now time.Time) string {
	d := now.Sub(t)
	switch {
	case d < 0:
		return fmtTime(t)
	case d < 10*time.Second:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%d s ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	default:
		return fmt.Sprintf("%d days ago", int(d.Hours()/24))
	}
}

// fmtDuration renders a duration the way people read it ("1m 05s").
func fmtDuration(d time.Duration) string { return string(appendDuration(nil, d)) }

// appendDuration appends fmtDuration(d) to dst.
func appendDuration(dst []byte, d time.Duration) []byte {
	switch {
	case d <= 0:
		return append(dst, "—"...)
	case d < time.Second:
		return append(strconv.AppendInt(dst, d.Milliseconds(), 10), " ms"...)
	case d < time.Minute:
		return append(strconv.AppendFloat(dst, d.Seconds(), 'f', 1, 64), " s"...) // as fmt's %.1f
	case d < time.Hour:
		return append(append2(append(strconv.AppendInt(dst, int64(d.Minutes()), 10), "m "...), int(d.Seconds())%60), 's')
	default:
		return append(append2(append(strconv.AppendInt(dst, int64(d.Hours()), 10), "h "...), int(d.Minutes())%60), 'm')
	}
}

// append2 appends 0 <= n < 100 with two digits, as fmt's %02d.
func append2(dst []byte, n int) []byte { return append(dst, byte('0'+n/10), byte('0'+n%10)) }

func itoa(i int) string { return strconv.Itoa(i) }

func i64(i int64) string { return strconv.FormatInt(i, 10) }

func title(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// The choices the forms offer.
func environmentTypes() []string {
	return []string{db.EnvProduction, db.EnvStaging, db.EnvDevelopment}
}

func serviceTypes() []string { return []string{"postgresql", "mysql", "redis", "sqlite", "files"} }

func roles() []string { return []string{db.RoleAdmin, db.RoleContributor, db.RoleViewer} }

// errFor is the message for a field; a list field reports its first bad
// element too ("services[0].exclude" shows "services[0].exclude[2]").
func errFor(errs Errors, name string) string {
	if m := errs[name]; m != "" || !strings.HasSuffix(name, ".exclude") {
		return m
	}
	keys := make([]string, 0, len(errs))
	for k := range errs {
		if strings.HasPrefix(k, name+"[") {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return ""
	}
	sort.Strings(keys)
	return errs[keys[0]]
}

func invalid(errs Errors, name string) string {
	if errFor(errs, name) != "" {
		return "true"
	}
	return "false"
}

// EnvTree orders environments as a tree: each parent followed by its
// children, indented by depth. Environments whose parent is missing are roots.
func EnvTree(envs []*db.Environment) []EnvRow {
	byName := map[string]bool{}
	for _, e := range envs {
		byName[e.Name] = true
	}
	children := map[string][]*db.Environment{}
	var roots []*db.Environment
	for _, e := range envs {
		if e.Parent != "" && byName[e.Parent] && e.Parent != e.Name {
			children[e.Parent] = append(children[e.Parent], e)
		} else {
			roots = append(roots, e)
		}
	}
	rows := make([]EnvRow, 0, len(envs))
	seen := map[string]bool{}
	var walk func(e *db.Environment, depth int)
	walk = func(e *db.Environment, depth int) {
		if seen[e.Name] {
			return
		}
		seen[e.Name] = true
		rows = append(rows, EnvRow{Env: e, Depth: depth})
		for _, c := range children[e.Name] {
			walk(c, depth+1)
		}
	}
	for _, r := range roots {
		walk(r, 0)
	}
	for _, e := range envs { // cycles: show them anyway
		walk(e, 0)
	}
	return rows
}

func treeClass(depth int) string {
	if depth <= 0 {
		return ""
	}
	return "tree-" + strconv.Itoa(min(depth, 3))
}

func countStatus(rows []EnvRow, status string) int {
	n := 0
	for _, r := range rows {
		if r.Env.Status == status {
			n++
		}
	}
	return n
}

func countServices(rows []EnvRow) int {
	n := 0
	for _, r := range rows {
		n += len(r.Env.Services)
	}
	return n
}

func tabCurrent(tab, name string) string {
	if tab == name || (tab == "" && name == "backups") {
		return "page"
	}
	return "false"
}

func svcKey(i int, field string) string { return fmt.Sprintf("services[%d].%s", i, field) }

func rowHasError(errs Errors, i int) bool {
	prefix := fmt.Sprintf("services[%d]", i)
	for k := range errs {
		if k == prefix || strings.HasPrefix(k, prefix+".") {
			return true
		}
	}
	return false
}

func knownServiceType(t string) bool {
	for _, s := range serviceTypes() {
		if s == t {
			return true
		}
	}
	return false
}

func cancelURL(f EnvForm) string {
	if f.New || f.Env.Name == "" {
		return "/environments"
	}
	return envURL(f.Env.Name)
}

// unplacedErrors are the messages of errors that no field of the form shows.
func unplacedErrors(f EnvForm) []string {
	placed := map[string]bool{"name": true, "title": true, "type": true, "parent": true, "git_dir": true,
		"gate.listen": true, "gate.upstream": true, "hooks.pre_pause": true, "hooks.post_pause": true,
		"hooks.post_restore": true, "services": true}
	for i := range f.Env.Services {
		for _, k := range []string{"name", "type", "url", "path", "exclude"} {
			placed[svcKey(i, k)] = true
		}
	}
	var out []string
	for k, m := range f.Errors {
		if !placed[k] && !strings.Contains(k, ".exclude[") {
			out = append(out, k+": "+m)
		}
	}
	sort.Strings(out)
	return out
}

func minPassword() string {
	return fmt.Sprintf("At least %d characters.", db.MinPasswordLength)
}

// Fragments are the ids of the templ.Fragment parts of pages that HTMX asks
// for by target id; everything else renders whole.
func Fragments() []string { return []string{"feed", "backups", "drills", "backup-contents"} }

package db

import (
	"fmt"
	"net"
	"net/url"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// Service types.
const (
	ServicePostgreSQL = "postgresql"
	ServiceMySQL      = "mysql"
	ServiceRedis      = "redis"
	ServiceSQLite     = "sqlite"
	ServiceFiles      = "files"
)

// ServiceTypes lists the known service types.
func ServiceTypes() []string {
	return []string{ServicePostgreSQL, ServiceMySQL, ServiceRedis, ServiceSQLite, ServiceFiles}
}

// Service is one thing an environment backs up. URL services (postgresql,
// mysql, redis) have a URL, path services (sqlite, files) a Path. The URL is
// in clear text in memory and encrypted at rest; show MaskedURL to people.
type Service struct {
	Name    string   `json:"name" yaml:"name"`
	Type    string   `json:"type" yaml:"type"`
	URL     string   `json:"url,omitempty" yaml:"url,omitempty"`
	Path    string   `json:"path,omitempty" yaml:"path,omitempty"`
	Exclude []string `json:"exclude,omitempty" yaml:"exclude,omitempty"`
}

// usesURL reports whether services of type t are addressed by URL.
func usesURL(t string) bool {
	return t == ServicePostgreSQL || t == ServiceMySQL || t == ServiceRedis
}

// urlSchemes returns the schemes accepted for a URL service type; the first
// is the one suggested in messages. Nil for path services.
func urlSchemes(typ string) []string {
	switch typ {
	case ServicePostgreSQL:
		return []string{"postgres", "postgresql"}
	case ServiceMySQL:
		return []string{"mysql", "mariadb"}
	case ServiceRedis:
		return []string{"redis", "rediss"}
	}
	return nil
}

// urlExample returns an example URL for a URL service type.
func urlExample(typ string) string {
	switch typ {
	case ServicePostgreSQL:
		return "postgres://user:password@127.0.0.1:5432/app"
	case ServiceMySQL:
		return "mysql://user:password@127.0.0.1:3306/app"
	}
	return "redis://127.0.0.1:6379/0"
}

// MaskedPassword replaces passwords in masked URLs.
const MaskedPassword = "****"

// isSecretQueryKey reports whether a URL query parameter holds a secret.
func isSecretQueryKey(k string) bool {
	switch strings.ToLower(k) {
	case "password", "pass", "pwd", "sslpassword", "secret":
		return true
	}
	return false
}

// MaskedURL returns the service URL with its password (and password-like
// query parameters) replaced by "****". Unparsable URLs are masked entirely.
func (s Service) MaskedURL() string { return MaskURL(s.URL) }

// maskPlaceholder stands in for "****" while a URL is re-serialised, since
// net/url would percent-encode the asterisks.
const maskPlaceholder = "REWINDMASKEDSECRET0"

// MaskURL masks the password of a URL; see Service.MaskedURL.
func MaskURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return MaskedPassword
	}
	masked := false
	if u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			u.User = url.UserPassword(u.User.Username(), maskPlaceholder)
			masked = true
		}
	}
	if u.RawQuery != "" {
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			u.RawQuery = maskPlaceholder
			masked = true
		} else {
			for k, vs := range q {
				if isSecretQueryKey(k) {
					for i := range vs {
						vs[i] = maskPlaceholder
					}
					u.RawQuery = q.Encode()
					masked = true
				}
			}
		}
	}
	if !masked {
		return raw
	}
	return strings.ReplaceAll(u.String(), maskPlaceholder, MaskedPassword)
}

// unmaskURL returns next with every masked secret ("****" as password or as
// a password-like query value) replaced by the secret of prev, the stored
// URL, so a form or rewind.yaml can change a host without re-typing the
// password. URLs without masked parts are returned unchanged.
func unmaskURL(next, prev string) string {
	if prev == "" || !strings.Contains(next, MaskedPassword) && !strings.Contains(next, "%2A%2A%2A%2A") {
		return next
	}
	if next == MaskURL(prev) {
		return prev
	}
	nu, err1 := url.Parse(next)
	pu, err2 := url.Parse(prev)
	if err1 != nil || err2 != nil {
		return next
	}
	changed := false
	if nu.User != nil && pu.User != nil {
		npw, nok := nu.User.Password()
		ppw, pok := pu.User.Password()
		if nok && pok && npw == MaskedPassword {
			nu.User = url.UserPassword(nu.User.Username(), ppw)
			changed = true
		}
	}
	if nu.RawQuery != "" && pu.RawQuery != "" {
		nq, err1 := url.ParseQuery(nu.RawQuery)
		pq, err2 := url.ParseQuery(pu.RawQuery)
		if err1 == nil && err2 == nil {
			for k, vs := range nq {
				if isSecretQueryKey(k) && len(vs) == 1 && vs[0] == MaskedPassword && pq.Has(k) {
					nq[k] = pq[k]
					nu.RawQuery = nq.Encode()
					changed = true
				}
			}
		}
	}
	if !changed {
		return next
	}
	return nu.String()
}

// ValidateServiceURL checks a service URL for a service of type typ and
// returns what is wrong with it and how to fix it, or "" when it is valid.
func ValidateServiceURL(typ, raw string) string {
	schemes := urlSchemes(typ)
	if schemes == nil {
		return fmt.Sprintf("%s services take no url", typ)
	}
	example := urlExample(typ)
	if raw == "" {
		return fmt.Sprintf("url is required for a %s service, e.g. %s", typ, example)
	}
	if len(raw) > 2048 {
		return "url is too long: at most 2048 characters"
	}
	if strings.ContainsAny(raw, " \t\r\n") || hasControl(raw) {
		return "url must not contain spaces or control characters: percent-encode them (space is %20)"
	}
	if strings.Contains(raw, "#") {
		return "url must not contain #: percent-encode it in a password as %23"
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Sprintf("url cannot be parsed (%s): use the form %s, and percent-encode special characters in the user or password (/ as %%2F, ? as %%3F, %% as %%25)", urlErrReason(err), example)
	}
	if u.Scheme == "" || u.Opaque != "" || !strings.HasPrefix(raw[len(u.Scheme):], "://") {
		return fmt.Sprintf("url must start with %s://, e.g. %s", schemes[0], example)
	}
	if !contains(schemes, strings.ToLower(u.Scheme)) {
		return fmt.Sprintf("url scheme %q does not fit a %s service: use %s, e.g. %s",
			u.Scheme, typ, strings.Join(withSuffix(schemes, "://"), " or "), example)
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Sprintf("url has no host: add the server address, e.g. %s", example)
	}
	if port := u.Port(); port != "" || strings.HasSuffix(u.Host, ":") {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Sprintf("url port %q is not a port number: use 1-65535", port)
		}
	}
	dbName := strings.TrimPrefix(u.Path, "/")
	switch typ {
	case ServicePostgreSQL, ServiceMySQL:
		if dbName == "" {
			return fmt.Sprintf("url names no database: add it as the path, e.g. %s", example)
		}
		if strings.Contains(dbName, "/") {
			return fmt.Sprintf("url path %q must be a single database name, e.g. %s", u.Path, example)
		}
	case ServiceRedis:
		if dbName != "" {
			if n, err := strconv.Atoi(dbName); err != nil || n < 0 || n > 1<<20 {
				return fmt.Sprintf("url path %q must be a redis database number such as /0", u.Path)
			}
		}
	}
	return ""
}

func urlErrReason(err error) string {
	if ue, ok := err.(*url.Error); ok {
		err = ue.Err
	}
	return err.Error()
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func withSuffix(list []string, suffix string) []string {
	out := make([]string, len(list))
	for i, v := range list {
		out[i] = v + suffix
	}
	return out
}

// validateAbsPath checks a filesystem path field.
func validateAbsPath(p, what string) string {
	switch {
	case p == "":
		return what + " is required: give an absolute path, e.g. /srv/app/data"
	case hasControl(p):
		return what + " must not contain control characters"
	case !filepath.IsAbs(p):
		return fmt.Sprintf("%s %q is relative: give an absolute path starting with /", what, p)
	case len(p) > 4096:
		return what + " is too long"
	}
	return ""
}

// validateServices checks services and records problems under
// "services[i].field".
func validateServices(ve *ValidationError, services []Service) {
	seen := map[string]int{}
	for i, s := range services {
		f := func(name string) string { return fmt.Sprintf("services[%d].%s", i, name) }
		if !ValidSlug(s.Name) {
			ve.add(f("name"), slugMessage(s.Name, "service name"))
		} else if j, dup := seen[s.Name]; dup {
			ve.add(f("name"), fmt.Sprintf("duplicate service name %q (also services[%d]): give each service of an environment its own name", s.Name, j))
		} else {
			seen[s.Name] = i
		}
		if !contains(ServiceTypes(), s.Type) {
			if s.Type == "" {
				ve.add(f("type"), "service type is required: one of "+strings.Join(ServiceTypes(), ", "))
			} else {
				ve.add(f("type"), fmt.Sprintf("unknown service type %q: use one of %s", s.Type, strings.Join(ServiceTypes(), ", ")))
			}
			continue
		}
		if usesURL(s.Type) {
			if msg := ValidateServiceURL(s.Type, s.URL); msg != "" {
				ve.add(f("url"), msg)
			}
			if s.Path != "" {
				ve.add(f("path"), fmt.Sprintf("%s services are reached by url, not path: remove path", s.Type))
			}
		} else {
			if msg := validateAbsPath(s.Path, "path"); msg != "" {
				ve.add(f("path"), msg)
			}
			if s.URL != "" {
				ve.add(f("url"), fmt.Sprintf("%s services take a path, not a url: remove url", s.Type))
			}
		}
		if len(s.Exclude) > 0 && s.Type != ServiceFiles {
			ve.add(f("exclude"), "exclude applies to files services only: remove it")
			continue
		}
		for j, pat := range s.Exclude {
			if msg := validateExclude(pat); msg != "" {
				ve.add(fmt.Sprintf("services[%d].exclude[%d]", i, j), msg)
			}
		}
	}
}

// validateExclude checks an exclude pattern: a glob (path.Match syntax)
// relative to the mount, a trailing "/" matching directories only.
func validateExclude(pat string) string {
	if strings.TrimSpace(pat) == "" {
		return "exclude pattern is empty: remove it"
	}
	if hasControl(pat) {
		return "exclude pattern must not contain control characters"
	}
	if _, err := path.Match(strings.TrimSuffix(pat, "/"), ""); err != nil {
		return fmt.Sprintf("exclude pattern %q is not a valid glob: check its [ ] brackets and \\ escapes", pat)
	}
	return ""
}

// validateHostPort checks a gate listen address.
func validateHostPort(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Sprintf("%q is not host:port: use e.g. 127.0.0.1:8081", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Sprintf("port %q in %q is not a port number: use 1-65535", port, addr)
	}
	if hasControl(host) || strings.ContainsAny(host, " /") {
		return fmt.Sprintf("host %q in %q is not a host name or IP address", host, addr)
	}
	return ""
}

// validateUpstream checks a gate upstream URL.
func validateUpstream(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || strings.ContainsAny(raw, " \t\r\n") {
		return fmt.Sprintf("%q is not a URL: use e.g. http://127.0.0.1:3000", raw)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Sprintf("upstream must be an http:// or https:// URL, e.g. http://127.0.0.1:3000 (got %q)", raw)
	}
	if u.Host == "" || u.Hostname() == "" {
		return "upstream has no host: use e.g. http://127.0.0.1:3000"
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Sprintf("upstream port %q is not a port number: use 1-65535", port)
		}
	}
	return ""
}

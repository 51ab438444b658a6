package db

import (
	"regexp"
	"strings"
)

// FieldError is one problem with one input field. Field names the field the
// way a form or rewind.yaml does: "name", "gate.listen", "services[1].url".
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ValidationError lists every problem found in one input. Create* and
// Update* return it (as error) when input is invalid; nothing is saved then.
type ValidationError struct {
	Errors []FieldError `json:"errors"`
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("invalid input: ")
	for i, fe := range e.Errors {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(fe.Field)
		b.WriteString(": ")
		b.WriteString(fe.Message)
	}
	return b.String()
}

// For returns the message for field, or "" if the field has none.
func (e *ValidationError) For(field string) string {
	if e == nil {
		return ""
	}
	for _, fe := range e.Errors {
		if fe.Field == field {
			return fe.Message
		}
	}
	return ""
}

// Prefix returns a copy whose field names start with prefix+".", e.g.
// "environments[1]" turns "services[0].url" into
// "environments[1].services[0].url".
func (e *ValidationError) Prefix(prefix string) *ValidationError {
	out := &ValidationError{Errors: make([]FieldError, len(e.Errors))}
	for i, fe := range e.Errors {
		out.Errors[i] = FieldError{Field: prefix + "." + fe.Field, Message: fe.Message}
	}
	return out
}

// add records a problem with field.
func (e *ValidationError) add(field, msg string) {
	e.Errors = append(e.Errors, FieldError{Field: field, Message: msg})
}

// err returns e as an error if it holds any problem, else nil.
func (e *ValidationError) err() error {
	if len(e.Errors) == 0 {
		return nil
	}
	return e
}

// slugRE: lowercase letters, digits and hyphens, starting and ending with a
// letter or digit, at most 63 characters (a DNS label, so it works in
// hostnames, paths and database names derived from it).
var slugRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ValidSlug reports whether s is a valid environment or service name.
func ValidSlug(s string) bool { return slugRE.MatchString(s) }

func slugMessage(s, what string) string {
	if s == "" {
		return what + " is required: use lowercase letters, digits and hyphens, e.g. \"main\""
	}
	hint := ""
	if lower := strings.ToLower(s); lower != s && slugRE.MatchString(lower) {
		hint = " (try \"" + lower + "\")"
	}
	return "\"" + s + "\" is not a valid " + what + ": use 1-63 lowercase letters, digits and hyphens, starting and ending with a letter or digit" + hint
}

// hasControl reports whether s contains a control character (newline, NUL...).
func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return true
		}
	}
	return false
}

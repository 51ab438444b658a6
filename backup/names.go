package backup

import (
	"errors"

	"fmt"
	"github.com/kopia/kopia/repo/blob"
	"github.com/kopia/kopia/repo/content"
	"github.com/kopia/kopia/repo/object"
	"strings"
	"unicode/utf8"
)

// ErrUnsafeName is wrapped when a name read from a backup could escape the directory it is restored into.
var ErrUnsafeName = errors.New("unsafe name in backup")

// CheckEntryName checks one name of a directory entry read from a backup (a repository or tar entry): it must be
// a single, non-empty path element that is not "." or "..", holds no slash and no NUL byte, and fits in a
// Linux file name. Everything that writes a backup's tree to disk or to a tar checks every name with it.
func CheckEntryName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("%w: %q", ErrUnsafeName, name)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("%w: %q holds a slash or NUL", ErrUnsafeName, name)
	case len(name) > 255:
		return fmt.Errorf("%w: name longer than 255 bytes", ErrUnsafeName)
	}
	return nil
}

// ErrBadPath is wrapped when a path given to name something inside a backup's service (Browse, a partial
// restore) is not one: it leaves the service (".."), holds an unsafe element, or is not UTF-8.
var ErrBadPath = errors.New("bad path")

// SubPath checks a path inside a service's folder as a user gives it ("images/2026", "/images/2026/",
// "images//2026") and returns it clean: slash-separated, relative, no empty, "." or ".." element; "" is the
// service's root. A leading slash means the service's root, never the server's: nothing can name a place
// outside the service.
func SubPath(p string) (string, error) {
	if !utf8.ValidString(p) {
		return "", fmt.Errorf("%w: %q is not UTF-8", ErrBadPath, p)
	}
	var out []string
	for _, el := range strings.Split(strings.Trim(p, "/"), "/") {
		switch el {
		case "", ".":
			continue
		case "..":
			return "", fmt.Errorf("%w: %q leaves the service with \"..\": name a path inside it, like images/2026", ErrBadPath, p)
		}
		if err := CheckEntryName(el); err != nil {
			return "", fmt.Errorf("%w: %q: %v", ErrBadPath, p, err)
		}
		out = append(out, el)
	}
	return strings.Join(out, "/"), nil
}

// cleanSubPath reports whether p is a non-empty path as SubPath returns it.
func cleanSubPath(p string) bool {
	c, err := SubPath(p)
	return err == nil && c == p && p != ""
}

// validUTF8Path reports whether p is valid UTF-8 (tar PAX records need it).
func validUTF8Path(p string) bool { return utf8.ValidString(p) }

// ErrDamaged is wrapped when the repository lacks data a backup refers to, or the data fails its
// authentication (a missing or corrupted blob). Running a full verification or restoring another backup are
// the ways forward; the live services are never touched by a restore that hits it.
var ErrDamaged = errors.New("repository data is missing or damaged")

// classify wraps err with ErrDamaged when kopia reports missing or corrupt repository data.
func classify(err error) error {
	if err == nil || errors.Is(err, ErrDamaged) {
		return err
	}
	msg := err.Error()
	if errors.Is(err, blob.ErrBlobNotFound) || errors.Is(err, content.ErrContentNotFound) ||
		errors.Is(err, object.ErrObjectNotFound) || strings.Contains(msg, "unexpected content error") ||
		strings.Contains(msg, "message authentication failed") {
		return fmt.Errorf("%w: %w", ErrDamaged, err)
	}
	return err
}

package files

import (
	"fmt"
	"path"
	"strings"
)

// Matcher applies gitignore-style exclude patterns to slash-separated paths relative to the mount:
//   - a blank line or one starting with '#' matches nothing; '!' re-includes what an earlier pattern excluded
//     (but, as in git, nothing below an excluded directory, which is never walked);
//   - a trailing '/' matches directories only;
//   - a pattern with a '/' at its start or middle is anchored at the mount; otherwise it matches the name at
//     any depth;
//   - '*' and '?' match within one path element, '[...]' a character class, and a '**' element any number
//     of elements (zero or more).
//
// The last matching pattern decides.
type Matcher struct {
	rules []rule
	// prefix is the path of the tree the matcher is applied to, relative to the mount (Under).
	prefix string
}

// Under returns a matcher for the sub-tree sub of the mount (slash-separated, relative): it takes paths
// relative to sub and applies the mount's patterns to them as to the same paths below the mount.
func (m *Matcher) Under(sub string) *Matcher {
	if m == nil || sub == "" {
		return m
	}
	return &Matcher{rules: m.rules, prefix: path.Join(m.prefix, sub)}
}

type rule struct {
	neg, dirOnly, anchored bool
	segs                   []string
}

// NewMatcher compiles patterns; a malformed character class is an error.
func NewMatcher(patterns []string) (*Matcher, error) {
	m := &Matcher{}
	for _, p := range patterns {
		orig := p
		p = strings.TrimRight(p, " \t\r")
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		var r rule
		if strings.HasPrefix(p, "!") {
			r.neg = true
			p = p[1:]
		} else if strings.HasPrefix(p, `\!`) || strings.HasPrefix(p, `\#`) {
			p = p[1:]
		}
		if strings.HasSuffix(p, "/") {
			r.dirOnly = true
			p = strings.TrimRight(p, "/")
		}
		if strings.Contains(p, "/") {
			r.anchored = true
			p = strings.TrimLeft(p, "/")
		}
		if p == "" {
			return nil, fmt.Errorf("exclude pattern %q matches nothing", orig)
		}
		r.segs = strings.Split(p, "/")
		for _, s := range r.segs {
			if s == "**" {
				continue
			}
			if _, err := path.Match(s, ""); err != nil {
				return nil, fmt.Errorf("exclude pattern %q: %w", orig, err)
			}
		}
		m.rules = append(m.rules, r)
	}
	return m, nil
}

// Excluded reports whether rel (slash-separated, relative to the mount, no leading slash) is excluded.
func (m *Matcher) Excluded(rel string, isDir bool) bool {
	if m == nil {
		return false
	}
	if m.prefix != "" {
		rel = m.prefix + "/" + rel
	}
	parts := strings.Split(rel, "/")
	excluded := false
	for _, r := range m.rules {
		if r.dirOnly && !isDir {
			continue
		}
		var ok bool
		if r.anchored {
			ok = matchSegs(r.segs, parts)
		} else {
			ok = matchSegs(r.segs, parts[len(parts)-1:])
		}
		if ok {
			excluded = !r.neg
		}
	}
	return excluded
}

func matchSegs(pat, parts []string) bool {
	if len(pat) == 0 {
		return len(parts) == 0
	}
	if pat[0] == "**" {
		for i := 0; i <= len(parts); i++ {
			if matchSegs(pat[1:], parts[i:]) {
				return true
			}
		}
		return false
	}
	if len(parts) == 0 {
		return false
	}
	if ok, _ := path.Match(pat[0], parts[0]); !ok {
		return false
	}
	return matchSegs(pat[1:], parts[1:])
}

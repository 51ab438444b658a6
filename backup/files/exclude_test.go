package files

import "testing"

func TestMatcher(t *testing.T) {
	m, err := NewMatcher([]string{
		"# comment", "", "cache/", "*.tmp", "!keep.tmp", "/top-only", "logs/**/*.log", "build/out", `\#literal`,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		rel  string
		dir  bool
		want bool
	}{
		{"cache", true, true},
		{"a/b/cache", true, true},
		{"cache", false, false}, // a file named cache is kept: the pattern is for directories
		{"x.tmp", false, true},
		{"a/x.tmp", false, true},
		{"keep.tmp", false, false},
		{"a/keep.tmp", false, false},
		{"top-only", false, true},
		{"a/top-only", false, false},
		{"logs/x.log", false, true},
		{"logs/a/b/x.log", false, true},
		{"logs/a/b/x.txt", false, false},
		{"a/logs/x.log", false, false},
		{"build/out", true, true},
		{"a/build/out", true, false},
		{"#literal", false, true},
		{"comment", false, false},
		{"café/日本.tmp", false, true},
		{"plain.txt", false, false},
	} {
		if got := m.Excluded(tc.rel, tc.dir); got != tc.want {
			t.Errorf("Excluded(%q, dir=%v) = %v, want %v", tc.rel, tc.dir, got, tc.want)
		}
	}
	if _, err := NewMatcher([]string{"[z-a"}); err == nil {
		t.Fatalf("NewMatcher accepted a malformed class")
	}
}

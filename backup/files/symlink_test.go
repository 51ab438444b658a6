package files_test

import (
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rewind/rewind/backup"
)

// TestAcceptedSymlinksStayInside builds random trees of directories and symlinks whose targets pass
// backup.CheckSymlinkTarget, and lets the kernel resolve every path through them: none may leave the root,
// however the links chain.
func TestAcceptedSymlinksStayInside(t *testing.T) {
	elems := []string{".", "a", "b", "l0", "l1", "l2", "l3", "l0", "l1"}
	rng := rand.New(rand.NewPCG(7, 11))
	for round := range 200 {
		base := t.TempDir()
		root := filepath.Join(base, "root")
		dirs := []string{"", "a", "a/b", "b"}
		for _, d := range dirs {
			os.MkdirAll(filepath.Join(root, d), 0o755)
		}
		var links []string
		for i := range 6 {
			dir := dirs[rng.IntN(len(dirs))]
			link := path.Join(dir, "l"+string(rune('0'+i%4)))
			if _, err := os.Lstat(filepath.Join(root, link)); err == nil {
				continue
			}
			// leading "..", names, then maybe more ".." after them: the shape of escapes through a chain
			var parts []string
			for range rng.IntN(3) {
				parts = append(parts, "..")
			}
			for range 1 + rng.IntN(3) {
				parts = append(parts, elems[rng.IntN(len(elems))])
			}
			for range rng.IntN(3) {
				parts = append(parts, "..")
			}
			target := strings.Join(parts, "/")
			if backup.CheckSymlinkTarget(link, target) != nil {
				continue
			}
			if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
				t.Fatal(err)
			}
			links = append(links, link)
		}
		realRoot, _ := filepath.EvalSymlinks(root)
		for _, start := range append(links, dirs...) {
			for _, suffix := range []string{"", "a", "l0", "l1/l2", "b/l3/a"} {
				p := filepath.Join(root, start, suffix)
				got, err := filepath.EvalSymlinks(p)
				if err != nil {
					continue // dangling or a loop: nothing outside is reached
				}
				if got != realRoot && !strings.HasPrefix(got, realRoot+"/") {
					t.Fatalf("round %d: %s resolves to %s, outside %s (links %v)", round, p, got, realRoot, describe(root, links))
				}
			}
		}
	}
}

func describe(root string, links []string) []string {
	var out []string
	for _, l := range links {
		target, _ := os.Readlink(filepath.Join(root, l))
		out = append(out, l+" -> "+target)
	}
	return out
}

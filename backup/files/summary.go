package files

import (
	"context"
	"os"
	"sort"

	"github.com/rewind/rewind/backup"
)

var _ backup.Summarizer = (*Source)(nil)

// Summarize lists the live mount's files and symlinks with their sizes, times and modes: a stat-only walk
// with the excludes a backup applies, reading no file.
func (s *Source) Summarize(ctx context.Context) (*backup.Summary, error) {
	if s.entry != "" {
		return s.summarizeEntry()
	}
	if _, err := os.Lstat(s.root); os.IsNotExist(err) {
		return &backup.Summary{Files: []backup.FileStat{}}, nil // no mount yet: no files
	}
	w := &walker{root: s.root, match: s.match, mode: walkVerifyAll}
	n, err := w.walk(ctx)
	if err != nil {
		return nil, err
	}
	out := &backup.Summary{Files: []backup.FileStat{}}
	var flatten func(n *node)
	flatten = func(n *node) {
		for _, k := range n.kids {
			switch {
			case k.mode.IsDir():
				flatten(k)
			case k.mode.IsRegular():
				out.Files = append(out.Files, backup.NewFileStat(k.rel, k.st.size, k.mtime, k.mode))
			case k.mode&os.ModeSymlink != 0:
				out.Files = append(out.Files, backup.NewFileStat(k.rel, int64(len(k.target)), k.mtime, k.mode))
			}
		}
	}
	flatten(n)
	sort.Slice(out.Files, func(i, j int) bool { return out.Files[i].Path < out.Files[j].Path })
	return out, nil
}

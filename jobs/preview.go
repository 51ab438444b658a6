package jobs

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/db"
)

// PreviewPaths is how many paths of each kind (added, removed, changed) a files preview lists.
const PreviewPaths = 10

// previewTimeout bounds a whole preview; a service not done by then says so instead.
const previewTimeout = 8 * time.Second

// Preview is what a restore will change, per service, computed without changing anything: the backup's side
// comes from its rewind.json (tables, keys) and its tree's listings (files), the live side from read-only
// queries and a stat-only walk. It never blocks a restore: what cannot be previewed says why.
type Preview struct {
	BackupTime time.Time // the point in time the backup's data holds (its earliest pin)
	Now        time.Time
	// Unavailable is why there is no preview at all ("" when there is one).
	Unavailable string
	Services    []ServicePreview // in the order of the plan's mapping
}

// Age is how old the data will be right after the restore.
func (p *Preview) Age() time.Duration { return p.Now.Sub(p.BackupTime) }

// ServicePreview is what a restore changes in one service.
type ServicePreview struct {
	Name, Type string
	// Unavailable is why this service has no preview: "no preview for this service: ..." for a type or a
	// backup without one, "preview unavailable: <reason>" when it failed. "" when it has one.
	Unavailable string
	Tables      []TableChange    // postgresql, mysql, sqlite: every table of either side, by name
	Keyspaces   []KeyspaceChange // redis
	Files       *FilesChange     // files
}

// TableChange is one table: its rows now and in the backup.
type TableChange struct {
	Name string
	// Now and Backup are the rows live and in the backup; -1 when unknown (a live table too big to count in
	// time and never analyzed).
	Now, Backup  int64
	NowEstimated bool // Now is the server's estimate, not a count
	Added        bool // in the backup, not live: the restore brings it back
	Removed      bool // live, not in the backup: the restore drops it
}

// Changed reports whether the restore changes the table's rows (or the table itself).
func (t TableChange) Changed() bool { return t.Added || t.Removed || t.Now != t.Backup }

// KeyspaceChange is one Redis database: its keys now and in the backup.
type KeyspaceChange struct {
	DB          int
	Now, Backup int64
}

// FilesChange is what a restore does to a files mount.
type FilesChange struct {
	Added   FileGroup // in the backup, not live: the restore brings them back
	Removed FileGroup // live, not in the backup: the restore deletes them
	Changed FileGroup // in both, with another size, modification time or mode: the restore puts the backup's back
	Same    int       // files the restore leaves as they are
}

// FileGroup is one kind of file change: how many, their bytes, and the first PreviewPaths of them by path.
type FileGroup struct {
	Count int
	Bytes int64 // the backup's sizes (Removed: the live sizes)
	Files []FileChange
}

// FileChange is one file of a FileGroup.
type FileChange struct {
	Path    string
	Size    int64 // in the backup (Removed: live)
	NowSize int64 // live (Changed only)
}

// prefix puts sub-tree p in front of every path listed.
func (fc *FilesChange) prefix(p string) {
	for _, g := range []*FileGroup{&fc.Added, &fc.Removed, &fc.Changed} {
		for i := range g.Files {
			g.Files[i].Path = p + "/" + g.Files[i].Path
		}
	}
}

func (g *FileGroup) add(f FileChange) {
	g.Count++
	g.Bytes += f.Size
	if len(g.Files) < PreviewPaths {
		g.Files = append(g.Files, f)
	}
}

// previewRestore compares backup b with the live state of target's services that the plan maps it into. When
// create is set the target is a new environment: it holds nothing yet, and nothing live is read.
func (o *Operations) previewRestore(ctx context.Context, b *db.Backup, target *db.Environment, mapping []ServiceMapping, create bool) *Preview {
	ctx, cancel := context.WithTimeout(ctx, previewTimeout)
	defer cancel()
	p := &Preview{Now: o.now().UTC(), BackupTime: b.CreatedAt.UTC()}
	if o.Engine == nil {
		p.Unavailable = "preview unavailable: this server has no backup engine"
		return p
	}
	// The live states are read while the backup's summaries are: a files mount's walk and its tree's
	// listings in the repository take about as long as each other.
	live := make([]*backup.Summary, len(mapping))
	liveErr := make([]error, len(mapping))
	var wg sync.WaitGroup
	for i, sm := range mapping {
		ts := target.Service(sm.Name)
		switch {
		case create:
			live[i] = &backup.Summary{} // a new environment holds nothing yet
		case ts == nil:
			liveErr[i] = errors.New("the target has no such service")
		default:
			wg.Add(1)
			go func() {
				defer wg.Done()
				live[i], liveErr[i] = o.Engine.LiveSummary(ctx, backup.ServiceSpec{Name: ts.Name, Type: ts.Type,
					URL: ts.URL, Path: ts.Path, Exclude: ts.Exclude, Sub: sm.Sub, Entry: sm.Entry})
			}()
		}
	}
	m, backed, errs, err := o.Engine.BackupSummaries(ctx, b.ID)
	wg.Wait()
	if err != nil {
		p.Unavailable = "preview unavailable: " + previewReason(err)
		return p
	}
	// The data's point in time is its pins (a consistent backup's are all within its pause), not the start
	// of the backup, which may have read a files tree for a while before them.
	p.BackupTime = m.StartedAt.UTC()
	first := true
	for _, s := range m.Services {
		if !s.PinnedAt.IsZero() && (first || s.PinnedAt.Before(p.BackupTime)) {
			p.BackupTime, first = s.PinnedAt.UTC(), false
		}
	}
	p.Services = make([]ServicePreview, len(mapping))
	for i, sm := range mapping {
		sp := &p.Services[i]
		sp.Name, sp.Type = sm.Name, sm.Type
		then := backed[sm.Name]
		switch {
		case errs[sm.Name] != nil:
			sp.Unavailable = unavailable(errs[sm.Name])
		case then == nil:
			sp.Unavailable = "no preview for this service: the backup records nothing of it"
		case liveErr[i] != nil:
			sp.Unavailable = unavailable(liveErr[i])
		default:
			if sm.Path != "" {
				then = underPath(then, sm.Path, sm.Entry)
			}
			diffSummaries(sp, then, live[i])
			if dir := subDir(sm); sp.Files != nil && dir != "" {
				sp.Files.prefix(dir) // paths from the mount, as the user named them
			}
		}
	}
	return p
}

// underPath is the part of a files service's backup summary below sub-tree p, with paths relative to it (as
// the live side's, read from the sub-tree alone); with entry, p is a single file or symlink, listed by its name
// (as the live side of its directory lists it).
func underPath(s *backup.Summary, p string, entry bool) *backup.Summary {
	out := &backup.Summary{Files: []backup.FileStat{}}
	for _, f := range s.Files {
		if entry {
			if f.Path == p {
				f.Path = path.Base(p)
				out.Files = append(out.Files, f)
			}
			continue
		}
		if rel, ok := strings.CutPrefix(f.Path, p+"/"); ok {
			f.Path = rel
			out.Files = append(out.Files, f)
		}
	}
	return out
}

// subDir is the directory of the mount a mapping's files are listed from: its sub-tree, or the directory of
// its single entry.
func subDir(sm ServiceMapping) string {
	if !sm.Entry {
		return sm.Sub
	}
	if d := path.Dir(sm.Sub); d != "." {
		return d
	}
	return ""
}

// unavailable is the Unavailable text of a service whose preview failed with err.
func unavailable(err error) string {
	if errors.Is(err, backup.ErrNoSummary) {
		return err.Error() // "no preview for this service: ..."
	}
	return "preview unavailable: " + previewReason(err)
}

func previewReason(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Sprintf("it took longer than %s", previewTimeout)
	}
	return err.Error()
}

// diffSummaries fills sp with the differences between a service's backup (then) and its live state (now).
func diffSummaries(sp *ServicePreview, then, now *backup.Summary) {
	switch sp.Type {
	case backup.TypeFiles:
		sp.Files = diffFiles(then.Files, now.Files)
	case backup.TypeRedis:
		live := map[int]int64{}
		for _, k := range now.Keyspaces {
			live[k.DB] = k.Keys
		}
		for _, k := range then.Keyspaces {
			sp.Keyspaces = append(sp.Keyspaces, KeyspaceChange{DB: k.DB, Backup: k.Keys, Now: live[k.DB]})
		}
	default:
		sp.Tables = diffTables(then.Tables, now.Tables)
	}
}

// diffTables lists every table of either side (both sorted by name), by name.
func diffTables(then, now []backup.TableSummary) []TableChange {
	out := []TableChange{}
	i, j := 0, 0
	for i < len(then) || j < len(now) {
		switch {
		case j == len(now) || (i < len(then) && then[i].Name < now[j].Name):
			out = append(out, TableChange{Name: then[i].Name, Backup: then[i].Rows, Added: true})
			i++
		case i == len(then) || now[j].Name < then[i].Name:
			out = append(out, TableChange{Name: now[j].Name, Now: now[j].Rows, NowEstimated: now[j].Estimated,
				Removed: true})
			j++
		default:
			out = append(out, TableChange{Name: then[i].Name, Backup: then[i].Rows, Now: now[j].Rows,
				NowEstimated: now[j].Estimated})
			i, j = i+1, j+1
		}
	}
	return out
}

// diffFiles compares two file lists sorted by path.
func diffFiles(then, now []backup.FileStat) *FilesChange {
	fc := &FilesChange{}
	i, j := 0, 0
	for i < len(then) || j < len(now) {
		switch {
		case j == len(now) || (i < len(then) && then[i].Path < now[j].Path):
			fc.Added.add(FileChange{Path: then[i].Path, Size: then[i].Size})
			i++
		case i == len(then) || now[j].Path < then[i].Path:
			fc.Removed.add(FileChange{Path: now[j].Path, Size: now[j].Size})
			j++
		default:
			if then[i].Same(now[j]) {
				fc.Same++
			} else {
				fc.Changed.add(FileChange{Path: then[i].Path, Size: then[i].Size, NowSize: now[j].Size})
			}
			i, j = i+1, j+1
		}
	}
	return fc
}

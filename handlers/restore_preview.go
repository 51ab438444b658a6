package handlers

import (
	"github.com/rewind/rewind/jobs"
	"github.com/rewind/rewind/views"
)

// toPreview is a restore's preview as the dialog shows it and the plan API returns it; nil for no preview.
func toPreview(p *jobs.Preview) *views.RestorePreview {
	if p == nil {
		return nil
	}
	out := &views.RestorePreview{BackupTime: p.BackupTime, Now: p.Now, AgeSeconds: int64(p.Age().Seconds()),
		Unavailable: p.Unavailable, Services: []views.ServicePreview{}}
	for _, s := range p.Services {
		sp := views.ServicePreview{Name: s.Name, Type: s.Type, Unavailable: s.Unavailable}
		for _, t := range s.Tables {
			change := views.ChangeSame
			switch {
			case t.Added:
				change = views.ChangeAdded
			case t.Removed:
				change = views.ChangeRemoved
			case t.Changed():
				change = views.ChangeChanged
			}
			sp.Tables = append(sp.Tables, views.TablePreview{Name: t.Name, RowsNow: t.Now, RowsBackup: t.Backup,
				Estimated: t.NowEstimated, Change: change})
		}
		for _, k := range s.Keyspaces {
			sp.Keyspaces = append(sp.Keyspaces, views.KeyspacePreview{DB: k.DB, KeysNow: k.Now, KeysBackup: k.Backup})
		}
		if f := s.Files; f != nil {
			sp.Files = &views.FilesPreview{Added: toFileGroup(f.Added), Removed: toFileGroup(f.Removed),
				Changed: toFileGroup(f.Changed), Same: f.Same}
		}
		out.Services = append(out.Services, sp)
	}
	return out
}

func toFileGroup(g jobs.FileGroup) views.FileGroupPreview {
	out := views.FileGroupPreview{Count: g.Count, Bytes: g.Bytes, Files: []views.FilePreview{}}
	for _, f := range g.Files {
		out.Files = append(out.Files, views.FilePreview{Path: f.Path, Bytes: f.Size, BytesNow: f.NowSize})
	}
	return out
}

package cli

import (
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/views"
)

// printPreview prints what a restore changes, per service (the plan API's preview).
func printPreview(w io.Writer, pv *views.RestorePreview) {
	if pv == nil {
		return
	}
	fmt.Fprintln(w, "What changes:")
	fmt.Fprintf(w, "The data will be %s old: the backup holds %s.\n", (time.Duration(pv.AgeSeconds) * time.Second).String(),
		pv.BackupTime.Local().Format("2006-01-02 15:04:05 MST"))
	if pv.Unavailable != "" {
		fmt.Fprintf(w, "%s (the restore can run all the same).\n", pv.Unavailable)
	}
	for _, s := range pv.Services {
		if s.Unavailable != "" {
			fmt.Fprintf(w, "%s (%s): %s\n", s.Name, s.Type, s.Unavailable)
			continue
		}
		fmt.Fprintf(w, "%s (%s):\n", s.Name, s.Type)
		if len(s.Tables) > 0 {
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "  TABLE\tROWS NOW\tIN BACKUP\tRESTORE")
			for _, t := range s.Tables {
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", t.Name, rows(t.RowsNow, t.Estimated), rows(t.RowsBackup, false), t.Change)
			}
			tw.Flush() //nolint:errcheck
		}
		for _, k := range s.Keyspaces {
			fmt.Fprintf(w, "  database %d: %d keys now, %d in the backup\n", k.DB, k.KeysNow, k.KeysBackup)
		}
		if f := s.Files; f != nil {
			if f.Added.Count+f.Removed.Count+f.Changed.Count == 0 {
				fmt.Fprintln(w, "  no file changes")
			}
			printFileGroup(w, "brought back (missing now)", f.Added)
			printFileGroup(w, "deleted (not in the backup)", f.Removed)
			printFileGroup(w, "put back as backed up (size, time or mode differ)", f.Changed)
			fmt.Fprintf(w, "  %d unchanged\n", f.Same)
		}
	}
}

func rows(n int64, estimated bool) string {
	switch {
	case n < 0:
		return "?"
	case estimated:
		return "~" + strconv.FormatInt(n, 10)
	}
	return strconv.FormatInt(n, 10)
}

func printFileGroup(w io.Writer, what string, g views.FileGroupPreview) {
	if g.Count == 0 {
		return
	}
	noun := "files"
	if g.Count == 1 {
		noun = "file"
	}
	fmt.Fprintf(w, "  %d %s %s, %s\n", g.Count, noun, what, db.FormatBytes(g.Bytes))
	for _, f := range g.Files {
		fmt.Fprintf(w, "    %s (%s)\n", f.Path, db.FormatBytes(f.Bytes))
	}
	if more := g.Count - len(g.Files); more > 0 {
		fmt.Fprintf(w, "    and %d more\n", more)
	}
}

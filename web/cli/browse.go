package cli

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/rewind/rewind/handlers"
)

func newBackupBrowseCommand() *cobra.Command {
	var flags clientFlags
	var service, path string
	cmd := &cobra.Command{
		Use:   "backup:browse BACKUP [--service S] [--path P] [--json]",
		Short: "List what a backup holds: its services, a directory of a files service, a database's tables",
		Long: `List what a backup holds, read from the repository (no file is restored).

Without --service: the backup's services. With a files or SQLite --service: one directory of it, like
ls -l (directories first; --path names the directory, relative to the mount; at most 500 entries, and
how many more there are). With a database --service: its tables and rows (Redis: keys per database),
as recorded when the backup was taken. Restore a directory alone with
rewind backup:restore BACKUP --service S --path P.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := flags.client()
			if err != nil {
				return err
			}
			ctx, id := cmd.Context(), args[0]
			if service == "" {
				if path != "" {
					return fmt.Errorf("--path names a directory of one service: pass --service too (rewind backup:browse %s lists them)", id)
				}
				var b backupResponse
				if _, err := c.do(ctx, http.MethodGet, "/api/v1/backups/"+url.PathEscape(id), nil, &b); err != nil {
					return fmt.Errorf("backup %s: %w", id, err)
				}
				if flags.json {
					return writeJSON(cmd.OutOrStdout(), map[string]any{"services": b.Backup.Services})
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "SERVICE\tTYPE\tSIZE\tHOLDS")
				for _, s := range b.Backup.Services {
					holds := "all of it"
					if s.Path != "" {
						holds = "only /" + s.Path
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Name, s.Type, sizeOrDash(s.Size), holds)
				}
				return tw.Flush()
			}
			q := url.Values{"service": {service}}
			if path != "" {
				q.Set("path", path)
			}
			var resp struct {
				Listing handlers.BrowseJSON `json:"listing"`
			}
			if _, err := c.do(ctx, http.MethodGet, "/api/v1/backups/"+url.PathEscape(id)+"/browse?"+q.Encode(), nil, &resp); err != nil {
				return fmt.Errorf("browse %s: %w", id, err)
			}
			if flags.json {
				return writeJSON(cmd.OutOrStdout(), resp)
			}
			return printListing(cmd.OutOrStdout(), resp.Listing)
		},
	}
	flags.register(cmd, true)
	cmd.Flags().StringVar(&service, "service", "", "the service to browse (without it: the backup's services)")
	cmd.Flags().StringVar(&path, "path", "", "the directory of a files service to list, relative to its mount")
	return WithEnv(cmd)
}

// printListing prints a directory like ls -l (type and mode, size, modification time, name), or a database
// service's tables.
func printListing(w io.Writer, l handlers.BrowseJSON) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(l.Tables) > 0 {
		fmt.Fprintln(tw, "TABLE\tROWS")
		for _, t := range l.Tables {
			fmt.Fprintf(tw, "%s\t%d\n", t.Name, t.Rows)
		}
	}
	if len(l.Keyspaces) > 0 {
		fmt.Fprintln(tw, "DATABASE\tKEYS")
		for _, k := range l.Keyspaces {
			fmt.Fprintf(tw, "%d\t%d\n", k.DB, k.Keys)
		}
	}
	if l.Type == "files" || l.Type == "sqlite" {
		fmt.Fprintf(w, "%s:/%s\n", l.Service, l.Path)
		for _, e := range l.Entries {
			kind, name := "-", e.Name
			switch e.Type {
			case "dir":
				kind, name = "d", name+"/"
			case "symlink":
				kind = "l"
			}
			fmt.Fprintf(tw, "%s%s\t%d\t%s\t%s\n", kind, modeString(e.Mode), e.Size,
				e.Modified.Local().Format("2006-01-02 15:04"), name)
		}
		if len(l.Entries) == 0 {
			fmt.Fprintln(tw, "(empty in the backup)")
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if l.More > 0 {
		fmt.Fprintf(w, "... and %d more entries, not listed\n", l.More)
	}
	return nil
}

// modeString turns octal permission bits ("0644") into rwx form ("rw-r--r--").
func modeString(octal string) string {
	var m uint32
	if _, err := fmt.Sscanf(octal, "%o", &m); err != nil {
		return octal
	}
	const rwx = "rwxrwxrwx"
	out := []byte("---------")
	for i := range 9 {
		if m&(1<<(8-i)) != 0 {
			out[i] = rwx[i]
		}
	}
	return string(out)
}

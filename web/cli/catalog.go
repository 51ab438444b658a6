package cli

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/rewind/rewind/jobs"
)

func newCatalogRebuildCommand() *cobra.Command {
	var dataDir, storage string
	cmd := &cobra.Command{
		Use:   "catalog:rebuild --data DIR --storage URL",
		Short: "Recreate the catalog of a new data directory from the backup repository alone (offline)",
		Long: `Recreate the catalog (users, settings, environments, backups) of a new, empty data directory
from the backup repository alone, e.g. after the server was lost. The repository password is read from
REWIND_REPO_PASSWORD. The newest catalog copy the server saved into the repository is restored with its
secret.key (it decrypts the services' URLs); backups made after that copy, or all backups when there is no
copy, are added from their rewind.json. Then start the server on the same data directory and storage:

  REWIND_REPO_PASSWORD=... rewind catalog:rebuild --data ./rewind-data --storage s3://bucket/rewind?region=eu-west-1
  rewind serve --data ./rewind-data --storage s3://bucket/rewind?region=eu-west-1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return jobs.RebuildCatalog(cmd.Context(), dataDir, storage, os.Getenv, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&dataDir, "data", DefaultDataDir, "the new data directory")
	cmd.Flags().StringVar(&storage, "storage", "", "where the backups are: file:///path or s3://BUCKET/PREFIX?endpoint=URL&region=REGION&path_style=true (default: <data>/repo)")
	return WithEnv(cmd)
}

package main

import "github.com/spf13/cobra"

func newApplyCommand() *cobra.Command {
	return &cobra.Command{Use: "apply -f rewind.yaml", Short: "Create or update environments from rewind.yaml"}
}

func newEnvironmentsCommand() *cobra.Command {
	return &cobra.Command{Use: "environments", Short: "List environments"}
}

func newActivitiesCommand() *cobra.Command {
	return &cobra.Command{Use: "activities", Short: "List activities"}
}

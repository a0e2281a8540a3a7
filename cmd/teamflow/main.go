// Command teamflow is the whole product in one binary: the server, its
// first-run setup, and the operator's tools.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	_ "time/tzdata" // timezones work on hosts without a zoneinfo database
)

// Set at build time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "none"
)

func main() {
	root := &cobra.Command{
		Use:           "teamflow",
		Short:         "TeamFlow: project management for distributed teams, in one binary",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(serveCmd(), setupCmd(), tenantCmd(), workspaceCmd(), operatorCmd(), clusterCmd(), backupCmd(), restoreCmd(), auditCmd(), indexCmd(), benchCmd(), versionCmd())
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "teamflow:", err)
		os.Exit(1)
	}
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "teamflow %s (%s)\n", version, commit)
		},
	}
}

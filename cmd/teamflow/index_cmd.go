package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/teamflow/teamflow/engine"
	"github.com/teamflow/teamflow/index"
	"github.com/teamflow/teamflow/storage"
)

// indexDir is the search index's directory in the data directory: derived
// data, rebuilt from the store when missing or damaged.
const indexDir = "index"

// nodeOption configures openNode.
type nodeOption func(*node)

// withSearch opens the node's search index (serve): it observes the store
// before the log applies anything, and the engine searches it.
func withSearch() nodeOption { return func(n *node) { n.wantSearch = true } }

// openIndex opens <data>/index over st and registers it as an observer of
// applied commands. It reads no workspace's index: those open on first use
// and are rebuilt in the background when missing or damaged, so the API
// starts at once.
func (n *node) openIndex(st *storage.Store, logger *slog.Logger) error {
	if !n.wantSearch {
		return nil
	}
	ix, err := index.Open(filepath.Join(n.cfg.Data, indexDir), st, index.Options{Logger: logger.With("component", "index")})
	if err != nil {
		return fmt.Errorf("open the search index: %w", err)
	}
	st.Observe(ix.Observe)
	n.ix = ix
	return nil
}

// snapshotInstalled tells the index that a raft snapshot replaced the
// store: the commands it skipped were never observed.
func (n *node) snapshotInstalled(uint64) {
	if n.ix != nil {
		n.ix.SnapshotInstalled()
	}
	if n.ded != nil {
		// Route records may have changed unobserved.
		n.ded.poke()
	}
}

// indexCmd manages the search index of running nodes. It asks the server
// rather than opening the data directory: the running node holds the
// store's lock, keeps serving searches from the previous index while the
// new one is built, and in a cluster every node keeps its own index, so
// each is asked (--server takes a comma-separated list).
func indexCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "index", Short: "The full-text search index"}
	c := operatorFlags(cmd)
	c.http.Timeout = 2 * time.Minute
	var workspace string
	rebuild := &cobra.Command{
		Use:   "rebuild [--workspace slug]",
		Short: "Rebuild a running node's search index from its store (every workspace, or one)",
		Long: "Asks each node named by --server to rebuild its search index from its own store, for one workspace\n" +
			"(--workspace) or all of them. Searches keep being answered by the previous index until the new one\n" +
			"is complete; the API stays up. In a cluster, name every node: each keeps its own index.\n" +
			"A node also rebuilds a workspace's index on its own when it finds it missing or damaged; with the\n" +
			"server stopped, deleting <data>/index has every workspace rebuilt as it is first used.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			servers := c.servers()
			if len(servers) == 0 {
				return errors.New("--server is empty")
			}
			var failed []string
			for _, server := range servers {
				var out struct {
					Items []engine.IndexRebuild `json:"items"`
				}
				if _, _, err := c.call(cmd.Context(), server, http.MethodPost, "/api/v1/platform/index/rebuild",
					map[string]any{"workspace": workspace}, &out); err != nil {
					return err
				}
				for _, it := range out.Items {
					line := fmt.Sprintf("%s: workspace %s: %s", server, it.Workspace, it.Status)
					if it.Error != "" {
						line += " (" + it.Error + ")"
						failed = append(failed, it.Workspace)
					}
					fmt.Fprintln(cmd.OutOrStdout(), line)
				}
				if len(out.Items) == 0 {
					fmt.Fprintf(cmd.OutOrStdout(), "%s: no workspace\n", server)
				}
			}
			if len(failed) > 0 {
				return fmt.Errorf("rebuild failed for %s", strings.Join(failed, ", "))
			}
			return nil
		},
	}
	rebuild.Flags().StringVar(&workspace, "workspace", "", "the workspace's slug (default: every workspace)")
	cmd.AddCommand(rebuild)
	return cmd
}

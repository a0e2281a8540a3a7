package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"

	"github.com/spf13/cobra"
	"github.com/teamflow/teamflow/engine"
)

// auditCmd verifies a workspace's audit chain, read from a running server,
// against the heads exported to the audit export file.
func auditCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "The tamper-evident audit trail"}
	c := operatorFlags(cmd)
	var anchors string
	verify := &cobra.Command{
		Use:   "verify <workspace-slug>",
		Short: "Check a workspace's audit chain; with --anchors, also against the exported heads",
		Long: "Reads the workspace's whole chain from the server (the read is itself audited) and checks that\n" +
			"every entry links to the one before. With --anchors (the file written by --audit-export) it also\n" +
			"checks that every exported head is still in the chain: that is what catches a truncated tail or a\n" +
			"wholesale rewrite, which no chain can reveal on its own. After retention pruning the chain is checked from the\n" +
			"anchor the prune left; exported heads older than the anchor can no longer be compared.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var resp engine.AuditChain
			if err := c.do(cmd.Context(), http.MethodGet, "/api/v1/platform/workspaces/"+args[0]+"/audit", nil, &resp); err != nil {
				return err
			}
			var heads []engine.AuditHead
			if anchors != "" {
				f, err := os.Open(anchors)
				if err != nil {
					return err
				}
				defer f.Close()
				sc := bufio.NewScanner(f)
				for sc.Scan() {
					var h engine.AuditHead
					if err := json.Unmarshal(sc.Bytes(), &h); err != nil {
						return fmt.Errorf("%s: %w", anchors, err)
					}
					if h.Workspace == resp.Workspace {
						heads = append(heads, h)
					}
				}
				if err := sc.Err(); err != nil {
					return err
				}
			}
			if bad, err := engine.FirstBadAudit(&resp, heads); err != nil {
				return fmt.Errorf("workspace %s: first bad entry %d: %w", args[0], bad, err)
			}
			from := "its first entry"
			if resp.Anchor != nil {
				// Heads exported before a retention prune name entries that
				// are gone; only the anchor and later ones can be compared.
				from = fmt.Sprintf("the retention anchor at %d", resp.Anchor.Seq)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "workspace %s: %d audit entries verified from %s, %d exported heads checked\n", args[0], len(resp.Entries), from, len(heads))
			return nil
		},
	}
	verify.Flags().StringVar(&anchors, "anchors", "", "the audit export file (--audit-export of serve)")
	cmd.AddCommand(verify)
	return cmd
}

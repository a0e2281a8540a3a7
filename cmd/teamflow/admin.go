package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/teamflow/teamflow/engine"
	"github.com/teamflow/teamflow/httpapi"
)

// setupCmd creates the first workspace and Owner without the setup link,
// for scripted installs. It works on the data directory directly, so the
// server must not be running.
func setupCmd() *cobra.Command {
	cfg := defaultConfig()
	var in engine.CreateWorkspaceInput
	var passwordFile string
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Create the first workspace and its Owner (scripted installs; server stopped)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := loadConfig(cmd.Flags(), &cfg, "", os.Environ()); err != nil {
				return err
			}
			if err := cfg.validate(); err != nil {
				return err
			}
			if passwordFile == "" {
				return fmt.Errorf("--password-file is required (a password never goes on the command line)")
			}
			pw, err := os.ReadFile(passwordFile)
			if err != nil {
				return err
			}
			in.Password = strings.TrimRight(string(pw), "\r\n")
			n, err := openNode(cfg, newLogger(cfg, cmd.ErrOrStderr()), engine.SystemClock{})
			if err != nil {
				return err
			}
			defer n.Close()
			if _, err := n.eng.Bootstrap(cmd.Context()); err != nil {
				return err
			}
			c, err := n.eng.CreateFirstWorkspace(cmd.Context(), in)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Created workspace %q (%s) with Owner %s. Sign in at %s with workspace %q.\n",
				c.Workspace.Name, c.Workspace.ID, c.Owner.Email, cfg.BaseURL, c.Workspace.Slug)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Data, "data", cfg.Data, "data directory")
	f.StringVar(&cfg.Mode, "mode", cfg.Mode, "onprem or cloud")
	f.StringVar(&in.WorkspaceName, "workspace-name", "", "workspace name")
	f.StringVar(&in.WorkspaceSlug, "workspace-slug", "", "workspace slug (used at sign-in)")
	f.StringVar(&in.Name, "name", "", "the Owner's name")
	f.StringVar(&in.Email, "email", "", "the Owner's email")
	f.StringVar(&in.Timezone, "timezone", "UTC", "workspace timezone (IANA)")
	f.StringVar(&passwordFile, "password-file", "", "file holding the Owner's password")
	return cmd
}

// operatorClient calls the platform API of a running server with the
// operator's token.
type operatorClient struct {
	server, token string
	http          *http.Client
}

func operatorFlags(cmd *cobra.Command) *operatorClient {
	c := &operatorClient{http: &http.Client{Timeout: 30 * time.Second}}
	var data, token string
	cmd.PersistentFlags().StringVar(&c.server, "server", "http://127.0.0.1:8080", "URL of a running teamflow")
	cmd.PersistentFlags().StringVar(&token, "token", "", "operator token (default: $TEAMFLOW_OPERATOR_TOKEN, then <data>/operator.token)")
	cmd.PersistentFlags().StringVar(&data, "data", "./data", "data directory holding operator.token")
	cmd.PersistentPreRunE = func(*cobra.Command, []string) error {
		t, err := readOperatorToken(token, data)
		c.token = t
		return err
	}
	return c
}

func (c *operatorClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.server, "/")+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("reach %s: %w", c.server, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if resp.StatusCode >= 300 {
		var p struct {
			Detail string `json:"detail"`
			Code   string `json:"code"`
		}
		_ = json.Unmarshal(b, &p)
		return fmt.Errorf("%s %s: %s (%s)", method, path, p.Detail, p.Code)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

func tenantCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "tenant", Short: "Manage workspaces as the platform operator"}
	c := operatorFlags(cmd)
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List every workspace",
		RunE: func(cmd *cobra.Command, _ []string) error {
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SLUG\tNAME\tPLAN\tUSERS\tPROJECTS\tCREATED")
			cursor := ""
			for {
				var page engine.Page[engine.WorkspaceSummary]
				if err := c.do(cmd.Context(), http.MethodGet, "/api/v1/platform/workspaces?limit=200&cursor="+cursor, nil, &page); err != nil {
					return err
				}
				for _, w := range page.Items {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\n", w.Slug, w.Name, w.Plan, w.Users, w.Projects, w.CreatedAt.Format(time.DateOnly))
				}
				if page.NextCursor == "" {
					break
				}
				cursor = page.NextCursor
			}
			return tw.Flush()
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "plan <slug> <plan>",
		Short: "Move a workspace to another plan (free, starter, professional, enterprise)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var w engine.WorkspaceSummary
			if err := c.do(cmd.Context(), http.MethodPut, "/api/v1/platform/workspaces/"+args[0]+"/plan", map[string]string{"plan": args[1]}, &w); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Workspace %s is now on the %s plan.\n", w.Slug, w.Plan)
			return nil
		},
	})
	return cmd
}

func operatorCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "operator", Short: "The platform operator's credential"}
	var data string
	reset := &cobra.Command{
		Use:   "reset-token",
		Short: "Replace the operator token (server stopped); writes <data>/operator.token",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := defaultConfig()
			cfg.Data = data
			if err := cfg.validate(); err != nil {
				return err
			}
			n, err := openNode(cfg, newLogger(cfg, cmd.ErrOrStderr()), engine.SystemClock{})
			if err != nil {
				return err
			}
			defer n.Close()
			tok, err := n.eng.ResetOperatorToken(cmd.Context())
			if err != nil {
				return err
			}
			path := filepath.Join(data, operatorTokenFile)
			if err := writeSecret(path, tok); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "New operator token written to %s; the old one no longer works.\n", path)
			return nil
		},
	}
	reset.Flags().StringVar(&data, "data", "./data", "data directory")
	cmd.AddCommand(reset)
	return cmd
}

// workspaceCmd holds the operator's workspace moves.
func workspaceCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "workspace", Short: "Move workspaces between stores as the platform operator"}
	c := operatorFlags(cmd)
	c.http.Timeout = 3 * time.Minute
	var abort bool
	dedicate := &cobra.Command{
		Use:   "dedicate <slug>",
		Short: "Move a workspace into a dedicated store of its own (Enterprise plan; cluster)",
		Long: "Moves the workspace into its own raft group, run by every member next to the shared one, with its own\n" +
			"raft log and store under <data>/groups/<group>. Its writes answer 503 workspace_moving (Retry-After) during\n" +
			"the move; reads keep working. Running the command again resumes a move that stopped; --abort undoes one that\n" +
			"has not flipped. cluster/DESIGN-dedicated-groups.md describes the move and what is not supported yet.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var st httpapi.DedicateStatus
			if err := c.do(cmd.Context(), http.MethodPost, "/api/v1/platform/workspaces/"+args[0]+"/dedicate", map[string]bool{"abort": abort}, &st); err != nil {
				return err
			}
			switch st.State {
			case "dedicated":
				fmt.Fprintf(cmd.OutOrStdout(), "Workspace %s lives in dedicated group %d (steps: %s; %d ms).\n", args[0], st.Group, strings.Join(st.Steps, ", "), st.MoveMillis)
			case "shared":
				fmt.Fprintf(cmd.OutOrStdout(), "Workspace %s is in the shared store (steps: %s).\n", args[0], strings.Join(st.Steps, ", "))
			default:
				fmt.Fprintf(cmd.OutOrStdout(), "Workspace %s is %s (group %d); run the command again to resume.\n", args[0], st.State, st.Group)
			}
			return nil
		},
	}
	dedicate.Flags().BoolVar(&abort, "abort", false, "undo a move that has not flipped")
	cmd.AddCommand(dedicate)
	return cmd
}

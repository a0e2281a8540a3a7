package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/teamflow/teamflow/cluster"
	"github.com/teamflow/teamflow/httpapi"
)

// clusterCmd is the operator's view of a cluster. Every subcommand but
// certs talks to running nodes over HTTP with the operator token, like
// `teamflow tenant`. --server takes one URL or several, comma-separated:
// membership changes run on the leader, so join and leave ask each given
// node for its status and send the change to the one that leads (a
// follower answers 409 not_leader, naming the leader's node ID).
func clusterCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Set up and manage a raft cluster of teamflow nodes",
		Long: "A cluster is three or five `teamflow serve --node-id N --peers ...` processes (docs/CLUSTER.md).\n" +
			"certs makes the mutual-TLS certificates; status, join, leave and transfer-leader talk to running nodes\n" +
			"(--server, one URL or several comma-separated) with the platform operator's token.",
	}
	cmd.AddCommand(certsCmd())
	c := operatorFlags(cmd)

	cmd.AddCommand(&cobra.Command{
		Use:   "status",
		Short: "Show each node's view: state, leader, term, indexes, members",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SERVER\tNODE\tSTATE\tLEADER\tTERM\tCOMMIT\tAPPLIED\tFIRST\tREADY")
			var members *httpapi.ClusterStatus
			var firstErr error
			var notReady []string
			for _, srv := range c.servers() {
				st, err := c.status(cmd.Context(), srv)
				if err != nil {
					fmt.Fprintf(tw, "%s\t-\tunreachable\t\t\t\t\t\t%v\n", srv, err)
					if firstErr == nil {
						firstErr = err
					}
					continue
				}
				if st.NotReady != "" {
					notReady = append(notReady, fmt.Sprintf("%s is not ready: %s", srv, st.NotReady))
				}
				if st.Mode != "cluster" {
					fmt.Fprintf(tw, "%s\t-\tsingle node\t\t\t\t%d\t\t%v\n", srv, st.Applied, st.Ready)
					continue
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%d\t%d\t%d\t%v\n", srv, st.NodeID, st.State, st.Leader, st.Term, st.Commit, st.Applied, st.FirstIndex, st.Ready)
				if members == nil || st.State == "leader" {
					members = st
				}
			}
			tw.Flush()
			for _, line := range notReady {
				fmt.Fprintln(cmd.OutOrStdout(), line)
			}
			if members != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "\nMembers (as node %d sees them):\n", members.NodeID)
				tw = tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tRAFT ADDRESS\tROLE\tMATCH\tACTIVE")
				for _, m := range members.Members {
					role := "voter"
					if m.Learner {
						role = "learner"
					}
					match, active := "-", "-"
					if members.State == "leader" {
						match, active = strconv.FormatUint(m.Match, 10), strconv.FormatBool(m.Active)
					}
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", m.ID, m.RaftAddr, role, match, active)
				}
				tw.Flush()
				if len(members.Removed) > 0 {
					fmt.Fprintf(cmd.OutOrStdout(), "Removed IDs (never reused): %v\n", members.Removed)
				}
				printGroups(cmd.OutOrStdout(), members)
				return nil
			}
			return firstErr
		},
	})

	var timeout time.Duration
	join := &cobra.Command{
		Use:   "join <id> <raft-addr>",
		Short: "Add a node: as a learner first, promoted to voter once it has caught up",
		Long: "Start the new node first with `teamflow serve --node-id <id> --join --raft-addr <raft-addr> --peers <current members>`.\n" +
			"join adds it as a learner (it receives the log or a snapshot without voting), waits until it has\n" +
			"caught up with the leader, then makes it a voter.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseUint(args[0], 10, 64)
			if err != nil || id == 0 {
				return fmt.Errorf("node ID %q: a positive integer", args[0])
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			leader, err := c.findLeader(ctx)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			status, code, err := c.call(ctx, leader, http.MethodPost, "/api/v1/platform/cluster/members", map[string]any{"id": id, "raft_addr": args[1]}, nil)
			switch {
			case err == nil:
				fmt.Fprintf(out, "Node %d added as a learner at %s.\n", id, args[1])
			case status == http.StatusConflict && code == "already_member":
				fmt.Fprintf(out, "Node %d is already a member; promoting it if it is a learner.\n", id)
			default:
				return err
			}
			for {
				var st httpapi.ClusterStatus
				status, code, err := c.call(ctx, leader, http.MethodPost, "/api/v1/platform/cluster/members/"+args[0]+"/promote", nil, &st)
				if err == nil {
					fmt.Fprintf(out, "Node %d is a voter.\n", id)
					return nil
				}
				if status == http.StatusConflict && code == "not_member" {
					// Not a learner: already promoted (a repeated join), or
					// removed meanwhile (its join abandoned).
					st, serr := c.status(ctx, leader)
					if serr == nil && slices.ContainsFunc(st.Members, func(m httpapi.ClusterMember) bool { return m.ID == id && !m.Learner }) {
						fmt.Fprintf(out, "Node %d is a voter.\n", id)
						return nil
					}
					return fmt.Errorf("node %d is no longer a learner and not a voter (removed while joining?): %w", id, err)
				}
				if status == http.StatusConflict && code == "learner_behind" || status == http.StatusServiceUnavailable {
					fmt.Fprintf(out, "Node %d is still catching up...\n", id)
					select {
					case <-ctx.Done():
						return fmt.Errorf("node %d did not catch up within %s (it stays a learner; run join again): %w", id, timeout, err)
					case <-time.After(time.Second):
					}
					continue
				}
				return err
			}
		},
	}
	join.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "how long to wait for the new node to catch up")
	cmd.AddCommand(join)

	var leaveTimeout time.Duration
	leave := &cobra.Command{
		Use:   "leave <id>",
		Short: "Remove a member for good (a dead one, or one being replaced); its ID is never reused",
		Long: "With dedicated stores, a voter is removed only once every dedicated group has followed the previous\n" +
			"membership change (a join just made); leave waits for that up to --timeout.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseUint(args[0], 10, 64)
			if err != nil || id == 0 {
				return fmt.Errorf("node ID %q: a positive integer", args[0])
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), leaveTimeout)
			defer cancel()
			leader, err := c.findLeader(ctx)
			if err != nil {
				return err
			}
			for {
				status, code, err := c.call(ctx, leader, http.MethodDelete, "/api/v1/platform/cluster/members/"+args[0], nil, nil)
				if err == nil {
					break
				}
				if status != http.StatusConflict || code != "groups_following" {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), "Waiting for the dedicated groups to follow the last membership change...")
				select {
				case <-ctx.Done():
					return fmt.Errorf("the dedicated groups did not follow within %s (see cluster status; run leave again): %w", leaveTimeout, err)
				case <-time.After(time.Second):
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Node %d removed from the cluster; stop its process and delete its data directory.\n", id)
			return nil
		},
	}
	leave.Flags().DurationVar(&leaveTimeout, "timeout", 2*time.Minute, "how long to wait for the dedicated groups to follow a join first")
	cmd.AddCommand(leave)
	var to uint64
	transfer := &cobra.Command{
		Use:   "transfer-leader --to <id>",
		Short: "Hand the leadership to another voter (before stopping or removing the leader)",
		Long: "Asks the leader to hand over to voter --to (raft's leader transfer: the voter is brought up to\n" +
			"date and campaigns at once) and waits until it leads. Writes during the handover are delayed, not lost.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if to == 0 {
				return errors.New("--to: the ID of the voter to lead")
			}
			leader, err := c.findLeader(cmd.Context())
			if err != nil {
				return err
			}
			if _, _, err := c.call(cmd.Context(), leader, http.MethodPost, "/api/v1/platform/cluster/leader", map[string]any{"id": to}, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Node %d is the leader.\n", to)
			return nil
		},
	}
	transfer.Flags().Uint64Var(&to, "to", 0, "ID of the voter to lead")
	cmd.AddCommand(transfer)
	return cmd
}

// printGroups lists the dedicated groups as st's node runs them: their
// membership follows the cluster's, one step at a time, on each group's
// leader; this is where an operator sees it converge.
func printGroups(w io.Writer, st *httpapi.ClusterStatus) {
	if len(st.Groups) == 0 {
		return
	}
	fmt.Fprintf(w, "\nDedicated groups (as node %d sees them):\n", st.NodeID)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tWORKSPACE\tLEADER\tAPPLIED\tVOTERS\tLEARNERS")
	for _, g := range st.Groups {
		var voters, learners []string
		for _, m := range g.Members {
			if m.Learner {
				learners = append(learners, strconv.FormatUint(m.ID, 10))
			} else {
				voters = append(voters, strconv.FormatUint(m.ID, 10))
			}
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%s\t%s\n", g.ID, g.Workspace, g.Leader, g.Applied, orDash(voters), orDash(learners))
	}
	tw.Flush()
}

func orDash(ids []string) string {
	if len(ids) == 0 {
		return "-"
	}
	return strings.Join(ids, ",")
}

func certsCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "certs <node-name>...",
		Short: "Make a cluster CA and a certificate per node (mutual TLS between nodes)",
		Long: "Writes ca.crt and ca.key (reused if present, so a node added later gets a certificate of the\n" +
			"same CA) and <name>.crt/<name>.key per node. Name nodes node<ID> (node1, node2, ...) to use\n" +
			"`teamflow serve --cluster-cert-dir`; a name that is a host name or IP address is also put in the\n" +
			"certificate. Keep ca.key offline once the nodes have their certificates.",
		Args: cobra.MinimumNArgs(1),
		// Works offline: no server, no operator token.
		PersistentPreRunE: func(*cobra.Command, []string) error { return nil },
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cluster.GenerateCerts(dir, args); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Wrote the cluster CA and certificates for %s in %s.\n", strings.Join(args, ", "), dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "./certs", "directory for the CA and the node certificates")
	return cmd
}

// servers splits --server.
func (c *operatorClient) servers() []string {
	var out []string
	for _, s := range strings.Split(c.server, ",") {
		if s = strings.TrimRight(strings.TrimSpace(s), "/"); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func (c *operatorClient) status(ctx context.Context, server string) (*httpapi.ClusterStatus, error) {
	var st httpapi.ClusterStatus
	if _, _, err := c.call(ctx, server, http.MethodGet, "/api/v1/platform/cluster", nil, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// findLeader returns the URL of the given server that leads. With one
// server, that one (a follower answers not_leader, naming the leader).
func (c *operatorClient) findLeader(ctx context.Context) (string, error) {
	servers := c.servers()
	if len(servers) == 0 {
		return "", errors.New("--server is empty")
	}
	if len(servers) == 1 {
		return servers[0], nil
	}
	leaderID := uint64(0)
	for attempt := 0; attempt < 20; attempt++ {
		for _, s := range servers {
			st, err := c.status(ctx, s)
			if err != nil {
				continue
			}
			if st.State == "leader" {
				return s, nil
			}
			if st.Leader != 0 {
				leaderID = st.Leader
			}
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	if leaderID != 0 {
		return "", fmt.Errorf("the leader is node %d, which is not among --server; add its URL", leaderID)
	}
	return "", errors.New("no leader among the given servers")
}

// call is do against one server, returning the status and problem code.
func (c *operatorClient) call(ctx context.Context, server, method, path string, body, out any) (int, string, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, "", err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, server+path, rd)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("reach %s: %w", server, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if resp.StatusCode >= 300 {
		var p struct {
			Detail  string         `json:"detail"`
			Code    string         `json:"code"`
			Details map[string]any `json:"details"`
		}
		_ = json.Unmarshal(b, &p)
		msg := fmt.Sprintf("%s %s%s: %s (%s)", method, server, path, p.Detail, p.Code)
		if p.Code == "not_leader" {
			msg += fmt.Sprintf("; the leader is node %v at raft address %v: pass its HTTP URL (or all nodes' URLs) in --server", p.Details["leader"], p.Details["leader_raft_addr"])
		}
		return resp.StatusCode, p.Code, errors.New(msg)
	}
	if out != nil {
		return resp.StatusCode, "", json.Unmarshal(b, out)
	}
	return resp.StatusCode, "", nil
}

package cluster

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// TransferLeadership hands the leadership to voter id (raft's leader
// transfer: the leader stops taking proposals, brings id up to date and
// tells it to campaign at once) and returns once this node sees id lead.
// It runs on the leader (elsewhere ErrNotLeader, naming the leader).
// Proposals made during the handover fail with ErrProposalDropped and may
// be retried. raft abandons a transfer that has not completed within an
// election timeout; TransferLeadership asks again until ctx ends.
func (n *Node) TransferLeadership(ctx context.Context, id uint64) error {
	if err := n.usable(); err != nil {
		return err
	}
	if !slices.Contains(n.view.Load().Voters, id) {
		return fmt.Errorf("cluster: node %d is not a voter: %w", id, ErrNotMember)
	}
	if !n.IsLeader() {
		return fmt.Errorf("cluster: leadership transfers run on the leader: %w (leader is %d)", ErrNotLeader, n.Leader())
	}
	ctx, cancel := n.bound(ctx)
	defer cancel()
	for {
		changed := n.leaderChanged()
		switch lead := n.Leader(); lead {
		case id:
			return nil
		case n.id:
			n.rn.TransferLeadership(ctx, n.id, id) // raft ignores a repeat of a transfer in progress
		case 0: // an election: wait for its outcome
		default:
			return fmt.Errorf("cluster: leadership transfer to node %d: node %d was elected instead", id, lead)
		}
		select {
		case <-changed:
		case <-time.After(n.cfg.TickInterval):
		case <-ctx.Done():
			return fmt.Errorf("cluster: leadership transfer to node %d: %w", id, ctx.Err())
		case <-n.stop:
			return ErrClosed
		}
	}
}

package cluster

import (
	"errors"

	"github.com/teamflow/teamflow/storage"
)

// Sentinels of the cluster package. ErrNotLeader and ErrClosed are the
// storage sentinels themselves, so errors.Is works in every layer without an
// import of cluster.
var (
	// ErrNotLeader: the operation must run on the leader (Promote checks the
	// learner's progress there). Status names the leader.
	ErrNotLeader = storage.ErrNotLeader
	// ErrClosed: the node has been closed.
	ErrClosed = storage.ErrClosed
	// ErrProposalDropped: the proposal did not make it into the log, or was
	// overwritten by a new leader. It may still apply if it was forwarded
	// late; a retry with the same RequestID is safe (Apply dedupes it).
	ErrProposalDropped = errors.New("cluster: proposal dropped; retry with the same request ID")
	// ErrNoLeader: no leader was known before the context ended.
	ErrNoLeader = errors.New("cluster: no leader")
	// ErrRemoved: this node has been removed from the cluster.
	ErrRemoved = errors.New("cluster: this node was removed from the cluster")
	// ErrIDRemoved: the node ID belonged to a removed member; IDs are never
	// reused.
	ErrIDRemoved = errors.New("cluster: node ID was removed and may not be reused")
	// ErrMember: the node ID is already a member.
	ErrMember = errors.New("cluster: node is already a member")
	// ErrNotMember: the node ID is not a member (or not a learner, for
	// Promote).
	ErrNotMember = errors.New("cluster: node is not a member")
	// ErrConfChangePending: a membership change is still in progress (being
	// applied, or a learner still joining); one runs at a time.
	ErrConfChangePending = errors.New("cluster: another membership change is in progress")
	// ErrConfChangeRefused: the membership change was committed but refused
	// when applied (for example it would remove the last voter).
	ErrConfChangeRefused = errors.New("cluster: membership change refused")
	// ErrTooLarge: the encoded command exceeds Config.MaxEntryBytes.
	ErrTooLarge = errors.New("cluster: command too large")
)

// Package cluster replicates TeamFlow's command log with raft
// (go.etcd.io/raft/v3), so that three or five nodes hold the same data and
// survive the loss of a minority.
//
// A *Node is the cluster's implementation of the engine's Log: Propose takes
// a storage.Command, raft orders it, every node applies it through the same
// storage.Store.Apply as the single-node log, and Propose returns the Result
// once the command has applied on the node that took it. A follower's
// proposal is forwarded to the leader by raft itself.
//
// What a node keeps on disk:
//
//	<Config.Dir>/raft   Pebble: the raft log, HardState, snapshot metadata (synced)
//	<Config.Dir>/snap   snapshot streams received from the leader, until installed
//	Config.Store        the state store (the caller's; opened with NoSync: true)
//
// The state store is the snapshot: a lagging or new node receives a
// consistent stream of it (storage.Store.OpenSnapshot) over the transport.
// The membership (voters, learners, addresses, removed IDs) is replicated
// state too, a platform record written by Apply.
//
// Nodes talk HTTP/2 over mutual TLS (package cluster/transport);
// GenerateCerts makes a CA and node certificates for a first setup, LoadTLS
// reads them.
//
// Linearizable reads: ReadBarrier (raft ReadIndex, then wait for this
// node's store to apply that far). Read-your-writes across nodes:
// WaitApplied with the index a write returned.
//
// Membership: a static bootstrap from Config.Peers; then AddLearner,
// Promote and Remove on the leader, one change at a time (another is
// refused with ErrConfChangePending). Removed IDs are never accepted again.
// TransferLeadership hands the leadership to another voter.
//
// DESIGN.md in this folder gives the invariants and the reasons.
package cluster

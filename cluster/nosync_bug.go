//go:build bug_nosync

package cluster

// raftLogNoSync is true in the bug_nosync build: raft log writes skip the
// fsync, so an acknowledged write can be lost on power loss. Never ship it.
const raftLogNoSync = true

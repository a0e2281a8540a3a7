//go:build !bug_nosync

package cluster

// raftLogNoSync is the negative control of the durability tests
// (RELIABILITY.md): built with -tags bug_nosync, the raft log is written
// without fsync.
const raftLogNoSync = false

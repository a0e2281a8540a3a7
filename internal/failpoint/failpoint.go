// Package failpoint crashes the process at a named point of the raft Ready
// loop (cluster), once armed: the crash-point tests
// (RELIABILITY R3) check that no acknowledged write is lost and the
// replicas converge whichever step a node dies in.
//
// The points are compiled in only with the build tag failpoints (the e2e
// test binary, never a release); in any other build Hit is an empty
// function the compiler removes. An armed point ends the process with
// os.Exit, as kill -9 would at exactly that step: a panic would run the
// goroutine's deferred calls first, and net/http would recover one raised
// in the snapshot receiver.
package failpoint

// The points, in the order a Ready is handled.
const (
	RaftBeforeSave    = "raft-before-save"    // entries and HardState not yet persisted
	RaftAfterSave     = "raft-after-save"     // persisted; a follower has not sent its answers
	SnapshotReceived  = "snapshot-received"   // a leader's snapshot stored in a file, not yet stepped into raft
	RaftBeforeInstall = "raft-before-install" // raft accepted a snapshot; the store does not have it yet
	ApplyBeforeCommit = "apply-before-commit" // committed entries about to be applied to the store in one batch
	ApplyAfterCommit  = "apply-after-commit"  // the batch committed to the store (not synced), no client answered yet
	RaftBeforeCompact = "raft-before-compact" // the store synced for a log compaction, the log not yet cut
	RaftAfterCompact  = "raft-after-compact"  // snapshot metadata saved and the log cut
	RaftBeforeAdvance = "raft-before-advance" // the Ready handled, raft not yet told
)

// Points lists every point.
var Points = []string{RaftBeforeSave, RaftAfterSave, SnapshotReceived, RaftBeforeInstall,
	ApplyBeforeCommit, ApplyAfterCommit, RaftBeforeCompact, RaftAfterCompact, RaftBeforeAdvance}

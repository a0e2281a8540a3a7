package storage

import "errors"

// Sentinels shared by every layer. Upper packages re-export them (engine.ErrNotFound
// = storage.ErrNotFound) so that errors.Is works everywhere without an upward import.
var (
	// ErrNotFound: the key or record does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a precondition did not hold; the caller may re-read and retry.
	ErrConflict = errors.New("conflict")
	// ErrLimit: a bounded counter (a plan limit or quota) refused the command.
	ErrLimit = errors.New("limit reached")
	// ErrNotLeader: this node cannot order writes; forward to the leader.
	ErrNotLeader = errors.New("not the leader")
	// ErrClosed: the store or log has been closed.
	ErrClosed = errors.New("store closed")
	// ErrFailed: a write or sync of the store failed (a full or failing
	// disk); the store takes no more writes until the node is restarted,
	// since what it had acknowledged may no longer be on disk otherwise.
	ErrFailed = errors.New("store failed")
)

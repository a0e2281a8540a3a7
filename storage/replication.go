package storage

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Support for a replicated Log (the cluster package): it applies entries
// with Options.NoSync, finds its waiting callers by RequestID, and must make
// applied state durable before it truncates its own log.

// PeekRequestID returns the RequestID of an encoded Command without decoding
// the rest, so a Log can match applied entries to waiting callers cheaply.
func PeekRequestID(data []byte) (string, error) {
	r := decoder{buf: data}
	if v := r.byte(); v != CommandVersion {
		if r.err != nil {
			return "", r.err
		}
		return "", fmt.Errorf("%w: command version %d", ErrCorrupt, v)
	}
	id := r.str()
	if r.err != nil {
		return "", r.err
	}
	return id, nil
}

// RequestResult returns the Result a command with this RequestID got when it
// was applied, if the dedupe table still remembers it (DedupeWindow entries).
// A Log uses it to answer a caller whose entry arrived inside a snapshot.
func (s *Store) RequestResult(requestID string) (Result, bool, error) {
	if s.closed.Load() {
		return Result{}, false, ErrClosed
	}
	v, err := getBytes(s.db, metaKey("req", requestID))
	if errors.Is(err, ErrNotFound) {
		return Result{}, false, nil
	}
	if err != nil {
		return Result{}, false, err
	}
	res, err := decodeResult(v)
	if err != nil {
		return Result{}, false, err
	}
	return res, true, nil
}

// Sync makes every batch applied so far durable. A store opened with
// Options.NoSync relies on its Log's own synced log for durability; the Log
// calls Sync before it discards log entries the store has applied.
func (s *Store) Sync() error {
	if s.closed.Load() {
		return ErrClosed
	}
	if err := s.db.LogData(nil, pebble.Sync); err != nil {
		return s.fail(fmt.Errorf("storage: sync: %w", err))
	}
	// A failed WAL sync may reach us through Logger.Fatalf instead.
	if e := s.failed.Load(); e != nil {
		return *e
	}
	return nil
}

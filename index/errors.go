package index

import (
	"errors"
	"time"
)

// Error is the type of every error index returns on purpose. The engine
// cannot import index, so it recognises these through the methods, with an
// interface of its own:
//
//	var e interface{ Code() string; Unavailable() bool }
//	if errors.As(err, &e) && e.Unavailable() { /* 503, Retry-After */ }
type Error struct {
	code  string
	msg   string
	retry time.Duration
	base  error
}

func (e *Error) Error() string { return "index: " + e.msg }

// Code is a stable, machine-readable name: index_rebuilding,
// index_closed, invalid_query, invalid_cursor.
func (e *Error) Code() string { return e.code }

// Unavailable reports an error that says nothing about the request: the
// search can be retried later (HTTP 503).
func (e *Error) Unavailable() bool { return e.retry > 0 }

// RetryAfter suggests when to retry an unavailable search.
func (e *Error) RetryAfter() time.Duration { return e.retry }

// Unwrap lets errors.Is match the sentinel a detailed error was made from.
func (e *Error) Unwrap() error { return e.base }

// Sentinels. Detailed errors (a query error naming the problem) wrap them,
// so errors.Is(err, ErrBadQuery) holds.
var (
	// ErrRebuilding: the workspace's index is missing or damaged and is
	// being rebuilt from the store; other workspaces are not affected.
	ErrRebuilding = &Error{code: "index_rebuilding", msg: "the search index of this workspace is being rebuilt; try again shortly", retry: 5 * time.Second}
	// ErrClosed: the index is shutting down.
	ErrClosed = &Error{code: "index_closed", msg: "the search index is closed", retry: time.Second}
	// ErrBadQuery: the query text or a filter does not parse.
	ErrBadQuery = &Error{code: "invalid_query", msg: "invalid query"}
	// ErrBadCursor: the cursor was not issued for this query.
	ErrBadCursor = &Error{code: "invalid_cursor", msg: "invalid cursor: it belongs to another query or is damaged"}
)

func badQuery(msg string) error {
	return &Error{code: ErrBadQuery.code, msg: "invalid query: " + msg, base: ErrBadQuery}
}

// errUnusable is internal: the tenant has no index on disk that can be
// opened (missing, damaged, or of another format).
var errUnusable = errors.New("index: no usable index on disk")

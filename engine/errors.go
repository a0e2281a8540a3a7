package engine

import (
	"errors"
	"fmt"

	"github.com/teamflow/teamflow/storage"
)

// Sentinels, aliased from storage so errors.Is works across layers.
var (
	ErrNotFound  = storage.ErrNotFound
	ErrConflict  = storage.ErrConflict
	ErrLimit     = storage.ErrLimit
	ErrNotLeader = storage.ErrNotLeader
	ErrClosed    = storage.ErrClosed
	// ErrStorageFailed: the node's store stopped taking writes after a
	// disk error (HTTP 503 storage_failed).
	ErrStorageFailed = storage.ErrFailed

	ErrInvalid         = errors.New("invalid input")
	ErrForbidden       = errors.New("forbidden")
	ErrUnauthenticated = errors.New("unauthenticated")
	ErrPrecondition    = errors.New("precondition failed")
	// ErrBadRequest: the request cannot be read (a query that does not
	// parse, a cursor of another query): HTTP 400.
	ErrBadRequest = errors.New("bad request")
	// ErrUnavailable: a part of the server cannot answer now (the search
	// index is being rebuilt); retry later (HTTP 503, Details
	// retry_after in seconds).
	ErrUnavailable = errors.New("temporarily unavailable")
)

// Error is what the engine answers when a request cannot be carried out. Code
// is a stable machine-readable name that clients may switch on; the wrapped
// sentinel says which class it belongs to.
type Error struct {
	Code    string
	Message string
	Field   string         // the input field at fault, for ErrInvalid
	Details map[string]any // extra facts, e.g. the plan and limit
	Err     error          // one of the sentinels above
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s", e.Field, e.Message)
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

func invalid(field, code, format string, args ...any) error {
	return &Error{Code: code, Field: field, Message: fmt.Sprintf(format, args...), Err: ErrInvalid}
}

func notFound(what string) error {
	return &Error{Code: "not_found", Message: what + " not found", Err: ErrNotFound}
}

func forbidden(format string, args ...any) error {
	return &Error{Code: "forbidden", Message: fmt.Sprintf(format, args...), Err: ErrForbidden}
}

func conflict(code, format string, args ...any) error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Err: ErrConflict}
}

var errStale = &Error{Code: "precondition_failed", Message: "the resource has changed since the version you sent (If-Match)", Err: ErrPrecondition}

var errBadCredentials = &Error{Code: "invalid_credentials", Message: "the workspace, email or password is not correct", Err: ErrUnauthenticated}

var errBadToken = &Error{Code: "invalid_token", Message: "the token is invalid or has expired", Err: ErrUnauthenticated}

func planLimit(limit, plan string, max int64) error {
	return &Error{
		Code:    "plan_limit_reached",
		Message: fmt.Sprintf("the %s plan allows %d %s; upgrade the plan to add more", plan, max, limit),
		Details: map[string]any{"limit": limit, "plan": plan, "max": max},
		Err:     ErrLimit,
	}
}

func planFeature(feature, plan string) error {
	return &Error{
		Code:    "plan_feature_unavailable",
		Message: fmt.Sprintf("%s is not part of the %s plan", feature, plan),
		Details: map[string]any{"feature": feature, "plan": plan},
		Err:     ErrForbidden,
	}
}

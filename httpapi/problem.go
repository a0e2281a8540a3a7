package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"syscall"

	"github.com/danielgtaylor/huma/v2"
	"github.com/teamflow/teamflow/engine"
)

// Problem is an RFC 9457 problem detail with TeamFlow's stable `code`.
type Problem struct {
	Type      string              `json:"type" doc:"A URI naming the problem type"`
	Title     string              `json:"title"`
	Status    int                 `json:"status"`
	Detail    string              `json:"detail,omitempty"`
	Code      string              `json:"code" doc:"Stable machine-readable code, e.g. validation_failed, not_found, plan_limit_reached"`
	Field     string              `json:"field,omitempty" doc:"The input at fault, when there is one"`
	Errors    []*huma.ErrorDetail `json:"errors,omitempty" doc:"Each invalid input, for validation problems"`
	Details   map[string]any      `json:"details,omitempty" doc:"Extra facts, e.g. the plan and the limit reached"`
	RequestID string              `json:"request_id,omitempty"`
}

func (p *Problem) Error() string { return p.Detail }

// GetStatus gives huma the HTTP status.
func (p *Problem) GetStatus() int { return p.Status }

// ContentType makes every problem application/problem+json.
func (p *Problem) ContentType(ct string) string {
	if ct == "application/json" || ct == "" {
		return "application/problem+json"
	}
	return ct
}

func problemType(code string) string { return "urn:teamflow:problem:" + code }

func newProblem(status int, code, detail string) *Problem {
	return &Problem{Type: problemType(code), Title: http.StatusText(status), Status: status, Code: code, Detail: detail}
}

// statusCodes names the problems huma raises itself (decoding, validation).
func codeForStatus(status int, msg string) string {
	switch status {
	case http.StatusBadRequest:
		if strings.Contains(strings.ToLower(msg), "json") || strings.Contains(msg, "unmarshal") {
			return "invalid_json"
		}
		return "bad_request"
	case http.StatusUnauthorized:
		return "unauthenticated"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case http.StatusNotAcceptable:
		return "not_acceptable"
	case http.StatusRequestEntityTooLarge:
		return "body_too_large"
	case http.StatusUnsupportedMediaType:
		return "unsupported_media_type"
	case http.StatusUnprocessableEntity:
		return "validation_failed"
	case http.StatusPreconditionFailed:
		return "precondition_failed"
	case http.StatusTooManyRequests:
		return "rate_limited"
	}
	if status >= 500 {
		return "internal_error"
	}
	return "error"
}

// installErrorModel makes every error huma writes a Problem. Server errors
// never carry the underlying error text: it goes to the log, not the client.
func installErrorModel() {
	huma.NewError = func(status int, msg string, errs ...error) huma.StatusError {
		if status >= 500 {
			return newProblem(status, "internal_error", "the server could not complete the request; it has been logged")
		}
		p := newProblem(status, codeForStatus(status, msg), msg)
		for _, e := range errs {
			if e == nil {
				continue
			}
			var d huma.ErrorDetailer
			if errors.As(e, &d) {
				detail := *d.ErrorDetail()
				// Never echo input back: it may hold a password or a token.
				detail.Value = nil
				p.Errors = append(p.Errors, &detail)
			} else {
				p.Errors = append(p.Errors, &huma.ErrorDetail{Message: e.Error()})
			}
		}
		if status == http.StatusBadRequest && len(p.Errors) > 0 && p.Code == "bad_request" {
			for _, d := range p.Errors {
				if strings.Contains(strings.ToLower(d.Message), "json") || strings.Contains(d.Message, "unmarshal") {
					p.Code = "invalid_json"
				}
			}
		}
		return p
	}
	huma.NewErrorWithContext = func(ctx huma.Context, status int, msg string, errs ...error) huma.StatusError {
		se := huma.NewError(status, msg, errs...)
		if p, ok := se.(*Problem); ok && ctx != nil {
			p.RequestID = requestIDFrom(ctx.Context())
		}
		return se
	}
}

// apiError maps an engine error to a Problem; anything unknown is a 500
// whose cause is logged by the caller and never shown.
func apiError(err error) error {
	var pe *Problem
	if errors.As(err, &pe) {
		return pe
	}
	var e *engine.Error
	if errors.As(err, &e) {
		status := http.StatusInternalServerError
		switch {
		case errors.Is(e, engine.ErrInvalid):
			status = http.StatusUnprocessableEntity
		case errors.Is(e, engine.ErrNotFound):
			status = http.StatusNotFound
		case errors.Is(e, engine.ErrUnauthenticated):
			status = http.StatusUnauthorized
		case errors.Is(e, engine.ErrLimit):
			status = http.StatusForbidden
		case errors.Is(e, engine.ErrForbidden):
			status = http.StatusForbidden
		case errors.Is(e, engine.ErrPrecondition):
			status = http.StatusPreconditionFailed
		case errors.Is(e, engine.ErrConflict):
			status = http.StatusConflict
		case errors.Is(e, engine.ErrBadRequest):
			status = http.StatusBadRequest
		case errors.Is(e, engine.ErrUnavailable):
			status = http.StatusServiceUnavailable
		}
		p := newProblem(status, e.Code, e.Message)
		p.Field = e.Field
		p.Details = e.Details
		if ra, ok := e.Details["retry_after"].(int); ok && status == http.StatusServiceUnavailable && ra > 0 {
			// huma sets these headers on the response (Retry-After).
			return huma.ErrorWithHeaders(p, http.Header{"Retry-After": []string{strconv.Itoa(ra)}})
		}
		return p
	}
	switch {
	case errors.Is(err, engine.ErrNotFound):
		return newProblem(http.StatusNotFound, "not_found", "not found")
	case errors.Is(err, engine.ErrStorageFailed):
		detail := "this server stopped taking writes after a storage error; an operator must repair its disk and restart it"
		if errors.Is(err, syscall.ENOSPC) {
			detail = "this server's disk is full: it takes no writes until an operator frees space and restarts it"
		}
		return newProblem(http.StatusServiceUnavailable, "storage_failed", detail)
	case errors.Is(err, engine.ErrClosed), errors.Is(err, engine.ErrNotLeader):
		return newProblem(http.StatusServiceUnavailable, "unavailable", "the server is not serving writes right now; try again")
	}
	return internalError{err}
}

// internalError carries an unexpected error to the recovery log while the
// client sees only a generic 500.
type internalError struct{ err error }

func (e internalError) Error() string { return e.err.Error() }
func (e internalError) Unwrap() error { return e.err }

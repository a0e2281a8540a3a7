//go:build !testclock

package main

import (
	"net/http"

	"github.com/teamflow/teamflow/engine"
)

// newClock gives release builds the wall clock and no test endpoint.
func newClock() (engine.Clock, func(http.Handler, *engine.Scheduler) http.Handler) {
	return engine.SystemClock{}, nil
}

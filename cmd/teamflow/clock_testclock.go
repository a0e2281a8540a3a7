//go:build testclock

package main

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/teamflow/teamflow/engine"
	"github.com/teamflow/teamflow/internal/failpoint"
)

// A test build (-tags testclock, never a release) runs on a clock the tests
// move through POST /_test/clock {"advance": "720h"}; each move also runs
// the scheduled jobs that became due, so tests cover weeks in milliseconds.

type testClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func newClock() (engine.Clock, func(http.Handler, *engine.Scheduler) http.Handler) {
	c := &testClock{}
	return c, func(next http.Handler, sched *engine.Scheduler) http.Handler {
		mux := http.NewServeMux()
		mux.Handle("/", next)
		mux.HandleFunc("POST /_test/clock", func(w http.ResponseWriter, r *http.Request) {
			var in struct {
				Advance string `json:"advance"`
			}
			if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			d, err := time.ParseDuration(in.Advance)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			c.mu.Lock()
			c.offset += d
			c.mu.Unlock()
			ran := sched.RunDue(r.Context())
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"now": c.Now(), "ran": ran})
		})
		// Arms a crash point (internal/failpoint; a no-op answering 400 unless
		// the binary was built with -tags failpoints too).
		mux.HandleFunc("POST /_test/failpoint", func(w http.ResponseWriter, r *http.Request) {
			var in struct {
				Name string `json:"name"`
				Skip int    `json:"skip"`
			}
			if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			if err := failpoint.Arm(in.Name, in.Skip); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		})
		return mux
	}
}

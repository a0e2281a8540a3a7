// Package enginetest builds a real engine over a real store in a temporary
// directory, with a clock the test moves.
package enginetest

import (
	"sync"
	"testing"
	"time"

	"github.com/teamflow/teamflow/engine"
	"github.com/teamflow/teamflow/storage"
)

// Clock is a settable clock.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock starts at t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Env is an engine on a real store.
type Env struct {
	Service *engine.Service
	Store   *storage.Store
	Log     *storage.LocalLog
	Clock   *Clock
}

// CheapPasswords makes argon2id fast for tests that hash many passwords.
var CheapPasswords = &engine.PasswordParams{Memory: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}

// New opens a store in a temp dir and builds the engine; cfg.PasswordParams
// defaults to CheapPasswords.
func New(t testing.TB, cfg engine.Config) *Env { return NewWithMailer(t, cfg, nil) }

// NewWithMailer is New with outbox mail delivered by m (nil: no mail).
func NewWithMailer(t testing.TB, cfg engine.Config, m engine.Mailer) *Env {
	return newEnv(t, cfg, engine.Deps{Mailer: m}, nil)
}

// NewWithRouter is NewWithMailer with the engine's Router built by route
// from the shared route (tests that watch what goes to which route).
func NewWithRouter(t testing.TB, cfg engine.Config, m engine.Mailer, route func(engine.Route) engine.Router) *Env {
	return newEnv(t, cfg, engine.Deps{Mailer: m}, route)
}

// NewWithSummarizer is New with status updates written by sum.
func NewWithSummarizer(t testing.TB, cfg engine.Config, sum engine.Summarizer) *Env {
	return newEnv(t, cfg, engine.Deps{Summarizer: sum}, nil)
}

func newEnv(t testing.TB, cfg engine.Config, deps engine.Deps, route func(engine.Route) engine.Router) *Env {
	t.Helper()
	// A block cache no larger than Pebble's memtable reservation keeps no
	// blocks: tests that measure the heap (attachments) see the product's
	// own allocations, not cached blocks (on the Go heap without cgo).
	st, err := storage.Open(t.TempDir(), storage.Options{CacheSize: 64 << 20, Watch: engine.WatchedKeys()})
	if err != nil {
		t.Fatal(err)
	}
	lg := storage.NewLocalLog(st, storage.LocalLogOptions{})
	t.Cleanup(func() {
		lg.Close()
		st.Close()
	})
	if cfg.PasswordParams == nil {
		cfg.PasswordParams = CheapPasswords
	}
	clock := NewClock(time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC))
	deps.Router = engine.SharedRouter{Route: engine.Route{Log: lg, Store: st}}
	if route != nil {
		deps.Router = route(engine.Route{Log: lg, Store: st})
	}
	deps.Clock = clock
	svc := engine.New(deps, cfg)
	return &Env{Service: svc, Store: st, Log: lg, Clock: clock}
}

// Package engine is TeamFlow's domain: workspaces, people, roles, projects,
// tasks, comments, activity, plans and the sign-in that ties a credential to
// one workspace. It validates and authorizes each request, resolves every
// non-deterministic choice (IDs, times, hashes, numbers allocated in the log),
// and turns it into a storage.Command for the Log. It knows nothing of HTTP,
// raft or Bleve: it talks to them through the small interfaces below.
package engine

import (
	"context"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/teamflow/teamflow/storage"
)

// Log orders and applies commands: storage.LocalLog on one node, the raft
// log in a cluster. Propose returns once the command is applied on this node.
type Log interface {
	Propose(ctx context.Context, cmd *storage.Command) (storage.Result, error)
}

// Reader gives tenant-scoped and platform read handles on this node's store.
type Reader interface {
	Tenant(id string) storage.View
	Sys() storage.View
}

// Route is where one workspace's commands go and its reads come from.
type Route struct {
	Log   Log
	Store Reader
}

// Router maps a workspace to its route (DESIGN rule 7). Platform records go
// to the platform route.
type Router interface {
	Workspace(tenant string) Route
	Platform() Route
}

// Clock is the only source of time in the engine, so tests can run weeks of
// schedules in milliseconds.
type Clock interface {
	Now() time.Time
}

// SystemClock reads the wall clock.
type SystemClock struct{}

// Now returns the current time.
func (SystemClock) Now() time.Time { return time.Now() }

// Mode says whether workspaces come from a one-time setup (on-prem) or from
// self-service signup (cloud).
type Mode string

// Modes.
const (
	ModeOnPrem Mode = "onprem"
	ModeCloud  Mode = "cloud"
)

// Config tunes the engine. Zero values take the documented defaults.
type Config struct {
	Mode        Mode
	DefaultPlan string        // plan of new workspaces (default licensing.DefaultPlan)
	AccessTTL   time.Duration // access token lifetime (default 15 min)
	RefreshTTL  time.Duration // refresh token lifetime (default 30 days)
	InviteTTL   time.Duration // invitation lifetime (default 7 days)
	SetupTTL    time.Duration // setup link lifetime (default 24 h)
	TrashTTL    time.Duration // how long soft-deleted items stay restorable (default 30 days)
	BaseURL     string        // used in links (setup, invitations)
	// MaxConcurrentHashes bounds argon2id work so a login flood cannot
	// exhaust memory (default 2 per CPU).
	MaxConcurrentHashes int
	// TaskCacheSize is how many decoded tasks a node keeps for list reads
	// (default 100,000).
	TaskCacheSize int
	// PasswordParams overrides the argon2id cost (tests use a cheaper one).
	PasswordParams *PasswordParams
	// MaxAttachmentBytes caps one attached file (default
	// DefaultMaxAttachmentBytes, 256 MiB).
	MaxAttachmentBytes int64
	// StorageBytes, when > 0, replaces every plan's storage quota (an
	// installation bounded by its disk; tests set a small one).
	StorageBytes int64
}

// Service is the engine.
type Service struct {
	cfg    Config
	router Router // deps.Router with every route guarded (route.go)
	routes Router // deps.Router as given
	clock  Clock
	log    *slog.Logger
	hashes chan struct{}
	pw     PasswordParams

	keysMu     sync.RWMutex
	keys       map[string]signingKey
	mailer     Mailer
	summarizer Summarizer

	passwordChecks atomic.Int64
	refusals       refusalCounter // refused credentials that left no audit entry (refusals.go)
	// verified remembers access tokens whose signature checked out, so a
	// client's next request skips the Ed25519 verification (about a third
	// of a small request's CPU). Only the signature is cached there.
	verified *boundedCache[accessClaims]
	// authRecords holds the records authentication reads, per session,
	// while their tenant's watch says none changed (authrecords.go).
	authRecords watchedCache[*authRecords]
	// projects holds decoded project records on the same terms.
	projects watchedCache[cachedProject]
	tasks    *versionCache // decoded tasks for list reads and status facts
	rollupMu sync.Mutex    // one status-facts roll-up rebuild at a time
	searcher atomic.Pointer[searcherBox]
	hooks    testHooks
}

// testHooks let tests stop a multi-step protocol between its steps, as a
// crash would (export_test.go); nil in the product.
type testHooks struct {
	AfterClaim  func() error // rename: the slug is claimed, the record not yet changed
	AfterUpdate func() error // rename: the record changed, the platform not yet
}

func (h testHooks) afterClaim() error {
	if h.AfterClaim == nil {
		return nil
	}
	return h.AfterClaim()
}

func (h testHooks) afterUpdate() error {
	if h.AfterUpdate == nil {
		return nil
	}
	return h.AfterUpdate()
}

// Deps are the engine's collaborators.
type Deps struct {
	Router Router
	Clock  Clock
	Logger *slog.Logger
	// Mailer delivers the outbox's mail; nil means this installation sends
	// no mail (links are then handed to the admin instead).
	Mailer Mailer
	// Summarizer writes status updates with a language model; nil means the
	// built-in writer alone (an air-gapped install without a model).
	Summarizer Summarizer
	// Searcher is the full-text index (search.go); nil turns search off.
	Searcher Searcher
}

// New builds the engine.
func New(deps Deps, cfg Config) *Service {
	if cfg.Mode == "" {
		cfg.Mode = ModeOnPrem
	}
	if cfg.DefaultPlan == "" {
		cfg.DefaultPlan = "free"
	}
	if cfg.AccessTTL == 0 {
		cfg.AccessTTL = 15 * time.Minute
	}
	if cfg.RefreshTTL == 0 {
		cfg.RefreshTTL = 30 * 24 * time.Hour
	}
	if cfg.InviteTTL == 0 {
		cfg.InviteTTL = 7 * 24 * time.Hour
	}
	if cfg.SetupTTL == 0 {
		cfg.SetupTTL = 24 * time.Hour
	}
	if cfg.TrashTTL == 0 {
		cfg.TrashTTL = 30 * 24 * time.Hour
	}
	if cfg.TaskCacheSize <= 0 {
		cfg.TaskCacheSize = 100_000
	}
	if cfg.MaxConcurrentHashes <= 0 {
		cfg.MaxConcurrentHashes = 2 * runtime.GOMAXPROCS(0)
	}
	if deps.Clock == nil {
		deps.Clock = SystemClock{}
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	pw := DefaultPasswordParams
	if cfg.PasswordParams != nil {
		pw = *cfg.PasswordParams
	}
	s := &Service{
		cfg:         cfg,
		router:      guardedRouter{inner: deps.Router},
		routes:      deps.Router,
		clock:       deps.Clock,
		log:         deps.Logger,
		hashes:      make(chan struct{}, cfg.MaxConcurrentHashes),
		pw:          pw,
		keys:        map[string]signingKey{},
		mailer:      deps.Mailer,
		summarizer:  deps.Summarizer,
		verified:    newBoundedCache[accessClaims](10_000),
		authRecords: newWatchedCache[*authRecords](10_000),
		projects:    newWatchedCache[cachedProject](10_000),
		tasks:       newVersionCache(cfg.TaskCacheSize),
	}
	if deps.Searcher != nil {
		s.SetSearcher(deps.Searcher)
	}
	return s
}

// Mode reports the configured mode.
func (s *Service) Mode() Mode { return s.cfg.Mode }

func (s *Service) now() time.Time { return s.clock.Now().UTC() }

func (s *Service) tenant(id string) (Log, storage.View) {
	r := s.router.Workspace(id)
	return r.Log, r.Store.Tenant(id)
}

func (s *Service) sys() (Log, storage.View) {
	r := s.router.Platform()
	return r.Log, r.Store.Sys()
}

// SharedRouter routes every workspace and the platform to one shared store
// and log: the only route until dedicated stores exist.
type SharedRouter struct{ Route Route }

// Workspace returns the shared route.
func (r SharedRouter) Workspace(string) Route { return r.Route }

// Platform returns the shared route.
func (r SharedRouter) Platform() Route { return r.Route }

// Package apitest runs the real HTTP API in-process (httptest) over a real
// engine and a real store in a temporary directory, with a test clock, and
// gives tests a small JSON client.
package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/teamflow/teamflow/engine"
	"github.com/teamflow/teamflow/engine/enginetest"
	"github.com/teamflow/teamflow/httpapi"
	"github.com/teamflow/teamflow/index"
	"github.com/teamflow/teamflow/index/searchadapter"
	"github.com/teamflow/teamflow/storage"
)

// Env is a running API.
type Env struct {
	*enginetest.Env
	API *httpapi.Server
	URL string
	// Index is the search index, fed from the store's applied commands.
	Index    *index.Index
	t        testing.TB
	seen     atomic.Uint64 // the last log index the store's observers finished
	observed chan struct{}
}

// storeState adapts the store for httpapi.
type storeState struct{ e *enginetest.Env }

func (s storeState) AppliedIndex() uint64 { return s.e.Store.AppliedIndex() }

func (s storeState) WaitApplied(ctx context.Context, idx uint64) error {
	return s.e.Store.WaitApplied(ctx, idx)
}

func (s storeState) Ready() error { return s.e.Store.Healthy() }

// New starts the API in mode.
func New(t testing.TB, mode engine.Mode) *Env {
	return NewWithConfig(t, mode, httpapi.Config{})
}

// NewWithConfig starts the API with cfg; its rate limits run on the
// engine's test clock.
func NewWithConfig(t testing.TB, mode engine.Mode, cfg httpapi.Config) *Env {
	t.Helper()
	return NewWithEngineConfig(t, engine.Config{Mode: mode}, cfg)
}

// NewWithEngineConfig starts the API over an engine configured by ecfg
// (its BaseURL is set for the tests).
func NewWithEngineConfig(t testing.TB, ecfg engine.Config, cfg httpapi.Config) *Env {
	t.Helper()
	return NewWithMailer(t, ecfg, cfg, nil)
}

// NewWithMailer is NewWithEngineConfig with outbox mail delivered through
// m (nil: none); tests run the dispatcher with Env.Service.DeliverOutbox.
func NewWithMailer(t testing.TB, ecfg engine.Config, cfg httpapi.Config, m engine.Mailer) *Env {
	t.Helper()
	ecfg.BaseURL = "http://teamflow.test"
	e := enginetest.NewWithMailer(t, ecfg, m)
	// The search index, opened and fed as cmd/teamflow does: it observes
	// the store before the log applies anything, and closes before the
	// store (cleanups run last-in first-out).
	ix, err := index.Open(t.TempDir(), e.Store, index.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e.Store.Observe(ix.Observe)
	t.Cleanup(func() { ix.Close() })
	e.Service.SetSearcher(searchadapter.New(ix))
	if _, err := e.Service.Bootstrap(t.Context()); err != nil {
		t.Fatal(err)
	}
	cfg.Version = "test"
	if cfg.Now == nil {
		cfg.Now = e.Clock.Now
	}
	api := httpapi.New(httpapi.Deps{Engine: e.Service, State: storeState{e}}, cfg)
	// Live updates are fed from the store's observer, as cmd/teamflow does.
	e.Store.Observe(engine.ObserveEvents(api))
	env := &Env{Env: e, API: api, Index: ix, t: t, observed: make(chan struct{}, 1)}
	// Observers run in order on one goroutine: once this last one has seen
	// an entry, the index has been handed it too (WaitIndexed).
	e.Store.Observe(func(batch []storage.Applied) {
		if len(batch) > 0 {
			env.seen.Store(batch[len(batch)-1].Index)
			select {
			case env.observed <- struct{}{}:
			default:
			}
		}
	})
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	// Cleanups run last-in first-out: the live-update streams end before
	// the server waits for its outstanding requests.
	t.Cleanup(api.CloseRealtime)
	env.URL = srv.URL
	return env
}

// WaitIndexed waits until the search index holds every command the store
// has applied so far (the index is fed after apply, off the request path).
func (e *Env) WaitIndexed() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	target := e.Store.AppliedIndex()
	for e.seen.Load() < target {
		select {
		case <-e.observed:
		case <-time.After(5 * time.Millisecond):
		case <-ctx.Done():
			e.t.Fatalf("the store's observers did not reach index %d", target)
		}
	}
	if err := e.Index.WaitIdle(ctx); err != nil {
		e.t.Fatalf("index: %v", err)
	}
}

// Response is a decoded answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v, failing the test on error.
func (r *Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// Map decodes the body as a JSON object.
func (r *Response) Map(t testing.TB) map[string]any {
	var m map[string]any
	r.JSON(t, &m)
	return m
}

// Do sends a request with an optional bearer token and JSON body (a string
// is sent as is, anything else is marshalled).
func (e *Env) Do(method, path, token string, body any, headers ...string) *Response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, e.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// Workspace is a signed-up workspace with its Owner's token.
type Workspace struct {
	ID, Slug, OwnerID, Token string
}

// Signup creates a workspace (cloud mode) and returns its Owner's session.
func (e *Env) Signup(slug, name, email string) Workspace {
	e.t.Helper()
	r := e.Do("POST", "/api/v1/signup", "", map[string]any{
		"workspace_name": name, "workspace_slug": slug, "name": name + " Owner", "email": email, "password": "password-" + slug,
	})
	if r.Status != http.StatusCreated {
		e.t.Fatalf("signup %s: %d %s", slug, r.Status, r.Body)
	}
	var out struct {
		Workspace   struct{ ID string }
		Owner       struct{ ID string }
		AccessToken string `json:"access_token"`
	}
	r.JSON(e.t, &out)
	return Workspace{ID: out.Workspace.ID, Slug: slug, OwnerID: out.Owner.ID, Token: out.AccessToken}
}

// Join invites email with role into w and accepts; it returns the new
// member's ID and token.
func (e *Env) Join(w Workspace, name, email, role string) (string, string) {
	e.t.Helper()
	r := e.Do("POST", "/api/v1/invitations", w.Token, map[string]any{"email": email, "role": role})
	if r.Status != http.StatusCreated {
		e.t.Fatalf("invite: %d %s", r.Status, r.Body)
	}
	tok := r.Map(e.t)["token"].(string)
	r = e.Do("POST", "/api/v1/invitations/"+tok+"/accept", "", map[string]any{"name": name, "password": "password-" + name})
	if r.Status != http.StatusCreated {
		e.t.Fatalf("accept: %d %s", r.Status, r.Body)
	}
	var out struct {
		Owner       struct{ ID string }
		AccessToken string `json:"access_token"`
	}
	r.JSON(e.t, &out)
	return out.Owner.ID, out.AccessToken
}

// Create posts body to path as token and returns the new resource's id.
func (e *Env) Create(path, token string, body any) string {
	e.t.Helper()
	r := e.Do("POST", path, token, body)
	if r.Status != http.StatusCreated {
		e.t.Fatalf("POST %s: %d %s", path, r.Status, r.Body)
	}
	id, _ := r.Map(e.t)["id"].(string)
	return id
}

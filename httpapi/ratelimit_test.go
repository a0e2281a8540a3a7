package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/teamflow/teamflow/engine"
	"github.com/teamflow/teamflow/httpapi"
	"github.com/teamflow/teamflow/httpapi/apitest"
	"github.com/teamflow/teamflow/internal/figures"
)

// The rate-limit tests run on the engine's test clock, so an hour passes in
// milliseconds (RELIABILITY L1–L4, L6). Requests use API keys: API access is
// what the plan's limits count, and keys do not expire with the clock.

func limitEnv(t *testing.T) *apitest.Env {
	return apitest.NewWithConfig(t, engine.ModeCloud, httpapi.Config{RateLimits: true})
}

func apiKey(t *testing.T, env *apitest.Env, token string) string {
	t.Helper()
	r := env.Do("POST", "/api/v1/api-keys", token, map[string]any{"name": "load", "scopes": []string{"read", "write"}})
	if r.Status != http.StatusCreated {
		t.Fatalf("api key: %d %s", r.Status, r.Body)
	}
	return r.Map(t)["token"].(string)
}

// afterSetup lets the setup's own API requests leave the hour's window, so
// the measured requests start from a full allowance.
func afterSetup(env *apitest.Env) { env.Clock.Advance(time.Hour + time.Second) }

// get sends GET /api/v1/me in-process and returns the recorder.
func get(env *apitest.Env, key string) *httptest.ResponseRecorder {
	return getPath(env, key, "/api/v1/me")
}

func getPath(env *apitest.Env, key, path string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("GET", path, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	w := httptest.NewRecorder()
	env.API.Handler().ServeHTTP(w, req)
	return w
}

func TestRateLimitPerUser(t *testing.T) {
	env := limitEnv(t)
	ws := env.Signup("acme", "Acme", "owner@acme.test")
	key := apiKey(t, env, ws.Token)
	afterSetup(env)
	start := env.Clock.Now()
	var accepted, rejected, falseRejects, badHeaders int
	var acceptTimes []time.Time
	lastRemaining := 1 << 30
	for i := range 1200 {
		w := get(env, key)
		now := env.Clock.Now()
		inWindow := 0
		for _, at := range acceptTimes {
			if now.Sub(at) < time.Hour {
				inWindow++
			}
		}
		remaining, _ := strconv.Atoi(w.Header().Get("RateLimit-Remaining"))
		reset, _ := strconv.Atoi(w.Header().Get("RateLimit-Reset"))
		if w.Header().Get("RateLimit-Limit") != "1000" || reset < 1 || remaining > lastRemaining {
			badHeaders++
		}
		lastRemaining = remaining
		switch w.Code {
		case http.StatusOK:
			accepted++
			acceptTimes = append(acceptTimes, now)
		case http.StatusTooManyRequests:
			rejected++
			if inWindow < 1000 {
				falseRejects++
			}
			ra, _ := strconv.Atoi(w.Header().Get("Retry-After"))
			if ra < 1 || w.Header().Get("Content-Type") != "application/problem+json" {
				badHeaders++
			}
		default:
			t.Fatalf("request %d: %d %s", i, w.Code, w.Body)
		}
		env.Clock.Advance(3 * time.Second) // 1,200 requests over one hour
	}
	if env.Clock.Now().Sub(start) != time.Hour {
		t.Fatalf("the test spanned %s", env.Clock.Now().Sub(start))
	}
	figures.Report(t, "L1", 0, []figures.Figure{
		figures.Eq("accepted", float64(accepted), 1000),
		figures.Eq("rejected", float64(rejected), 200),
		figures.Eq("false_rejects", float64(falseRejects), 0),
		figures.Eq("inconsistent_headers", float64(badHeaders), 0),
	})
}

func TestRateLimitWorkspaceCapAndIndependence(t *testing.T) {
	env := limitEnv(t)
	ws := env.Signup("acme", "Acme", "owner@acme.test")
	if _, err := env.Service.SetPlan(t.Context(), engine.Principal{Operator: true}, "acme", "starter"); err != nil {
		t.Fatal(err)
	}
	keys := []string{apiKey(t, env, ws.Token)}
	for i := range 14 {
		_, tok := env.Join(ws, fmt.Sprintf("user%d", i), fmt.Sprintf("user%d@acme.test", i), "member")
		keys = append(keys, apiKey(t, env, tok))
	}
	other := env.Signup("beta", "Beta", "owner@beta.test")
	otherKey := apiKey(t, env, other.Token)
	afterSetup(env)
	perUser := make([]int, len(keys))
	total := 0
	for round := range 1000 {
		for i, k := range keys {
			if get(env, k).Code == http.StatusOK {
				perUser[i]++
				total++
			}
		}
		env.Clock.Advance(200 * time.Millisecond) // 15,000 requests within the hour
		if round == 999 {
			break
		}
	}
	over := 0
	for _, n := range perUser {
		if n > 1000 {
			over++
		}
	}
	// Workspace A is exhausted; B is untouched by A's limits (L6).
	b429 := 0
	for range 100 {
		if get(env, otherKey).Code == http.StatusTooManyRequests {
			b429++
		}
	}
	figures.Report(t, "L2", 0, []figures.Figure{
		figures.Eq("tenant_accepted", float64(total), 10000),
		figures.Eq("users_above_1000", float64(over), 0),
	})
	figures.Report(t, "L6", 0, []figures.Figure{figures.Eq("B_429", float64(b429), 0)})
}

// TestNoisyNeighbour is the safety part of RELIABILITY T5: workspace A
// (15 API keys) sends three times its workspace's hourly cap, twice each
// key's allowance, a tenth of it as searches of 100 results over its
// tasks, while workspace B goes about its hour; A's counters must refuse
// none of B's requests. (The speed part, B's latency against its solo
// baseline, needs real load and belongs to the soak.)
func TestNoisyNeighbour(t *testing.T) {
	env := limitEnv(t)
	a := env.Signup("noisy", "Noisy", "owner@noisy.test")
	if _, err := env.Service.SetPlan(t.Context(), engine.Principal{Operator: true}, "noisy", "starter"); err != nil {
		t.Fatal(err)
	}
	b := env.Signup("quiet", "Quiet", "owner@quiet.test")
	proj := env.Do("POST", "/api/v1/projects", a.Token, map[string]any{"name": "Load"}).Map(t)["id"].(string)
	for i := range 150 {
		env.Do("POST", "/api/v1/projects/"+proj+"/tasks", a.Token, map[string]any{"title": fmt.Sprintf("noisy task %d", i)})
	}
	aKeys := []string{apiKey(t, env, a.Token)}
	for i := range 14 {
		_, tok := env.Join(a, fmt.Sprintf("user%d", i), fmt.Sprintf("user%d@noisy.test", i), "member")
		aKeys = append(aKeys, apiKey(t, env, tok))
	}
	bKey := apiKey(t, env, b.Token)
	afterSetup(env)
	aRefused, aSearched, largest, bRefused, bServed := 0, 0, 0, 0, 0
	for i := range 30_000 {
		path := "/api/v1/me"
		if i%10 == 0 {
			path = "/api/v1/search?q=noisy&limit=100"
		}
		switch w := getPath(env, aKeys[i%len(aKeys)], path); w.Code {
		case http.StatusTooManyRequests:
			aRefused++
		case http.StatusOK:
			if i%10 == 0 {
				var page struct{ Items []json.RawMessage }
				if err := json.Unmarshal(w.Body.Bytes(), &page); err != nil {
					t.Fatal(err)
				}
				aSearched++
				largest = max(largest, len(page.Items))
			}
		}
		if i%60 == 0 { // B: 500 requests in the same 50 minutes, half its allowance
			switch getPath(env, bKey, []string{"/api/v1/me", "/api/v1/projects", "/api/v1/search?q=quiet"}[i/60%3]).Code {
			case http.StatusTooManyRequests:
				bRefused++
			case http.StatusOK:
				bServed++
			}
		}
		env.Clock.Advance(100 * time.Millisecond)
	}
	figures.Report(t, "T5", 0, []figures.Figure{
		figures.Eq("B_rejected_by_A_limits", float64(bRefused), 0),
		figures.Guard("A_refused", float64(aRefused), 19_000),
		figures.Guard("A_searches_served", float64(aSearched), 900),
		figures.Guard("A_largest_search_page", float64(largest), 100),
		figures.Guard("B_served", float64(bServed), 500),
	})
}

func TestRateLimitWindowBoundary(t *testing.T) {
	env := limitEnv(t)
	ws := env.Signup("acme", "Acme", "owner@acme.test")
	key := apiKey(t, env, ws.Token)
	afterSetup(env)
	var accepts []time.Time
	env.Clock.Advance(3599 * time.Second)
	for range 1000 {
		if get(env, key).Code == http.StatusOK {
			accepts = append(accepts, env.Clock.Now())
		}
	}
	env.Clock.Advance(2 * time.Second)
	for range 1000 {
		if get(env, key).Code == http.StatusOK {
			accepts = append(accepts, env.Clock.Now())
		}
	}
	maxIn := 0
	for i := range accepts {
		n := 0
		for j := i; j < len(accepts) && accepts[j].Sub(accepts[i]) < time.Hour; j++ {
			n++
		}
		maxIn = max(maxIn, n)
	}
	figures.Report(t, "L3", 0, []figures.Figure{
		figures.Le("max_accepted_in_any_rolling_3600s", float64(maxIn), 1000),
		figures.Guard("accepted", float64(len(accepts)), 1000),
	})
}

func TestRateLimitRace(t *testing.T) {
	env := limitEnv(t)
	ws := env.Signup("acme", "Acme", "owner@acme.test")
	key := apiKey(t, env, ws.Token)
	afterSetup(env)
	for range 990 {
		get(env, key)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted := 0
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if get(env, key).Code == http.StatusOK {
				mu.Lock()
				accepted++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	figures.Report(t, "L4", 0, []figures.Figure{figures.Eq("accepted", float64(accepted), 10)})
}

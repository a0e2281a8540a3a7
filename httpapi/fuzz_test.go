package httpapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/danielgtaylor/huma/v2"
	"github.com/teamflow/teamflow/engine"
	"github.com/teamflow/teamflow/httpapi/apitest"
	"github.com/teamflow/teamflow/internal/figures"
)

// leakMarkers are fragments that must never reach a client: stack traces,
// Go source positions, storage internals.
var leakMarkers = []string{"goroutine ", ".go:", "panic", "runtime error", "pebble", "storage:", "engine:"}

// fuzzEnv is a workspace with one of everything, for requests to refer to.
type fuzzEnv struct {
	*apitest.Env
	ws                        apitest.Workspace
	ids                       map[string]string
	refreshToken, inviteToken string
}

func newFuzzEnv(t testing.TB) *fuzzEnv {
	env := apitest.New(t, engine.ModeCloud)
	f := &fuzzEnv{Env: env, ids: map[string]string{}}
	f.ws = env.Signup("fuzz", "Fuzz", "owner@fuzz.test")
	member, _ := env.Join(f.ws, "Mel", "mel@fuzz.test", "member")
	f.ids["member"] = member
	f.ids["project"] = env.Create("/api/v1/projects", f.ws.Token, map[string]any{"name": "Fuzz project"})
	f.ids["task"] = env.Create("/api/v1/projects/"+f.ids["project"]+"/tasks", f.ws.Token, map[string]any{"title": "Fuzz task"})
	f.ids["comment"] = env.Create("/api/v1/tasks/"+f.ids["task"]+"/comments", f.ws.Token, map[string]any{"body": "hello"})
	r := env.Do("POST", "/api/v1/invitations", f.ws.Token, map[string]any{"email": "invitee@fuzz.test"})
	m := r.Map(t)
	f.ids["invitation"], f.inviteToken = m["id"].(string), m["token"].(string)
	r = env.Do("POST", "/api/v1/auth/login", "", map[string]any{"workspace": "fuzz", "email": "owner@fuzz.test", "password": "password-fuzz"})
	f.refreshToken, _ = r.Map(t)["refresh_token"].(string)
	return f
}

// gen makes random and mutated requests.
type gen struct {
	rng *rand.Rand
	f   *fuzzEnv
	reg huma.Registry
}

func (g *gen) pick(xs ...string) string { return xs[g.rng.IntN(len(xs))] }

// param fills a path parameter: usually a real ID, often garbage.
func (g *gen) param(name string) string {
	real := map[string][]string{
		"id":      {g.f.ids["project"], g.f.ids["task"], g.f.ids["comment"], g.f.ids["member"], g.f.ids["invitation"], g.f.inviteToken, "FP-1"},
		"user_id": {g.f.ids["member"], g.f.ws.OwnerID},
		"slug":    {"fuzz", "nope"},
	}[name]
	if g.rng.IntN(10) < 6 && len(real) > 0 {
		return real[g.rng.IntN(len(real))]
	}
	return g.pick("", "x", "0", "-1", "00000000-0000-0000-0000-000000000000", "01a2b3c4-0000-7000-8000-000000000000",
		"..", "%2e%2e%2f", "%00", strings.Repeat("a", 300), "ÿÿÿ", "WEB-999999999999999", "'; DROP TABLE", "%ff%fe")
}

// value is a random JSON value, sometimes a nasty one.
func (g *gen) value(depth int) any {
	switch g.rng.IntN(14) {
	case 0:
		return nil
	case 1:
		return g.rng.IntN(2) == 0
	case 2:
		return g.pick("1e999", "-0", "9223372036854775808", "1.5", "-1")
	case 3:
		return strings.Repeat("x", g.pick2(0, 1, 100, 101, 120, 121, 500, 501, 4096, 65536, 65537))
	case 4:
		return "\x00nul\x00"
	case 5:
		return "<script>alert(1)</script>[x](javascript:alert(1)) @[Bob](user:" + g.f.ids["member"] + ")"
	case 6:
		if depth < 3 {
			return []any{g.value(depth + 1), g.value(depth + 1)}
		}
		return []any{}
	case 7:
		if depth < 3 {
			return map[string]any{g.pick("a", "id", "role", "tenant_id"): g.value(depth + 1)}
		}
		return map[string]any{}
	case 8:
		return g.f.ids[g.pick("project", "task", "comment", "member", "invitation")]
	case 9:
		return g.pick("owner", "admin", "member", "guest", "lead", "contributor", "observer", "done", "To do", "In progress")
	case 10:
		return g.pick("2026-12-01", "2026-13-45", "2026-12-01T10:00:00+09:00", "yesterday")
	case 11:
		return float64(g.rng.IntN(1000) - 500)
	case 12:
		return g.pick("Europe/Berlin", "Mars/Olympus", "#ff00aa", "#zzz", "https://x.test/logo.png", "javascript:alert(1)")
	}
	return fmt.Sprintf("v%d", g.rng.IntN(100))
}

func (g *gen) pick2(xs ...int) int { return xs[g.rng.IntN(len(xs))] }

var fieldNames = []string{
	"name", "title", "description", "body", "status", "assignees", "due", "priority", "tags", "parent_id", "move",
	"role", "email", "password", "current_password", "new_password", "workspace", "workspace_name", "workspace_slug",
	"slug", "timezone", "work_hours", "branding", "notifications", "visibility", "key", "statuses", "token",
	"refresh_token", "session_cookie", "after_id", "plan", "id", "tenant_id", "created_by", "version",
}

// schemaValue builds a value that satisfies schema s (resolving $refs).
func (g *gen) schemaValue(s *huma.Schema, depth int) any {
	if s == nil {
		return nil
	}
	if s.Ref != "" {
		s = g.reg.SchemaFromRef(s.Ref)
	}
	if len(s.Enum) > 0 {
		return s.Enum[g.rng.IntN(len(s.Enum))]
	}
	switch s.Type {
	case huma.TypeBoolean:
		return g.rng.IntN(2) == 0
	case huma.TypeInteger, huma.TypeNumber:
		lo, hi := 0.0, 100.0
		if s.Minimum != nil {
			lo = *s.Minimum
		}
		if s.Maximum != nil {
			hi = *s.Maximum
		}
		return lo + float64(g.rng.IntN(int(hi-lo)+1))
	case huma.TypeArray:
		n := g.rng.IntN(3)
		if s.MaxItems != nil && n > *s.MaxItems {
			n = *s.MaxItems
		}
		out := make([]any, n)
		for i := range out {
			out[i] = g.schemaValue(s.Items, depth+1)
		}
		return out
	case huma.TypeObject:
		out := map[string]any{}
		if depth > 4 {
			return out
		}
		for name, ps := range s.Properties {
			if slices.Contains(s.Required, name) || g.rng.IntN(2) == 0 {
				out[name] = g.schemaValue(ps, depth+1)
			}
		}
		return out
	}
	// A string: sometimes a meaningful one, within the length bounds.
	v := g.pick("Alpha", "Release plan", "2026-12-01", "09:00", "Europe/Berlin", "#4f46e5", "owner@fuzz.test",
		"password-fuzz", g.f.ids["member"], g.f.ids["task"], g.f.ids["project"], "fuzz", "ui", "17:30")
	if s.MinLength != nil && len(v) < *s.MinLength {
		v += strings.Repeat("x", *s.MinLength-len(v))
	}
	if s.MaxLength != nil && len(v) > *s.MaxLength {
		v = v[:*s.MaxLength]
	}
	return v
}

// body is a request body for op: a schema-valid one (about 30%), one
// mutated from it, or broken bytes.
func (g *gen) body(op *huma.Operation) []byte {
	var schema *huma.Schema
	if op != nil && op.RequestBody != nil && op.RequestBody.Content["application/json"] != nil {
		schema = op.RequestBody.Content["application/json"].Schema
	}
	if schema != nil && g.rng.IntN(10) < 5 {
		v, _ := g.schemaValue(schema, 0).(map[string]any)
		if g.rng.IntN(10) < 4 && v != nil {
			// Mutate one field: wrong type, null, nasty string, or an unknown field.
			keys := slices.Sorted(maps.Keys(v))
			if len(keys) > 0 && g.rng.IntN(3) > 0 {
				v[keys[g.rng.IntN(len(keys))]] = g.value(0)
			} else {
				v[fieldNames[g.rng.IntN(len(fieldNames))]] = g.value(0)
			}
		}
		b, _ := json.Marshal(v)
		return b
	}
	switch g.rng.IntN(12) {
	case 0:
		return nil
	case 1:
		return []byte(g.pick("{", "[]", "null", "\"x\"", "{\"a\":}", "{}}", "not json", "\xff\xfe{}", `{"title":"a","title":"b"}`))
	case 2:
		return append([]byte(strings.Repeat("[", 10000)), []byte(strings.Repeat("]", 10000))...)
	case 3:
		return bytes.Repeat([]byte("a"), 1<<20+1)
	case 4:
		b, _ := json.Marshal(map[string]any{"title": strings.Repeat("é", 1<<19)})
		return b
	}
	obj := map[string]any{}
	for range g.rng.IntN(5) + 1 {
		obj[fieldNames[g.rng.IntN(len(fieldNames))]] = g.value(0)
	}
	b, _ := json.Marshal(obj)
	return b
}

func (g *gen) query() string {
	if g.rng.IntN(3) > 0 {
		return ""
	}
	keys := []string{"limit", "cursor", "sort", "status", "assignee", "tag", "due_before", "due_after", "parent_id"}
	vals := []string{"-1", "0", "201", "1e99", "abc", "50", "created", "-due", "bogus", "me", "none", "%ff", "AAAA", "2026-01-01", strings.Repeat("z", 5000)}
	var q []string
	for range g.rng.IntN(3) + 1 {
		q = append(q, keys[g.rng.IntN(len(keys))]+"="+vals[g.rng.IntN(len(vals))])
	}
	return "?" + strings.Join(q, "&")
}

// fillReal replaces :params in a gin path with real identifiers only.
func (g *gen) fillReal(path string) string {
	real := map[string]string{
		"id": g.f.ids["task"], "user_id": g.f.ids["member"], "slug": "fuzz",
	}
	parts := strings.Split(path, "/")
	for i, p := range parts {
		if strings.HasPrefix(p, ":") {
			parts[i] = real[p[1:]]
		}
	}
	return strings.Join(parts, "/")
}

// fill replaces :params in a gin path.
func (g *gen) fill(path string) string {
	parts := strings.Split(path, "/")
	for i, p := range parts {
		if strings.HasPrefix(p, ":") {
			parts[i] = g.param(p[1:])
		}
	}
	return strings.Join(parts, "/")
}

// TestHTTPFuzzPerRoute sends generated and mutated requests to every route
// (RELIABILITY F1, A12): no 5xx, no recovered panic, every error is
// problem+json, nothing internal leaks, and a refused write changes nothing.
func TestHTTPFuzzPerRoute(t *testing.T) {
	perRoute := 1000
	if s := os.Getenv("F1_PER_ROUTE"); s != "" {
		perRoute, _ = strconv.Atoi(s)
	} else if testing.Short() {
		perRoute = 100
	}
	seed := figures.Seed(t)
	f := newFuzzEnv(t)
	oapi := f.API.OpenAPI()
	g := &gen{rng: rand.New(rand.NewPCG(uint64(seed), 2)), f: f, reg: oapi.Components.Schemas}
	h := f.API.Handler()
	tokens := []string{f.ws.Token, f.ws.Token, f.ws.Token, "", "garbage", "Bearer"}
	var total, accepted, fivexx, notProblem, leaks, halfWrites, mutating4xx int
	for _, rt := range f.API.Routes() {
		if rt.Path == "/metrics" || strings.HasPrefix(rt.Path, "/api/v1/openapi") {
			continue // static documents, no input
		}
		for range perRoute {
			path := g.fill(rt.Path) + g.query()
			var body []byte
			if rt.Method != http.MethodGet {
				body = g.body(operation(oapi, rt.Method, rt.Path))
			}
			req := httptest.NewRequest(rt.Method, "http://teamflow.test/", bytes.NewReader(body))
			req.URL.Path, req.URL.RawQuery, _ = strings.Cut(path, "?")
			req.URL.RawPath = ""
			switch g.rng.IntN(8) {
			case 0:
				req.Header.Set("Content-Type", g.pick("text/plain", "application/xml", "multipart/form-data; boundary=x", ""))
			default:
				req.Header.Set("Content-Type", "application/json")
			}
			if g.rng.IntN(10) == 0 {
				req.Header.Set("If-Match", g.pick(`"1"`, "W/\"2\"", "*", "garbage", `"99999999999999999999"`))
			}
			if tok := tokens[g.rng.IntN(len(tokens))]; tok != "" {
				req.Header.Set("Authorization", "Bearer "+tok)
			}
			// Every command applied in the workspace advances its event
			// sequence: comparing it tells whether a request wrote, in constant
			// time (hashing the keyspace, which grows with the audit trail,
			// made the run quadratic).
			var before uint64
			mutating := rt.Method != http.MethodGet
			if mutating {
				before = f.eventSeq(t)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			total++
			status, resp := w.Code, w.Body.String()
			if status < 300 {
				accepted++
			}
			if status >= 500 {
				fivexx++
				t.Errorf("%s %s: %d %s", rt.Method, path, status, truncate(resp))
			}
			var p struct {
				Code   string `json:"code"`
				Status int    `json:"status"`
			}
			if status >= 400 {
				ct := w.Header().Get("Content-Type")
				if ct != "application/problem+json" || json.Unmarshal(w.Body.Bytes(), &p) != nil || p.Code == "" || p.Status != status {
					notProblem++
					t.Errorf("%s %s: %d not problem+json (%s): %s", rt.Method, path, status, ct, truncate(resp))
				}
			}
			for _, m := range leakMarkers {
				if strings.Contains(resp, m) && !strings.Contains(rt.Path, "openapi") {
					leaks++
					t.Errorf("%s %s: answer leaks %q: %s", rt.Method, path, m, truncate(resp))
				}
			}
			// A refused write must leave no trace — except where the refusal
			// itself is recorded on purpose: a reused refresh token revokes
			// its session, failed sign-ins and codes are counted (the
			// throttle) and audited, and so are refused tokens their
			// workspace issued (a spent invitation or link); so is a
			// signed-in account refused by its role, scope or plan
			// (authz.denied).
			if mutating && status >= 400 && status < 500 && !recordsRefusals[rt.Path] && !(status == http.StatusForbidden && auditedDenials[p.Code]) {
				mutating4xx++
				if after := f.eventSeq(t); after != before {
					halfWrites++
					t.Errorf("%s %s answered %d but changed the workspace: %s", rt.Method, path, status, truncate(resp))
				}
			}
		}
	}
	figures.Report(t, "F1", seed, []figures.Figure{
		figures.Eq("status_5xx", float64(fivexx), 0),
		figures.Eq("panics_recovered", float64(f.API.Panics()), 0),
		figures.Eq("non_problem_json_4xx", float64(notProblem), 0),
		figures.Eq("stack_leaks", float64(leaks), 0),
		figures.Eq("half_writes", float64(halfWrites), 0),
		figures.Guard("requests", float64(total), float64(perRoute*40)),
		figures.Guard("mutating_4xx_checked", float64(mutating4xx), float64(perRoute)),
		// Valid requests must get through too, or the fuzz only tests the validator.
		figures.Guard("accepted_2xx", float64(accepted), float64(perRoute*5)),
	})
	// A12 (error hygiene) is measured over the same answers.
	figures.Report(t, "A12", seed, []figures.Figure{
		figures.Eq("bodies_not_problem_json", float64(notProblem), 0),
		figures.Eq("stack_or_internal_leak", float64(leaks), 0),
		figures.Guard("answers_checked", float64(total), float64(perRoute*40)),
	})
}

// operation finds the OpenAPI operation of a gin route.
func operation(oapi *huma.OpenAPI, method, ginPath string) *huma.Operation {
	parts := strings.Split(ginPath, "/")
	for i, p := range parts {
		if strings.HasPrefix(p, ":") {
			parts[i] = "{" + p[1:] + "}"
		}
	}
	item := oapi.Paths[strings.Join(parts, "/")]
	if item == nil {
		return nil
	}
	switch method {
	case http.MethodPost:
		return item.Post
	case http.MethodPut:
		return item.Put
	case http.MethodPatch:
		return item.Patch
	case http.MethodDelete:
		return item.Delete
	}
	return item.Get
}

func (f *fuzzEnv) eventSeq(t *testing.T) uint64 {
	t.Helper()
	n, err := f.Service.EventSeq(f.ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// auditedDenials are the refusal codes recorded in the audit trail
// (engine.AuditDenied): such a 403 writes its audit entry on purpose.
var auditedDenials = map[string]bool{"forbidden": true, "plan_feature_unavailable": true, "insufficient_scope": true, "mfa_enrolment_required": true}

// recordsRefusals are the routes whose 4xx answers write on purpose: a
// failed sign-in, and a refused token its workspace issued (spent, expired,
// revoked), are audited in that workspace (docs/AUDIT.md).
var recordsRefusals = map[string]bool{
	"/api/v1/auth/refresh": true, "/api/v1/auth/login": true, "/api/v1/auth/mfa": true,
	"/api/v1/invitations/:id/accept": true, "/api/v1/auth/magic-link/verify": true,
	"/api/v1/auth/password-reset/confirm": true, "/api/v1/auth/verify-email": true,
}

func truncate(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}

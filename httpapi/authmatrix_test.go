package httpapi_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/teamflow/teamflow/engine"
	"github.com/teamflow/teamflow/httpapi/apitest"
	"github.com/teamflow/teamflow/internal/figures"
	"github.com/teamflow/teamflow/storage"
)

// sampledRoutes picks n GET routes that need a credential, spread over the
// route table, with path parameters filled by a random ID.
func sampledRoutes(env *apitest.Env, n int) []string {
	public := []string{"/healthz", "/readyz", "/metrics", "/api/v1/openapi", "/api/v1/plans", "/api/v1/setup", "/api/v1/ws"}
	var paths []string
	for _, rt := range env.API.Routes() {
		if rt.Method != http.MethodGet || !strings.HasPrefix(rt.Path, "/api/v1/") || slicesHasPrefix(public, rt.Path) {
			continue
		}
		var parts []string
		for _, p := range strings.Split(rt.Path, "/") {
			if strings.HasPrefix(p, ":") {
				p = "0193a0c4-8a70-7b3e-9c1d-2f4e6a8b0c1d"
			}
			parts = append(parts, p)
		}
		paths = append(paths, strings.Join(parts, "/"))
	}
	sort.Strings(paths)
	if len(paths) <= n {
		return paths
	}
	out := make([]string, 0, n)
	for i := range n {
		out = append(out, paths[i*len(paths)/n])
	}
	return out
}

func slicesHasPrefix(prefixes []string, s string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// signingSeed reads the server's current Ed25519 signing key from the
// platform keyspace, so the matrix can forge tokens whose only fault is
// the one under test (a white-box view of engine's "signkey" records).
func signingSeed(t *testing.T, env *apitest.Env) (kid string, key ed25519.PrivateKey) {
	t.Helper()
	var rec struct {
		KID  string `json:"kid"`
		Seed []byte `json:"seed"`
	}
	err := env.Store.Sys().Scan(storage.K("signkey"), storage.ScanOptions{}, func(_ storage.Key, r storage.Record) error {
		return json.Unmarshal(r.Value, &rec)
	})
	if err != nil || rec.KID == "" {
		t.Fatalf("no signing key: %v", err)
	}
	return rec.KID, ed25519.NewKeyFromSeed(rec.Seed)
}

func b64(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

// TestJWTMatrix is figure A1: mutants of a valid access token, each sent
// to 20 sampled routes, are never accepted; a forged token that is valid
// in every respect (the positive control) is, so the matrix can fail.
func TestJWTMatrix(t *testing.T) {
	env := apitest.New(t, engine.ModeCloud)
	a := env.Signup("alpha", "Alpha", "owner@alpha.test")
	b := env.Signup("beta", "Beta", "owner@beta.test")
	memberID, _ := env.Join(a, "Mia", "mia@alpha.test", "member")
	kid, key := signingSeed(t, env)
	parts := strings.Split(a.Token, ".")
	if len(parts) != 3 {
		t.Fatalf("access token is not a JWS: %q", a.Token)
	}
	var header, claims map[string]any
	for i, dst := range []*map[string]any{&header, &claims} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil || json.Unmarshal(raw, dst) != nil {
			t.Fatalf("token part %d: %v", i, err)
		}
	}
	now := env.Clock.Now()
	// with returns a copy of m with the changes (nil deletes).
	with := func(m map[string]any, kv ...any) map[string]any {
		out := map[string]any{}
		for k, v := range m {
			out[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(out, kv[i].(string))
			} else {
				out[kv[i].(string)] = kv[i+1]
			}
		}
		return out
	}
	sign := func(m jwt.SigningMethod, k any, h, c map[string]any) string {
		tok := jwt.NewWithClaims(m, jwt.MapClaims(c))
		tok.Header = h
		s, err := tok.SignedString(k)
		if err != nil {
			t.Fatalf("sign %s: %v", m.Alg(), err)
		}
		return s
	}
	resign := func(h, c map[string]any) string { return sign(jwt.SigningMethodEdDSA, key, h, c) }
	_, attacker, _ := ed25519.GenerateKey(rand.Reader)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub := key.Public().(ed25519.PublicKey)
	attackerJWK := map[string]any{"kty": "OKP", "crv": "Ed25519", "x": base64.RawURLEncoding.EncodeToString(attacker.Public().(ed25519.PublicKey))}
	flip := func(s string) string {
		i := len(s) / 2
		c := byte('A')
		if s[i] == 'A' {
			c = 'B'
		}
		return s[:i] + string(c) + s[i+1:]
	}
	sec := func(d time.Duration) float64 { return float64(now.Add(d).Unix()) }

	mutants := map[string]string{
		"alg none":                        b64(with(header, "alg", "none")) + "." + parts[1] + ".",
		"alg none, no dot":                b64(with(header, "alg", "none")) + "." + parts[1],
		"HS256 keyed with the public key": sign(jwt.SigningMethodHS256, []byte(pub), with(header, "alg", "HS256"), claims),
		"ES256 by an attacker, real kid":  sign(jwt.SigningMethodES256, ecKey, with(header, "alg", "ES256"), claims),
		"bad signature":                   parts[0] + "." + parts[1] + "." + flip(parts[2]),
		"claims changed, old signature":   parts[0] + "." + b64(with(claims, "sub", memberID)) + "." + parts[2],
		"tenant changed, old signature":   parts[0] + "." + b64(with(claims, "tid", b.ID)) + "." + parts[2],
		"exp just past":                   resign(header, with(claims, "exp", sec(-time.Second), "nbf", sec(-time.Minute))),
		"exp long past":                   resign(header, with(claims, "exp", sec(-48*time.Hour), "nbf", sec(-49*time.Hour), "iat", sec(-49*time.Hour))),
		"no exp":                          resign(header, with(claims, "exp", nil)),
		"nbf just ahead":                  resign(header, with(claims, "nbf", sec(time.Second), "exp", sec(time.Hour))),
		"wrong aud":                       resign(header, with(claims, "aud", []string{"another-api"})),
		"no aud":                          resign(header, with(claims, "aud", nil)),
		"wrong iss":                       resign(header, with(claims, "iss", "https://attacker.test")),
		"wrong typ":                       resign(with(header, "typ", "JWT"), claims),
		"refresh used as access":          resign(header, with(claims, "token_use", "refresh")),
		"ID token used as access":         resign(header, with(claims, "token_use", "id")),
		"unknown kid":                     resign(with(header, "kid", "0193a0c4-8a70-7b3e-9c1d-2f4e6a8b0c1d"), claims),
		"no kid":                          resign(with(header, "kid", nil), claims),
		"jku to an attacker key":          sign(jwt.SigningMethodEdDSA, attacker, with(header, "jku", "https://attacker.test/jwks.json", "kid", "attacker"), claims),
		"x5u to an attacker key":          sign(jwt.SigningMethodEdDSA, attacker, with(header, "x5u", "https://attacker.test/cert.pem", "kid", "attacker"), claims),
		"embedded jwk, real kid":          sign(jwt.SigningMethodEdDSA, attacker, with(header, "jwk", attackerJWK), claims),
		"another workspace, real key":     resign(header, with(claims, "tid", b.ID)),
		"another user, real key":          resign(header, with(claims, "sub", memberID)),
		"unknown session, real key":       resign(header, with(claims, "sid", "0193a0c4-8a70-7b3e-9c1d-2f4e6a8b0c1d")),
		"empty":                           "",
		"garbage":                         "not.a.token",
	}
	if kid == "" {
		t.Fatal("no kid")
	}
	routes := sampledRoutes(env, 20)
	if len(routes) < 20 {
		t.Fatalf("only %d routes to sample", len(routes))
	}
	accepted, requests := 0, 0
	for name, tok := range mutants {
		for _, path := range routes {
			r := env.Do("GET", path, "", nil, "Authorization", "Bearer "+tok)
			requests++
			if r.Status != http.StatusUnauthorized {
				accepted++
				t.Errorf("%s accepted on %s: %d %s", name, path, r.Status, r.Body)
			}
		}
	}
	// Positive controls: the real token and a forged one valid at the
	// boundaries (nbf a second ago, exp a second ahead) get past auth.
	controls := map[string]string{
		"issued":         a.Token,
		"boundary-valid": resign(header, with(claims, "nbf", sec(-time.Second), "exp", sec(time.Second))),
	}
	rejectedControls := 0
	for name, tok := range controls {
		for _, path := range routes {
			if r := env.Do("GET", path, tok, nil); r.Status == http.StatusUnauthorized {
				rejectedControls++
				t.Errorf("control %s refused on %s: %s", name, path, r.Body)
			}
		}
	}
	figures.Report(t, "A1", 0, []figures.Figure{
		figures.Eq("accepted", float64(accepted), 0),
		figures.Eq("controls_refused", float64(rejectedControls), 0),
		figures.Guard("mutants", float64(len(mutants)), 25),
		figures.Guard("requests", float64(requests), 500),
	})
}

// TestRefreshRotation is figure A2: a refresh token works once; reusing a
// spent one is refused and revokes its whole family; of 10 parallel uses
// of one token exactly one succeeds.
func TestRefreshRotation(t *testing.T) {
	env := apitest.New(t, engine.ModeCloud)
	env.Signup("alpha", "Alpha", "owner@alpha.test")
	login := func() (access, refresh string) {
		t.Helper()
		r := env.Do("POST", "/api/v1/auth/login", "", map[string]any{"workspace": "alpha", "email": "owner@alpha.test", "password": "password-alpha"})
		if r.Status != http.StatusOK {
			t.Fatalf("login: %d %s", r.Status, r.Body)
		}
		m := r.Map(t)
		return m["access_token"].(string), m["refresh_token"].(string)
	}
	refresh := func(tok string) *apitest.Response {
		return env.Do("POST", "/api/v1/auth/refresh", "", map[string]any{"refresh_token": tok})
	}
	_, r0 := login()
	first := refresh(r0)
	if first.Status != http.StatusOK {
		t.Fatalf("refresh: %d %s", first.Status, first.Body)
	}
	a1, r1 := first.Map(t)["access_token"].(string), first.Map(t)["refresh_token"].(string)
	reuseAccepted, familyAlive := 0, 0
	if r := refresh(r0); r.Status != http.StatusUnauthorized {
		reuseAccepted++
		t.Errorf("spent token reused: %d %s", r.Status, r.Body)
	}
	if r := refresh(r1); r.Status != http.StatusUnauthorized {
		familyAlive++
		t.Errorf("the family's newest refresh token survived the reuse: %d", r.Status)
	}
	if r := env.Do("GET", "/api/v1/me", a1, nil); r.Status != http.StatusUnauthorized {
		familyAlive++
		t.Errorf("the family's access token survived the reuse: %d", r.Status)
	}
	// Another session is untouched by that family's revocation.
	other, _ := login()
	if r := env.Do("GET", "/api/v1/me", other, nil); r.Status != http.StatusOK {
		t.Errorf("an unrelated session was revoked: %d", r.Status)
	}

	_, shared := login()
	var wg sync.WaitGroup
	var mu sync.Mutex
	successes := 0
	for range 10 {
		wg.Go(func() {
			req, _ := http.NewRequest("POST", env.URL+"/api/v1/auth/refresh", strings.NewReader(`{"refresh_token":"`+shared+`"}`))
			req.Header.Set("Content-Type", "application/json")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				mu.Lock()
				successes++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	figures.Report(t, "A2", 0, []figures.Figure{
		figures.Eq("reuse_accepted", float64(reuseAccepted), 0),
		figures.Eq("family_alive_after_reuse", float64(familyAlive), 0),
		figures.Eq("parallel_successes", float64(successes), 1),
	})
}

// TestMassAssignment is figure A11: PATCH bodies that carry role, tenant,
// owner, creator, plan or ID fields, sent by every role, change neither
// privileges nor immutable fields.
func TestMassAssignment(t *testing.T) {
	env := apitest.New(t, engine.ModeCloud)
	a := env.Signup("alpha", "Alpha", "owner@alpha.test")
	b := env.Signup("beta", "Beta", "owner@beta.test")
	memberID, member := env.Join(a, "Mia", "mia@alpha.test", "member")
	guestID, guest := env.Join(a, "Gus", "gus@alpha.test", "guest")
	project := env.Create("/api/v1/projects", a.Token, map[string]any{"name": "Site", "key": "WEB"})
	env.Do("PUT", "/api/v1/projects/"+project+"/members/"+guestID, a.Token, map[string]any{"role": "contributor"})
	env.Do("PUT", "/api/v1/projects/"+project+"/members/"+memberID, a.Token, map[string]any{"role": "contributor"})
	task := env.Create("/api/v1/projects/"+project+"/tasks", a.Token, map[string]any{"title": "Launch"})
	comment := env.Create("/api/v1/tasks/"+task+"/comments", member, map[string]any{"body": "on it"})
	smuggled := map[string]any{
		"role": "owner", "tenant_id": b.ID, "tid": b.ID, "workspace_id": b.ID, "owner": memberID, "owner_id": memberID,
		"created_by": guestID, "plan": "enterprise", "id": "0193a0c4-8a70-7b3e-9c1d-2f4e6a8b0c1d",
		"project_id": "0193a0c4-8a70-7b3e-9c1d-2f4e6a8b0c1e", "key": "PWN-1", "email": "pwned@beta.test", "status": "active",
	}
	// What must not change, read as the Owner.
	snapshot := func() map[string]string {
		out := map[string]string{}
		read := func(name, path string, fields ...string) {
			m := env.Do("GET", path, a.Token, nil).Map(t)
			for _, f := range fields {
				out[name+"."+f] = func() string { b, _ := json.Marshal(m[f]); return string(b) }()
			}
		}
		read("member", "/api/v1/members/"+memberID, "id", "role", "email")
		read("guest", "/api/v1/members/"+guestID, "id", "role", "email")
		read("plan", "/api/v1/workspace/plan", "plan", "id", "name")
		read("workspace", "/api/v1/workspace", "id", "slug")
		read("project", "/api/v1/projects/"+project, "id", "key", "created_by")
		read("task", "/api/v1/tasks/"+task, "id", "key", "project_id", "created_by")
		read("comment", "/api/v1/tasks/"+task+"/comments", "items")
		return out
	}
	before := snapshot()
	targets := []string{
		"/api/v1/me", "/api/v1/workspace", "/api/v1/members/" + memberID, "/api/v1/members/" + guestID,
		"/api/v1/projects/" + project, "/api/v1/tasks/" + task, "/api/v1/comments/" + comment,
	}
	roles := map[string]string{"owner": a.Token, "member": member, "guest": guest}
	requests, fivexx := 0, 0
	for role, tok := range roles {
		for _, path := range targets {
			for field, v := range smuggled {
				if role == "owner" && field == "role" && strings.HasPrefix(path, "/api/v1/members/") {
					continue // the Owner changing a member's role is the route's purpose
				}
				// One smuggled field at a time, next to a harmless change, so a
				// route that ignores unknown fields still applies the request.
				body := map[string]any{field: v}
				r := env.Do("PATCH", path, tok, body)
				requests++
				if r.Status >= 500 {
					fivexx++
					t.Errorf("PATCH %s {%s} as %s: %d %s", path, field, role, r.Status, r.Body)
				}
			}
		}
	}
	after := snapshot()
	privilege, immutable := 0, 0
	for k, v := range before {
		if after[k] == v {
			continue
		}
		if strings.HasSuffix(k, ".role") || strings.HasPrefix(k, "plan.") {
			privilege++
		} else {
			immutable++
		}
		t.Errorf("%s changed: %s → %s", k, v, after[k])
	}
	figures.Report(t, "A11", 0, []figures.Figure{
		figures.Eq("privilege_changes_by_unprivileged", float64(privilege), 0),
		figures.Eq("immutable_fields_changed", float64(immutable), 0),
		figures.Eq("status_5xx", float64(fivexx), 0),
		figures.Guard("requests", float64(requests), 200),
	})
}

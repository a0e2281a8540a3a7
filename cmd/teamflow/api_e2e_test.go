//go:build e2e

package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var setupLinkRE = regexp.MustCompile(`(http://\S+/setup\?token=(tfs_\S+))`)

func TestFirstRunSetupLinkWorksOnce(t *testing.T) {
	dir := t.TempDir()
	s := start(t, dir)
	m := setupLinkRE.FindStringSubmatch(s.Stdout())
	if m == nil {
		t.Fatalf("no setup link printed on first start:\n%s", s.Stdout())
	}
	token := m[2]
	c := newClient(t, s.URL)
	if st := want(t, c.do("GET", "/api/v1/setup", nil), 200, "setup status"); st["needed"] != true {
		t.Fatalf("setup not open: %v", st)
	}
	body := map[string]any{"token": token, "workspace_name": "Acme", "workspace_slug": "acme", "name": "Ann Owner", "email": "ann@acme.test", "password": "correct horse"}
	created := want(t, c.do("POST", "/api/v1/setup", body), http.StatusCreated, "setup")
	if created["owner"].(map[string]any)["role"] != "owner" {
		t.Fatalf("setup did not make an Owner: %v", created)
	}
	body["workspace_slug"] = "acme2"
	if p := want(t, c.do("POST", "/api/v1/setup", body), http.StatusUnauthorized, "second setup"); p["code"] != "invalid_setup_token" {
		t.Fatalf("reused setup token: %v", p)
	}
	// Signup is for cloud mode only.
	if p := want(t, c.do("POST", "/api/v1/signup", map[string]any{"workspace_name": "X", "workspace_slug": "xx-x", "name": "X", "email": "x@x.test", "password": "x-Unlisted-passw0rd"}), http.StatusForbidden, "signup on-prem"); p["code"] != "signup_disabled" {
		t.Fatalf("signup on-prem: %v", p)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	// After a restart: no new link, the Owner signs in.
	s2 := start(t, dir)
	if strings.Contains(s2.Stdout(), "/setup?token=") {
		t.Fatalf("setup link printed again after setup:\n%s", s2.Stdout())
	}
	c2 := newClient(t, s2.URL)
	want(t, c2.do("POST", "/api/v1/auth/login", map[string]any{"workspace": "acme", "email": "ann@acme.test", "password": "correct horse"}), 200, "login after restart")
}

func TestAPIContract(t *testing.T) {
	s := start(t, t.TempDir(), "--mode", "cloud", "--min-index-wait", "300ms")
	c := signup(t, s, "acme")
	proj := want(t, c.do("POST", "/api/v1/projects", map[string]any{"name": "Web Relaunch", "key": "WEB"}), 201, "project")
	pid := proj["id"].(string)

	// Created resources answer 201 with id, an ETag and the applied index.
	r := c.do("POST", "/api/v1/projects/"+pid+"/tasks", map[string]any{"title": "Write copy", "due": "2026-12-01", "tags": []string{"Content"}, "priority": "high"})
	task := want(t, r, 201, "task")
	if task["key"] != "WEB-1" || r.Header.Get("ETag") != `"1"` {
		t.Fatalf("task key %v etag %q", task["key"], r.Header.Get("ETag"))
	}
	idx, err := strconv.ParseUint(r.Header.Get("TeamFlow-Applied-Index"), 10, 64)
	if err != nil || idx == 0 {
		t.Fatalf("TeamFlow-Applied-Index %q", r.Header.Get("TeamFlow-Applied-Index"))
	}
	tid := task["id"].(string)

	// Read-your-writes: a read at the write's index answers; one far ahead
	// waits, then says so.
	want(t, c.do("GET", "/api/v1/tasks/"+tid, nil, "TeamFlow-Min-Index", strconv.FormatUint(idx, 10)), 200, "min index reached")
	if p := want(t, c.do("GET", "/api/v1/tasks/"+tid, nil, "TeamFlow-Min-Index", strconv.FormatUint(idx+1_000_000, 10)), 503, "min index ahead"); p["code"] != "index_not_reached" {
		t.Fatalf("min index: %v", p)
	}

	// Compare-and-set: PATCH with a stale If-Match is 412 and changes nothing.
	want(t, c.do("PATCH", "/api/v1/tasks/"+tid, map[string]any{"title": "Write the copy"}, "If-Match", `"1"`), 200, "patch with current version")
	if p := want(t, c.do("PATCH", "/api/v1/tasks/"+tid, map[string]any{"title": "lost update"}, "If-Match", `"1"`), 412, "stale patch"); p["code"] != "precondition_failed" {
		t.Fatalf("stale patch: %v", p)
	}
	if got := want(t, c.do("GET", "/api/v1/tasks/"+tid, nil), 200, "get"); got["title"] != "Write the copy" || got["version"].(float64) != 2 {
		t.Fatalf("after stale patch: %v", got)
	}
	if p := want(t, c.do("DELETE", "/api/v1/tasks/"+tid, nil, "If-Match", `"1"`), 412, "stale delete"); p["code"] != "precondition_failed" {
		t.Fatalf("stale delete: %v", p)
	}

	// Status by name, filters and cursor pagination.
	want(t, c.do("PATCH", "/api/v1/tasks/"+tid, map[string]any{"status": "Done"}), 200, "status by name")
	for i := range 7 {
		want(t, c.do("POST", "/api/v1/projects/"+pid+"/tasks", map[string]any{"title": fmt.Sprintf("Task %d", i), "tags": []string{"bulk"}}), 201, "bulk task")
	}
	var seen []string
	cursor := ""
	for page := 0; ; page++ {
		l := want(t, c.do("GET", "/api/v1/projects/"+pid+"/tasks?tag=bulk&limit=3&sort=-created&cursor="+url.QueryEscape(cursor), nil), 200, "list")
		for _, it := range l["items"].([]any) {
			seen = append(seen, it.(map[string]any)["title"].(string))
		}
		cursor, _ = l["next_cursor"].(string)
		if cursor == "" {
			break
		}
		if page > 5 {
			t.Fatal("pagination does not end")
		}
	}
	if fmt.Sprint(seen) != "[Task 6 Task 5 Task 4 Task 3 Task 2 Task 1 Task 0]" {
		t.Fatalf("paged list %v", seen)
	}
	done := want(t, c.do("GET", "/api/v1/projects/"+pid+"/tasks?status=Done", nil), 200, "done filter")
	if n := len(done["items"].([]any)); n != 1 {
		t.Fatalf("status filter gave %d tasks", n)
	}
	if p := want(t, c.do("GET", "/api/v1/projects/"+pid+"/tasks?limit=500", nil), 422, "limit too big"); p["code"] != "validation_failed" {
		t.Fatalf("limit 500: %v", p)
	}
	if p := want(t, c.do("GET", "/api/v1/projects/"+pid+"/tasks?cursor=%21%21", nil), 422, "bad cursor"); p["code"] != "invalid_cursor" {
		t.Fatalf("bad cursor: %v", p)
	}

	// JSON bodies over 1 MiB are refused with a problem, not a 500.
	big := []byte(`{"title":"` + strings.Repeat("a", 1<<20) + `"}`)
	r = c.do("POST", "/api/v1/projects/"+pid+"/tasks", big)
	if p := want(t, r, http.StatusRequestEntityTooLarge, "1 MiB body"); p["code"] != "body_too_large" || r.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("big body: %v %s", p, r.Header.Get("Content-Type"))
	}

	// Comments with a mention, rendered and sanitized.
	me := want(t, c.do("GET", "/api/v1/me", nil), 200, "me")
	body := fmt.Sprintf("Looks good @[%s](user:%s) <script>alert(1)</script>", me["name"], me["id"])
	cm := want(t, c.do("POST", "/api/v1/tasks/"+tid+"/comments", map[string]any{"body": body}), 201, "comment")
	if html := cm["body_html"].(string); strings.Contains(html, "<script") || !strings.Contains(html, `data-user-id="`+me["id"].(string)+`"`) {
		t.Fatalf("comment html %q", html)
	}
	if ms := cm["mentions"].([]any); len(ms) != 1 || ms[0] != me["id"] {
		t.Fatalf("mentions %v", ms)
	}

	// Activity is typed: the status change says from what to what.
	act := want(t, c.do("GET", "/api/v1/projects/"+pid+"/activity?limit=200", nil), 200, "activity")
	found := false
	for _, it := range act["items"].([]any) {
		e := it.(map[string]any)
		if e["kind"] == "task.updated" && e["field"] == "status" {
			found = e["after"].(map[string]any)["category"] == "done" && e["before"].(map[string]any)["name"] == "To do"
		}
	}
	if !found {
		t.Fatalf("no typed status change in activity: %s", act)
	}

	// The OpenAPI document is generated from the code.
	doc := want(t, c.do("GET", "/api/v1/openapi.json", nil), 200, "openapi")
	if !strings.HasPrefix(doc["openapi"].(string), "3.") || doc["paths"].(map[string]any)["/api/v1/projects/{id}/tasks"] == nil {
		t.Fatalf("openapi document: %v", doc["openapi"])
	}
}

func TestCookieSessionAndCSRF(t *testing.T) {
	s := start(t, t.TempDir(), "--mode", "cloud")
	signup(t, s, "acme")
	c := newClient(t, s.URL)
	r := c.do("POST", "/api/v1/auth/login", map[string]any{"workspace": "acme", "email": "owner@acme.test", "password": "password-acme", "session_cookie": true})
	m := want(t, r, 200, "cookie login")
	if m["access_token"] != nil || m["refresh_token"] != nil {
		t.Fatalf("cookie login put tokens in the body: %v", m)
	}
	var access *http.Cookie
	for _, ck := range r.Header.Values("Set-Cookie") {
		if strings.HasPrefix(ck, "tf_access=") {
			if !strings.Contains(ck, "HttpOnly") || !strings.Contains(ck, "SameSite=Strict") {
				t.Fatalf("access cookie not httpOnly/SameSite: %s", ck)
			}
			access = &http.Cookie{}
		}
	}
	if access == nil {
		t.Fatalf("no tf_access cookie: %v", r.Header.Values("Set-Cookie"))
	}
	want(t, c.do("GET", "/api/v1/me", nil), 200, "cookie read")
	if p := want(t, c.do("POST", "/api/v1/projects", map[string]any{"name": "x"}), 403, "write without CSRF"); p["code"] != "csrf_failed" {
		t.Fatalf("no csrf: %v", p)
	}
	csrf := m["csrf_token"].(string)
	want(t, c.do("POST", "/api/v1/projects", map[string]any{"name": "x"}, "X-CSRF-Token", csrf), 201, "write with CSRF")
	// Refresh through the cookie rotates the session.
	r = c.do("POST", "/api/v1/auth/refresh", nil, "X-CSRF-Token", csrf)
	m = want(t, r, 200, "cookie refresh")
	csrf = m["csrf_token"].(string)
	want(t, c.do("GET", "/api/v1/me", nil), 200, "read after refresh")
	want(t, c.do("POST", "/api/v1/auth/logout", nil, "X-CSRF-Token", csrf), 204, "logout")
	if p := want(t, c.do("GET", "/api/v1/me", nil), 401, "after logout"); p["code"] != "unauthenticated" && p["code"] != "invalid_token" {
		t.Fatalf("after logout: %v", p)
	}
}

func TestTrashIsPurgedAfterThirtyDays(t *testing.T) {
	s := start(t, t.TempDir(), "--mode", "cloud")
	c := signup(t, s, "acme")
	pid := want(t, c.do("POST", "/api/v1/projects", map[string]any{"name": "P"}), 201, "project")["id"].(string)
	keep := want(t, c.do("POST", "/api/v1/projects/"+pid+"/tasks", map[string]any{"title": "restored"}), 201, "task")["id"].(string)
	gone := want(t, c.do("POST", "/api/v1/projects/"+pid+"/tasks", map[string]any{"title": "purged"}), 201, "task")["id"].(string)
	want(t, c.do("DELETE", "/api/v1/tasks/"+keep, nil), 204, "delete")
	want(t, c.do("DELETE", "/api/v1/tasks/"+gone, nil), 204, "delete")
	want(t, c.do("POST", "/api/v1/tasks/"+keep+"/restore", nil), 200, "restore within 30 days")
	trash := want(t, c.do("GET", "/api/v1/trash", nil), 200, "trash")
	if n := len(trash["items"].([]any)); n != 1 {
		t.Fatalf("trash has %d items", n)
	}
	// A month passes: keep the Owner's second-factor grace longer than that.
	want(t, c.do("PATCH", "/api/v1/workspace", map[string]any{"mfa_grace_days": 90}), 200, "grace period")
	tick := want(t, c.do("POST", "/_test/clock", map[string]any{"advance": "721h"}), 200, "advance clock")
	if !strings.Contains(fmt.Sprint(tick["ran"]), "trash.purge") {
		t.Fatalf("purge job did not run: %v", tick)
	}
	// A month later the access token has long expired: sign in again.
	c.token = want(t, c.do("POST", "/api/v1/auth/login", map[string]any{"workspace": "acme", "email": "owner@acme.test", "password": "password-acme"}), 200, "login")["access_token"].(string)
	if p := want(t, c.do("POST", "/api/v1/tasks/"+gone+"/restore", nil), 404, "restore after purge"); p["code"] != "not_found" {
		t.Fatalf("restore after purge: %v", p)
	}
	want(t, c.do("GET", "/api/v1/tasks/"+keep, nil), 200, "restored task survives")
	if n := len(want(t, c.do("GET", "/api/v1/trash", nil), 200, "trash")["items"].([]any)); n != 0 {
		t.Fatalf("trash still has %d items", n)
	}
}

func TestPlanLimitsAndOperatorCLI(t *testing.T) {
	dir := t.TempDir()
	s := start(t, dir, "--mode", "cloud")
	c := signup(t, s, "acme")
	for i := range 5 {
		want(t, c.do("POST", "/api/v1/projects", map[string]any{"name": fmt.Sprintf("P%d", i)}), 201, "project within plan")
	}
	p := want(t, c.do("POST", "/api/v1/projects", map[string]any{"name": "P6"}), 403, "sixth project on Free")
	d := p["details"].(map[string]any)
	if p["code"] != "plan_limit_reached" || d["limit"] != "projects" || d["plan"] != "Free" || d["max"].(float64) != 5 {
		t.Fatalf("plan limit problem: %v", p)
	}
	out, err := exec.Command(binary, "tenant", "plan", "acme", "starter", "--server", s.URL, "--data", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("tenant plan: %v\n%s", err, out)
	}
	want(t, c.do("POST", "/api/v1/projects", map[string]any{"name": "P6"}), 201, "sixth project on Starter")
	plan := want(t, c.do("GET", "/api/v1/workspace/plan", nil), 200, "plan")
	if plan["plan"].(map[string]any)["id"] != "starter" || plan["projects"].(float64) != 6 {
		t.Fatalf("plan %v", plan)
	}
	out, err = exec.Command(binary, "tenant", "list", "--server", s.URL, "--data", dir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "acme") || !strings.Contains(string(out), "starter") {
		t.Fatalf("tenant list: %v\n%s", err, out)
	}
	// A workspace credential is not the operator's.
	if p := want(t, c.do("GET", "/api/v1/platform/workspaces", nil), 403, "platform as owner"); p["code"] != "forbidden" {
		t.Fatalf("platform as owner: %v", p)
	}
	// The operator's change is visible to the workspace.
	act := want(t, c.do("GET", "/api/v1/activity", nil), 200, "activity")
	if !strings.Contains(fmt.Sprint(act), "workspace.plan_changed") {
		t.Fatalf("plan change not in activity")
	}
}

// TestGracefulShutdown: SIGTERM lets in-flight requests finish and the store
// close cleanly; every acknowledged write is there after a restart.
func TestGracefulShutdown(t *testing.T) {
	dir := t.TempDir()
	s := start(t, dir, "--mode", "cloud")
	c := signup(t, s, "acme")
	pid := want(t, c.do("POST", "/api/v1/projects", map[string]any{"name": "P"}), 201, "project")["id"].(string)
	var mu sync.Mutex
	var acked []string
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				r, err := c.try(ctx, "POST", "/api/v1/projects/"+pid+"/tasks", map[string]any{"title": fmt.Sprintf("w%d-%d", w, i)})
				if err != nil || r.Status != 201 {
					return
				}
				mu.Lock()
				acked = append(acked, r.m(t)["id"].(string))
				mu.Unlock()
			}
		}()
	}
	eventually(t, 30*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) >= 50 }, "writes flowing")
	if err := s.Stop(); err != nil {
		t.Fatalf("SIGTERM exit: %v", err)
	}
	cancel()
	wg.Wait()
	s2 := start(t, dir, "--mode", "cloud")
	c.base = s2.URL
	for _, id := range acked {
		want(t, c.do("GET", "/api/v1/tasks/"+id, nil), 200, "acked task after restart")
	}
}

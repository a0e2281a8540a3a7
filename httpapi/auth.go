package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humagin"
	"github.com/teamflow/teamflow/engine"
)

// Cookie names of a web UI session. The access and refresh cookies are
// httpOnly (no script can read them); the CSRF cookie is readable so the
// page can echo it in X-CSRF-Token on every write (double submit).
const (
	cookieAccess  = "tf_access"
	cookieRefresh = "tf_refresh"
	cookieCSRF    = "tf_csrf"
	headerCSRF    = "X-CSRF-Token"
)

var (
	sessionSecurity  = []map[string][]string{{"session": {}}}
	operatorSecurity = []map[string][]string{{"operator": {}}}
)

func bearerToken(h string) string {
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

func unsafeMethod(m string) bool {
	return m != http.MethodGet && m != http.MethodHead && m != http.MethodOptions
}

// authenticate resolves the caller of operations that declare a security
// requirement. The credential alone decides the workspace: no URL, header
// or body can choose another (DESIGN rule 2).
func (s *Server) authenticate(ctx huma.Context, next func(huma.Context)) {
	gc := humagin.Unwrap(ctx)
	client := engine.ClientInfo{UserAgent: ctx.Header("User-Agent"), IP: gc.ClientIP()}
	ctx = huma.WithValue(ctx, keyClient, client)
	op := ctx.Operation()
	var need string
	for _, req := range op.Security {
		for name := range req {
			need = name
		}
	}
	if need == "" {
		// Sign-in and other public writes: a per-address allowance, so one
		// source cannot grind through passwords, codes or links.
		if o := ctx.Header("Origin"); o != "" && s.eng.CORSOriginKnown(o) {
			// Sign-in and other public routes from a workspace's own site.
			allowOrigin(ctx.SetHeader, o)
		}
		if s.cfg.RateLimits && unsafeMethod(ctx.Method()) {
			d := s.limits.allow(s.now(), quota{key: "ip:" + client.IP, limit: s.cfg.PublicPerIPMinute, window: time.Minute})
			if !s.applyLimit(ctx, d) {
				return
			}
		}
		next(ctx)
		return
	}
	token := bearerToken(ctx.Header("Authorization"))
	viaCookie := false
	if token == "" {
		if c, err := gc.Cookie(cookieAccess); err == nil && c != "" {
			token, viaCookie = c, true
		}
	}
	if token == "" {
		ctx.SetHeader("WWW-Authenticate", `Bearer realm="teamflow"`)
		s.writeProblem(ctx, newProblem(http.StatusUnauthorized, "unauthenticated", "sign in first: send Authorization: Bearer <token>"))
		return
	}
	if viaCookie && unsafeMethod(ctx.Method()) && !csrfOK(gc.Request) {
		s.writeProblem(ctx, newProblem(http.StatusForbidden, "csrf_failed", "a cookie-authenticated write needs the X-CSRF-Token header matching the tf_csrf cookie"))
		return
	}
	p, err := s.eng.Authenticate(ctx.Context(), token)
	if e := (*engine.Error)(nil); errors.As(err, &e) && e.Code == "ip_not_allowed" {
		s.writeProblem(ctx, s.fail(ctx.Context(), err).(*Problem))
		return
	}
	if err != nil {
		ctx.SetHeader("WWW-Authenticate", `Bearer realm="teamflow", error="invalid_token"`)
		s.writeProblem(ctx, newProblem(http.StatusUnauthorized, "invalid_token", "the credential is invalid, expired or revoked; sign in again"))
		return
	}
	switch {
	case need == "operator" && !p.Operator:
		s.eng.AuditDenied(ctx.Context(), p, "forbidden")
		s.writeProblem(ctx, newProblem(http.StatusForbidden, "forbidden", "this endpoint is for the platform operator"))
		return
	case need == "session" && p.Operator:
		s.writeProblem(ctx, newProblem(http.StatusForbidden, "forbidden", "the operator acts on workspaces through /api/v1/platform"))
		return
	}
	if unsafeMethod(ctx.Method()) && !p.CanWrite() {
		s.eng.AuditDenied(ctx.Context(), p, "insufficient_scope")
		s.writeProblem(ctx, newProblem(http.StatusForbidden, "insufficient_scope", "this API key has the read scope only"))
		return
	}
	if p.MFAEnrolmentOnly && !enrolmentRoute(op.OperationID) {
		s.eng.AuditDenied(ctx.Context(), p, "mfa_enrolment_required")
		s.writeProblem(ctx, newProblem(http.StatusForbidden, "mfa_enrolment_required",
			"Owners and Admins need a second factor: enrol an authenticator app (POST /api/v1/me/mfa/totp) to continue"))
		return
	}
	if s.cfg.RateLimits && !p.Operator {
		qs, err := s.quotas(ctx.Context(), p, viaCookie)
		if err != nil {
			s.writeProblem(ctx, s.fail(ctx.Context(), err).(*Problem))
			return
		}
		if !s.applyLimit(ctx, s.limits.allow(s.now(), qs...)) {
			return
		}
	}
	if o := ctx.Header("Origin"); o != "" && !p.Operator && s.eng.CORSAllowed(p.Tenant, o) {
		allowOrigin(ctx.SetHeader, o)
	}
	gc.Set("principal", p)
	ctx = huma.WithValue(ctx, keyPrincipal, p)
	ctx = huma.WithValue(ctx, keyCookieAuth, viaCookie)
	next(ctx)
}

// quotas are the allowances a request draws on: API access (a bearer token
// or an API key) counts against the plan's per-user and per-workspace
// hourly limits; the web UI's cookie sessions have their own, higher
// per-user allowance and do not use the workspace's API budget.
func (s *Server) quotas(ctx context.Context, p engine.Principal, viaCookie bool) ([]quota, error) {
	if viaCookie {
		return []quota{{key: "ui:" + p.Tenant + ":" + p.UserID, limit: s.cfg.UIPerUserHour, window: time.Hour}}, nil
	}
	perUser, perTenant, err := s.eng.RateLimits(ctx, p.Tenant)
	if err != nil {
		return nil, err
	}
	return []quota{
		{key: "u:" + p.Tenant + ":" + p.UserID, limit: perUser, window: time.Hour},
		{key: "t:" + p.Tenant, limit: perTenant, window: time.Hour},
	}, nil
}

// applyLimit sets the RateLimit headers and answers 429 when refused.
func (s *Server) applyLimit(ctx huma.Context, d decision) bool {
	ctx.SetHeader("RateLimit-Limit", strconv.Itoa(d.limit))
	ctx.SetHeader("RateLimit-Remaining", strconv.Itoa(max(d.remaining, 0)))
	ctx.SetHeader("RateLimit-Reset", strconv.Itoa(ceilSeconds(d.reset)))
	ctx.SetHeader("RateLimit-Policy", fmt.Sprintf("%d;w=%d", d.limit, int(d.window.Seconds())))
	if d.allowed {
		return true
	}
	ctx.SetHeader("Retry-After", strconv.Itoa(ceilSeconds(d.retryAfter)))
	s.writeProblem(ctx, d.problem())
	return false
}

// problem is the 429 answer to a refused decision.
func (d decision) problem() *Problem {
	msg := fmt.Sprintf("more than %d requests in %s; retry in %d s", d.limit, d.window, ceilSeconds(d.retryAfter))
	if d.share {
		msg = fmt.Sprintf("this server's share of the %d requests a %s allows is used until the cluster's members next exchange counts; retry in %d s", d.limit, d.window, ceilSeconds(d.retryAfter))
	}
	p := newProblem(http.StatusTooManyRequests, "rate_limited", msg)
	p.Details = map[string]any{"limit": d.limit, "window_seconds": int(d.window.Seconds())}
	return p
}

func ceilSeconds(d time.Duration) int {
	n := int((d + time.Second - 1) / time.Second)
	return max(n, 1)
}

// enrolmentRoute lists what an Owner or Admin past the second-factor grace
// period may still do: see themselves, enrol, sign out.
func enrolmentRoute(op string) bool {
	switch op {
	case "get-me", "get-workspace", "begin-totp", "confirm-totp", "logout", "list-sessions":
		return true
	}
	return false
}

func csrfOK(r *http.Request) bool {
	c, err := r.Cookie(cookieCSRF)
	h := r.Header.Get(headerCSRF)
	return err == nil && c.Value != "" && h != "" && subtle.ConstantTimeCompare([]byte(c.Value), []byte(h)) == 1
}

func (s *Server) writeProblem(ctx huma.Context, p *Problem) {
	p.RequestID = requestIDFrom(ctx.Context())
	b, _ := json.Marshal(p)
	ctx.SetHeader("Content-Type", "application/problem+json")
	ctx.SetStatus(p.Status)
	_, _ = ctx.BodyWriter().Write(b)
}

func principal(ctx context.Context) engine.Principal {
	p, _ := ctx.Value(keyPrincipal).(engine.Principal)
	return p
}

func clientInfo(ctx context.Context) engine.ClientInfo {
	c, _ := ctx.Value(keyClient).(engine.ClientInfo)
	return c
}

// SessionBody is what a sign-in answers. With session_cookie the tokens are
// set as httpOnly cookies and left out of the body.
type SessionBody struct {
	AccessToken  string `json:"access_token,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
	TokenType    string `json:"token_type,omitempty"`
	ExpiresIn    int    `json:"expires_in,omitempty" doc:"Seconds until the access token expires"`
	MFARequired  bool   `json:"mfa_required" doc:"True when the account has a second factor: complete the sign-in with mfa_token"`
	MFAToken     string `json:"mfa_token,omitempty"`
	CSRFToken    string `json:"csrf_token,omitempty" doc:"With session_cookie: echo it in X-CSRF-Token on writes"`
}

func newCSRF() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// session turns tokens into the answer body and, for the web UI, cookies.
func (s *Server) session(t *engine.Tokens, asCookies bool) (SessionBody, []http.Cookie) {
	if !asCookies {
		return SessionBody{AccessToken: t.AccessToken, RefreshToken: t.RefreshToken, TokenType: t.TokenType, ExpiresIn: t.ExpiresIn}, nil
	}
	csrf := newCSRF()
	refreshAge := int(time.Until(t.RefreshExpiresAt).Seconds())
	if refreshAge < 1 {
		refreshAge = 1
	}
	cookies := []http.Cookie{
		{Name: cookieAccess, Value: t.AccessToken, Path: "/", HttpOnly: true, Secure: s.cfg.SecureCookies, SameSite: http.SameSiteStrictMode, MaxAge: t.ExpiresIn},
		{Name: cookieRefresh, Value: t.RefreshToken, Path: "/api/v1/auth", HttpOnly: true, Secure: s.cfg.SecureCookies, SameSite: http.SameSiteStrictMode, MaxAge: refreshAge},
		{Name: cookieCSRF, Value: csrf, Path: "/", Secure: s.cfg.SecureCookies, SameSite: http.SameSiteStrictMode, MaxAge: refreshAge},
	}
	return SessionBody{TokenType: "Cookie", ExpiresIn: t.ExpiresIn, CSRFToken: csrf}, cookies
}

func (s *Server) clearCookies() []http.Cookie {
	var out []http.Cookie
	for _, c := range []struct{ name, path string }{{cookieAccess, "/"}, {cookieRefresh, "/api/v1/auth"}, {cookieCSRF, "/"}} {
		out = append(out, http.Cookie{Name: c.name, Value: "", Path: c.path, MaxAge: -1, HttpOnly: c.name != cookieCSRF, Secure: s.cfg.SecureCookies, SameSite: http.SameSiteStrictMode})
	}
	return out
}

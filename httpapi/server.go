// Package httpapi serves TeamFlow over HTTP: the REST API under /api/v1
// (gin routes registered through huma, which also generates the OpenAPI 3
// document), authentication and tenant resolution, problem+json errors,
// health and metrics endpoints, and the embedded web UI.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humagin"
	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/teamflow/teamflow/engine"
)

// StateSource is what httpapi needs from the node's store and log. It may
// also implement ReadBarrier (TeamFlow-Consistency: linearizable on a node
// that can lag) and NodeOps (the operator's cluster, backup and replica
// endpoints); see routes_cluster.go.
type StateSource interface {
	AppliedIndex() uint64
	WaitApplied(ctx context.Context, index uint64) error
	// Ready reports nil when the store is open and the log serves writes.
	// An *OpError's code and detail are shown by /readyz.
	Ready() error
}

// Config tunes the HTTP layer.
type Config struct {
	Version string
	// SecureCookies marks session cookies Secure (set when served over https).
	SecureCookies bool
	// MetricsToken, when set, must be presented as a bearer token on /metrics.
	MetricsToken string
	// MinIndexWait bounds how long a read with TeamFlow-Min-Index waits.
	MinIndexWait time.Duration
	// RateLimits turns the request limits on (the plan's per-user and
	// per-workspace hourly API limits, the UI's allowance, and the per-address
	// limit on public sign-in routes).
	RateLimits bool
	// UIPerUserHour is the web UI's per-user allowance (default 20,000).
	UIPerUserHour int
	// PublicPerIPMinute bounds public writes (sign-in, reset…) per source
	// address (default 60).
	PublicPerIPMinute int
	// Now is the clock of the rate limits (default time.Now); tests move it.
	Now func() time.Time
	// Realtime tunes live updates (realtime.go).
	Realtime RealtimeConfig
	// TrustedProxies are the addresses or CIDRs of reverse proxies whose
	// X-Forwarded-For names the client; empty trusts none, so a client
	// cannot choose the address the per-address limits and the audit trail
	// see.
	TrustedProxies []string
}

// Deps are the HTTP layer's collaborators.
type Deps struct {
	Engine   *engine.Service
	State    StateSource
	UI       fs.FS // the built web UI; nil serves a notice
	Logger   *slog.Logger
	Registry *prometheus.Registry
}

// Server is the HTTP handler of one node.
type Server struct {
	cfg    Config
	eng    *engine.Service
	state  StateSource
	log    *slog.Logger
	gin    *gin.Engine
	api    huma.API
	uiFS   fs.FS
	limits *limiter
	panics prometheus.Counter
	// panicCount mirrors panics for tests, which must not depend on scraping.
	panicCount atomic.Int64
	reqs       *prometheus.CounterVec
	lat        *prometheus.HistogramVec
	rt         *hub // live updates (realtime.go)
}

var installOnce sync.Once

// New builds the router.
func New(deps Deps, cfg Config) *Server {
	installOnce.Do(func() {
		gin.SetMode(gin.ReleaseMode)
		installErrorModel()
	})
	if cfg.MinIndexWait == 0 {
		cfg.MinIndexWait = 10 * time.Second
	}
	if cfg.UIPerUserHour == 0 {
		cfg.UIPerUserHour = 20_000
	}
	if cfg.PublicPerIPMinute == 0 {
		cfg.PublicPerIPMinute = 60
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Registry == nil {
		deps.Registry = prometheus.NewRegistry()
	}
	s := &Server{cfg: cfg, eng: deps.Engine, state: deps.State, log: deps.Logger, uiFS: deps.UI, limits: newLimiter()}
	s.registerMetrics(deps.Registry)

	g := gin.New()
	if err := g.SetTrustedProxies(cfg.TrustedProxies); err != nil {
		deps.Logger.Error("trusted proxies ignored", "err", err)
		_ = g.SetTrustedProxies(nil)
	}
	g.HandleMethodNotAllowed = true
	g.ContextWithFallback = true
	g.Use(s.recovery, s.requestID, s.preflight, s.observe, s.appliedIndex, s.minIndex, s.consistency)
	g.NoRoute(s.noRoute)
	g.NoMethod(func(c *gin.Context) {
		writeProblem(c, newProblem(http.StatusMethodNotAllowed, "method_not_allowed", "this method is not allowed on this path"))
	})
	s.gin = g

	hc := huma.DefaultConfig("TeamFlow API", cfg.Version)
	hc.Info.Description = "Project management for distributed teams. Every list takes limit and cursor and answers {items, next_cursor}; every error is RFC 9457 problem+json with a stable code."
	hc.OpenAPIPath = "/api/v1/openapi"
	hc.DocsPath = ""
	hc.SchemasPath = ""
	hc.CreateHooks = nil
	hc.Components.SecuritySchemes = map[string]*huma.SecurityScheme{
		"session": {
			Type: "http", Scheme: "bearer", BearerFormat: "JWT",
			Description: "An access token from /auth/login, or the web UI's httpOnly session cookie with the X-CSRF-Token header on writes.",
		},
		"operator": {Type: "http", Scheme: "bearer", Description: "The platform operator's token."},
	}
	delete(hc.Formats, "application/cbor")
	delete(hc.Formats, "cbor")
	s.api = humagin.New(g, hc)
	s.api.UseMiddleware(s.authenticate)

	s.bindOps(g)
	s.bindAuth()
	s.bindWorkspace()
	s.bindMembers()
	s.bindProjects()
	s.bindTasks()
	s.bindComments()
	s.bindAttachments()
	s.bindActivity()
	s.bindSecurity()
	s.bindNotifications()
	s.bindRealtime(g, deps.Registry)
	s.bindStatus()
	s.bindPlatform(deps.Registry)
	s.bindCluster()
	s.bindDedicate()
	s.bindSearch()
	return s
}

func (s *Server) now() time.Time { return s.cfg.Now() }

// Handler returns the http.Handler.
func (s *Server) Handler() http.Handler { return s.gin }

// Routes lists every registered route (method and path template); the
// tenant-isolation test walks them so a new route cannot skip it.
func (s *Server) Routes() gin.RoutesInfo { return s.gin.Routes() }

// OpenAPI returns the generated document.
func (s *Server) OpenAPI() *huma.OpenAPI { return s.api.OpenAPI() }

func (s *Server) registerMetrics(reg *prometheus.Registry) {
	s.reqs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "teamflow_http_requests_total", Help: "HTTP requests by route, method and status.",
	}, []string{"route", "method", "status"})
	s.lat = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "teamflow_http_request_duration_seconds", Help: "HTTP request latency by route and method.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"route", "method"})
	s.panics = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "teamflow_http_panics_total", Help: "Handler panics recovered (each answered 500 without detail).",
	})
	cs := []prometheus.Collector{s.reqs, s.lat, s.panics}
	if s.eng != nil {
		cs = append(cs, refusalCollector{s.eng})
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				panic(err)
			}
		}
	}
}

var refusalDesc = prometheus.NewDesc("teamflow_auth_refused_unaudited_total",
	"Refused credentials that left no audit entry because they name no workspace's record (malformed, unknown workspace, a token never issued), by purpose and reason; logged one line each.",
	[]string{"purpose", "reason"}, nil)

// refusalCollector exports the engine's counts of refused credentials that
// have no workspace trail to go into (engine/refusals.go).
type refusalCollector struct{ eng *engine.Service }

func (c refusalCollector) Describe(ch chan<- *prometheus.Desc) { ch <- refusalDesc }

func (c refusalCollector) Collect(ch chan<- prometheus.Metric) {
	for _, r := range c.eng.UnauditedRefusals() {
		ch <- prometheus.MustNewConstMetric(refusalDesc, prometheus.CounterValue, float64(r.Count), r.Purpose, r.Reason)
	}
}

// Panics reports how many handler panics were recovered (for the fuzz test).
func (s *Server) Panics() int64 { return s.panicCount.Load() }

type ctxKey int

const (
	keyRequestID ctxKey = iota
	keyPrincipal
	keyClient
	keyCookieAuth
)

// requestID assigns each request an ID (or keeps a sane inbound one), echoes
// it, and puts it in the context for logs and problems.
func (s *Server) requestID(c *gin.Context) {
	id := c.GetHeader("X-Request-ID")
	if len(id) == 0 || len(id) > 64 || strings.ContainsFunc(id, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		id = uuid.Must(uuid.NewV7()).String()
	}
	c.Header("X-Request-ID", id)
	c.Header("X-Content-Type-Options", "nosniff")
	c.Header("Referrer-Policy", "same-origin")
	if c.Request.TLS != nil || s.cfg.SecureCookies {
		// Served over https (here, or by a TLS proxy in front): browsers
		// keep to https for a year.
		c.Header("Strict-Transport-Security", "max-age=31536000")
	}
	ctx := context.WithValue(c.Request.Context(), keyRequestID, id)
	ctx = engine.WithRequestInfo(ctx, engine.RequestInfo{ID: id, IP: c.ClientIP(), UserAgent: c.Request.UserAgent(), Route: c.Request.Method + " " + c.FullPath()})
	c.Request = c.Request.WithContext(ctx)
	c.Next()
}

func requestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(keyRequestID).(string)
	return id
}

// observe logs each request as one JSON line and records metrics.
func (s *Server) observe(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	status := c.Writer.Status()
	d := time.Since(start)
	s.reqs.WithLabelValues(route, c.Request.Method, strconv.Itoa(status)).Inc()
	s.lat.WithLabelValues(route, c.Request.Method).Observe(d.Seconds())
	attrs := []any{
		"request_id", requestIDFrom(c.Request.Context()), "method", c.Request.Method, "route", route,
		"status", status, "duration_ms", float64(d.Microseconds()) / 1000, "remote", c.ClientIP(),
	}
	if p, ok := c.Get("principal"); ok {
		pr := p.(engine.Principal)
		attrs = append(attrs, "workspace", pr.Tenant, "user", pr.UserID)
	}
	level := slog.LevelInfo
	switch {
	case status == http.StatusServiceUnavailable:
		level = slog.LevelWarn // not ready, not caught up: the client retries
	case status >= 500:
		level = slog.LevelError
	}
	if route == "/healthz" || route == "/readyz" || route == "/metrics" {
		level = slog.LevelDebug
	}
	s.log.Log(c.Request.Context(), level, "http request", attrs...)
}

// recovery turns a handler panic into a logged 500 that leaks nothing.
func (s *Server) recovery(c *gin.Context) {
	defer func() {
		if r := recover(); r != nil {
			if r == http.ErrAbortHandler {
				panic(r)
			}
			s.panics.Inc()
			s.panicCount.Add(1)
			s.log.Error("handler panic", "request_id", requestIDFrom(c.Request.Context()), "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			if !c.Writer.Written() {
				writeProblem(c, newProblem(http.StatusInternalServerError, "internal_error", "the server could not complete the request; it has been logged"))
			}
			c.Abort()
		}
	}()
	c.Next()
}

// appliedIndex stamps every answer with the node's applied index at the
// moment the answer is written: for a write, that includes the write.
func (s *Server) appliedIndex(c *gin.Context) {
	if s.state != nil {
		c.Writer = &indexWriter{ResponseWriter: c.Writer, state: s.state}
	}
	c.Next()
}

type indexWriter struct {
	gin.ResponseWriter
	state StateSource
	done  bool
}

func (w *indexWriter) stamp() {
	if !w.done {
		w.done = true
		w.Header().Set("TeamFlow-Applied-Index", strconv.FormatUint(w.state.AppliedIndex(), 10))
	}
}

func (w *indexWriter) WriteHeader(code int) { w.stamp(); w.ResponseWriter.WriteHeader(code) }
func (w *indexWriter) WriteHeaderNow()      { w.stamp(); w.ResponseWriter.WriteHeaderNow() }
func (w *indexWriter) Write(b []byte) (int, error) {
	w.stamp()
	return w.ResponseWriter.Write(b)
}
func (w *indexWriter) WriteString(str string) (int, error) {
	w.stamp()
	return w.ResponseWriter.WriteString(str)
}

// minIndex holds a request carrying TeamFlow-Min-Index until this node has
// applied that index: read-your-writes across the nodes of a cluster.
func (s *Server) minIndex(c *gin.Context) {
	h := c.GetHeader("TeamFlow-Min-Index")
	if h == "" || s.state == nil {
		c.Next()
		return
	}
	idx, err := strconv.ParseUint(h, 10, 64)
	if err != nil {
		writeProblem(c, newProblem(http.StatusBadRequest, "invalid_min_index", "TeamFlow-Min-Index is a log index (a non-negative integer)"))
		c.Abort()
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.cfg.MinIndexWait)
	defer cancel()
	if err := s.state.WaitApplied(ctx, idx); err != nil {
		c.Header("Retry-After", "1")
		writeProblem(c, newProblem(http.StatusServiceUnavailable, "index_not_reached", fmt.Sprintf("this node has not applied index %d yet; retry", idx)))
		c.Abort()
		return
	}
	c.Next()
}

func writeProblem(c *gin.Context, p *Problem) {
	p.RequestID = requestIDFrom(c.Request.Context())
	b, _ := json.Marshal(p)
	c.Data(p.Status, "application/problem+json", b)
}

func (s *Server) noRoute(c *gin.Context) {
	path := c.Request.URL.Path
	if strings.HasPrefix(path, "/api/") || c.Request.Method != http.MethodGet && c.Request.Method != http.MethodHead {
		writeProblem(c, newProblem(http.StatusNotFound, "not_found", "no such endpoint"))
		return
	}
	s.serveUI(c)
}

// fail turns an engine error into the problem the client sees, logging
// unexpected ones with the request ID.
func (s *Server) fail(ctx context.Context, err error) error {
	mapped := apiError(err)
	var p *Problem
	if errors.As(mapped, &p) {
		p.RequestID = requestIDFrom(ctx)
		if p.Status == http.StatusForbidden {
			// A refused request of a signed-in principal is a security
			// event (the engine keeps only role, scope and plan refusals).
			s.eng.AuditDenied(ctx, principal(ctx), p.Code)
		}
		return mapped // may carry headers (Retry-After)
	}
	s.log.Error("request failed", "request_id", requestIDFrom(ctx), "err", err.Error())
	p = newProblem(http.StatusInternalServerError, "internal_error", "the server could not complete the request; it has been logged")
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		p = newProblem(http.StatusServiceUnavailable, "timeout", "the request did not complete in time; it may still take effect, retry to be sure")
	}
	p.RequestID = requestIDFrom(ctx)
	return p
}

// bindOps serves health, readiness and metrics.
func (s *Server) bindOps(g *gin.Engine) {
	g.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	g.GET("/readyz", func(c *gin.Context) {
		if s.state != nil {
			if err := s.state.Ready(); err != nil {
				body := gin.H{"status": "unavailable"}
				// An OpError is written for the caller (it names, say, the
				// dedicated group that is not open); any other error may
				// name files or addresses, and /readyz needs no credential.
				var oe *OpError
				if errors.As(err, &oe) {
					body["code"], body["reason"] = oe.Code, oe.Detail
				}
				c.JSON(http.StatusServiceUnavailable, body)
				return
			}
		}
		c.JSON(http.StatusOK, gin.H{"status": "ready"})
	})
}

package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/gin-gonic/gin"
	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/teamflow/teamflow/engine"
)

// Close codes of a live-update websocket.
const (
	closeNormal       = websocket.CloseNormalClosure
	closeGoingAway    = websocket.CloseGoingAway
	closePolicy       = websocket.ClosePolicyViolation
	closeTryAgain     = websocket.CloseTryAgainLater
	closeUnauthorized = 4401 // the session or key ended: sign in again
)

// maxViewing bounds the topics one connection may be present on.
const maxViewing = 16

// bindRealtime serves live updates: the websocket, its tickets and the
// server-sent-event fallback (docs/REALTIME.md).
func (s *Server) bindRealtime(g *gin.Engine, reg *prometheus.Registry) {
	s.rt = newHub(s.cfg.Realtime, s.eng, s.log)
	s.rt.registerMetrics(reg)
	s.rt.upgrader = websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		WriteBufferPool:  &sync.Pool{},
		CheckOrigin:      s.originAllowed,
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
			p := newProblem(status, "websocket_handshake_failed", "not a valid websocket handshake: "+reason.Error())
			p.RequestID = requestIDFrom(r.Context())
			b, _ := json.Marshal(p)
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(status)
			_, _ = w.Write(b)
		},
	}
	g.GET("/api/v1/ws", s.serveWS)
	g.GET("/api/v1/events", s.serveSSE)

	type ticketOut struct {
		Body struct {
			Ticket    string `json:"ticket" doc:"Single use: open /api/v1/ws?ticket=<ticket> on this node within expires_in seconds"`
			ExpiresIn int    `json:"expires_in" doc:"Seconds the ticket stays valid"`
		}
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "create-ws-ticket", Method: http.MethodPost, Path: "/api/v1/ws/ticket", Tags: []string{"Live updates"},
		Summary: "A single-use ticket to open the live-updates websocket",
		Description: "For clients that can neither send the session cookie nor an Authorization header on the websocket handshake. " +
			"The ticket is bound to the caller's session, valid once, for 60 seconds, on the node that issued it. " +
			"GET /api/v1/ws upgrades to the websocket; GET /api/v1/events?topics=… is the server-sent-event fallback (docs/REALTIME.md).",
		Security: sessionSecurity, DefaultStatus: http.StatusCreated,
	}, func(ctx context.Context, _ *struct{}) (*ticketOut, error) {
		p := principal(ctx)
		viaCookie, _ := ctx.Value(keyCookieAuth).(bool)
		tok, err := s.rt.tickets.issue(p, viaCookie, s.now(), s.rt.cfg.TicketTTL)
		if err != nil {
			return nil, newProblem(http.StatusServiceUnavailable, "busy", "too many outstanding tickets; try again shortly")
		}
		s.rt.stats.tickets.Add(1)
		out := &ticketOut{}
		out.Body.Ticket, out.Body.ExpiresIn = tok, int(s.rt.cfg.TicketTTL/time.Second)
		return out, nil
	})
}

// indexWriter exposes the writer it wraps, so http.ResponseController can
// lift the server's write timeout for a long-lived event stream.
func (w *indexWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// originAllowed accepts a handshake without Origin (not a browser), or one
// whose Origin is the request's own host or the configured public URL. A
// browser always sends Origin on a websocket, so no other site's page can
// open one with the user's cookie.
func (s *Server) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	if base := s.cfg.Realtime.PublicBaseURL; base != "" {
		if b, err := url.Parse(base); err == nil && b.Host != "" {
			return strings.EqualFold(b.Scheme, u.Scheme) && strings.EqualFold(b.Host, u.Host)
		}
	}
	return false
}

// realtimePrincipal authenticates a live-update request: a single-use
// ticket, a bearer token (access token or API key), or the web UI's session
// cookie. It answers the problem itself when it fails.
func (s *Server) realtimePrincipal(c *gin.Context) (engine.Principal, bool) {
	ctx := c.Request.Context()
	var p engine.Principal
	viaCookie := false
	if tk := c.Query("ticket"); tk != "" {
		t, ok := s.rt.tickets.redeem(tk, s.now())
		if !ok {
			writeProblem(c, newProblem(http.StatusUnauthorized, "invalid_ticket", "the ticket is unknown, used or expired: fetch a new one (POST /api/v1/ws/ticket)"))
			return p, false
		}
		np, err := s.eng.Revalidate(ctx, t.p)
		if err != nil {
			writeProblem(c, newProblem(http.StatusUnauthorized, "invalid_token", "the session behind this ticket has ended; sign in again"))
			return p, false
		}
		p, viaCookie = np, t.viaCookie
	} else {
		token := bearerToken(c.GetHeader("Authorization"))
		if token == "" {
			if v, err := c.Cookie(cookieAccess); err == nil && v != "" {
				token, viaCookie = v, true
			}
		}
		if token == "" {
			c.Header("WWW-Authenticate", `Bearer realm="teamflow"`)
			writeProblem(c, newProblem(http.StatusUnauthorized, "unauthenticated", "sign in first: the session cookie, Authorization: Bearer <token>, or ?ticket= from POST /api/v1/ws/ticket"))
			return p, false
		}
		var err error
		if p, err = s.eng.Authenticate(ctx, token); err != nil {
			c.Header("WWW-Authenticate", `Bearer realm="teamflow", error="invalid_token"`)
			writeProblem(c, newProblem(http.StatusUnauthorized, "invalid_token", "the credential is invalid, expired or revoked; sign in again"))
			return p, false
		}
	}
	switch {
	case p.Operator:
		writeProblem(c, newProblem(http.StatusForbidden, "forbidden", "live updates are for workspace accounts"))
		return p, false
	case p.MFAEnrolmentOnly:
		writeProblem(c, newProblem(http.StatusForbidden, "mfa_enrolment_required",
			"Owners and Admins need a second factor: enrol an authenticator app (POST /api/v1/me/mfa/totp) to continue"))
		return p, false
	}
	if s.cfg.RateLimits {
		qs, err := s.quotas(ctx, p, viaCookie)
		if err != nil {
			writeProblem(c, s.fail(ctx, err).(*Problem))
			return p, false
		}
		if d := s.limits.allow(s.now(), qs...); !d.allowed {
			c.Header("Retry-After", strconv.Itoa(ceilSeconds(d.retryAfter)))
			writeProblem(c, d.problem())
			return p, false
		}
	}
	c.Set("principal", p)
	return p, true
}

// liveCaller checks a live-update request's Origin, then its credential;
// false when it was answered with a problem.
func (s *Server) liveCaller(c *gin.Context) (engine.Principal, bool) {
	if !s.originAllowed(c.Request) {
		writeProblem(c, newProblem(http.StatusForbidden, "origin_not_allowed", "this Origin may not open a live-update connection"))
		return engine.Principal{}, false
	}
	return s.realtimePrincipal(c)
}

// serveWS upgrades GET /api/v1/ws to a live-update websocket.
func (s *Server) serveWS(c *gin.Context) {
	p, ok := s.liveCaller(c)
	if !ok {
		return
	}
	if !websocket.IsWebSocketUpgrade(c.Request) {
		writeProblem(c, newProblem(http.StatusBadRequest, "websocket_upgrade_required",
			"this endpoint speaks websocket (Upgrade: websocket); clients without one use GET /api/v1/events"))
		return
	}
	conn := s.rt.newConn(p)
	if !s.registerConn(c, conn) {
		return
	}
	ws, err := s.rt.upgrader.Upgrade(c.Writer, c.Request, nil)
	if err != nil {
		s.rt.unregister(conn)
		return
	}
	conn.runWS(ws)
}

func (s *Server) registerConn(c *gin.Context, conn *rtConn) bool {
	switch err := s.rt.register(conn); {
	case errors.Is(err, errTooManyConn):
		writeProblem(c, newProblem(http.StatusTooManyRequests, "too_many_connections",
			fmt.Sprintf("at most %d live-update connections per account on this node", s.rt.cfg.MaxConnsPerUser)))
		return false
	case err != nil:
		c.Header("Retry-After", "1")
		writeProblem(c, newProblem(http.StatusServiceUnavailable, "unavailable", "the server is shutting down; reconnect"))
		return false
	}
	return true
}

// serveSSE streams live updates as server-sent events: GET
// /api/v1/events?topics=workspace,project:<id> with Last-Event-ID (or
// since=) to resume. Every topic is authorized before the stream starts.
func (s *Server) serveSSE(c *gin.Context) {
	p, ok := s.liveCaller(c)
	if !ok {
		return
	}
	var raw []string
	for _, v := range c.QueryArray("topics") {
		for t := range strings.SplitSeq(v, ",") {
			if t = strings.TrimSpace(t); t != "" && !slices.Contains(raw, t) {
				raw = append(raw, t)
			}
		}
	}
	switch {
	case len(raw) == 0:
		writeProblem(c, newProblem(http.StatusBadRequest, "topics_required", "name the topics to follow: ?topics=workspace,project:<id>,task:<id>,user:me"))
		return
	case len(raw) > s.rt.cfg.MaxTopics:
		writeProblem(c, newProblem(http.StatusBadRequest, "too_many_topics", fmt.Sprintf("at most %d topics per connection", s.rt.cfg.MaxTopics)))
		return
	}
	req := subRequest{}
	since := c.GetHeader("Last-Event-ID")
	if since == "" {
		since = c.Query("since")
	}
	if since != "" {
		n, err := strconv.ParseUint(strings.TrimSpace(since), 10, 64)
		if err != nil {
			writeProblem(c, newProblem(http.StatusBadRequest, "invalid_since", "Last-Event-ID (or since) is an event sequence number"))
			return
		}
		req.since, req.resume = n, true
	}
	ctx := c.Request.Context()
	for _, r := range raw {
		t, err := s.eng.AuthorizeTopic(ctx, p, r)
		if err != nil {
			writeProblem(c, s.fail(ctx, err).(*Problem))
			return
		}
		if !slices.Contains(req.topics, t) {
			req.topics = append(req.topics, t)
		}
	}
	seq, err := s.eng.EventSeq(p.Tenant)
	if err != nil {
		writeProblem(c, s.fail(ctx, err).(*Problem))
		return
	}
	req.storeSeq = seq
	conn := s.rt.newConn(p)
	if !s.registerConn(c, conn) {
		return
	}
	defer s.rt.unregister(conn)
	req.gen = conn.generation()
	h := c.Writer.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	c.Writer.WriteHeader(http.StatusOK)
	t := &sseTransport{w: c.Writer, rc: http.NewResponseController(c.Writer), timeout: s.rt.cfg.WriteTimeout}
	// The stream outlives the server's read and write timeouts.
	_ = t.rc.SetReadDeadline(time.Time{})
	if err := t.comment("stream open"); err != nil {
		return
	}
	if !s.rt.subscribe(conn, req) {
		return
	}
	conn.serve(t, ctx.Done())
}

// tickets are single-use websocket credentials, kept in this node's memory
// under their SHA-256.
type ticket struct {
	p         engine.Principal
	viaCookie bool
	exp       time.Time
}

type tickets struct {
	mu      sync.Mutex
	m       map[string]ticket
	sweepAt int
}

const maxTickets = 100_000

func ticketKey(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

func (t *tickets) issue(p engine.Principal, viaCookie bool, now time.Time, ttl time.Duration) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	tok := "tfw_" + base64.RawURLEncoding.EncodeToString(b)
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.m) >= max(t.sweepAt, 1024) {
		for k, v := range t.m {
			if !now.Before(v.exp) {
				delete(t.m, k)
			}
		}
		t.sweepAt = 2 * len(t.m)
	}
	if len(t.m) >= maxTickets {
		return "", errors.New("realtime: too many tickets")
	}
	t.m[ticketKey(tok)] = ticket{p: p, viaCookie: viaCookie, exp: now.Add(ttl)}
	return tok, nil
}

// redeem spends a ticket: it works once, before it expires.
func (t *tickets) redeem(tok string, now time.Time) (ticket, bool) {
	if len(tok) > 128 {
		return ticket{}, false
	}
	k := ticketKey(tok)
	t.mu.Lock()
	defer t.mu.Unlock()
	tk, ok := t.m[k]
	delete(t.m, k)
	return tk, ok && now.Before(tk.exp)
}

// outItem is one thing for a connection, in stream order: an event, or
// something rarer (kept behind a pointer so that queues stay small).
type outItem struct {
	ev  *hubEvent
	ctl *ctlItem
}

type ctlItem struct {
	sub      *subResult
	presence *presenceMsg
	raw      []byte   // a ready message (an error)
	pong     bool     // answer a ping with the connection's position
	unsub    []string // topics to leave (empty: all)
	isUnsub  bool
	isResync bool
	resync   uint64
}

// subResult is the hub's answer to a subscription.
type subResult struct {
	req      subRequest
	head     uint64
	resync   bool
	backlog  []*hubEvent
	presence []presenceMsg
}

// rtConn is one live-update connection (a websocket or an event stream).
// The hub queues items on out; one goroutine (serve) writes them, owning the
// topics, the filter and the position; a websocket has a second goroutine
// reading the client's messages.
type rtConn struct {
	h      *hub
	tenant string
	userID string
	out    chan outItem

	kill        chan struct{}
	stopOnce    sync.Once
	closeCode   int
	closeReason string

	mu  sync.Mutex
	p   engine.Principal // as last revalidated
	gen uint64           // bumped at every revalidation

	// serve's own.
	filter     *engine.EventFilter
	topics     []engine.Topic
	pos        uint64 // every event up to pos has been considered
	subscribed bool

	// The reader's own.
	subscribedOnce bool
	usedPresence   atomic.Bool
	viewingReq     map[string]bool
	msgWindow      time.Time
	msgCount       int
}

func (h *hub) newConn(p engine.Principal) *rtConn {
	return &rtConn{
		h: h, tenant: p.Tenant, userID: p.UserID, p: p,
		out:        make(chan outItem, h.cfg.SendQueue),
		kill:       make(chan struct{}),
		filter:     h.eng.NewEventFilter(p),
		viewingReq: map[string]bool{},
	}
}

// stop asks the connection to close with code and reason (the first ask
// wins).
func (c *rtConn) stop(code int, reason string) {
	c.stopOnce.Do(func() {
		c.closeCode, c.closeReason = code, reason
		close(c.kill)
	})
}

func (c *rtConn) principal() (engine.Principal, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.p, c.gen
}

func (c *rtConn) generation() uint64 {
	_, g := c.principal()
	return g
}

// send queues an item from the connection's own reader; a full queue drops
// the connection, as the hub would.
func (c *rtConn) send(it outItem) {
	select {
	case c.out <- it:
	default:
		c.stop(closeTryAgain, "too far behind: reconnect and resume from your last seq")
	}
}

func (c *rtConn) sendError(code, topic, msg string) {
	b, _ := json.Marshal(errorMsg{Type: "error", Code: code, Topic: topic, Message: msg})
	c.send(outItem{ctl: &ctlItem{raw: b}})
}

type errorMsg struct {
	Type    string `json:"type"`
	Code    string `json:"code"`
	Topic   string `json:"topic,omitempty"`
	Message string `json:"message"`
}

type subscribedMsg struct {
	Type   string   `json:"type"`
	Topics []string `json:"topics"`
	Seq    uint64   `json:"seq"`
}

type seqMsg struct {
	Type string `json:"type"`
	Seq  uint64 `json:"seq"`
}

type closeMsg struct {
	Type   string `json:"type"`
	Code   int    `json:"code"`
	Reason string `json:"reason"`
}

// transport writes messages to a websocket or an event stream.
type transport interface {
	// write sends one message; kind names it for event streams ("" for
	// events) and id, when not zero, is its resume point.
	write(kind string, id uint64, msg []byte) error
	heartbeat(pos uint64) error
	closeWith(code int, reason string)
}

var (
	errAuthEnded = errors.New("realtime: credential ended")
	errRecheck   = errors.New("realtime: could not re-check the credential")
)

// closeFor closes t as err says: sign in again, or reconnect.
func closeFor(t transport, err error) {
	switch {
	case errors.Is(err, errAuthEnded):
		t.closeWith(closeUnauthorized, "session ended: sign in again")
	case errors.Is(err, errRecheck):
		t.closeWith(closeTryAgain, "reconnect")
	}
}

// serve is the connection's writer loop.
func (c *rtConn) serve(t transport, gone <-chan struct{}) {
	cfg := &c.h.cfg
	ping := time.NewTicker(cfg.Ping)
	defer ping.Stop()
	reauth := time.NewTicker(cfg.Reauth)
	defer reauth.Stop()
	for {
		select {
		case it := <-c.out:
			select {
			case <-c.kill: // dropped: stop at once rather than after the queue
				t.closeWith(c.closeCode, c.closeReason)
				return
			default:
			}
			if err := c.handle(t, it); err != nil {
				closeFor(t, err)
				return
			}
		case <-ping.C:
			if t.heartbeat(c.pos) != nil {
				return
			}
		case <-reauth.C:
			if err := c.revalidate(t); err != nil {
				closeFor(t, err)
				return
			}
		case <-c.kill:
			t.closeWith(c.closeCode, c.closeReason)
			return
		case <-gone:
			return
		}
	}
}

func (c *rtConn) handle(t transport, item outItem) error {
	if item.ev != nil {
		return c.event(t, item.ev, true)
	}
	it := item.ctl
	switch {
	case it == nil:
	case it.sub != nil:
		return c.subscribe(t, it.sub)
	case it.presence != nil:
		if !slices.ContainsFunc(c.topics, func(tp engine.Topic) bool { return tp.String() == it.presence.Topic }) {
			return nil
		}
		b, _ := json.Marshal(it.presence)
		return t.write("presence", 0, b)
	case it.isResync:
		c.pos = max(c.pos, it.resync)
		if !c.subscribed {
			return nil
		}
		c.h.stats.resyncs.Add(1)
		b, _ := json.Marshal(seqMsg{Type: "resync", Seq: it.resync})
		return t.write("resync", it.resync, b)
	case it.pong:
		b, _ := json.Marshal(seqMsg{Type: "pong", Seq: c.pos})
		return t.write("pong", 0, b)
	case it.isUnsub:
		if len(it.unsub) == 0 {
			c.topics = nil
		} else {
			c.topics = slices.DeleteFunc(c.topics, func(tp engine.Topic) bool { return slices.Contains(it.unsub, tp.String()) })
		}
		return c.writeSubscribed(t, 0)
	case it.raw != nil:
		return t.write("error", 0, it.raw)
	}
	return nil
}

func (c *rtConn) writeSubscribed(t transport, id uint64) error {
	names := make([]string, 0, len(c.topics))
	for _, tp := range c.topics {
		names = append(names, tp.String())
	}
	b, _ := json.Marshal(subscribedMsg{Type: "subscribed", Topics: names, Seq: c.pos})
	return t.write("subscribed", id, b)
}

// event considers one event: in order, once, filtered by topics and
// visibility. A live event that changes access or revokes this connection's
// credential re-checks the connection first.
func (c *rtConn) event(t transport, he *hubEvent, live bool) error {
	ev := &he.ev
	if ev.Seq <= c.pos {
		return nil
	}
	c.pos = ev.Seq
	if live && (ev.Access || c.revokedBy(ev)) {
		if err := c.revalidate(t); err != nil {
			return err
		}
	}
	if len(c.topics) == 0 || !ev.Deliverable() {
		return nil
	}
	changes, notes, unread, ok := c.filter.Select(ev, c.topics)
	if !ok {
		return nil
	}
	msg := he.message()
	if len(changes) != len(ev.Changes) || notes != nil || unread != nil {
		msg = encodeEvent(ev, changes, notes, unread)
	}
	return t.write("", ev.Seq, msg)
}

func (c *rtConn) revokedBy(ev *engine.Event) bool {
	if len(ev.Revoked) == 0 {
		return false
	}
	p, _ := c.principal()
	return slices.Contains(ev.Revoked, p.SessionID) || slices.Contains(ev.Revoked, p.APIKeyID)
}

// subscribe applies the hub's answer to a subscription.
func (c *rtConn) subscribe(t transport, r *subResult) error {
	topics := r.req.topics
	if r.req.gen != c.generation() {
		// The principal changed since the topics were authorized.
		var err error
		if topics, err = c.reauthorize(t, topics); err != nil {
			return err
		}
	}
	c.topics = topics
	c.subscribed = true
	switch {
	case r.req.resume && r.resync:
		c.pos = max(c.pos, r.head)
		if err := c.writeSubscribed(t, 0); err != nil {
			return err
		}
		b, _ := json.Marshal(seqMsg{Type: "resync", Seq: r.head})
		if err := t.write("resync", r.head, b); err != nil {
			return err
		}
	case r.req.resume:
		c.pos = r.req.since
		if err := c.writeSubscribed(t, 0); err != nil {
			return err
		}
		for _, he := range r.backlog {
			if err := c.event(t, he, false); err != nil {
				return err
			}
		}
		c.pos = max(c.pos, r.head)
	default:
		c.pos = max(c.pos, r.head)
		if err := c.writeSubscribed(t, c.pos); err != nil {
			return err
		}
	}
	for i := range r.presence {
		b, _ := json.Marshal(&r.presence[i])
		if err := t.write("presence", 0, b); err != nil {
			return err
		}
	}
	return nil
}

// revalidate re-reads the connection's session or key and account; it
// fails when they have ended. Topics the principal may no longer see are
// dropped, with an error message each.
func (c *rtConn) revalidate(t transport) error {
	c.h.stats.reauths.Add(1)
	old, _ := c.principal()
	p, err := c.h.eng.Revalidate(context.Background(), old)
	switch {
	case errors.Is(err, engine.ErrUnauthenticated) || err == nil && p.MFAEnrolmentOnly:
		c.h.stats.authClosed.Add(1)
		return errAuthEnded
	case err != nil:
		c.h.log.Warn("live update: re-checking a session failed", "err", err)
		return errRecheck
	}
	c.mu.Lock()
	c.p = p
	c.gen++
	c.mu.Unlock()
	c.filter.Reset(&p)
	topics, err := c.reauthorize(t, c.topics)
	if err != nil {
		return err
	}
	c.topics = topics
	return nil
}

func (c *rtConn) reauthorize(t transport, topics []engine.Topic) ([]engine.Topic, error) {
	p, _ := c.principal()
	kept := make([]engine.Topic, 0, len(topics))
	for _, tp := range topics {
		var err error
		switch tp.Kind {
		case engine.TopicWorkspace:
		case engine.TopicUser:
			if tp.ID != p.UserID {
				err = errAuthEnded
			}
		default:
			_, err = c.h.eng.AuthorizeTopic(context.Background(), p, tp.String())
		}
		if err == nil {
			kept = append(kept, tp)
			continue
		}
		b, _ := json.Marshal(errorMsg{Type: "error", Code: "topic_revoked", Topic: tp.String(), Message: "you may no longer follow this topic"})
		if werr := t.write("error", 0, b); werr != nil {
			return nil, werr
		}
	}
	if c.usedPresence.Load() {
		for _, v := range c.h.viewing(c) {
			if _, err := c.h.eng.AuthorizeTopic(context.Background(), p, v); err != nil {
				c.h.setPresence(c, v, false)
			}
		}
	}
	return kept, nil
}

// websocket transport.

type wsTransport struct {
	ws      *websocket.Conn
	timeout time.Duration
}

func (w *wsTransport) write(_ string, _ uint64, msg []byte) error {
	if err := w.ws.SetWriteDeadline(time.Now().Add(w.timeout)); err != nil {
		return err
	}
	return w.ws.WriteMessage(websocket.TextMessage, msg)
}

func (w *wsTransport) heartbeat(uint64) error {
	return w.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(w.timeout))
}

func (w *wsTransport) closeWith(code int, reason string) {
	_ = w.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
	_ = w.ws.Close()
}

// runWS serves an upgraded websocket until it ends.
func (c *rtConn) runWS(ws *websocket.Conn) {
	defer c.h.unregister(c)
	defer ws.Close()
	ws.SetReadLimit(64 << 10)
	// The server's request timeouts were set on the connection before the
	// upgrade; from here the websocket's own deadlines apply.
	_ = ws.SetReadDeadline(time.Now().Add(c.h.cfg.PongWait))
	ws.SetPongHandler(func(string) error { return ws.SetReadDeadline(time.Now().Add(c.h.cfg.PongWait)) })
	go c.readWS(ws)
	c.serve(&wsTransport{ws: ws, timeout: c.h.cfg.WriteTimeout}, nil)
}

// clientMsg is a message from a websocket client.
type clientMsg struct {
	Type   string   `json:"type"`
	Topics []string `json:"topics"`
	Since  *uint64  `json:"since"`
	Topic  string   `json:"topic"`
	State  string   `json:"state"`
}

// readWS reads the client's messages.
func (c *rtConn) readWS(ws *websocket.Conn) {
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			c.stop(closeNormal, "")
			return
		}
		_ = ws.SetReadDeadline(time.Now().Add(c.h.cfg.PongWait))
		if now := time.Now(); now.Sub(c.msgWindow) > time.Second {
			c.msgWindow, c.msgCount = now, 0
		}
		if c.msgCount++; c.msgCount > 50 {
			c.stop(closePolicy, "too many messages")
			return
		}
		var m clientMsg
		if err := json.Unmarshal(data, &m); err != nil {
			c.sendError("invalid_message", "", "messages are JSON objects with a type")
			continue
		}
		switch m.Type {
		case "subscribe":
			c.readSubscribe(m)
		case "unsubscribe":
			c.readUnsubscribe(m)
		case "presence":
			c.readPresence(m)
		case "ping":
			c.send(outItem{ctl: &ctlItem{pong: true}})
		default:
			c.sendError("invalid_message", "", "type is subscribe, unsubscribe, presence or ping")
		}
	}
}

func (c *rtConn) readSubscribe(m clientMsg) {
	switch {
	case len(m.Topics) == 0:
		c.sendError("invalid_message", "", "subscribe names its topics: workspace, project:<id>, task:<id>, user:me")
		return
	case len(m.Topics) > c.h.cfg.MaxTopics:
		c.sendError("too_many_topics", "", fmt.Sprintf("at most %d topics per connection", c.h.cfg.MaxTopics))
		return
	case m.Since != nil && c.subscribedOnce:
		c.sendError("since_not_first", "", "since resumes a connection: send it in the first subscribe after connecting")
		return
	}
	c.subscribedOnce = true
	p, gen := c.principal()
	req := subRequest{gen: gen}
	if m.Since != nil {
		req.since, req.resume = *m.Since, true
	}
	ctx := context.Background()
	for _, raw := range m.Topics {
		t, err := c.h.eng.AuthorizeTopic(ctx, p, raw)
		if err != nil {
			msg := "you may not follow this topic"
			var e *engine.Error
			if errors.As(err, &e) {
				msg = e.Message
			}
			c.sendError("topic_refused", truncateTopic(raw), msg)
			continue
		}
		if !slices.Contains(req.topics, t) {
			req.topics = append(req.topics, t)
		}
	}
	seq, err := c.h.eng.EventSeq(c.tenant)
	if err != nil {
		c.stop(closeTryAgain, "the server could not read the workspace's position; reconnect")
		return
	}
	req.storeSeq = seq
	c.h.subscribe(c, req)
}

// readUnsubscribe leaves topics, named as in subscribe (user:me, task keys),
// or all of them when none is named.
func (c *rtConn) readUnsubscribe(m clientMsg) {
	if len(m.Topics) > c.h.cfg.MaxTopics {
		c.sendError("too_many_topics", "", fmt.Sprintf("at most %d topics per connection", c.h.cfg.MaxTopics))
		return
	}
	p, _ := c.principal()
	names := make([]string, 0, len(m.Topics))
	for _, raw := range m.Topics {
		if t, err := c.h.eng.AuthorizeTopic(context.Background(), p, raw); err == nil {
			raw = t.String()
		}
		names = append(names, raw)
	}
	c.send(outItem{ctl: &ctlItem{isUnsub: true, unsub: names}})
}

func truncateTopic(s string) string {
	if len(s) > 100 {
		return s[:100]
	}
	return s
}

func (c *rtConn) readPresence(m clientMsg) {
	var viewing bool
	switch m.State {
	case "viewing":
		viewing = true
	case "left":
	default:
		c.sendError("invalid_message", truncateTopic(m.Topic), "presence state is viewing or left")
		return
	}
	p, _ := c.principal()
	t, err := c.h.eng.AuthorizeTopic(context.Background(), p, m.Topic)
	if err != nil || (t.Kind != engine.TopicProject && t.Kind != engine.TopicTask) {
		c.sendError("topic_refused", truncateTopic(m.Topic), "presence is for a project or task you can see")
		return
	}
	key := t.String()
	if viewing && !c.viewingReq[key] && len(c.viewingReq) >= maxViewing {
		c.sendError("too_many_topics", key, fmt.Sprintf("at most %d topics viewed at once per connection", maxViewing))
		return
	}
	c.usedPresence.Store(true)
	if viewing {
		c.viewingReq[key] = true
	} else {
		delete(c.viewingReq, key)
	}
	c.h.setPresence(c, key, viewing)
}

// server-sent-event transport.

type sseTransport struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	lastID  uint64
	buf     []byte
}

func (s *sseTransport) flush(frame []byte) error {
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.timeout))
	if _, err := s.w.Write(frame); err != nil {
		return err
	}
	return s.rc.Flush()
}

func (s *sseTransport) write(kind string, id uint64, msg []byte) error {
	b := s.buf[:0]
	if id != 0 {
		b = append(append(append(b, "id: "...), strconv.FormatUint(id, 10)...), '\n')
		s.lastID = id
	}
	if kind != "" {
		b = append(append(append(b, "event: "...), kind...), '\n')
	}
	b = append(append(append(b, "data: "...), msg...), "\n\n"...)
	s.buf = b
	return s.flush(b)
}

func (s *sseTransport) comment(text string) error { return s.flush([]byte(": " + text + "\n\n")) }

// heartbeat keeps proxies from closing an idle stream and, when the
// position moved without an event for this client, moves the client's
// Last-Event-ID along with it.
func (s *sseTransport) heartbeat(pos uint64) error {
	if pos > s.lastID {
		b, _ := json.Marshal(seqMsg{Type: "heartbeat", Seq: pos})
		return s.write("heartbeat", pos, b)
	}
	return s.comment("ping")
}

func (s *sseTransport) closeWith(code int, reason string) {
	b, _ := json.Marshal(closeMsg{Type: "close", Code: code, Reason: reason})
	_ = s.write("close", 0, b)
}

package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/teamflow/teamflow/engine"
	"github.com/teamflow/teamflow/httpapi"
	"github.com/teamflow/teamflow/httpapi/apitest"
	"github.com/teamflow/teamflow/internal/figures"
	"github.com/teamflow/teamflow/storage"
)

// Live updates (docs/REALTIME.md), against the real API in-process with
// real websocket connections: RELIABILITY D1 (stream guarantees), A10
// (websocket security), T4 (no event crosses workspaces), presence and the
// server-sent-event fallback.

func rtEnv(t testing.TB, cfg httpapi.RealtimeConfig) *apitest.Env {
	if cfg.MaxConnsPerUser == 0 {
		cfg.MaxConnsPerUser = 5000
	}
	return apitest.NewWithConfig(t, engine.ModeCloud, httpapi.Config{Realtime: cfg})
}

func authenticate(t testing.TB, env *apitest.Env, token string) engine.Principal {
	t.Helper()
	p, err := env.Service.Authenticate(context.Background(), token)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// follower subscribes to the workspace and follows it to the end, cutting
// its connection after the given numbers of events and resuming from the
// last seq it saw (reconnecting likewise when the server drops it).
type follower struct {
	env      *apitest.Env
	token    string
	cuts     []int
	final    *atomic.Uint64 // the last expected seq, once known
	deadline time.Time

	start, last        uint64
	recv               []uint64
	resyncs            []span
	forced, reconnects int
	err                error
}

func (f *follower) connect(resume bool) (*rtClient, error) {
	var lastErr error
	for time.Now().Before(f.deadline) {
		c, resp, err := dialWS(f.env, "", "Authorization", "Bearer "+f.token)
		if err != nil {
			lastErr = fmt.Errorf("dial: %v (%v)", err, resp)
			continue
		}
		msg := map[string]any{"type": "subscribe", "topics": []string{"workspace"}}
		if resume {
			msg["since"] = f.last
		}
		if err := c.c.WriteJSON(msg); err != nil {
			c.c.Close()
			lastErr = err
			continue
		}
		m, ok := c.next(10 * time.Second)
		if !ok || m.Type != "subscribed" {
			c.c.Close()
			lastErr = fmt.Errorf("no subscribed: %+v %v", m, c.err)
			continue
		}
		if !resume {
			f.start, f.last = m.Seq, m.Seq
		}
		return c, nil
	}
	return nil, fmt.Errorf("could not (re)connect: %v", lastErr)
}

func (f *follower) run(ready func()) {
	c, err := f.connect(false)
	ready()
	if err != nil {
		f.err = err
		return
	}
	defer func() { c.c.Close() }()
	count, cut := 0, 0
	for {
		if time.Now().After(f.deadline) {
			f.err = fmt.Errorf("not at the end by the deadline: last %d, final %d", f.last, f.final.Load())
			return
		}
		m, ok := c.next(100 * time.Millisecond)
		if !ok {
			select {
			case <-c.done: // dropped by the server: resume
				f.reconnects++
				if c, err = f.connect(true); err != nil {
					f.err = err
					return
				}
				continue
			default:
			}
			if fin := f.final.Load(); fin != 0 && f.last >= fin {
				return
			}
			continue
		}
		switch m.Type {
		case "event":
			f.recv = append(f.recv, m.Seq)
			f.last = max(f.last, m.Seq)
			count++
			if cut < len(f.cuts) && count == f.cuts[cut] {
				cut++
				f.forced++
				c.c.NetConn().Close() // abrupt: whatever was in flight is lost
				if c, err = f.connect(true); err != nil {
					f.err = err
					return
				}
			}
		case "resync":
			f.resyncs = append(f.resyncs, span{f.last, m.Seq})
			f.last = max(f.last, m.Seq)
		case "error":
			f.err = fmt.Errorf("error message: %s", m.raw)
		}
	}
}

func (f *follower) check(expected []uint64) streamCheck {
	return checkStream(expected, f.recv, f.resyncs)
}

// synthetic publishes n events with a payload of size bytes straight to
// the hub, after seq; it returns the last seq.
func synthetic(env *apitest.Env, tenant string, seq uint64, n, size int) uint64 {
	payload, _ := json.Marshal(strings.Repeat("x", size))
	for range n {
		seq++
		env.API.Publish(engine.Event{Tenant: tenant, Seq: seq, Kind: "test.synthetic", Actor: "system", At: time.Now().UTC(),
			Changes: []engine.EventChange{{ID: strconv.FormatUint(seq, 10), Kind: "workspace.updated", TargetKind: "workspace", TargetID: tenant, Field: "name", After: payload}}})
	}
	return seq
}

// TestRealtimeStreamD1: 20 subscribers follow 2,000 events while being cut
// twice each and resuming from their last seq: nothing missed, nothing
// twice, nothing out of order. A resume point older than the buffer, and
// events the hub had to drop, give an explicit resync, never a silent gap;
// a client that stops reading is dropped while the others carry on.
func TestRealtimeStreamD1(t *testing.T) {
	seed := figures.Seed(t)
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	const subscribers, events, writers = 20, 2000, 4
	ctx := context.Background()

	env := rtEnv(t, httpapi.RealtimeConfig{})
	ws := env.Signup("acme", "Acme", "owner@acme.test")
	owner := authenticate(t, env, ws.Token)
	proj, err := env.Service.CreateProject(ctx, owner, engine.CreateProjectInput{Name: "D1"})
	if err != nil {
		t.Fatal(err)
	}
	tr := watchTruth(env, ws.ID)

	var final atomic.Uint64
	deadline := time.Now().Add(3 * time.Minute)
	followers := make([]*follower, subscribers)
	var ready, done sync.WaitGroup
	for i := range followers {
		a, b := 1+rng.IntN(events-1), 1+rng.IntN(events-1)
		for b == a {
			b = 1 + rng.IntN(events-1)
		}
		f := &follower{env: env, token: ws.Token, cuts: []int{min(a, b), max(a, b)}, final: &final, deadline: deadline}
		followers[i] = f
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			f.run(ready.Done)
		}()
	}
	ready.Wait()

	// 2,000 task creations from 4 writers, with sign-ins in between: those
	// advance the sequence without an event.
	var wg sync.WaitGroup
	var writeErr atomic.Value
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range events / writers {
				if _, err := env.Service.CreateTask(ctx, owner, proj.ID, engine.CreateTaskInput{Title: fmt.Sprintf("d1 %d-%d", w, i)}); err != nil {
					writeErr.Store(err)
					return
				}
				if i%100 == 50 {
					if _, err := env.Service.Login(ctx, engine.LoginInput{Workspace: "acme", Email: "owner@acme.test", Password: "password-acme"}); err != nil {
						writeErr.Store(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if err := writeErr.Load(); err != nil {
		t.Fatal(err)
	}
	final.Store(tr.mark(t, env, owner, "d1-end"))
	done.Wait()

	var main streamCheck
	forced, received := 0, 0
	for i, f := range followers {
		if f.err != nil {
			t.Errorf("subscriber %d: %v", i, f.err)
		}
		c := f.check(tr.after(f.start))
		if c.gaps+c.dups+c.outOfOrder > 0 {
			t.Errorf("subscriber %d (start %d, cuts %v): %+v", i, f.start, f.cuts, c)
		}
		main.add(c)
		forced += f.forced
		received += len(f.recv)
	}

	old := resumeTooOld(t)
	over := hubOverflow(t)
	slow := slowClient(t)

	all := main
	all.add(old.check)
	all.add(over.check)
	all.add(slow.check)
	figures.Report(t, "D1", seed, []figures.Figure{
		figures.Eq("gaps", float64(main.gaps+slow.check.gaps+old.within.gaps), 0),
		figures.Eq("dups", float64(all.dups), 0),
		figures.Eq("out_of_order", float64(all.outOfOrder), 0),
		figures.Eq("silent_gaps", float64(all.silentGaps), 0),
		figures.Eq("resyncs_within_buffer", float64(main.resyncs+old.within.resyncs), 0),
		figures.Eq("resync_when_resume_point_compacted", float64(old.resynced), 1),
		figures.Ge("resync_after_hub_overflow", float64(over.check.resyncs), 1),
		figures.Ge("slow_clients_dropped", float64(slow.dropped), 1),
		figures.Guard("subscribers", float64(subscribers), 20),
		figures.Guard("events_per_subscriber", float64(len(tr.after(0))), events),
		figures.Guard("forced_disconnects", float64(forced), 2*subscribers),
		figures.Guard("events_received", float64(received), subscribers*events),
		figures.Guard("events_dropped_on_overflow", float64(over.overflowed), 1),
	})
}

type oldResult struct {
	check    streamCheck // the resume from too far back
	within   streamCheck // a resume inside the buffer
	resynced int
}

// resumeTooOld: with a buffer of 100 events, a client resuming from before
// the last 300 events is told to resync (and then follows on); one resuming
// inside the buffer gets every event and no resync.
func resumeTooOld(t *testing.T) oldResult {
	ctx := context.Background()
	env := rtEnv(t, httpapi.RealtimeConfig{BufferPerWorkspace: 100})
	ws := env.Signup("old", "Old", "owner@old.test")
	owner := authenticate(t, env, ws.Token)
	proj, err := env.Service.CreateProject(ctx, owner, engine.CreateProjectInput{Name: "Old"})
	if err != nil {
		t.Fatal(err)
	}
	tr := watchTruth(env, ws.ID)
	write := func(n int) {
		for i := range n {
			if _, err := env.Service.CreateTask(ctx, owner, proj.ID, engine.CreateTaskInput{Title: fmt.Sprintf("t%d", i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	a, b := mustDial(t, env, ws.Token), mustDial(t, env, ws.Token)
	a.subscribe(t, []string{"workspace"}, nil)
	b.subscribe(t, []string{"workspace"}, nil)
	write(10)
	lastA := a.await(t, 10*time.Second, "10 events", func() func(rtMsg) bool {
		n := 0
		return func(m rtMsg) bool {
			if m.Type == "event" {
				n++
			}
			return n == 10
		}
	}()).Seq
	a.c.Close()
	write(300)
	head := tr.mark(t, env, owner, "old-end")
	var bSeqs []uint64
	b.await(t, 30*time.Second, "b follows", func(m rtMsg) bool {
		if m.Type == "event" {
			bSeqs = append(bSeqs, m.Seq)
		}
		return m.Seq == head
	})
	b.c.Close()
	lastB := bSeqs[len(bSeqs)-40] // inside the last 100

	a2, b2 := mustDial(t, env, ws.Token), mustDial(t, env, ws.Token)
	a2.subscribe(t, []string{"workspace"}, &lastA)
	b2.subscribe(t, []string{"workspace"}, &lastB)
	write(5)
	end := tr.mark(t, env, owner, "old-end-2")
	var res oldResult
	follow := func(c *rtClient, last uint64) ([]uint64, []span) {
		var recv []uint64
		var rs []span
		c.await(t, 30*time.Second, "follow to the end", func(m rtMsg) bool {
			switch m.Type {
			case "event":
				recv = append(recv, m.Seq)
				last = m.Seq
			case "resync":
				rs = append(rs, span{last, m.Seq})
				last = m.Seq
			}
			return m.Seq == end
		})
		return recv, rs
	}
	recvA, rsA := follow(a2, lastA)
	recvB, rsB := follow(b2, lastB)
	if len(rsA) == 1 && rsA[0].to >= head {
		res.resynced = 1
	} else {
		t.Errorf("a resume from %d (buffer holds the last 100 of %d) got resyncs %v", lastA, head, rsA)
	}
	res.check = checkStream(tr.after(lastA), recvA, rsA)
	res.within = checkStream(tr.after(lastB), recvB, rsB)
	if res.within.gaps+res.within.resyncs+res.within.dups > 0 {
		t.Errorf("a resume inside the buffer: %+v", res.within)
	}
	return res
}

type overflowResult struct {
	check      streamCheck
	overflowed int64
}

// hubOverflow: the hub is held while 100 events are published into a queue
// of 16; Publish does not wait, and the subscriber gets a resync for what
// was dropped.
func hubOverflow(t *testing.T) overflowResult {
	env := rtEnv(t, httpapi.RealtimeConfig{HubQueue: 16})
	ws := env.Signup("over", "Over", "owner@over.test")
	c := mustDial(t, env, ws.Token)
	sub, _ := c.subscribe(t, []string{"workspace"}, nil)
	resume := env.API.PauseRealtimeHub()
	seq := synthetic(env, ws.ID, sub.Seq, 100, 10)
	resume()
	seq = synthetic(env, ws.ID, seq, 10, 10)
	var recv []uint64
	var rs []span
	last := sub.Seq
	c.await(t, 30*time.Second, "the end after an overflow", func(m rtMsg) bool {
		switch m.Type {
		case "event":
			recv = append(recv, m.Seq)
			last = m.Seq
		case "resync":
			rs = append(rs, span{last, m.Seq})
			last = m.Seq
		}
		return m.Seq == seq
	})
	var expected []uint64
	for s := sub.Seq + 1; s <= seq; s++ {
		expected = append(expected, s)
	}
	return overflowResult{check: checkStream(expected, recv, rs), overflowed: env.API.RealtimeStats().Overflowed}
}

type slowResult struct {
	check   streamCheck
	dropped int64
}

// slowClient: one client stops reading while 3,000 events of 8 KB are
// published; it is dropped (its queue is bounded) and the other client,
// reading, gets every event (resuming if it was dropped too).
func slowClient(t *testing.T) slowResult {
	env := rtEnv(t, httpapi.RealtimeConfig{SendQueue: 256})
	ws := env.Signup("slow", "Slow", "owner@slow.test")
	h := http.Header{"Authorization": {"Bearer " + ws.Token}}
	// A small, fixed receive buffer (no autotuning) so that the server's
	// writes to it block soon.
	small := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4096)
		}
		return c, err
	}}
	stalled, _, err := small.Dial(wsURL(env, ""), h)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	if err := stalled.WriteJSON(map[string]any{"type": "subscribe", "topics": []string{"workspace"}}); err != nil {
		t.Fatal(err)
	}
	if _, b, err := stalled.ReadMessage(); err != nil || !strings.Contains(string(b), "subscribed") {
		t.Fatalf("stalled client: %s %v", b, err)
	}
	var final atomic.Uint64
	f := &follower{env: env, token: ws.Token, final: &final, deadline: time.Now().Add(2 * time.Minute)}
	ready := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.run(func() { close(ready) })
	}()
	<-ready
	last := synthetic(env, ws.ID, f.start, 3000, 8<<10)
	final.Store(last)
	<-done
	if f.err != nil {
		t.Errorf("reading client: %v", f.err)
	}
	var expected []uint64
	for s := f.start + 1; s <= last; s++ {
		expected = append(expected, s)
	}
	res := slowResult{check: f.check(expected), dropped: env.API.RealtimeStats().SlowDropped}
	// The stalled client, reading at last, finds its connection closed.
	// (Close 1013 when its writer got to say so; a reset when the write
	// deadline ended it first.)
	_ = stalled.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		if _, _, err := stalled.ReadMessage(); err != nil {
			if !websocket.IsCloseError(err, websocket.CloseTryAgainLater) {
				t.Logf("stalled client ended with %v", err)
			}
			break
		}
	}
	return res
}

// TestRealtimeSecurityA10: a disallowed Origin never upgrades, nor does a
// request without a valid credential or ticket; another workspace's topics
// are refused; a socket whose session or key ends closes within 30 s.
func TestRealtimeSecurityA10(t *testing.T) {
	env := rtEnv(t, httpapi.RealtimeConfig{Reauth: 100 * time.Millisecond, PublicBaseURL: "https://teamflow.example.com"})
	a := seedTenantA(t, env)
	b := env.Signup("beta", "Beta", "owner@beta.test")

	// Cookie credentials, as the web UI has them.
	login := func(slug, email string) (token, cookie string) {
		r := env.Do("POST", "/api/v1/auth/login", "", map[string]any{"workspace": slug, "email": email, "password": "password-" + slug})
		if r.Status != http.StatusOK {
			t.Fatalf("login: %d %s", r.Status, r.Body)
		}
		token = r.Map(t)["access_token"].(string)
		r = env.Do("POST", "/api/v1/auth/login", "", map[string]any{"workspace": slug, "email": email, "password": "password-" + slug, "session_cookie": true})
		for _, c := range (&http.Response{Header: r.Header}).Cookies() {
			if c.Name == "tf_access" {
				cookie = "tf_access=" + c.Value
			}
		}
		if cookie == "" {
			t.Fatal("no session cookie")
		}
		return token, cookie
	}
	_, bCookie := login("beta", "owner@beta.test")
	host := strings.TrimPrefix(env.URL, "http://")

	// Origins.
	badUpgrades, goodUpgrades := 0, 0
	for _, origin := range []string{"http://evil.test", "null", "https://teamflow.example.com.evil.test", "http://teamflow.example.com",
		"https://evil.test/" + host, "file:///etc/passwd", "http://" + host + ".evil.test"} {
		for _, cred := range [][]string{{"Authorization", "Bearer " + b.Token}, {"Cookie", bCookie}} {
			c, resp, err := dialWS(env, "", append(cred, "Origin", origin)...)
			if err == nil {
				badUpgrades++
				c.c.Close()
				t.Errorf("Origin %s upgraded", origin)
			} else if resp == nil || resp.StatusCode != http.StatusForbidden {
				t.Errorf("Origin %s: %v %v, want 403", origin, resp, err)
			}
		}
		if r := env.Do("GET", "/api/v1/events?topics=workspace", b.Token, nil, "Origin", origin); r.Status != http.StatusForbidden {
			badUpgrades++
			t.Errorf("event stream with Origin %s: %d", origin, r.Status)
		}
	}
	for _, origin := range []string{"http://" + host, "https://teamflow.example.com"} {
		c, _, err := dialWS(env, "", "Cookie", bCookie, "Origin", origin)
		if err != nil {
			t.Errorf("allowed Origin %s: %v", origin, err)
			continue
		}
		goodUpgrades++
		c.c.Close()
	}

	// Credentials and tickets.
	ticket := func(token string) string {
		r := env.Do("POST", "/api/v1/ws/ticket", token, nil)
		if r.Status != http.StatusCreated {
			t.Fatalf("ticket: %d %s", r.Status, r.Body)
		}
		return r.Map(t)["ticket"].(string)
	}
	unauth := 0
	try := func(what, query string, header ...string) {
		c, resp, err := dialWS(env, query, header...)
		if err == nil {
			unauth++
			c.c.Close()
			t.Errorf("%s upgraded", what)
			return
		}
		if resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: %v, want 401", what, resp)
		}
	}
	try("no credential", "")
	try("garbage bearer", "", "Authorization", "Bearer garbage")
	try("garbage cookie", "", "Cookie", "tf_access=garbage")
	try("forged ticket", "?ticket=tfw_forged")
	try("A's refresh token", "?ticket=tfr_"+strings.ReplaceAll(a.ws.ID, "-", "")+"_x")
	tk := ticket(b.Token)
	c, _, err := dialWS(env, "?ticket="+tk)
	if err != nil {
		t.Fatalf("a fresh ticket: %v", err)
	}
	goodUpgrades++
	if m, _ := c.subscribe(t, []string{"user:me"}, nil); len(m.Topics) != 1 || m.Topics[0] != "user:"+b.OwnerID {
		t.Errorf("a ticket acts as its issuer: %+v", m)
	}
	c.c.Close()
	try("a ticket used twice", "?ticket="+tk)
	expiring := ticket(b.Token)
	env.Clock.Advance(61 * time.Second)
	try("an expired ticket", "?ticket="+expiring)
	if r := env.Do("POST", "/api/v1/ws/ticket", "", nil); r.Status != http.StatusUnauthorized {
		t.Errorf("a ticket without a session: %d", r.Status)
	}

	// Another workspace's topics, named every way.
	foreign := 0
	bc := mustDial(t, env, b.Token)
	aTopics := []string{"project:" + a.project, "task:" + a.task, "task:" + a.taskKey, "task:" + a.subtask, "user:" + a.ws.OwnerID, "user:" + a.guestID}
	sub, errs := bc.subscribe(t, append([]string{"workspace"}, aTopics...), nil)
	for _, tp := range sub.Topics {
		if tp != "workspace" {
			foreign++
			t.Errorf("B subscribed to %s", tp)
		}
	}
	if len(errs) != len(aTopics) {
		t.Errorf("want %d refusals, got %d", len(aTopics), len(errs))
	}
	for _, tp := range aTopics {
		if _, status := openSSE(t, env, "topics="+tp, b.Token, ""); status != http.StatusNotFound {
			foreign++
			t.Errorf("B's event stream on %s: %d", tp, status)
		}
		bc.send(t, map[string]any{"type": "presence", "topic": tp, "state": "viewing"})
		bc.await(t, 10*time.Second, "presence refused", func(m rtMsg) bool { return m.Type == "error" && m.Code == "topic_refused" })
	}

	// Sockets whose credential ends: a logout, a session revoked from
	// another one, a deactivated account, a revoked API key, an expired
	// session (no event tells of that one: the periodic check does).
	alive := 0
	expectClosed := func(what string, c *rtClient) {
		t.Helper()
		code, ok := c.closed(30 * time.Second)
		if !ok {
			alive++
			t.Errorf("%s: socket still open after 30 s", what)
		} else if code != 4401 {
			t.Errorf("%s: close code %d, want 4401", what, code)
		}
	}
	opened := func(token string) *rtClient {
		c := mustDial(t, env, token)
		c.subscribe(t, []string{"workspace"}, nil)
		return c
	}
	s1, _ := login("beta", "owner@beta.test")
	c1 := opened(s1)
	if r := env.Do("POST", "/api/v1/auth/logout", s1, nil); r.Status != http.StatusNoContent {
		t.Fatalf("logout: %d", r.Status)
	}
	expectClosed("logout", c1)

	s2, _ := login("beta", "owner@beta.test")
	c2 := opened(s2)
	var sessions struct {
		Items []struct {
			ID      string `json:"id"`
			Current bool   `json:"current"`
		}
	}
	env.Do("GET", "/api/v1/me/sessions", s2, nil).JSON(t, &sessions)
	for _, s := range sessions.Items {
		if s.Current {
			if r := env.Do("DELETE", "/api/v1/me/sessions/"+s.ID, b.Token, nil); r.Status != http.StatusNoContent {
				t.Fatalf("revoke: %d %s", r.Status, r.Body)
			}
		}
	}
	expectClosed("session revoked from another", c2)

	memberID, memberTok := env.Join(b, "Bea", "bea@beta.test", "member")
	c3 := opened(memberTok)
	if r := env.Do("PATCH", "/api/v1/members/"+memberID, b.Token, map[string]any{"status": "deactivated"}); r.Status != http.StatusOK {
		t.Fatalf("deactivate: %d %s", r.Status, r.Body)
	}
	expectClosed("account deactivated", c3)

	r := env.Do("POST", "/api/v1/api-keys", b.Token, map[string]any{"name": "rt", "scopes": []string{"read"}})
	key := r.Map(t)
	c4 := opened(key["token"].(string))
	if r := env.Do("DELETE", "/api/v1/api-keys/"+key["id"].(string), b.Token, nil); r.Status != http.StatusNoContent {
		t.Fatalf("revoke key: %d", r.Status)
	}
	expectClosed("API key revoked", c4)

	// A socket of a live session stays open through all that.
	if _, ok := bc.closed(0); ok {
		t.Error("an unrelated socket was closed")
	}
	s5, _ := login("beta", "owner@beta.test")
	c5 := opened(s5)
	env.Clock.Advance(31 * 24 * time.Hour)
	expectClosed("session expired", c5)
	expectClosed("every session expired", bc)

	figures.Report(t, "A10", 0, []figures.Figure{
		figures.Eq("bad_origin_upgrades", float64(badUpgrades), 0),
		figures.Eq("unauth_upgrades", float64(unauth), 0),
		figures.Eq("foreign_topic_subscribes", float64(foreign), 0),
		figures.Eq("socket_alive_after_revocation", float64(alive), 0),
		figures.Guard("allowed_upgrades", float64(goodUpgrades), 3),
	})
}

// TestRealtimeIsolationT4: 200 writes in workspace A, full of canaries,
// while B's sockets and event stream follow every topic B can name
// (including A's IDs): nothing of A reaches B.
func TestRealtimeIsolationT4(t *testing.T) {
	ctx := context.Background()
	env := rtEnv(t, httpapi.RealtimeConfig{})
	a := seedTenantA(t, env)
	aOwner := authenticate(t, env, a.ws.Token)
	b := env.Signup("beta", "Beta", "owner@beta.test")
	_, bMember := env.Join(b, "Bea Member", "member@beta.test", "member")
	bGuestID, bGuest := env.Join(b, "Ben Guest", "guest@beta.test", "guest")
	bProject := env.Create("/api/v1/projects", b.Token, map[string]any{"name": "Beta project"})
	env.Do("PUT", "/api/v1/projects/"+bProject+"/members/"+bGuestID, b.Token, map[string]any{"role": "contributor"})

	aIDs := []string{a.ws.ID, a.project, a.task, a.subtask, a.comment, a.ws.OwnerID, a.guestID, a.canary}
	topics := []string{"workspace", "user:me", "project:" + bProject, "project:" + a.project, "task:" + a.task, "task:" + a.taskKey,
		"task:" + a.subtask, "user:" + a.ws.OwnerID, "user:" + a.guestID}
	foreign := 0
	var bSockets []*rtClient
	for _, tok := range []string{b.Token, bMember, bGuest} {
		c := mustDial(t, env, tok)
		sub, _ := c.subscribe(t, topics, nil)
		for _, tp := range sub.Topics {
			if slices.ContainsFunc(aIDs, func(id string) bool { return strings.Contains(tp, id) }) {
				foreign++
				t.Errorf("B subscribed to %s", tp)
			}
		}
		bSockets = append(bSockets, c)
	}
	bStream, status := openSSE(t, env, "topics=workspace,user:me,project:"+bProject, b.Token, "")
	if status != http.StatusOK {
		t.Fatalf("B's event stream: %d", status)
	}
	aSocket := mustDial(t, env, a.ws.Token)
	aSocket.subscribe(t, []string{"workspace", "user:me", "project:" + a.project}, nil)

	// 200 writes in A.
	writes := 0
	for i := range 100 {
		tk, err := env.Service.CreateTask(ctx, aOwner, a.project, engine.CreateTaskInput{Title: fmt.Sprintf("%s %d", a.canary, i), Tags: []string{strings.ToLower(a.canary)}})
		if err != nil {
			t.Fatal(err)
		}
		writes++
		if i%2 == 0 {
			if _, err := env.Service.CreateComment(ctx, aOwner, tk.ID, "comment "+a.canary, ""); err != nil {
				t.Fatal(err)
			}
		} else {
			title := "renamed " + a.canary
			if _, err := env.Service.UpdateTask(ctx, aOwner, tk.ID, engine.TaskPatch{Title: &title}); err != nil {
				t.Fatal(err)
			}
		}
		writes++
	}
	// Then one write in B that every B socket may see: when it arrives,
	// everything of A's before it would have arrived too.
	marker := "B-marker-" + strconv.Itoa(rand.IntN(1e6))
	env.Create("/api/v1/projects/"+bProject+"/tasks", b.Token, map[string]any{"title": marker})

	leaked := 0
	for i, c := range bSockets {
		c.await(t, 30*time.Second, "B's marker", func(m rtMsg) bool {
			for _, id := range aIDs {
				if strings.Contains(m.raw, id) {
					leaked++
					t.Errorf("B socket %d got A's data: %s", i, m.raw)
					break
				}
			}
			return strings.Contains(m.raw, marker)
		})
	}
	sseLeaked := 0
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	for seen := false; !seen; {
		select {
		case f := <-bStream.frames:
			for _, id := range aIDs {
				if strings.Contains(f.data, id) {
					sseLeaked++
					t.Errorf("B's event stream got A's data: %s", f.data)
					break
				}
			}
			seen = strings.Contains(f.data, marker)
		case <-timer.C:
			t.Fatal("B's event stream: no marker within 30 s")
		}
	}
	aEvents := 0
	aSocket.await(t, 30*time.Second, "A's own writes", func(m rtMsg) bool {
		if m.Type == "event" && strings.Contains(m.raw, a.canary) {
			aEvents++
		}
		return aEvents == writes
	})
	figures.Report(t, "T4", 0, []figures.Figure{
		figures.Eq("ws_subscribe_foreign_accepted", float64(foreign), 0),
		figures.Eq("ws_events_leaked", float64(leaked+sseLeaked), 0),
		figures.Guard("a_writes", float64(writes), 200),
		figures.Guard("a_events_delivered_to_a", float64(aEvents), 200),
		figures.Guard("b_sockets", float64(len(bSockets)+1), 4),
	})
}

// TestRealtimePresence: two people viewing a task are both shown; one
// closing its socket drops out; someone who cannot see the task cannot be
// present on it.
func TestRealtimePresence(t *testing.T) {
	env := rtEnv(t, httpapi.RealtimeConfig{})
	ws := env.Signup("acme", "Acme", "owner@acme.test")
	memberID, memberTok := env.Join(ws, "Mia", "mia@acme.test", "member")
	_, guestTok := env.Join(ws, "Gus", "gus@acme.test", "guest")
	proj := env.Create("/api/v1/projects", ws.Token, map[string]any{"name": "P"})
	task := env.Create("/api/v1/projects/"+proj+"/tasks", ws.Token, map[string]any{"title": "T"})
	topic := "task:" + task

	owner := mustDial(t, env, ws.Token)
	owner.subscribe(t, []string{topic}, nil)
	member := mustDial(t, env, memberTok)
	member.subscribe(t, []string{topic}, nil)
	owner.send(t, map[string]any{"type": "presence", "topic": topic, "state": "viewing"})
	member.send(t, map[string]any{"type": "presence", "topic": topic, "state": "viewing"})
	both := []string{ws.OwnerID, memberID}
	slices.Sort(both)
	owner.await(t, 10*time.Second, "two viewers", func(m rtMsg) bool {
		return m.Type == "presence" && m.Topic == topic && slices.Equal(m.Viewers, both)
	})
	// A newcomer gets the viewers with its subscription.
	late := mustDial(t, env, ws.Token)
	late.subscribe(t, []string{topic}, nil)
	late.await(t, 10*time.Second, "viewers on subscribe", func(m rtMsg) bool {
		return m.Type == "presence" && slices.Equal(m.Viewers, both)
	})
	member.c.NetConn().Close()
	owner.await(t, 10*time.Second, "one viewer left", func(m rtMsg) bool {
		return m.Type == "presence" && m.Topic == topic && slices.Equal(m.Viewers, []string{ws.OwnerID})
	})
	guest := mustDial(t, env, guestTok)
	guest.send(t, map[string]any{"type": "presence", "topic": topic, "state": "viewing"})
	guest.await(t, 10*time.Second, "guest refused", func(m rtMsg) bool { return m.Type == "error" && m.Code == "topic_refused" })
	owner.send(t, map[string]any{"type": "presence", "topic": topic, "state": "left"})
	owner.await(t, 10*time.Second, "nobody left", func(m rtMsg) bool {
		return m.Type == "presence" && m.Topic == topic && len(m.Viewers) == 0
	})
}

// TestRealtimePeerPresence: viewers another node of the cluster reports
// join this node's own in what its clients see, only in their workspace;
// this node's table lists its own viewers only, and a change is signalled
// so it can be sent at once; a node that is gone takes its viewers along.
func TestRealtimePeerPresence(t *testing.T) {
	env := rtEnv(t, httpapi.RealtimeConfig{})
	ws := env.Signup("acme", "Acme", "owner@acme.test")
	other := env.Signup("beta", "Beta", "owner@beta.test")
	proj := env.Create("/api/v1/projects", ws.Token, map[string]any{"name": "P"})
	topic := "project:" + proj
	owner := mustDial(t, env, ws.Token)
	owner.subscribe(t, []string{topic}, nil)
	select { // drain a signal left by an earlier change
	case <-env.API.PresenceChanged():
	default:
	}
	owner.send(t, map[string]any{"type": "presence", "topic": topic, "state": "viewing"})
	owner.await(t, 10*time.Second, "own presence", func(m rtMsg) bool {
		return m.Type == "presence" && slices.Equal(m.Viewers, []string{ws.OwnerID})
	})
	select {
	case <-env.API.PresenceChanged():
	case <-time.After(10 * time.Second):
		t.Fatal("a local presence change was not signalled")
	}
	if got := env.API.LocalPresence(); !slices.Equal(got[ws.ID][topic], []string{ws.OwnerID}) || len(got) != 1 {
		t.Fatalf("local presence: %v", got)
	}

	remote := "0193a0c4-8a70-7b3e-9c1d-2f4e6a8b0c1d"
	both := []string{ws.OwnerID, remote}
	slices.Sort(both)
	// Another workspace's table names the same topic: it reaches nobody here.
	env.API.PeerPresence(7, httpapi.PresenceTable{other.ID: {topic: {"0193a0c4-8a70-7b3e-9c1d-2f4e6a8b0c1e"}}})
	env.API.PeerPresence(8, httpapi.PresenceTable{ws.ID: {topic: {remote}}})
	owner.await(t, 10*time.Second, "a viewer on another node", func(m rtMsg) bool {
		return m.Type == "presence" && m.Topic == topic && slices.Equal(m.Viewers, both)
	})
	late := mustDial(t, env, ws.Token)
	late.subscribe(t, []string{topic}, nil)
	late.await(t, 10*time.Second, "every node's viewers on subscribe", func(m rtMsg) bool {
		return m.Type == "presence" && slices.Equal(m.Viewers, both)
	})
	if got := env.API.LocalPresence(); !slices.Equal(got[ws.ID][topic], []string{ws.OwnerID}) {
		t.Fatalf("local presence lists another node's viewers: %v", got)
	}
	env.API.PeerPresence(8, nil)
	owner.await(t, 10*time.Second, "the gone node's viewer dropped", func(m rtMsg) bool {
		return m.Type == "presence" && m.Topic == topic && slices.Equal(m.Viewers, []string{ws.OwnerID})
	})
}

// TestRealtimeSSE: the event stream carries the same events as the
// websocket, and a reconnect with Last-Event-ID (or since=) resumes exactly.
func TestRealtimeSSE(t *testing.T) {
	ctx := context.Background()
	env := rtEnv(t, httpapi.RealtimeConfig{})
	ws := env.Signup("acme", "Acme", "owner@acme.test")
	owner := authenticate(t, env, ws.Token)
	proj, err := env.Service.CreateProject(ctx, owner, engine.CreateProjectInput{Name: "SSE"})
	if err != nil {
		t.Fatal(err)
	}
	write := func(n int) {
		for i := range n {
			if _, err := env.Service.CreateTask(ctx, owner, proj.ID, engine.CreateTaskInput{Title: fmt.Sprintf("sse %d", i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	ref := mustDial(t, env, ws.Token)
	ref.subscribe(t, []string{"workspace"}, nil)
	s1, status := openSSE(t, env, "topics=workspace", ws.Token, "")
	if status != http.StatusOK {
		t.Fatalf("event stream: %d", status)
	}
	select {
	case f := <-s1.frames:
		if f.event != "subscribed" {
			t.Fatalf("first frame: %+v", f)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no subscribed frame")
	}
	write(10)
	var refMsgs []rtMsg
	for range 30 {
		refMsgs = append(refMsgs, ref.await(t, 10*time.Second, "ws event", func(m rtMsg) bool { return m.Type == "event" }))
		if len(refMsgs) == 10 {
			write(20)
		}
	}
	same := func(frames []sseFrame, msgs []rtMsg) {
		t.Helper()
		for i, f := range frames {
			if f.id != strconv.FormatUint(msgs[i].Seq, 10) || f.data != msgs[i].raw {
				t.Fatalf("frame %d: id %s data %s; websocket: %d %s", i, f.id, f.data, msgs[i].Seq, msgs[i].raw)
			}
		}
	}
	f1 := s1.awaitEvents(t, 10, 10*time.Second)
	same(f1, refMsgs[:10])
	s1.close()
	s2, _ := openSSE(t, env, "topics=workspace", ws.Token, f1[9].id)
	same(s2.awaitEvents(t, 20, 10*time.Second), refMsgs[10:])
	s3, _ := openSSE(t, env, "topics=workspace&since="+f1[4].id, ws.Token, "")
	same(s3.awaitEvents(t, 25, 10*time.Second), refMsgs[5:])
	for _, q := range []string{"", "topics=", "topics=bogus", "topics=workspace&since=x"} {
		if _, status := openSSE(t, env, q, ws.Token, ""); status < 400 || status >= 500 {
			t.Errorf("event stream ?%s: %d", q, status)
		}
	}
	if _, status := openSSE(t, env, "topics=workspace", "", ""); status != http.StatusUnauthorized {
		t.Errorf("event stream without a credential: %d", status)
	}
}

// BenchmarkRealtimeFanout: one write reaches 1,000 websocket subscribers
// (RT_SUBSCRIBERS to change); it reports the latency from the hub's Publish
// and from the write's acknowledgement to each subscriber's receipt.
//
//	go test ./httpapi -run '^$' -bench RealtimeFanout -benchtime 200x
func BenchmarkRealtimeFanout(b *testing.B) {
	subs := 1000
	if s, err := strconv.Atoi(os.Getenv("RT_SUBSCRIBERS")); err == nil && s > 0 {
		subs = s
	}
	ctx := context.Background()
	env := rtEnv(b, httpapi.RealtimeConfig{})
	ws := env.Signup("fan", "Fan", "owner@fan.test")
	owner := authenticate(b, env, ws.Token)
	proj, err := env.Service.CreateProject(ctx, owner, engine.CreateProjectInput{Name: "Fan"})
	if err != nil {
		b.Fatal(err)
	}
	task, err := env.Service.CreateTask(ctx, owner, proj.ID, engine.CreateTaskInput{Title: "fan"})
	if err != nil {
		b.Fatal(err)
	}

	var mu sync.Mutex
	published := map[uint64]time.Time{}
	var order []uint64
	env.Store.Observe(func(batch []storage.Applied) {
		now := time.Now()
		mu.Lock()
		for _, a := range batch {
			if ev, ok := engine.EventsFrom(a); ok && ev.Tenant == ws.ID && ev.Deliverable() {
				published[ev.Seq] = now
				order = append(order, ev.Seq)
			}
		}
		mu.Unlock()
	})
	received := map[uint64][]time.Time{}
	complete := make(chan uint64, 1<<16)
	onEvent := func(m rtMsg) {
		mu.Lock()
		received[m.Seq] = append(received[m.Seq], m.at)
		n := len(received[m.Seq])
		mu.Unlock()
		if n == subs {
			complete <- m.Seq
		}
	}
	for range subs {
		c, _, err := dialWSHook(env, "", onEvent, "Authorization", "Bearer "+ws.Token)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.c.Close() })
		c.subscribe(b, []string{"project:" + proj.ID}, nil)
	}
	var fromPublish, fromAck []time.Duration
	b.ResetTimer()
	for i := range b.N {
		title := fmt.Sprintf("fan %d", i)
		if _, err := env.Service.UpdateTask(ctx, owner, task.ID, engine.TaskPatch{Title: &title}); err != nil {
			b.Fatal(err)
		}
		acked := time.Now()
		seq := <-complete
		mu.Lock()
		pub := published[seq]
		for _, at := range received[seq] {
			fromPublish = append(fromPublish, at.Sub(pub))
			fromAck = append(fromAck, max(0, at.Sub(acked)))
		}
		delete(received, seq)
		mu.Unlock()
	}
	b.StopTimer()
	pct := func(d []time.Duration, p float64) float64 {
		slices.Sort(d)
		return float64(d[min(len(d)-1, int(float64(len(d))*p))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(subs), "subscribers")
	b.ReportMetric(pct(fromPublish, 0.50), "p50-publish-ms")
	b.ReportMetric(pct(fromPublish, 0.99), "p99-publish-ms")
	b.ReportMetric(pct(fromPublish, 1), "max-publish-ms")
	b.ReportMetric(pct(fromAck, 0.99), "p99-ack-ms")
}

// TestRealtimeOutlivesServerTimeouts: the server's read and write timeouts
// (60 s in teamflow serve) bound requests, not live-update connections.
func TestRealtimeOutlivesServerTimeouts(t *testing.T) {
	env := rtEnv(t, httpapi.RealtimeConfig{Ping: 200 * time.Millisecond})
	ws := env.Signup("acme", "Acme", "owner@acme.test")
	srv := httptest.NewUnstartedServer(env.API.Handler())
	srv.Config.ReadTimeout, srv.Config.WriteTimeout = 300*time.Millisecond, 300*time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	t.Cleanup(env.API.CloseRealtime) // before srv.Close waits for the stream

	stream := &apitest.Env{Env: env.Env, API: env.API, URL: srv.URL}
	s, status := openSSE(t, stream, "topics=workspace", ws.Token, "")
	if status != http.StatusOK {
		t.Fatalf("event stream: %d", status)
	}
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/api/v1/ws", http.Header{"Authorization": {"Bearer " + ws.Token}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pings := make(chan struct{}, 100)
	c.SetPingHandler(func(data string) error {
		pings <- struct{}{}
		return c.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	msgs := make(chan string, 100)
	go func() {
		for {
			_, b, err := c.ReadMessage()
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(b)
		}
	}()
	if err := c.WriteJSON(map[string]any{"type": "subscribe", "topics": []string{"workspace"}}); err != nil {
		t.Fatal(err)
	}
	// Ten pings: about 2 s, several times both timeouts.
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	for range 10 {
		select {
		case <-pings:
		case <-timer.C:
			t.Fatal("no pings")
		}
	}
	env.Create("/api/v1/projects", ws.Token, map[string]any{"name": "still here"})
	for {
		select {
		case m, ok := <-msgs:
			if !ok {
				t.Fatal("the websocket ended")
			}
			if !strings.Contains(m, "still here") {
				continue
			}
		case <-timer.C:
			t.Fatal("no event on the websocket")
		}
		break
	}
	if f := s.awaitEvents(t, 1, 10*time.Second); !strings.Contains(f[0].data, "still here") {
		t.Fatalf("event stream: %+v", f)
	}
}

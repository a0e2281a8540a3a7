package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/teamflow/teamflow/engine"
	"github.com/teamflow/teamflow/httpapi/apitest"
	"github.com/teamflow/teamflow/storage"
)

// rtMsg is any server message of the live-update protocol.
type rtMsg struct {
	Type    string   `json:"type"`
	Seq     uint64   `json:"seq"`
	Kind    string   `json:"kind"`
	Topics  []string `json:"topics"`
	Topic   string   `json:"topic"`
	Viewers []string `json:"viewers"`
	Code    string   `json:"code"`
	Changes []struct {
		Kind      string          `json:"kind"`
		ProjectID string          `json:"project_id"`
		TaskID    string          `json:"task_id"`
		After     json.RawMessage `json:"after"`
	} `json:"changes"`
	Notifications []json.RawMessage `json:"notifications"`
	Unread        *int64            `json:"unread"`
	raw           string
	at            time.Time // when the client read it
}

var eventPrefix = []byte(`{"type":"event","seq":`)

// rtClient is a websocket client; a goroutine reads every message into a
// channel, so the test can wait on it with a deadline (a read deadline
// would break a gorilla connection for good).
type rtClient struct {
	c    *websocket.Conn
	msgs chan rtMsg
	done chan struct{}
	err  error // why reading stopped, once done is closed
}

func wsURL(env *apitest.Env, query string) string {
	return "ws" + strings.TrimPrefix(env.URL, "http") + "/api/v1/ws" + query
}

// dialWS opens a websocket; header pairs are added to the handshake.
func dialWS(env *apitest.Env, query string, header ...string) (*rtClient, *http.Response, error) {
	return dialWSHook(env, query, nil, header...)
}

// dialWSHook is dialWS with onEvent called, on the reading goroutine, for
// each event instead of queueing it.
func dialWSHook(env *apitest.Env, query string, onEvent func(rtMsg), header ...string) (*rtClient, *http.Response, error) {
	h := http.Header{}
	for i := 0; i+1 < len(header); i += 2 {
		h.Add(header[i], header[i+1])
	}
	c, resp, err := websocket.DefaultDialer.Dial(wsURL(env, query), h)
	if err != nil {
		return nil, resp, err
	}
	cl := &rtClient{c: c, msgs: make(chan rtMsg, 4096), done: make(chan struct{})}
	go func() {
		defer close(cl.done)
		for {
			_, b, err := c.ReadMessage()
			if err != nil {
				cl.err = err
				return
			}
			at := time.Now()
			if onEvent != nil && bytes.HasPrefix(b, eventPrefix) {
				// A benchmark's client: read the seq only, the way a
				// client on another machine would cost the server nothing.
				end := bytes.IndexByte(b[len(eventPrefix):], ',')
				seq, _ := strconv.ParseUint(string(b[len(eventPrefix):len(eventPrefix)+max(end, 0)]), 10, 64)
				onEvent(rtMsg{Type: "event", Seq: seq, at: at})
				continue
			}
			var m rtMsg
			_ = json.Unmarshal(b, &m)
			m.raw, m.at = string(b), at
			cl.msgs <- m
		}
	}()
	return cl, resp, nil
}

func mustDial(t testing.TB, env *apitest.Env, token string) *rtClient {
	t.Helper()
	c, resp, err := dialWS(env, "", "Authorization", "Bearer "+token)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial: %v (status %d)", err, status)
	}
	t.Cleanup(func() { c.c.Close() })
	return c
}

func (c *rtClient) send(t testing.TB, v any) {
	t.Helper()
	if err := c.c.WriteJSON(v); err != nil {
		t.Fatalf("send: %v", err)
	}
}

// next waits for the next message; ok is false on timeout or when the
// connection has ended and every message was taken.
func (c *rtClient) next(d time.Duration) (rtMsg, bool) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case m := <-c.msgs:
		return m, true
	case <-c.done:
		select {
		case m := <-c.msgs:
			return m, true
		default:
			return rtMsg{}, false
		}
	case <-timer.C:
		return rtMsg{}, false
	}
}

// await reads until a message satisfies match, failing after d.
func (c *rtClient) await(t testing.TB, d time.Duration, what string, match func(rtMsg) bool) rtMsg {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("%s: not within %s", what, d)
		}
		m, ok := c.next(left)
		if !ok {
			t.Fatalf("%s: connection ended or timed out (%v)", what, c.err)
		}
		if match(m) {
			return m
		}
	}
}

// subscribe sends a subscription and returns the confirmation and the
// errors that came before it.
func (c *rtClient) subscribe(t testing.TB, topics []string, since *uint64) (rtMsg, []rtMsg) {
	t.Helper()
	msg := map[string]any{"type": "subscribe", "topics": topics}
	if since != nil {
		msg["since"] = *since
	}
	c.send(t, msg)
	var errs []rtMsg
	m := c.await(t, 10*time.Second, "subscribed", func(m rtMsg) bool {
		if m.Type == "error" {
			errs = append(errs, m)
		}
		return m.Type == "subscribed"
	})
	return m, errs
}

// closed waits until the server has closed the connection; it reports the
// close code (0 when it did not close within d).
func (c *rtClient) closed(d time.Duration) (int, bool) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case <-c.msgs:
		case <-c.done:
			var ce *websocket.CloseError
			if errors.As(c.err, &ce) {
				return ce.Code, true
			}
			return -1, true
		case <-timer.C:
			return 0, false
		}
	}
}

// truth records, from the store's observer, every deliverable event of one
// workspace: what a subscriber to the whole workspace must receive.
type truth struct {
	mu     sync.Mutex
	seqs   []uint64
	marker map[string]uint64 // project created with this name → its event's seq
	notify chan struct{}     // a batch was recorded
}

func watchTruth(env *apitest.Env, tenant string) *truth {
	tr := &truth{marker: map[string]uint64{}, notify: make(chan struct{}, 1)}
	env.Store.Observe(func(batch []storage.Applied) {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		defer func() {
			select {
			case tr.notify <- struct{}{}:
			default:
			}
		}()
		for _, a := range batch {
			ev, ok := engine.EventsFrom(a)
			if !ok || !ev.Deliverable() || ev.Tenant != tenant {
				continue
			}
			tr.seqs = append(tr.seqs, ev.Seq)
			for _, c := range ev.Changes {
				var name string
				if c.Kind == "project.created" && json.Unmarshal(c.After, &name) == nil {
					tr.marker[name] = ev.Seq
				}
			}
		}
	})
	return tr
}

// mark creates a project named name and waits until the observer has seen
// it: every earlier write has been seen by then. It returns its seq.
func (tr *truth) mark(t testing.TB, env *apitest.Env, p engine.Principal, name string) uint64 {
	t.Helper()
	if _, err := env.Service.CreateProject(context.Background(), p, engine.CreateProjectInput{Name: name}); err != nil {
		t.Fatal(err)
	}
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	for {
		tr.mu.Lock()
		seq, ok := tr.marker[name]
		tr.mu.Unlock()
		if ok {
			return seq
		}
		select {
		case <-tr.notify:
		case <-timer.C:
			t.Fatalf("marker %s not observed within 30s", name)
		}
	}
}

func (tr *truth) after(seq uint64) []uint64 {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var out []uint64
	for _, s := range tr.seqs {
		if s > seq {
			out = append(out, s)
		}
	}
	return out
}

// streamCheck compares what a subscriber received with what it had to.
type streamCheck struct {
	gaps, dups, outOfOrder, silentGaps, resyncs int
}

// span is what a resync excused: events in (from, to] may be missing.
type span struct{ from, to uint64 }

func checkStream(expected, received []uint64, resyncs []span) streamCheck {
	var c streamCheck
	seen := map[uint64]int{}
	for i, s := range received {
		seen[s]++
		if seen[s] > 1 {
			c.dups++
		} else if i > 0 && s < received[i-1] {
			c.outOfOrder++
		}
	}
	c.resyncs = len(resyncs)
	for _, s := range expected {
		if seen[s] > 0 {
			continue
		}
		c.gaps++
		excused := false
		for _, r := range resyncs {
			excused = excused || (s > r.from && s <= r.to)
		}
		if !excused {
			c.silentGaps++
		}
	}
	return c
}

func (c *streamCheck) add(o streamCheck) {
	c.gaps += o.gaps
	c.dups += o.dups
	c.outOfOrder += o.outOfOrder
	c.silentGaps += o.silentGaps
	c.resyncs += o.resyncs
}

// sseFrame is one server-sent event.
type sseFrame struct {
	id, event, data string
}

type sseClient struct {
	resp   *http.Response
	cancel context.CancelFunc
	frames chan sseFrame
	done   chan struct{}
}

// openSSE opens GET /api/v1/events?<query>; it returns the response for a
// refused request (the body read) and a client for a stream.
func openSSE(t testing.TB, env *apitest.Env, query, token, lastID string) (*sseClient, int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, env.URL+"/api/v1/events?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		return nil, resp.StatusCode
	}
	s := &sseClient{resp: resp, cancel: cancel, frames: make(chan sseFrame, 1<<16), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var f sseFrame
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if f.data != "" {
					s.frames <- f
				}
				f = sseFrame{}
			case strings.HasPrefix(line, "id: "):
				f.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				f.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				f.data = line[6:]
			}
		}
	}()
	t.Cleanup(s.close)
	return s, http.StatusOK
}

func (s *sseClient) close() {
	s.cancel()
	s.resp.Body.Close()
	<-s.done
}

// awaitEvents reads event frames (no event: line) until n have come.
func (s *sseClient) awaitEvents(t testing.TB, n int, d time.Duration) []sseFrame {
	t.Helper()
	var out []sseFrame
	timer := time.NewTimer(d)
	defer timer.Stop()
	for len(out) < n {
		select {
		case f := <-s.frames:
			if f.event == "" {
				out = append(out, f)
			}
		case <-s.done:
			t.Fatalf("event stream ended after %d of %d events", len(out), n)
		case <-timer.C:
			t.Fatalf("event stream: %d of %d events within %s", len(out), n, d)
		}
	}
	return out
}

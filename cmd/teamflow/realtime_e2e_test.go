//go:build e2e

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// wsMsg is a live-update message.
type wsMsg struct {
	Type    string   `json:"type"`
	Seq     uint64   `json:"seq"`
	Kind    string   `json:"kind"`
	Topics  []string `json:"topics"`
	Changes []struct {
		Kind   string `json:"kind"`
		TaskID string `json:"task_id"`
	} `json:"changes"`
	Topic   string   `json:"topic"`
	Viewers []string `json:"viewers"`
}

// readWS reads messages until match holds, within d.
func readWS(t *testing.T, c *websocket.Conn, d time.Duration, what string, match func(wsMsg) bool) wsMsg {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	for {
		_, b, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		var m wsMsg
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %q: %v", what, b, err)
		}
		if match(m) {
			return m
		}
	}
}

// TestLiveUpdatesOnTheRealServer: the binary wires its store's observer to
// the realtime hub: a cookie-authenticated websocket and an event stream
// see each write, in order; a SIGTERM closes them and the server exits
// cleanly; after a restart a client resumes from its last seq, or is told
// to resync when it asks for what the new process never saw.
func TestLiveUpdatesOnTheRealServer(t *testing.T) {
	dir := t.TempDir()
	s := start(t, dir, "--mode", "cloud")
	c := signup(t, s, "acme")
	cc := newClient(t, s.URL)
	want(t, cc.do("POST", "/api/v1/auth/login", map[string]any{"workspace": "acme", "email": "owner@acme.test", "password": "password-acme", "session_cookie": true}), 200, "cookie login")
	u, _ := url.Parse(s.URL)
	var cookie []string
	for _, ck := range cc.http.Jar.Cookies(u) {
		cookie = append(cookie, ck.Name+"="+ck.Value)
	}
	wsURL := "ws" + strings.TrimPrefix(s.URL, "http") + "/api/v1/ws"
	dial := func(origin string, header http.Header) (*websocket.Conn, *http.Response, error) {
		h := header.Clone()
		if origin != "" {
			h.Set("Origin", origin)
		}
		return websocket.DefaultDialer.Dial(wsURL, h)
	}
	cookieHdr := http.Header{"Cookie": {strings.Join(cookie, "; ")}}
	if _, resp, err := dial("http://evil.test", cookieHdr); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a foreign Origin: %v %v", resp, err)
	}
	ws, _, err := dial(s.URL, cookieHdr)
	if err != nil {
		t.Fatalf("cookie websocket: %v", err)
	}
	defer ws.Close()
	if err := ws.WriteJSON(map[string]any{"type": "subscribe", "topics": []string{"workspace"}}); err != nil {
		t.Fatal(err)
	}
	sub := readWS(t, ws, 10*time.Second, "subscribed", func(m wsMsg) bool { return m.Type == "subscribed" })

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+"/api/v1/events?topics=workspace", nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	stream, err := http.DefaultClient.Do(req)
	if err != nil || stream.StatusCode != http.StatusOK || !strings.HasPrefix(stream.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("event stream: %v %v", stream, err)
	}
	defer stream.Body.Close()
	ids := make(chan string, 100)
	streamEnded := make(chan struct{})
	go func() {
		defer close(streamEnded)
		sc := bufio.NewScanner(stream.Body)
		event, id := "", ""
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				event = line[7:]
			case strings.HasPrefix(line, "id: "):
				id = line[4:]
			case line == "":
				if event == "" && id != "" {
					ids <- id // an event (other frames name their type)
				}
				event, id = "", ""
			}
		}
	}()

	pid := want(t, c.do("POST", "/api/v1/projects", map[string]any{"name": "Live"}), 201, "project")["id"].(string)
	for i := range 5 {
		want(t, c.do("POST", "/api/v1/projects/"+pid+"/tasks", map[string]any{"title": "live " + string(rune('a'+i))}), 201, "task")
	}
	last := sub.Seq
	var seqs []uint64
	for len(seqs) < 6 {
		m := readWS(t, ws, 10*time.Second, "events", func(m wsMsg) bool { return m.Type == "event" })
		if m.Seq <= last {
			t.Fatalf("seq %d after %d", m.Seq, last)
		}
		last = m.Seq
		seqs = append(seqs, m.Seq)
	}
	for i, want := range seqs {
		select {
		case id := <-ids:
			if id != jsonNum(want) {
				t.Fatalf("event stream id %d: %s, websocket seq %d", i, id, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("event stream: %d of %d events", i, len(seqs))
		}
	}

	// SIGTERM with both open: the server closes them and exits cleanly.
	if err := s.Stop(); err != nil {
		t.Fatalf("SIGTERM with live connections: %v", err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
				t.Errorf("websocket at shutdown: %v, want close 1001", err)
			}
			break
		}
	}
	select {
	case <-streamEnded:
	case <-time.After(10 * time.Second):
		t.Error("the event stream did not end at shutdown")
	}

	s2 := start(t, dir, "--mode", "cloud")
	c.base = s2.URL
	wsURL = "ws" + strings.TrimPrefix(s2.URL, "http") + "/api/v1/ws"
	bearer := http.Header{"Authorization": {"Bearer " + c.token}}
	resume, _, err := dial("", bearer)
	if err != nil {
		t.Fatal(err)
	}
	defer resume.Close()
	if err := resume.WriteJSON(map[string]any{"type": "subscribe", "topics": []string{"workspace"}, "since": last}); err != nil {
		t.Fatal(err)
	}
	readWS(t, resume, 10*time.Second, "subscribed", func(m wsMsg) bool { return m.Type == "subscribed" })
	want(t, c.do("POST", "/api/v1/projects/"+pid+"/tasks", map[string]any{"title": "after restart"}), 201, "task")
	if m := readWS(t, resume, 10*time.Second, "after restart", func(m wsMsg) bool { return m.Type != "subscribed" }); m.Type != "event" || m.Seq <= last {
		t.Fatalf("after restart: %+v, want the event after %d", m, last)
	}
	stale, _, err := dial("", bearer)
	if err != nil {
		t.Fatal(err)
	}
	defer stale.Close()
	if err := stale.WriteJSON(map[string]any{"type": "subscribe", "topics": []string{"workspace"}, "since": seqs[0]}); err != nil {
		t.Fatal(err)
	}
	if m := readWS(t, stale, 10*time.Second, "resync", func(m wsMsg) bool { return m.Type != "subscribed" }); m.Type != "resync" || m.Seq < last+1 {
		t.Fatalf("a resume from before the restart: %+v, want resync", m)
	}
}

func jsonNum(n uint64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestLiveUpdatesAcrossTheCluster: on a 3-node cluster, a websocket client
// connected to node 2 sees, in order, every change made through nodes 1
// and 3, and who is viewing the project on node 3 (presence travels over
// the cluster transport, never the log); when node 3 dies its viewers
// vanish from node 2's answer.
func TestLiveUpdatesAcrossTheCluster(t *testing.T) {
	c := newCluster(t, 3)
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]
	cl := newClient(t, n1.URL())
	m := want(t, cl.do("POST", "/api/v1/signup", map[string]any{"workspace_name": "Acme", "workspace_slug": "acme",
		"name": "Owner", "email": "owner@acme.test", "password": "password-acme"}), 201, "signup")
	cl.token = m["access_token"].(string)
	me := m["owner"].(map[string]any)["id"].(string)
	pid := want(t, cl.do("POST", "/api/v1/projects", map[string]any{"name": "Live"}), 201, "project")["id"].(string)
	topic := "project:" + pid

	// A socket on node n, once the session has reached it.
	dial := func(n *cnode) *websocket.Conn {
		var ws *websocket.Conn
		eventually(t, 30*time.Second, func() bool {
			var err error
			ws, _, err = websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(n.URL(), "http")+"/api/v1/ws",
				http.Header{"Authorization": {"Bearer " + cl.token}})
			return err == nil
		}, fmt.Sprintf("websocket on node %d", n.id))
		t.Cleanup(func() { ws.Close() })
		if err := ws.WriteJSON(map[string]any{"type": "subscribe", "topics": []string{topic}}); err != nil {
			t.Fatal(err)
		}
		return ws
	}
	a := dial(n2)
	sub := readWS(t, a, 20*time.Second, "subscribed on node 2", func(m wsMsg) bool { return m.Type == "subscribed" })
	b := dial(n3)
	readWS(t, b, 20*time.Second, "subscribed on node 3", func(m wsMsg) bool { return m.Type == "subscribed" })
	if err := b.WriteJSON(map[string]any{"type": "presence", "topic": topic, "state": "viewing"}); err != nil {
		t.Fatal(err)
	}
	readWS(t, a, 20*time.Second, "node 2 told of the viewer on node 3", func(m wsMsg) bool {
		return m.Type == "presence" && m.Topic == topic && slices.Contains(m.Viewers, me)
	})

	// Writes through nodes 1 and 3, each acknowledged before the next.
	c3 := newClient(t, n3.URL())
	c3.token = cl.token
	var created []string
	for i := range 20 {
		w := cl
		if i%2 == 1 {
			w = c3
		}
		r := w.do("POST", "/api/v1/projects/"+pid+"/tasks", map[string]any{"title": fmt.Sprintf("live %d", i)})
		if r.Status == 401 { // the session has not reached node 3 yet: that is a read, not a write
			eventually(t, 30*time.Second, func() bool {
				r = w.do("POST", "/api/v1/projects/"+pid+"/tasks", map[string]any{"title": fmt.Sprintf("live %d", i)})
				return r.Status != 401
			}, "session on node 3")
		}
		created = append(created, want(t, r, 201, "task")["id"].(string))
	}
	last := sub.Seq
	var seen []string
	for len(seen) < len(created) {
		m := readWS(t, a, 20*time.Second, fmt.Sprintf("event %d on node 2", len(seen)+1), func(m wsMsg) bool { return m.Type == "event" })
		if m.Seq <= last {
			t.Fatalf("seq %d after %d", m.Seq, last)
		}
		last = m.Seq
		for _, ch := range m.Changes {
			if ch.TaskID != "" && !slices.Contains(seen, ch.TaskID) {
				seen = append(seen, ch.TaskID)
			}
		}
	}
	if !slices.Equal(seen, created) {
		t.Fatalf("node 2 saw the tasks in the order %v, created %v", seen, created)
	}

	// Node 3 dies with its viewer: node 2 stops counting them.
	c.kill(n3)
	readWS(t, a, 30*time.Second, "node 2 forgets the dead node's viewer", func(m wsMsg) bool {
		return m.Type == "presence" && m.Topic == topic && !slices.Contains(m.Viewers, me)
	})
}

//go:build e2e

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
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
		Kind string `json:"kind"`
	} `json:"changes"`
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

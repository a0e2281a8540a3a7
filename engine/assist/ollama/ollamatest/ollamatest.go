// Package ollamatest is a local stand-in for an Ollama server: it speaks the
// real wire protocol of /api/chat and /api/generate (streamed NDJSON, one
// JSON object per line, the last with "done": true), so the real client code
// talks to it. Its answers are scripted per test: a good writer that grounds
// itself on the facts in the prompt, a slow one, a failing one, and one that
// invents.
package ollamatest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Behaviours of the stand-in.
const (
	Good     = "good"     // cites the facts' references correctly
	Slow     = "slow"     // answers only after Delay
	Failing  = "failing"  // answers 500
	Inventor = "inventor" // cites a reference that does not exist
	Numbers  = "numbers"  // states a number the facts do not hold
)

// Server is the stand-in.
type Server struct {
	URL      string
	Mode     atomic.Value // string
	Delay    time.Duration
	Requests atomic.Int64
}

var refRE = regexp.MustCompile(`"ref": ?"([A-Z]\d+)"`)
var keyRE = regexp.MustCompile(`"key": ?"([A-Z][A-Z0-9]+-\d+)"`)

// Start runs the stand-in until the test ends.
func Start(t testing.TB, mode string) *Server {
	s := &Server{Delay: 5 * time.Second}
	s.Mode.Store(mode)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/chat", func(w http.ResponseWriter, r *http.Request) {
		s.Requests.Add(1)
		var req struct {
			Model    string `json:"model"`
			Messages []struct {
				Role    string `json:"role"`
				Content string `json:"content"`
			} `json:"messages"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		prompt := ""
		for _, m := range req.Messages {
			if m.Role == "user" {
				prompt = m.Content
			}
		}
		s.answer(w, r, req.Model, prompt, func(content string, done bool) any {
			return map[string]any{"model": req.Model, "created_at": time.Now().UTC(), "message": map[string]string{"role": "assistant", "content": content}, "done": done}
		})
	})
	mux.HandleFunc("POST /api/generate", func(w http.ResponseWriter, r *http.Request) {
		s.Requests.Add(1)
		var req struct {
			Model  string `json:"model"`
			Prompt string `json:"prompt"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.answer(w, r, req.Model, req.Prompt, func(content string, done bool) any {
			return map[string]any{"model": req.Model, "created_at": time.Now().UTC(), "response": content, "done": done}
		})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// answer streams the scripted text as NDJSON chunks.
func (s *Server) answer(w http.ResponseWriter, r *http.Request, model, prompt string, frame func(string, bool) any) {
	mode, _ := s.Mode.Load().(string)
	switch mode {
	case Failing:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprint(w, `{"error":"model runner crashed"}`)
		return
	case Slow:
		select {
		case <-time.After(s.Delay):
		case <-r.Context().Done():
			return
		}
	}
	refs := refRE.FindAllStringSubmatch(prompt, -1)
	keys := keyRE.FindAllStringSubmatch(prompt, -1)
	var text string
	switch {
	case mode == Inventor:
		text = "**Update** — everything shipped [C99]. WEB-999 is done [C1]."
	case mode == Numbers:
		text = fmt.Sprintf("**Update** — 4242 tasks finished [%s].", firstRef(refs))
	case len(refs) == 0:
		text = "**Update** — nothing to report [P1]."
	default:
		var b strings.Builder
		b.WriteString("**Weekly update** — here is where things stand.\n\n")
		for i, r := range refs {
			if i >= 4 {
				break
			}
			key := ""
			if i < len(keys) {
				key = keys[i][1] + " "
			}
			fmt.Fprintf(&b, "- %smoved on [%s]\n", key, r[1])
		}
		text = b.String()
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	for _, word := range strings.SplitAfter(text, " ") {
		if err := enc.Encode(frame(word, false)); err != nil {
			return
		}
		if flusher != nil {
			flusher.Flush()
		}
	}
	_ = enc.Encode(frame("", true))
}

func firstRef(refs [][]string) string {
	if len(refs) == 0 {
		return "P1"
	}
	return refs[0][1]
}

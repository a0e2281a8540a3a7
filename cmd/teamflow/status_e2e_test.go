//go:build e2e

package main

import (
	"strings"
	"testing"

	"github.com/teamflow/teamflow/engine/assist/ollama/ollamatest"
)

// TestStatusUpdatesFromTheConfiguredModel starts the binary with
// --ai-endpoint pointing at a stand-in that speaks Ollama's wire protocol,
// and checks that updates are written by the model (streamed as server-sent
// events) and by the built-in writer when the model invents a fact.
func TestStatusUpdatesFromTheConfiguredModel(t *testing.T) {
	model := ollamatest.Start(t, ollamatest.Good)
	s := start(t, t.TempDir(), "--mode", "cloud", "--ai-endpoint", model.URL, "--ai-model", "llama3.2", "--ai-timeout", "10s")
	c := signup(t, s, "acme")
	proj := want(t, c.do("POST", "/api/v1/projects", map[string]any{"name": "Web Relaunch", "key": "WEB"}), 201, "project")
	pid := proj["id"].(string)
	want(t, c.do("POST", "/api/v1/projects/"+pid+"/tasks", map[string]any{"title": "Ship the pricing page"}), 201, "task")

	// The stream carries the text as it is written, then the stored update.
	r := c.do("POST", "/api/v1/projects/"+pid+"/status-updates/stream", map[string]any{"period": "week"})
	body := string(r.Body)
	if r.Status != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/event-stream") ||
		!strings.Contains(body, "event: text") || !strings.Contains(body, "event: update") {
		t.Fatalf("stream: %d %s\n%s", r.Status, r.Header.Get("Content-Type"), body)
	}
	if !strings.Contains(body, `"writer":"model"`) || !strings.Contains(body, `"model":"llama3.2"`) {
		t.Fatalf("the update was not written by the configured model:\n%s", body)
	}
	if model.Requests.Load() == 0 {
		t.Fatal("the stand-in was never called")
	}

	// A model that invents a fact is overruled by the built-in writer.
	model.Mode.Store(ollamatest.Inventor)
	want(t, c.do("POST", "/api/v1/projects/"+pid+"/tasks", map[string]any{"title": "Write the launch post"}), 201, "task")
	u := want(t, c.do("POST", "/api/v1/projects/"+pid+"/status-updates", map[string]any{"period": "week"}), 201, "update")
	if u["writer"] != "builtin" || !strings.Contains(u["fallback"].(string), "not a fact") {
		t.Fatalf("an invented fact was published: %v", u)
	}
}

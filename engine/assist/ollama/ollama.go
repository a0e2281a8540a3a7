// Package ollama is the engine's Summarizer over a local model served by
// Ollama, through Ollama's own Go client (github.com/ollama/ollama/api). The
// engine builds the prompts and checks what comes back; this package only
// talks to the model and streams its words.
package ollama

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ollama/ollama/api"
	"github.com/teamflow/teamflow/engine"
)

// Config says where the model is.
type Config struct {
	Endpoint string        // e.g. http://127.0.0.1:11434
	Model    string        // e.g. llama3.2
	Timeout  time.Duration // the whole answer; past it the engine falls back (default 60 s)
}

// Client implements engine.Summarizer.
type Client struct {
	cfg Config
	api *api.Client
}

var _ engine.Summarizer = (*Client)(nil)

// New checks cfg and returns the client.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.Endpoint)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("ollama: endpoint %q is not a URL", cfg.Endpoint)
	}
	if cfg.Model == "" {
		return nil, fmt.Errorf("ollama: a model is required")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 60 * time.Second
	}
	return &Client{cfg: cfg, api: api.NewClient(u, &http.Client{})}, nil
}

// Model names the model, for the update's record.
func (c *Client) Model() string { return c.cfg.Model }

// Complete sends the prompts to /api/chat and streams the answer.
func (c *Client) Complete(ctx context.Context, system, user string, onText func(string)) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	stream := true
	req := &api.ChatRequest{
		Model:    c.cfg.Model,
		Messages: []api.Message{{Role: "system", Content: system}, {Role: "user", Content: user}},
		Stream:   &stream,
		// Low temperature: an update reports, it does not invent.
		Options: map[string]any{"temperature": 0.2},
	}
	var b strings.Builder
	err := c.api.Chat(ctx, req, func(r api.ChatResponse) error {
		if chunk := r.Message.Content; chunk != "" {
			b.WriteString(chunk)
			if onText != nil {
				onText(chunk)
			}
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("ollama: %w", err)
	}
	return b.String(), nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/teamflow/teamflow/engine"
	"github.com/teamflow/teamflow/storage"
)

// node is one running TeamFlow: its store, its log and the engine over them.
type node struct {
	store *storage.Store
	log   *storage.LocalLog
	eng   *engine.Service
}

func newLogger(cfg Config, w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.Log.Level)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// openNode opens the data directory. Pebble locks it, so a second process
// on the same directory fails here with a clear message.
func openNode(cfg Config, logger *slog.Logger, clock engine.Clock) (*node, error) {
	dir := filepath.Join(cfg.Data, "state")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	st, err := storage.Open(dir, storage.Options{Logger: logger})
	if err != nil {
		if strings.Contains(err.Error(), "lock") {
			return nil, fmt.Errorf("the data directory %s is in use by another teamflow process: %w", cfg.Data, err)
		}
		return nil, err
	}
	lg := storage.NewLocalLog(st, storage.LocalLogOptions{})
	eng := engine.New(engine.Deps{
		Router: engine.SharedRouter{Route: engine.Route{Log: lg, Store: st}},
		Clock:  clock,
		Logger: logger,
	}, engine.Config{
		Mode:        engine.Mode(cfg.Mode),
		DefaultPlan: cfg.DefaultPlan,
		BaseURL:     cfg.BaseURL,
	})
	return &node{store: st, log: lg, eng: eng}, nil
}

// Close stops the log (after the batch in flight) and closes the store.
func (n *node) Close() error {
	n.log.Close()
	return n.store.Close()
}

// state adapts the node for httpapi's StateSource.
type state struct{ n *node }

func (s state) AppliedIndex() uint64 { return s.n.store.AppliedIndex() }

func (s state) WaitApplied(ctx context.Context, idx uint64) error {
	return s.n.store.WaitApplied(ctx, idx)
}

func (s state) Ready() error { return s.n.log.Ready() }

const operatorTokenFile = "operator.token"

// writeSecret writes a secret readable by the owner only.
func writeSecret(path, secret string) error {
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// readOperatorToken finds the operator token: the flag, the environment, or
// the file in the data directory (readable by the server's user only).
func readOperatorToken(flag, data string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if t := os.Getenv("TEAMFLOW_OPERATOR_TOKEN"); t != "" {
		return t, nil
	}
	b, err := os.ReadFile(filepath.Join(data, operatorTokenFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("no operator token: pass --token, set TEAMFLOW_OPERATOR_TOKEN, or run where %s exists", filepath.Join(data, operatorTokenFile))
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

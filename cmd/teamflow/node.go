package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/teamflow/teamflow/cluster"
	"github.com/teamflow/teamflow/engine"
	"github.com/teamflow/teamflow/engine/assist/ollama"
	"github.com/teamflow/teamflow/engine/mail"
	"github.com/teamflow/teamflow/index"
	"github.com/teamflow/teamflow/index/searchadapter"
	"github.com/teamflow/teamflow/storage"
)

// node is one running TeamFlow: its store, its log and the engine over
// them. The log is the single-node LocalLog, or, with --node-id, the raft
// node of a cluster member.
type node struct {
	cfg   Config
	store *storage.Store
	local *storage.LocalLog // single node
	raft  *cluster.Node     // cluster member
	// ded runs the dedicated groups of a cluster member (dedicated.go).
	ded *dedicated
	// gossip shares presence and rate-limit counts with the other members.
	gossip *gossipRelays
	eng    *engine.Service
	// ix is the search index (serve only: withSearch); nil otherwise.
	ix         *index.Index
	wantSearch bool

	// startCommit is the commit index the raft node knew when it started:
	// /readyz waits until the store has applied that far.
	startCommit uint64
	// booted is set once Bootstrap has run (cluster: in the background,
	// after a leader is known).
	booted atomic.Bool
	// boot is what a single node's Bootstrap created (printed at start).
	boot *engine.BootstrapResult
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

// Layout of the data directory.
const (
	stateDir   = "state"   // the state store (Pebble)
	clusterDir = "cluster" // a cluster member's raft log (cluster/raft) and received snapshots (cluster/snap)
)

// isClusterData reports whether data holds a cluster member's raft log.
func isClusterData(data string) bool {
	_, err := os.Stat(filepath.Join(data, clusterDir, "raft"))
	return err == nil
}

// openStore opens the state store of data. Pebble locks it, so a second
// process on the same directory fails here with a clear message.
func openStore(data string, opts storage.Options) (*storage.Store, error) {
	dir := filepath.Join(data, stateDir)
	if err := storage.MkdirAllSynced(nil, dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	opts.Watch = engine.WatchedKeys()
	st, err := storage.Open(dir, opts)
	if err != nil {
		if strings.Contains(err.Error(), "lock") {
			return nil, fmt.Errorf("the data directory %s is in use by another teamflow process: %w", data, err)
		}
		return nil, err
	}
	return st, nil
}

// openNode opens the data directory and starts the log: a LocalLog on one
// node; with cfg.Cluster.NodeID, the raft node (the state store then opened
// with NoSync: the synced raft log makes entries durable).
func openNode(cfg Config, logger *slog.Logger, clock engine.Clock, opts ...nodeOption) (*node, error) {
	n := &node{cfg: cfg}
	for _, o := range opts {
		o(n)
	}
	var lg engine.Log
	if !cfg.clustered() {
		if isClusterData(cfg.Data) {
			return nil, fmt.Errorf("%s belongs to a cluster member (it has %s): start it with --node-id and --peers; "+
				"offline commands that write (setup, operator reset-token) cannot run on a cluster member, since its writes must go through the raft log",
				cfg.Data, filepath.Join(cfg.Data, clusterDir, "raft"))
		}
		st, err := openStore(cfg.Data, storage.Options{Logger: logger})
		if err != nil {
			return nil, err
		}
		n.store = st
		if err := n.openIndex(st, logger); err != nil {
			st.Close()
			return nil, err
		}
		n.local = storage.NewLocalLog(st, storage.LocalLogOptions{})
		lg = n.local
	} else {
		st, err := openStore(cfg.Data, storage.Options{Logger: logger, NoSync: true})
		if err != nil {
			return nil, err
		}
		n.store = st
		if st.AppliedIndex() > 0 && !isClusterData(cfg.Data) {
			st.Close()
			return nil, fmt.Errorf("%s holds a single node's store (no raft log): to turn it into a cluster, take a backup "+
				"(teamflow backup) and restore it with --node-id into a new data directory (docs/CLUSTER.md)", cfg.Data)
		}
		n.gossip = newGossipRelays(logger)
		// The index observes the store before raft replays anything.
		if err := n.openIndex(st, logger); err != nil {
			st.Close()
			return nil, err
		}
		// The dedicated groups follow the route records from the first
		// replayed entry on; they start once the host runs.
		n.ded = newDedicated(cfg, logger, nil, st, n.wantSearch)
		if n.raft, err = startRaft(cfg, st, logger, n.gossip.receive, n.snapshotInstalled); err != nil {
			if n.ix != nil {
				n.ix.Close()
			}
			st.Close()
			return nil, err
		}
		n.startCommit = n.raft.Status().Commit
		lg = retryLog{n.raft}
		n.ded.host = n.raft
		n.ded.start()
	}
	var mailer engine.Mailer
	if cfg.Mail.Host != "" {
		m, err := mail.New(mail.Config{Host: cfg.Mail.Host, Port: cfg.Mail.Port, Security: cfg.Mail.Security,
			Username: cfg.Mail.Username, Password: cfg.Mail.Password, From: cfg.Mail.From})
		if err != nil {
			n.Close()
			return nil, err
		}
		mailer = m
	}
	var summarizer engine.Summarizer
	if cfg.AI.Endpoint != "" {
		c, err := ollama.New(ollama.Config{Endpoint: cfg.AI.Endpoint, Model: cfg.AI.Model, Timeout: cfg.AI.Timeout})
		if err != nil {
			n.Close()
			return nil, err
		}
		summarizer = c
	}
	var searcher engine.Searcher
	if n.ix != nil {
		searcher = searchadapter.New(n.ix)
	}
	var router engine.Router = engine.SharedRouter{Route: engine.Route{Log: lg, Store: n.store}}
	if n.ded != nil {
		router = groupRouter{d: n.ded, shared: engine.Route{Log: lg, Store: n.store}}
		if searcher != nil {
			searcher = routedSearcher{d: n.ded, shared: searcher}
		}
	}
	n.eng = engine.New(engine.Deps{
		Router:     router,
		Clock:      clock,
		Logger:     logger,
		Mailer:     mailer,
		Summarizer: summarizer,
		Searcher:   searcher,
	}, engine.Config{
		Mode:        engine.Mode(cfg.Mode),
		DefaultPlan: cfg.DefaultPlan,
		BaseURL:     cfg.BaseURL,

		MaxAttachmentBytes: int64(min(cfg.Attachments.MaxFileBytes, math.MaxInt64)),
		StorageBytes:       int64(min(cfg.Attachments.StorageBytes, math.MaxInt64)),
	})
	return n, nil
}

func startRaft(cfg Config, st *storage.Store, logger *slog.Logger, gossip func(from uint64, body []byte), onSnapshot func(uint64)) (*cluster.Node, error) {
	cl := cfg.Cluster
	peers, err := cluster.ParsePeers(cl.Peers)
	if err != nil {
		return nil, err
	}
	tlsConf, err := cluster.LoadTLS(cl.CA, cl.Cert, cl.Key)
	if err != nil {
		return nil, err
	}
	listen := cl.RaftAddr
	if listen == "" {
		listen = peers[cl.NodeID]
	}
	node, err := cluster.New(cluster.Config{
		NodeID:          cl.NodeID,
		Peers:           peers,
		Join:            cl.Join,
		Dir:             filepath.Join(cfg.Data, clusterDir),
		Store:           st,
		ListenAddr:      listen,
		TLS:             tlsConf,
		TickInterval:    cl.Tick,
		ElectionTicks:   cl.ElectionTicks,
		SnapshotEntries: uint64(cl.SnapshotEntries),
		CatchUpEntries:  uint64(cl.CatchUpEntries),
		Logger:          logger.With("component", "raft"),
		Gossip:          gossip,
		// Derived data (search) is checked again after a snapshot install.
		OnSnapshotInstalled: onSnapshot,
	})
	if err != nil {
		return nil, fmt.Errorf("start raft node %d: %w", cl.NodeID, err)
	}
	return node, nil
}

// Close stops the log (after the batch in flight), then the search index
// (a rebuild may be reading the store), then closes the store.
func (n *node) Close() error {
	if n.local != nil {
		n.local.Close()
	}
	var rerr error
	if n.ded != nil {
		n.ded.Close()
	}
	if n.raft != nil {
		rerr = n.raft.Close()
	}
	if n.ix != nil {
		n.ix.Close()
	}
	if rerr != nil {
		n.store.Close()
		return rerr
	}
	return n.store.Close()
}

// Ready reports nil when the node serves: a single node when its store is
// healthy; a cluster member once it has bootstrapped, knows a leader, has
// applied the commit index it knew at start, and serves every dedicated
// workspace (dedicated.ready).
func (n *node) Ready() error {
	if n.raft == nil {
		return n.local.Ready()
	}
	if !n.booted.Load() {
		return errors.New("bootstrapping: waiting for a leader")
	}
	if err := n.raft.Ready(); err != nil {
		return err
	}
	if a := n.store.AppliedIndex(); a < n.startCommit {
		return fmt.Errorf("catching up: applied %d of %d", a, n.startCommit)
	}
	return n.ded.ready()
}

// retryLog is the engine's Log over a raft node. A proposal raft dropped
// (a leader change lost it, or it may still apply late) is proposed again
// with the same RequestID, which Apply dedupes, until it applies or the
// context ends: a failover costs the caller a delay, not an error.
type retryLog struct{ n *cluster.Node }

func (l retryLog) Propose(ctx context.Context, cmd *storage.Command) (storage.Result, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cluster.DefaultProposeTimeout)
		defer cancel()
	}
	for {
		res, err := l.n.Propose(ctx, cmd)
		if err == nil || !errors.Is(err, cluster.ErrProposalDropped) {
			if errors.Is(err, cluster.ErrRemoved) || errors.Is(err, cluster.ErrNoLeader) {
				err = fmt.Errorf("%w: %w", storage.ErrNotLeader, err)
			}
			return res, err
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return res, fmt.Errorf("%w: %w", storage.ErrNotLeader, err)
		}
	}
}

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

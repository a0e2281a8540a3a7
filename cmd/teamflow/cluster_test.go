package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/teamflow/teamflow/cluster/clustertest"
	"github.com/teamflow/teamflow/engine"
)

// Every member of a new cluster bootstraps at once: exactly one creates
// the operator token and one the setup link; none fails or replaces what
// another created; every node accepts the token and the signing key.
func TestBootstrapOnEveryNodeAtOnce(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{})
	members := c.Members()
	engines := make([]*engine.Service, len(members))
	for i, m := range members {
		engines[i] = engine.New(engine.Deps{
			Router: engine.SharedRouter{Route: engine.Route{Log: retryLog{m.Node}, Store: m.Store}},
		}, engine.Config{Mode: engine.ModeOnPrem})
	}
	results := make([]*engine.BootstrapResult, len(engines))
	errs := make([]error, len(engines))
	var wg sync.WaitGroup
	for i, e := range engines {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			results[i], errs[i] = e.BootstrapWith(ctx, engine.BootstrapOptions{KeepSetupLink: true})
		})
	}
	wg.Wait()
	tokens, links := 0, 0
	var token string
	for i, r := range results {
		if errs[i] != nil {
			t.Fatalf("node %d: bootstrap: %v", i+1, errs[i])
		}
		if r.OperatorToken != "" {
			tokens++
			token = r.OperatorToken
		}
		if r.SetupToken != "" {
			links++
		}
	}
	if tokens != 1 || links != 1 {
		t.Fatalf("%d operator tokens and %d setup links created, want one of each", tokens, links)
	}
	c.WaitConverged(30 * time.Second)
	for i, e := range engines {
		if p, err := e.Authenticate(context.Background(), token); err != nil || !p.Operator {
			t.Errorf("node %d refuses the operator token: %v", i+1, err)
		}
		if needed, _ := e.SetupStatus(); !needed {
			t.Errorf("node %d: setup not open", i+1)
		}
	}
	// A restart (bootstrap again) keeps the link and the token.
	r, err := engines[1].BootstrapWith(context.Background(), engine.BootstrapOptions{KeepSetupLink: true})
	if err != nil || r.OperatorToken != "" || r.SetupToken != "" {
		t.Fatalf("second bootstrap: %+v %v", r, err)
	}
}

// Cluster settings come from the file, TEAMFLOW_CLUSTER__* and flags, in
// that order of precedence, and --cluster-cert-dir names the files.
func TestClusterConfig(t *testing.T) {
	cfg := defaultConfig()
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	bindFlags(fs, &cfg)
	if err := fs.Parse([]string{"--node-id", "2", "--raft-snapshot-entries", "500"}); err != nil {
		t.Fatal(err)
	}
	env := []string{"TEAMFLOW_CLUSTER__NODE_ID=7", "TEAMFLOW_CLUSTER__PEERS=1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003",
		"TEAMFLOW_CLUSTER__CERT_DIR=/etc/teamflow/certs", "TEAMFLOW_CLUSTER__TICK=50ms"}
	if err := loadConfig(fs, &cfg, "", env); err != nil {
		t.Fatal(err)
	}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	cl := cfg.Cluster
	if cl.NodeID != 2 || cl.SnapshotEntries != 500 || cl.Tick != 50*time.Millisecond || cl.CatchUpEntries != 5000 {
		t.Fatalf("precedence: %+v", cl)
	}
	if cl.CA != filepath.Join("/etc/teamflow/certs", "ca.crt") || cl.Cert != filepath.Join("/etc/teamflow/certs", "node2.crt") || cl.Key != filepath.Join("/etc/teamflow/certs", "node2.key") {
		t.Fatalf("cert dir: %+v", cl)
	}
	bad := defaultConfig()
	bad.Cluster.NodeID = 4
	bad.Cluster.Peers = "1=127.0.0.1:7001"
	if err := bad.validate(); err == nil || !strings.Contains(err.Error(), "no address for this node") {
		t.Fatalf("a node missing from --peers: %v", err)
	}
	single := defaultConfig()
	single.Cluster.Peers = "1=127.0.0.1:7001"
	if err := single.validate(); err == nil {
		t.Fatal("--peers without --node-id accepted")
	}
}

// A single node refuses a data directory that holds a cluster member's
// raft log: writing it through a local log would fork the replica.
func TestSingleNodeRefusesClusterData(t *testing.T) {
	cfg := defaultConfig()
	cfg.Data = t.TempDir()
	if err := os.MkdirAll(filepath.Join(cfg.Data, clusterDir, "raft"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := openNode(cfg, newLogger(cfg, io.Discard), engine.SystemClock{}); err == nil || !strings.Contains(err.Error(), "cluster member") {
		t.Fatalf("opened a cluster member's data as a single node: %v", err)
	}
}

// A single node's data directory does not start as a cluster member: its
// store has no raft log to replay from; backup and restore convert it.
func TestClusterRefusesSingleNodeData(t *testing.T) {
	cfg := defaultConfig()
	cfg.Data = t.TempDir()
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	n, err := openNode(cfg, newLogger(cfg, io.Discard), engine.SystemClock{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.eng.Bootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
	n.Close()
	cfg.Cluster.NodeID, cfg.Cluster.Peers, cfg.Cluster.CertDir = 1, "1=127.0.0.1:7001", t.TempDir()
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := openNode(cfg, newLogger(cfg, io.Discard), engine.SystemClock{}); err == nil || !strings.Contains(err.Error(), "single node's store") {
		t.Fatalf("a single node's data started as a cluster member: %v", err)
	}
}

package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"github.com/teamflow/teamflow/engine"
	"github.com/teamflow/teamflow/httpapi"
	"github.com/teamflow/teamflow/ui"
)

func serveCmd() *cobra.Command {
	cfg := defaultConfig()
	var cfgFile string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the server (API, web UI, jobs): one node, or a cluster member with --node-id",
		Long: "Runs TeamFlow on one node with its embedded store. On the first start of an on-prem\n" +
			"installation it prints a one-time setup link; in cloud mode anyone can sign up a workspace.\n" +
			"Configuration: defaults < --config file (TOML) < TEAMFLOW_<SECTION>__<KEY> environment < flags.",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := loadConfig(cmd.Flags(), &cfg, cfgFile, os.Environ()); err != nil {
				return err
			}
			if err := cfg.validate(); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return serve(ctx, cfg, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&cfgFile, "config", os.Getenv("TEAMFLOW_CONFIG"), "TOML configuration file")
	bindFlags(cmd.Flags(), &cfg)
	return cmd
}

// serve runs until ctx ends, then shuts down gracefully: in-flight requests
// finish, the log applies what it accepted, the store closes cleanly.
func serve(ctx context.Context, cfg Config, out, errOut io.Writer) error {
	logger := newLogger(cfg, errOut)
	tuneRuntime(cfg)
	clock, testHandler := newClock()
	n, err := openNode(cfg, logger, clock, withSearch())
	if err != nil {
		return err
	}
	defer func() {
		if err := n.Close(); err != nil {
			logger.Error("close store", "err", err)
		}
	}()

	if n.raft == nil {
		boot, err := n.eng.Bootstrap(ctx)
		if err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
		n.booted.Store(true)
		if err := reportOperatorToken(out, cfg.Data, boot); err != nil {
			return err
		}
		n.boot = boot
	}

	rateLimits, _ := parseBool(cfg.RateLimits)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	registerMetrics(reg, n)
	api := httpapi.New(httpapi.Deps{
		Engine: n.eng, State: state{n}, UI: ui.FS, Logger: logger, Registry: reg,
	}, httpapi.Config{
		Version: version, SecureCookies: cfg.HTTP.SecureCookies || cfg.tlsEnabled(), MetricsToken: cfg.Metrics.Token, MinIndexWait: cfg.HTTP.MinIndexWait,
		RateLimits: rateLimits, Now: clock.Now, TrustedProxies: cfg.trustedProxies(),
		Realtime: httpapi.RealtimeConfig{PublicBaseURL: cfg.BaseURL},
	})
	// Live updates: every applied command (this node's own writes and, in a
	// cluster, everyone's) becomes an event for this node's realtime hub.
	// EventsFrom reads only the command; Publish and Advance only enqueue,
	// so the store's observer goroutine is never held up by clients.
	n.store.Observe(skipFlips(engine.ObserveEvents(api)))
	if n.ded != nil {
		// A dedicated workspace's commands apply to its group's store.
		n.ded.observe(engine.ObserveEvents(api))
	}
	if n.raft != nil {
		// Presence (who is viewing a project or task) and the requests
		// admitted under the rate limits are in memory on the node a client
		// is connected to: share them with the other members.
		gossipCtx, stopGossip := context.WithCancel(ctx)
		var gossipDone sync.WaitGroup
		gossipDone.Go(func() { n.gossip.presence.run(gossipCtx, api, sender(n.raft.Gossip, gossipPresence)) })
		if rateLimits {
			gossipDone.Go(func() { n.gossip.limits.run(gossipCtx, api, sender(n.raft.Gossip, gossipLimits)) })
		}
		defer func() {
			stopGossip()
			gossipDone.Wait()
		}()
	}

	handler := api.Handler()
	sched := n.eng.NewScheduler(func(id string, err error) { logger.Error("job failed", "job", id, "err", err) })
	if cfg.Audit.ExportPath != "" {
		if err := sched.Add("audit.export", "*/10 * * * *", func(context.Context) error {
			return exportAuditHeads(n.eng, cfg.Audit.ExportPath)
		}); err != nil {
			return err
		}
	}
	if testHandler != nil {
		handler = testHandler(handler, sched)
	}
	if cfg.Debug.PprofAddr != "" {
		go servePprof(cfg.Debug.PprofAddr, logger)
	}
	tlsCfg, selfSigned, err := serverTLS(&cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
		if selfSigned != "" {
			logger.Warn("generated a self-signed TLS certificate; browsers will warn until you trust it or configure tls.cert and tls.key", "cert", selfSigned)
		}
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	base := cfg.BaseURL
	if cfg.BaseURL == cfg.scheme()+"://"+cfg.Addr {
		base = cfg.scheme() + "://" + ln.Addr().String()
	}
	logger.Info("teamflow serving", "addr", ln.Addr().String(), "mode", cfg.Mode, "data", cfg.Data, "version", version, "node_id", cfg.Cluster.NodeID)
	if n.raft != nil {
		fmt.Fprintf(out, "TeamFlow %s serving on %s (%s mode, data in %s, cluster node %d, raft on %s)\n", version, base, cfg.Mode, cfg.Data, cfg.Cluster.NodeID, n.raft.Addr())
	} else {
		fmt.Fprintf(out, "TeamFlow %s serving on %s (%s mode, data in %s)\n", version, base, cfg.Mode, cfg.Data)
		printSetupLink(out, n.boot, base, "restart for a new one")
	}

	bootCtx, stopBoot := context.WithCancel(ctx)
	bootDone := make(chan struct{})
	if n.raft != nil {
		go func() {
			defer close(bootDone)
			n.bootstrapCluster(bootCtx, out, base, logger)
		}()
	} else {
		close(bootDone)
	}
	defer func() {
		stopBoot()
		<-bootDone
	}()

	jobsDone := make(chan struct{})
	jobsCtx, stopJobs := context.WithCancel(context.Background())
	go func() {
		defer close(jobsDone)
		// Scheduled jobs run on the leader only: a single node always, a
		// cluster member while it leads (each run is idempotent by its
		// request ID, so a failover neither skips nor doubles one).
		t := time.NewTicker(30 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-jobsCtx.Done():
				return
			case <-t.C:
				if n.leads() {
					sched.RunDue(jobsCtx)
				}
			}
		}
	}()

	// The outbox is delivered on the leader every couple of seconds, so a
	// reset or sign-in link arrives promptly; each row is removed only
	// after its delivery.
	outboxDone := make(chan struct{})
	go func() {
		defer close(outboxDone)
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-jobsCtx.Done():
				return
			case <-t.C:
				if n.leads() {
					if _, err := n.eng.DeliverOutbox(jobsCtx); err != nil && jobsCtx.Err() == nil {
						logger.Error("outbox delivery", "err", err)
					}
				}
			}
		}
	}()
	defer func() { <-outboxDone }()

	// Shutdown waits for in-flight requests, and an event stream is one
	// until it is told to end: close the live-update connections first
	// (clients reconnect and resume where they were).
	srv.RegisterOnShutdown(api.CloseRealtime)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		stopJobs()
		<-jobsDone
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down: finishing in-flight requests")
	shutCtx, cancel := context.WithTimeout(context.Background(), cfg.HTTP.ShutdownTimeout)
	defer cancel()
	err = srv.Shutdown(shutCtx)
	stopJobs()
	<-jobsDone
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	logger.Info("shutdown complete")
	return nil
}

// reportOperatorToken writes a just-created operator token to
// <data>/operator.token.
func reportOperatorToken(out io.Writer, data string, boot *engine.BootstrapResult) error {
	if boot == nil || boot.OperatorToken == "" {
		return nil
	}
	path := filepath.Join(data, operatorTokenFile)
	if err := writeSecret(path, boot.OperatorToken); err != nil {
		return err
	}
	fmt.Fprintf(out, "Platform operator token written to %s (readable by this user only).\n", path)
	return nil
}

func printSetupLink(out io.Writer, boot *engine.BootstrapResult, base, renew string) {
	if boot == nil || boot.SetupToken == "" {
		return
	}
	fmt.Fprintf(out, "\nFirst run: open this one-time link to create the first workspace and its Owner\n(valid until %s; %s):\n\n    %s/setup?token=%s\n\n",
		boot.SetupExpires.Format(time.RFC3339), renew, base, boot.SetupToken)
}

// bootstrapCluster runs Bootstrap on a cluster member once the cluster
// has a leader and this node has caught up with it (a read barrier), so it
// sees whatever another member created already. Every member runs it, all
// at once on a first start: the engine creates each platform record under
// a precondition, so exactly one node creates the operator token and the
// setup link and prints them; the others find them. It retries until it
// succeeds or the server stops; /readyz reports ready only after it.
func (n *node) bootstrapCluster(ctx context.Context, out io.Writer, base string, logger *slog.Logger) {
	for attempt := 0; ; attempt++ {
		err := func() error {
			actx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			if err := n.raft.ReadBarrier(actx); err != nil {
				return fmt.Errorf("waiting for a leader: %w", err)
			}
			boot, err := n.eng.BootstrapWith(actx, engine.BootstrapOptions{KeepSetupLink: true})
			if err != nil {
				return err
			}
			if err := reportOperatorToken(out, n.cfg.Data, boot); err != nil {
				return err
			}
			printSetupLink(out, boot, base, "valid on every node; a restart keeps it")
			return nil
		}()
		if err == nil {
			n.booted.Store(true)
			logger.Info("cluster member bootstrapped", "node_id", n.cfg.Cluster.NodeID)
			return
		}
		if ctx.Err() != nil {
			return
		}
		if attempt%20 == 19 {
			logger.Warn("bootstrap: the cluster is not ready yet; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// startProcs is the runtime's own GOMAXPROCS, read before tuneRuntime
// changes it (serve may run more than once in a test process): it follows
// the CPUs, and a cgroup limit, the process may use.
var startProcs = runtime.GOMAXPROCS(0)

// tuneRuntime applies gc_percent and max_procs, unless the operator set
// Go's own GOGC or GOMAXPROCS environment variables, which win.
func tuneRuntime(cfg Config) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(cfg.GCPercent)
	}
	if os.Getenv("GOMAXPROCS") == "" {
		n := cfg.MaxProcs
		if n == 0 {
			n = 2 * startProcs
		}
		runtime.GOMAXPROCS(n)
	}
}

// servePprof serves runtime profiles on their own listener, never on the
// public one.
func servePprof(addr string, logger *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	logger.Info("pprof serving", "addr", addr)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		logger.Error("pprof server", "err", err)
	}
}

// leads reports whether this node runs the leader-only work: a single node
// always, a cluster member while it leads and once it has bootstrapped.
func (n *node) leads() bool {
	return n.raft == nil || n.raft.IsLeader() && n.booted.Load()
}

// exportAuditHeads appends every workspace's audit-chain head to path, one
// JSON line each: the anchor `teamflow audit verify` checks against.
func exportAuditHeads(eng *engine.Service, path string) error {
	heads, err := eng.AuditHeads()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("audit export: %w", err)
	}
	enc := json.NewEncoder(f)
	for _, h := range heads {
		if err := enc.Encode(h); err != nil {
			f.Close()
			return fmt.Errorf("audit export: %w", err)
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("audit export: %w", err)
	}
	return f.Close()
}

package main

import (
	"context"
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
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"github.com/teamflow/teamflow/httpapi"
	"github.com/teamflow/teamflow/ui"
)

func serveCmd() *cobra.Command {
	cfg := defaultConfig()
	var cfgFile string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the server (API, web UI, jobs) on one node",
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
	clock, testHandler := newClock()
	n, err := openNode(cfg, logger, clock)
	if err != nil {
		return err
	}
	defer func() {
		if err := n.Close(); err != nil {
			logger.Error("close store", "err", err)
		}
	}()

	boot, err := n.eng.Bootstrap(ctx)
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if boot.OperatorToken != "" {
		path := filepath.Join(cfg.Data, operatorTokenFile)
		if err := writeSecret(path, boot.OperatorToken); err != nil {
			return err
		}
		fmt.Fprintf(out, "Platform operator token written to %s (readable by this user only).\n", path)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	registerStoreMetrics(reg, n)
	api := httpapi.New(httpapi.Deps{
		Engine: n.eng, State: state{n}, UI: ui.FS, Logger: logger, Registry: reg,
	}, httpapi.Config{
		Version: version, SecureCookies: cfg.HTTP.SecureCookies, MetricsToken: cfg.Metrics.Token, MinIndexWait: cfg.HTTP.MinIndexWait,
	})

	handler := api.Handler()
	sched := n.eng.NewScheduler(func(id string, err error) { logger.Error("job failed", "job", id, "err", err) })
	if testHandler != nil {
		handler = testHandler(handler, sched)
	}
	if cfg.Debug.PprofAddr != "" {
		go servePprof(cfg.Debug.PprofAddr, logger)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
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
	if cfg.BaseURL == "http://"+cfg.Addr {
		base = "http://" + ln.Addr().String()
	}
	logger.Info("teamflow serving", "addr", ln.Addr().String(), "mode", cfg.Mode, "data", cfg.Data, "version", version)
	fmt.Fprintf(out, "TeamFlow %s serving on %s (%s mode, data in %s)\n", version, base, cfg.Mode, cfg.Data)
	if boot.SetupToken != "" {
		fmt.Fprintf(out, "\nFirst run: open this one-time link to create the first workspace and its Owner\n(valid until %s; restart for a new one):\n\n    %s/setup?token=%s\n\n",
			boot.SetupExpires.Format(time.RFC3339), base, boot.SetupToken)
	}

	jobsDone := make(chan struct{})
	jobsCtx, stopJobs := context.WithCancel(context.Background())
	go func() {
		defer close(jobsDone)
		// Single node: this node is the leader, so it runs the scheduled jobs.
		t := time.NewTicker(30 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-jobsCtx.Done():
				return
			case <-t.C:
				sched.RunDue(jobsCtx)
			}
		}
	}()

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

func registerStoreMetrics(reg *prometheus.Registry, n *node) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "teamflow_store_applied_index", Help: "Last log index applied to the store."},
			func() float64 { return float64(n.store.AppliedIndex()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "teamflow_log_proposals_total", Help: "Commands applied through the log."},
			func() float64 { return float64(n.log.Stats().Proposals) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "teamflow_log_batches_total", Help: "Synced batches (proposals / batches = group-commit factor)."},
			func() float64 { return float64(n.log.Stats().Batches) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "teamflow_store_healthy", Help: "1 while the store accepts writes."},
			func() float64 {
				if n.store.Healthy() == nil {
					return 1
				}
				return 0
			}),
	)
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

package main

import (
	"runtime"
	"runtime/debug"
	"testing"
)

// tuneRuntime sets the collector target and the number of Ps from the
// configuration, unless Go's own environment variables are set.
func TestTuneRuntime(t *testing.T) {
	procs, gc := runtime.GOMAXPROCS(0), debug.SetGCPercent(100)
	t.Cleanup(func() {
		runtime.GOMAXPROCS(procs)
		debug.SetGCPercent(gc)
	})
	t.Setenv("GOGC", "")
	t.Setenv("GOMAXPROCS", "")

	cfg := defaultConfig()
	tuneRuntime(cfg)
	tuneRuntime(cfg) // twice, as a test process may serve twice: not 4× the CPUs
	if got := runtime.GOMAXPROCS(0); got != 2*startProcs {
		t.Errorf("GOMAXPROCS %d, want twice the runtime's own %d", got, startProcs)
	}
	if got := debug.SetGCPercent(200); got != 200 {
		t.Errorf("GC percent %d, want 200", got)
	}

	cfg.MaxProcs, cfg.GCPercent = 3, 150
	tuneRuntime(cfg)
	if got := runtime.GOMAXPROCS(0); got != 3 {
		t.Errorf("max_procs 3: GOMAXPROCS %d", got)
	}
	if got := debug.SetGCPercent(150); got != 150 {
		t.Errorf("gc_percent 150: %d", got)
	}

	t.Setenv("GOGC", "100")
	t.Setenv("GOMAXPROCS", "1")
	runtime.GOMAXPROCS(5)
	debug.SetGCPercent(120)
	tuneRuntime(defaultConfig())
	if got := runtime.GOMAXPROCS(0); got != 5 {
		t.Errorf("with GOMAXPROCS set, tuneRuntime changed the Ps to %d", got)
	}
	if got := debug.SetGCPercent(120); got != 120 {
		t.Errorf("with GOGC set, tuneRuntime changed the GC percent to %d", got)
	}
}

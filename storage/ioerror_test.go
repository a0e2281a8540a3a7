package storage_test

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/teamflow/teamflow/internal/figures"
	"github.com/teamflow/teamflow/storage"
)

// walFault injects EIO-like errors on the WAL once switched on.
type walFault struct {
	on       atomic.Bool
	kinds    []errorfs.OpKind
	injected atomic.Int64
}

func (f *walFault) MaybeError(op errorfs.Op) error {
	if !f.on.Load() || !strings.HasSuffix(op.Path, ".log") {
		return nil
	}
	for _, k := range f.kinds {
		if op.Kind == k {
			f.injected.Add(1)
			return errorfs.ErrInjected
		}
	}
	return nil
}

func (f *walFault) String() string { return "wal-fault" }

// TestS4WALErrors is RELIABILITY.md S4: when a WAL write or sync fails, the
// store stops acknowledging for good (no retrying an fsync), reports it
// through Healthy, and a restart loses no acknowledged write.
func TestS4WALErrors(t *testing.T) {
	seed := figures.Seed(t) // the test is not random; the seed is printed for the format
	kinds := map[string][]errorfs.OpKind{
		"write": {errorfs.OpFileWrite, errorfs.OpFileWriteAt},
		"sync":  {errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo},
	}
	var acked, acksAfter, lost, openFailures, notFailed, fatals, observed, faults, retriesAccepted int
	for _, name := range []string{"write", "sync"} {
		t.Run(name, func(t *testing.T) {
			base := vfs.NewCrashableMem()
			fault := &walFault{kinds: kinds[name]}
			var fatalCalls atomic.Int64
			s, err := storage.Open("db", storage.Options{
				FS:      errorfs.Wrap(base, fault),
				OnFatal: func(string) { fatalCalls.Add(1) },
			})
			if err != nil {
				t.Fatal(err)
			}
			l := storage.NewLocalLog(s, storage.LocalLogOptions{})
			ctx := ctxTimeout(t, 60*time.Second)
			cmd := func(id string) *storage.Command {
				return &storage.Command{RequestID: id, Tenant: "acme", Ops: []storage.Op{
					add(storage.K("ctr"), 1), put(storage.K("task", id), id, 1), put(storage.K("ix", "all", id), "", 1),
				}}
			}
			var ackedIDs []string
			for i := 0; i < 60; i++ {
				id := fmt.Sprint("before-", i)
				if res, err := l.Propose(ctx, cmd(id)); err != nil || res.Err != nil {
					t.Fatalf("before the fault: %v %v", err, res.Err)
				}
				ackedIDs = append(ackedIDs, id)
			}
			acked += len(ackedIDs)

			fault.on.Store(true)
			// Concurrent writers, as in production: none may be acknowledged.
			var after atomic.Int64
			var wg sync.WaitGroup
			for w := 0; w < 8; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < 10; i++ {
						res, err := l.Propose(ctx, cmd(fmt.Sprint("after-", w, "-", i)))
						if err == nil && res.Err == nil {
							after.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			within(t, 5*time.Second, "the store reports the failure", func() bool { return s.Healthy() != nil })
			if s.Healthy() == nil || l.Ready() == nil {
				notFailed++
			}
			// The disk works again: the store still refuses.
			fault.on.Store(false)
			for i := 0; i < 5; i++ {
				if res, err := l.Propose(ctx, cmd(fmt.Sprint("retry-", i))); err == nil && res.Err == nil {
					retriesAccepted++
				}
				if _, err := s.Apply([]storage.Entry{{Index: s.AppliedIndex() + 1}}); err == nil {
					retriesAccepted++
				}
			}
			acksAfter += int(after.Load())
			fatals += int(fatalCalls.Load())
			if s.Healthy() != nil {
				observed++
			}
			faults += int(fault.injected.Load())
			t.Logf("%s: %d faults injected, %d fatal reports (the rest through SyncWait), healthy=%v", name, fault.injected.Load(), fatalCalls.Load(), s.Healthy())
			l.Close()

			// Power loss now: only synced data survives. Every
			// acknowledged write is there.
			clone := base.CrashClone(vfs.CrashCloneCfg{})
			s2, err := storage.Open("db", storage.Options{FS: clone})
			if err != nil {
				openFailures++
				t.Errorf("reopen after the fault: %v", err)
				return
			}
			defer s2.Close()
			v := s2.Tenant("acme")
			for _, id := range ackedIDs {
				if _, err := v.Get(storage.K("task", id)); err != nil {
					lost++
				}
			}
			// The reopened store works.
			l2 := storage.NewLocalLog(s2, storage.LocalLogOptions{})
			if res, err := l2.Propose(ctx, cmd("after-restart")); err != nil || res.Err != nil {
				t.Errorf("write after restart: %v %v", err, res.Err)
			}
			l2.Close()
			// The failed store is abandoned, as a process would exit; its
			// Close may report the error but must not hang.
			done := make(chan struct{})
			go func() { s.Close(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Log("Close of the failed store did not return within 10s")
			}
		})
	}
	figures.Report(t, "S4", seed, []figures.Figure{
		figures.Eq("acks_after_sync_error", float64(acksAfter+retriesAccepted), 0),
		figures.Eq("store_not_failed", float64(notFailed), 0),
		figures.Eq("data_loss_after_restart", float64(lost), 0),
		figures.Eq("open_failures", float64(openFailures), 0),
		figures.Guard("acked_ops", float64(acked), 100),
		figures.Guard("faults_injected", float64(faults), 2),
		// Pebble reports the failure through Logger.Fatalf or through the
		// batch's SyncWait, depending on where it hits; either way the store
		// must have noticed it.
		figures.Guard("failures_observed", float64(observed), 2),
	})
}

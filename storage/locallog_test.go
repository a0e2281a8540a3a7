package storage_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/teamflow/teamflow/storage"
)

// TestLocalLogGroupCommit: 32 concurrent proposers, every proposal applies,
// each proposer sees its results in order, the log has no gap, and
// concurrent proposals shared fsyncs.
func TestLocalLogGroupCommit(t *testing.T) {
	const proposers, each = 32, 40
	s := openStore(t, t.TempDir(), storage.Options{})
	l := storage.NewLocalLog(s, storage.LocalLogOptions{})
	defer l.Close()

	results := make([][]storage.Result, proposers)
	errs := make(chan error, proposers)
	var wg sync.WaitGroup
	for p := 0; p < proposers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				res, err := l.Propose(context.Background(), &storage.Command{
					RequestID: fmt.Sprintf("p%d-%d", p, i),
					Tenant:    "acme",
					Ops: []storage.Op{
						add(storage.K("ctr", "task"), 1),
						{Type: storage.OpPut, Key: storage.K("task", fmt.Sprintf("p%d-%d", p, i)), Version: 1, StampRef: 1},
					},
				})
				if err == nil && res.Err != nil {
					err = res.Err
				}
				if err != nil {
					errs <- err
					return
				}
				results[p] = append(results[p], res)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var indexes []uint64
	byIndex := map[uint64]storage.Result{}
	for p, rs := range results {
		for i := 1; i < len(rs); i++ {
			if rs[i].Index <= rs[i-1].Index || rs[i].Seq <= rs[i-1].Seq || rs[i].Values[0] <= rs[i-1].Values[0] {
				t.Fatalf("proposer %d: result %d (%+v) not after result %d (%+v)", p, i, rs[i], i-1, rs[i-1])
			}
		}
		for _, r := range rs {
			indexes = append(indexes, r.Index)
			byIndex[r.Index] = r
		}
	}
	slices.Sort(indexes)
	for i, idx := range indexes {
		if idx != uint64(i+1) {
			t.Fatalf("log indexes are not 1..%d: position %d holds %d", len(indexes), i, idx)
		}
		// Apply order is log order: the counter and the sequence follow it.
		if r := byIndex[idx]; r.Values[0] != int64(idx) || r.Seq != idx {
			t.Fatalf("entry %d: counter %d, seq %d", idx, r.Values[0], r.Seq)
		}
	}
	st := l.Stats()
	t.Logf("stats: %d proposals in %d batches (%.1f per fsync)", st.Proposals, st.Batches, float64(st.Proposals)/float64(st.Batches))
	if st.Proposals != proposers*each {
		t.Fatalf("Stats.Proposals = %d", st.Proposals)
	}
	if st.Batches >= st.Proposals {
		t.Fatalf("no group commit: %d batches for %d proposals", st.Batches, st.Proposals)
	}
	if err := l.Ready(); err != nil {
		t.Fatal(err)
	}
}

// TestLocalLogCloseFailsQueued: Close lets the batch in flight finish and
// fails the proposals still queued with ErrClosed.
func TestLocalLogCloseFailsQueued(t *testing.T) {
	// An observer that blocks stalls the sync stage; the evaluation stage
	// fills its small pipeline and then stops taking proposals, so the rest
	// wait in the log's queue.
	s := openStore(t, t.TempDir(), storage.Options{ObserverBuffer: 1})
	entered := make(chan struct{}, 10)
	release := make(chan struct{})
	s.Observe(func([]storage.Applied) {
		entered <- struct{}{}
		<-release
	})
	l := storage.NewLocalLog(s, storage.LocalLogOptions{})
	cmd := func(i int) *storage.Command {
		return &storage.Command{Tenant: "acme", Ops: []storage.Op{put(storage.K("x", fmt.Sprint(i)), "x", 1)}}
	}
	ctx := ctxTimeout(t, 30*time.Second)
	if _, err := l.Propose(ctx, cmd(0)); err != nil {
		t.Fatal(err)
	}
	<-entered // the observer holds batch 1
	type outcome struct {
		i   int
		res storage.Result
		err error
	}
	const n = 30
	out := make(chan outcome, n)
	propose := func(i int) {
		go func() {
			res, err := l.Propose(ctx, cmd(i))
			out <- outcome{i, res, err}
		}()
	}
	// Batch 1 is held by the observer, batch 2 waits in its buffer, batch 3
	// blocks the sync stage, batches 4–7 fill the pipeline and batch 8 blocks
	// the evaluation stage: one proposal per batch, each confirmed taken.
	for i := 1; i <= 7; i++ {
		propose(i)
		within(t, 10*time.Second, "the proposal is evaluated", func() bool { return l.EvaluatedBatches() == uint64(i+1) })
	}
	for i := 8; i <= n; i++ {
		propose(i)
	}
	within(t, 10*time.Second, "proposals queue behind the stalled pipeline", func() bool { return l.QueueLen() == n-7 })
	closed := make(chan struct{})
	go func() { l.Close(); close(closed) }()
	within(t, 10*time.Second, "Close starts", l.Closing)
	close(release)
	<-closed

	ok, refused := 0, 0
	v := s.Tenant("acme")
	for range n {
		o := <-out
		_, getErr := v.Get(storage.K("x", fmt.Sprint(o.i)))
		switch {
		case o.err == nil:
			// Answered: it was evaluated before Close and must be there.
			ok++
			if getErr != nil {
				t.Errorf("proposal %d answered at index %d but not stored", o.i, o.res.Index)
			}
		case errors.Is(o.err, storage.ErrClosed):
			// Refused: it never reached the store.
			refused++
			if getErr == nil {
				t.Errorf("proposal %d refused with ErrClosed but stored", o.i)
			}
		default:
			t.Errorf("proposal %d: %v", o.i, o.err)
		}
	}
	if ok != 7 || refused != n-7 {
		t.Fatalf("%d answered and %d refused; want the 7 evaluated answered and the %d queued refused", ok, refused, n-7)
	}
	if s.AppliedIndex() != uint64(1+ok) {
		t.Fatalf("applied index %d, want %d (1 + %d answered)", s.AppliedIndex(), 1+ok, ok)
	}
}

// TestLocalLogProposeAfterClose: a proposal after Close fails at once; it
// never waits for a log that has stopped.
func TestLocalLogProposeAfterClose(t *testing.T) {
	s := openStore(t, t.TempDir(), storage.Options{})
	l := storage.NewLocalLog(s, storage.LocalLogOptions{})
	if _, err := l.Propose(context.Background(), &storage.Command{Tenant: "a", Ops: []storage.Op{put(storage.K("x"), "", 1)}}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l.Close() // idempotent
	for i := 0; i < 200; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := l.Propose(ctx, &storage.Command{Tenant: "a", Ops: []storage.Op{put(storage.K("x"), "", 1)}})
		cancel()
		if !errors.Is(err, storage.ErrClosed) {
			t.Fatalf("proposal %d after Close: %v, want ErrClosed", i, err)
		}
	}
	if s.AppliedIndex() != 1 {
		t.Fatalf("applied %d", s.AppliedIndex())
	}
}

func TestLocalLogWaitApplied(t *testing.T) {
	s, err := storage.Open(t.TempDir(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l := storage.NewLocalLog(s, storage.LocalLogOptions{})
	ctx := ctxTimeout(t, 30*time.Second)
	if err := s.WaitApplied(ctx, 0); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- s.WaitApplied(ctx, 3) }()
	for i := 0; i < 3; i++ {
		select {
		case err := <-waited:
			t.Fatalf("WaitApplied(3) returned %v at index %d", err, s.AppliedIndex())
		default:
		}
		if _, err := l.Propose(ctx, &storage.Command{Tenant: "a", Ops: []storage.Op{add(storage.K("c"), 1)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.WaitApplied(short, 99); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait: %v", err)
	}
	go func() { waited <- s.WaitApplied(ctx, 99) }()
	l.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-waited; !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("wait across Close: %v", err)
	}
	if err := s.Healthy(); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("Healthy after Close: %v", err)
	}
}

func TestLocalLogProposeContext(t *testing.T) {
	s := openStore(t, t.TempDir(), storage.Options{})
	l := storage.NewLocalLog(s, storage.LocalLogOptions{})
	defer l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// Either the context wins, or the command applied; never a hang.
	_, err := l.Propose(ctx, &storage.Command{Tenant: "a", Ops: []storage.Op{put(storage.K("x"), "", 1)}})
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

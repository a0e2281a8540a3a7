package storage

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// LocalLog is the single-node Log: it orders proposals, applies them with
// group commit (every proposal that arrives while a batch is being synced
// joins the next batch, so concurrent writers share one fsync), and answers
// each caller once its command is durable and applied.
type LocalLog struct {
	store    *Store
	in       chan *proposal
	quit     chan struct{}
	done     chan struct{}
	maxBatch int
	closing  sync.Once

	proposals atomic.Uint64
	batches   atomic.Uint64
	evaluated atomic.Uint64 // batches made visible, maybe not yet synced
}

type proposal struct {
	data []byte
	res  Result
	err  error
	done chan struct{}
}

// LocalLogOptions configure a LocalLog.
type LocalLogOptions struct {
	// MaxBatch caps how many proposals share one batch (default 512).
	MaxBatch int
}

// NewLocalLog starts the single-node log over s.
func NewLocalLog(s *Store, opts LocalLogOptions) *LocalLog {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 512
	}
	l := &LocalLog{
		store:    s,
		in:       make(chan *proposal, opts.MaxBatch),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
		maxBatch: opts.MaxBatch,
	}
	go l.run()
	return l
}

// Propose orders cmd after every earlier proposal and returns its Result
// once it is applied and synced. If ctx ends first the command may still
// apply; its RequestID makes a retry safe.
func (l *LocalLog) Propose(ctx context.Context, cmd *Command) (Result, error) {
	p := &proposal{data: EncodeCommand(cmd), done: make(chan struct{})}
	select {
	case l.in <- p:
	case <-l.quit:
		return Result{}, ErrClosed
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
	select {
	case <-p.done:
		return p.res, p.err
	case <-l.done:
		// The log stopped. p may have been queued after the last drain,
		// and then nothing will ever answer it; if it was answered, that
		// happened before done closed.
		select {
		case <-p.done:
			return p.res, p.err
		default:
			return Result{}, ErrClosed
		}
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
}

// LogStats are counters for metrics.
type LogStats struct {
	Proposals uint64 // proposals applied
	Batches   uint64 // synced batches; Proposals/Batches is the group-commit factor
}

// Stats reports the log's counters.
func (l *LocalLog) Stats() LogStats {
	return LogStats{Proposals: l.proposals.Load(), Batches: l.batches.Load()}
}

// Ready reports whether the log is serving writes.
func (l *LocalLog) Ready() error { return l.store.Healthy() }

// Close stops the log after the batch in flight; queued proposals fail with
// ErrClosed.
func (l *LocalLog) Close() {
	l.closing.Do(func() { close(l.quit) })
	<-l.done
}

// run is the first stage: it gathers proposals into a batch, evaluates it
// and makes it visible (ApplyAsync), and hands it to the sync stage without
// waiting for the fsync, so the next batch is evaluated while this one
// syncs.
func (l *LocalLog) run() {
	synced := make(chan struct{})
	queue := make(chan inflight, 4)
	go l.syncStage(queue, synced)
	defer func() {
		close(queue)
		<-synced
		close(l.done)
	}()
	next := l.store.AppliedIndex() + 1
	for {
		batch := make([]*proposal, 0, 16)
		// Close wins over queued proposals: select alone picks at random
		// when both are ready.
		select {
		case <-l.quit:
			l.drain(ErrClosed)
			return
		default:
		}
		select {
		case p := <-l.in:
			batch = append(batch, p)
		case <-l.quit:
			l.drain(ErrClosed)
			return
		}
	fill:
		for len(batch) < l.maxBatch {
			select {
			case p := <-l.in:
				batch = append(batch, p)
			default:
				break fill
			}
		}
		entries := make([]Entry, len(batch))
		for i, p := range batch {
			entries[i] = Entry{Index: next + uint64(i), Data: p.data}
		}
		pending, err := l.store.ApplyAsync(entries)
		if err == nil {
			next += uint64(len(batch))
		}
		l.evaluated.Add(1)
		queue <- inflight{batch: batch, pending: pending, err: err}
	}
}

// inflight is a batch between its evaluation and its fsync.
type inflight struct {
	batch   []*proposal
	pending *Pending
	err     error
}

// syncStage waits for each batch's durability, in order, and only then
// answers its proposers.
func (l *LocalLog) syncStage(queue <-chan inflight, done chan<- struct{}) {
	defer close(done)
	for f := range queue {
		var results []Result
		err := f.err
		if err == nil {
			results, err = f.pending.Wait()
		}
		for i, p := range f.batch {
			if err != nil {
				p.err = fmt.Errorf("storage: apply: %w", err)
			} else {
				p.res = results[i]
			}
			close(p.done)
		}
		l.proposals.Add(uint64(len(f.batch)))
		l.batches.Add(1)
	}
}

func (l *LocalLog) drain(err error) {
	for {
		select {
		case p := <-l.in:
			p.err = err
			close(p.done)
		default:
			return
		}
	}
}

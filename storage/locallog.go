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

func (l *LocalLog) run() {
	defer close(l.done)
	batch := make([]*proposal, 0, l.maxBatch)
	entries := make([]Entry, 0, l.maxBatch)
	for {
		batch = batch[:0]
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
		entries = entries[:0]
		next := l.store.AppliedIndex() + 1
		for i, p := range batch {
			entries = append(entries, Entry{Index: next + uint64(i), Data: p.data})
		}
		results, err := l.store.Apply(entries)
		for i, p := range batch {
			if err != nil {
				p.err = fmt.Errorf("storage: apply: %w", err)
			} else {
				p.res = results[i]
			}
			close(p.done)
		}
		l.proposals.Add(uint64(len(batch)))
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

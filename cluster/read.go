package cluster

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/raft/v3"
)

// Linearizable reads: ReadBarrier asks the leader, through raft's
// ReadIndex, for its commit index after it has confirmed with a quorum
// that it is still the leader, then waits until this node has applied that
// far. A read of the local store after ReadBarrier returns sees every write
// acknowledged before ReadBarrier was called, on any node.
//
// Concurrent barriers share one ReadIndex round: a round answers every
// request queued before it was issued (as etcd's linearizable read loop
// does). A round that gets no answer (no leader, leader changed, message
// lost) is reissued.

type readReq struct {
	ctx context.Context
	ch  chan readResult
}

type readResult struct {
	index uint64
	err   error
}

// ReadIndex returns a read index: the leader's commit index at a moment
// after the call began, confirmed by a quorum. ReadBarrier also waits for
// this node to apply it.
func (n *Node) ReadIndex(ctx context.Context) (uint64, error) {
	if err := n.usable(); err != nil {
		return 0, err
	}
	ctx, cancel := n.bound(ctx)
	defer cancel()
	req := &readReq{ctx: ctx, ch: make(chan readResult, 1)}
	select {
	case n.readc <- req:
	case <-ctx.Done():
		return 0, fmt.Errorf("cluster: read index: %w", ctx.Err())
	case <-n.stop:
		return 0, ErrClosed
	}
	select {
	case r := <-req.ch:
		return r.index, r.err
	case <-ctx.Done():
		return 0, fmt.Errorf("cluster: read index: %w", ctx.Err())
	case <-n.readDone:
		select {
		case r := <-req.ch:
			return r.index, r.err
		default:
			return 0, ErrClosed
		}
	}
}

// ReadBarrier waits until this node's store reflects every write
// acknowledged (on any node) before the call: linearizable reads.
func (n *Node) ReadBarrier(ctx context.Context) error {
	ctx, cancel := n.bound(ctx)
	defer cancel()
	idx, err := n.ReadIndex(ctx)
	if err != nil {
		return err
	}
	n.st.reads.Add(1)
	if err := n.store.WaitApplied(ctx, idx); err != nil {
		return fmt.Errorf("cluster: read barrier at %d: %w", idx, err)
	}
	return nil
}

// WaitApplied waits until this node has applied index idx (for
// read-your-writes across nodes: TeamFlow-Min-Index).
func (n *Node) WaitApplied(ctx context.Context, idx uint64) error {
	ctx, cancel := n.bound(ctx)
	defer cancel()
	return n.store.WaitApplied(ctx, idx)
}

func (n *Node) readLoop() {
	defer close(n.readDone)
	retry := max(time.Duration(n.cfg.ElectionTicks)*n.cfg.TickInterval/2, 50*time.Millisecond)
	for {
		var batch []*readReq
		select {
		case r := <-n.readc:
			batch = append(batch, r)
		case <-n.stop:
			n.drainReads(ErrClosed)
			return
		}
	more:
		for {
			select {
			case r := <-n.readc:
				batch = append(batch, r)
			default:
				break more
			}
		}
		var rctx [8]byte
		binary.BigEndian.PutUint64(rctx[:], n.readSeq.Add(1))
		idx, err := n.readRound(rctx[:], batch, retry)
		for _, r := range batch {
			r.ch <- readResult{index: idx, err: err}
		}
		if errors.Is(err, ErrClosed) {
			n.drainReads(ErrClosed)
			return
		}
	}
}

// readRound runs one ReadIndex round until it is answered, every request in
// it has given up, or the node stops.
func (n *Node) readRound(rctx []byte, batch []*readReq, retry time.Duration) (uint64, error) {
	abandoned := func() bool {
		for _, r := range batch {
			if r.ctx.Err() == nil {
				return false
			}
		}
		return true
	}
	for {
		if err := n.usable(); err != nil {
			return 0, err
		}
		if abandoned() {
			return 0, context.Canceled
		}
		lc := n.leaderChanged()
		if n.lead.Load() != 0 {
			ctx, cancel := context.WithTimeout(context.Background(), retry)
			err := n.rn.ReadIndex(ctx, rctx)
			cancel()
			if errors.Is(err, raft.ErrStopped) {
				return 0, ErrClosed
			}
		}
		t := time.NewTimer(retry)
	wait:
		for {
			select {
			case rs := <-n.readStates:
				if bytes.Equal(rs.RequestCtx, rctx) {
					t.Stop()
					return rs.Index, nil
				}
			case <-lc:
				break wait
			case <-t.C:
				break wait
			case <-n.stop:
				t.Stop()
				return 0, ErrClosed
			case <-n.done:
				t.Stop()
				if err := n.usable(); err != nil {
					return 0, err
				}
				return 0, ErrClosed
			}
		}
		t.Stop()
	}
}

func (n *Node) drainReads(err error) {
	for {
		select {
		case r := <-n.readc:
			r.ch <- readResult{err: err}
		default:
			return
		}
	}
}

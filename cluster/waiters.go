package cluster

import (
	"sync"

	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/teamflow/teamflow/storage"
)

// waiters are the callers of Propose (and of the membership calls) waiting
// for their entry to apply on this node, keyed by the Command's RequestID
// (membership changes by confChangeKey).
//
// A waiter resolves in exactly one of these ways:
//   - its entry applies here: it gets the Result Apply returned;
//   - its entry reached this node's log and was then overwritten by a new
//     leader's entries: ErrProposalDropped;
//   - it never reached this node's log and an entry of a later term than the
//     one it was proposed in applied: the new leader's first entry commits
//     every entry it kept from older terms, so this one was lost
//     (ErrProposalDropped; in the rare case that a forwarded proposal reached
//     the new leader late, it may still apply, and a retry is deduped);
//   - a snapshot skipped over it: the store's dedupe table answers, or
//     ErrProposalDropped;
//   - its context ends, the node closes, fails or is removed.
//
// So a leader change fails the proposals it lost within one round trip of
// the new leader's first commit, and never a proposal that will apply from
// this node's own log.
type waitRegistry struct {
	mu    sync.Mutex
	byKey map[string][]*waiter
}

type waiter struct {
	key   string
	term  uint64 // the term when it was proposed
	index uint64 // where it sits in the local log, once seen there
	ch    chan outcome
	done  bool
}

type outcome struct {
	res storage.Result
	err error
}

func newWaitRegistry() *waitRegistry {
	return &waitRegistry{byKey: map[string][]*waiter{}}
}

func (r *waitRegistry) add(key string, term uint64) *waiter {
	w := &waiter{key: key, term: term, ch: make(chan outcome, 1)}
	r.mu.Lock()
	r.byKey[key] = append(r.byKey[key], w)
	r.mu.Unlock()
	return w
}

// remove forgets w (its caller gave up).
func (r *waitRegistry) remove(w *waiter) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.drop(w)
}

func (r *waitRegistry) drop(w *waiter) {
	list := r.byKey[w.key]
	for i, x := range list {
		if x == w {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(r.byKey, w.key)
	} else {
		r.byKey[w.key] = list
	}
}

func (r *waitRegistry) resolveLocked(w *waiter, o outcome) {
	if w.done {
		return
	}
	w.done = true
	w.ch <- o
	r.drop(w)
}

func (r *waitRegistry) empty() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.byKey) == 0
}

// fire resolves every waiter of key with o.
func (r *waitRegistry) fire(key string, o outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, w := range append([]*waiter(nil), r.byKey[key]...) {
		r.resolveLocked(w, o)
	}
}

// logged notes where the entries just persisted put each waiter, and fails
// the waiters whose entries they overwrote.
func (r *waitRegistry) logged(ents []*pb.Entry, prevLast uint64) {
	if len(ents) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.byKey) == 0 {
		return
	}
	first := ents[0].GetIndex()
	seen := map[*waiter]bool{}
	for _, e := range ents {
		key := waiterKey(e)
		if key == "" {
			continue
		}
		for _, w := range r.byKey[key] {
			if w.index == 0 || w.index >= first {
				w.index = e.GetIndex()
				seen[w] = true
			}
		}
	}
	if first > prevLast {
		return // a pure append overwrote nothing
	}
	for _, list := range r.byKey {
		for _, w := range append([]*waiter(nil), list...) {
			if w.index >= first && !seen[w] {
				r.resolveLocked(w, outcome{err: ErrProposalDropped})
			}
		}
	}
}

// applied fails the waiters that can no longer apply once entries up to
// lastIndex, the last of term lastTerm, have applied.
func (r *waitRegistry) applied(lastIndex, lastTerm uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, list := range r.byKey {
		for _, w := range append([]*waiter(nil), list...) {
			if (w.index == 0 && lastTerm > w.term) || (w.index != 0 && w.index <= lastIndex) {
				r.resolveLocked(w, outcome{err: ErrProposalDropped})
			}
		}
	}
}

// snapshotted resolves the waiters a snapshot at index skipped over: those
// the store remembers get their result, the others that were in the log at
// or below index, or were proposed before the snapshot's term, are dropped.
func (r *waitRegistry) snapshotted(index, term uint64, lookup func(key string) (storage.Result, bool)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for key, list := range r.byKey {
		res, ok := lookup(key)
		for _, w := range append([]*waiter(nil), list...) {
			switch {
			case ok:
				res.Duplicate = false
				r.resolveLocked(w, outcome{res: res})
			case (w.index != 0 && w.index <= index) || (w.index == 0 && term > w.term):
				r.resolveLocked(w, outcome{err: ErrProposalDropped})
			}
		}
	}
}

// failUnlogged fails the waiters of the given keys that are not yet in the
// local log (their proposal was dropped on the way to the leader).
func (r *waitRegistry) failUnlogged(keys []string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, key := range keys {
		for _, w := range append([]*waiter(nil), r.byKey[key]...) {
			if w.index == 0 {
				r.resolveLocked(w, outcome{err: err})
			}
		}
	}
}

// failAll fails every waiter.
func (r *waitRegistry) failAll(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, list := range r.byKey {
		for _, w := range append([]*waiter(nil), list...) {
			r.resolveLocked(w, outcome{err: err})
		}
	}
}

// waiterKey is the waiter key of a log entry: the RequestID of a command, or
// the confChangeKey of a membership change; "" for anything else.
func waiterKey(e *pb.Entry) string {
	switch e.GetType() {
	case pb.EntryNormal:
		if len(e.GetData()) == 0 {
			return ""
		}
		id, err := storage.PeekRequestID(e.GetData())
		if err != nil {
			return ""
		}
		return id
	case pb.EntryConfChange:
		_, key, err := decodeConfChange(e)
		if err != nil {
			return ""
		}
		return key
	}
	return ""
}

package httpapi

import (
	"cmp"
	"slices"
	"sort"
	"sync"
	"time"
)

// Rate limits count requests in any rolling window (an hour for the API):
// a sliding log of the accepted requests' times per key, so no window of
// that length ever holds more than the limit — unlike a fixed clock hour,
// which admits twice the limit across a boundary. In a cluster each node
// also counts what the other members report accepting (ratelimit_peers.go).

type slidingLog struct {
	times []int64 // accepted request times (unix ns), oldest first, at most limit
}

// limiter holds the logs of every key under one lock: the critical section
// is a few comparisons, and checking a user and their workspace together
// must be atomic.
type limiter struct {
	mu    sync.Mutex
	logs  map[string]*slidingLog
	ops   int
	peers peerState
}

func newLimiter() *limiter { return &limiter{logs: map[string]*slidingLog{}, peers: newPeerState()} }

// quota is one limit to check: key, allowance and window.
type quota struct {
	key    string
	limit  int
	window time.Duration
}

// decision is the outcome for the tightest quota checked.
type decision struct {
	allowed    bool
	limit      int
	remaining  int
	reset      time.Duration // until the oldest counted request leaves the window
	retryAfter time.Duration // when refused
	window     time.Duration
	share      bool // refused for this node's share in a cluster, not the count
}

// allow admits a request at now if every quota has room, and records it in
// all of them; otherwise it records nothing.
func (l *limiter) allow(now time.Time, qs ...quota) decision {
	l.mu.Lock()
	defer l.mu.Unlock()
	ns := now.UnixNano()
	members := l.peers.members()
	best := decision{allowed: true, remaining: -1}
	logs := make([]*slidingLog, len(qs))
	for i, q := range qs {
		lg := l.logs[q.key]
		if lg == nil {
			lg = &slidingLog{}
			l.logs[q.key] = lg
		}
		logs[i] = lg
		d := l.check(lg, q, ns, members)
		if !d.allowed && best.allowed || (d.allowed == best.allowed && (best.remaining < 0 || d.remaining < best.remaining)) {
			best = d
		}
	}
	if best.allowed {
		for _, lg := range logs {
			lg.times = append(lg.times, ns)
		}
		best.remaining--
	}
	l.ops++
	if l.ops%10_000 == 0 {
		l.sweep(ns)
	}
	return best
}

// check decides one quota: this node's log, the other members' reported
// counts, and (with members > 1) this node's share of what is left.
func (l *limiter) check(lg *slidingLog, q quota, ns int64, members int) decision {
	cutoff := ns - q.window.Nanoseconds()
	// Drop what left the window.
	drop := sort.Search(len(lg.times), func(j int) bool { return lg.times[j] > cutoff })
	lg.times = lg.times[drop:]
	own := len(lg.times)
	others, first := l.peers.counted(q.key, cutoff)
	used := own + others
	d := decision{allowed: used < q.limit, limit: q.limit, remaining: q.limit - used, window: q.window}
	if used > 0 {
		if own > 0 && (first == 0 || lg.times[0] < first) {
			first = lg.times[0]
		}
		d.reset = time.Duration(first - cutoff)
	}
	if !d.allowed {
		// Room comes back once used-limit+1 of the counted requests left.
		d.retryAfter = time.Duration(l.leaving(lg, q.key, cutoff, used-q.limit+1) - cutoff)
		return d
	}
	if members > 1 {
		// Accepted here since the last report: the others do not know yet.
		unreported := own - sort.Search(own, func(j int) bool { return lg.times[j] > l.peers.reported })
		left := q.limit - (used - unreported)
		if unreported > 0 && unreported*members >= left {
			// This node's share is spent until it reports (within a
			// gossip interval).
			d.allowed, d.retryAfter, d.share = false, time.Second, true
		}
	}
	return d
}

// leaving is when (ns) the k-th oldest request counted for key leaves a
// window that starts at cutoff, counting this node's log and the others'
// reports.
func (l *limiter) leaving(lg *slidingLog, key string, cutoff int64, k int) int64 {
	others := l.peers.inWindow(key, cutoff)
	if len(others) == 0 {
		return lg.times[k-1]
	}
	type leave struct{ at, n int64 } // when (ns) n counted requests leave
	var all []leave
	for _, bs := range others {
		for _, b := range bs {
			all = append(all, leave{ends(b), b.n})
		}
	}
	for _, at := range lg.times {
		all = append(all, leave{at, 1})
	}
	slices.SortStableFunc(all, func(a, b leave) int { return cmp.Compare(a.at, b.at) })
	for _, b := range all {
		if k -= int(b.n); k <= 0 {
			return b.at
		}
	}
	return all[len(all)-1].at
}

// sweep forgets keys whose logs are empty or wholly outside an hour, so
// idle users cost nothing.
func (l *limiter) sweep(ns int64) {
	for k, lg := range l.logs {
		if len(lg.times) == 0 || lg.times[len(lg.times)-1] < ns-int64(time.Hour) {
			delete(l.logs, k)
		}
	}
	l.peers.sweep(ns)
}

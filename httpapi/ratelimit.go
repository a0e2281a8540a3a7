package httpapi

import (
	"sort"
	"sync"
	"time"
)

// Rate limits count requests in any rolling window (an hour for the API):
// a sliding log of the accepted requests' times per key, so no window of
// that length ever holds more than the limit — unlike a fixed clock hour,
// which admits twice the limit across a boundary. The limits are per node;
// in a cluster a client spread over n nodes can get up to n times them
// (docs/RELIABILITY.md, L5).

type slidingLog struct {
	times []int64 // accepted request times (unix ns), oldest first, at most limit
}

// limiter holds the logs of every key under one lock: the critical section
// is a few comparisons, and checking a user and their workspace together
// must be atomic.
type limiter struct {
	mu   sync.Mutex
	logs map[string]*slidingLog
	ops  int
}

func newLimiter() *limiter { return &limiter{logs: map[string]*slidingLog{}} }

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
}

// allow admits a request at now if every quota has room, and records it in
// all of them; otherwise it records nothing.
func (l *limiter) allow(now time.Time, qs ...quota) decision {
	l.mu.Lock()
	defer l.mu.Unlock()
	ns := now.UnixNano()
	best := decision{allowed: true, remaining: -1}
	logs := make([]*slidingLog, len(qs))
	for i, q := range qs {
		lg := l.logs[q.key]
		if lg == nil {
			lg = &slidingLog{}
			l.logs[q.key] = lg
		}
		logs[i] = lg
		cutoff := ns - q.window.Nanoseconds()
		// Drop what left the window.
		drop := sort.Search(len(lg.times), func(j int) bool { return lg.times[j] > cutoff })
		lg.times = lg.times[drop:]
		used := len(lg.times)
		d := decision{allowed: used < q.limit, limit: q.limit, remaining: q.limit - used, window: q.window}
		if used > 0 {
			d.reset = time.Duration(lg.times[0] - cutoff)
		}
		if !d.allowed {
			d.retryAfter = time.Duration(lg.times[used-q.limit] - cutoff)
		}
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

// sweep forgets keys whose logs are empty or wholly outside an hour, so
// idle users cost nothing.
func (l *limiter) sweep(ns int64) {
	for k, lg := range l.logs {
		if len(lg.times) == 0 || lg.times[len(lg.times)-1] < ns-int64(time.Hour) {
			delete(l.logs, k)
		}
	}
}

package httpapi

import (
	"math/rand/v2"
	"slices"
	"sort"
	"time"
)

// Rate limits in a cluster. A client may spread its requests over every
// member, so each node counts, besides the requests it accepted itself, what
// the others report accepting (RELIABILITY L5). Reports travel as gossip:
// per key, the accepted requests of the last hour by second. A receiver
// keeps the largest count it heard for each (process, key, second): counts
// only grow while a process lives, so reports may arrive late, twice or out
// of order, and a restarted member learns its previous life's counts back
// from the others' echoes, so a failover does not reset anyone's allowance.
//
// Reports lag, so on top of the count a node takes at most a 1/n share (n
// the members heard from recently) of the allowance left as of the last
// reports before it must report again: while everyone's view is current the
// cluster as a whole never admits more than the limit; a report in flight
// lets it go over by at most that share.

// LimitReport is one member's gossip of rate-limit counts: its own table
// (only the seconds that changed since its last report, unless full), and
// in a full report every table it knows of (the echo that lets a restarted
// member recover its previous counts).
type LimitReport struct {
	Tables []LimitTable `json:"tables"`
}

// LimitTable is one process's accepted requests: key → [unix second, count]
// pairs, oldest first.
type LimitTable struct {
	Incarnation uint64                `json:"inc"`
	Keys        map[string][][2]int64 `json:"keys"`
}

// peerLiveness is how long a member counts towards n after its last report.
const peerLiveness = 5 * time.Second

// bucket is one second's accepted requests of one key.
type bucket struct {
	sec int64
	n   int64
}

// peerState is the limiter's cluster side, guarded by limiter.mu. This
// process's own counts are the limiter's logs.
type peerState struct {
	inc      uint64                         // this process
	reported int64                          // own accepts up to this time (ns) were reported
	tables   map[uint64]map[string][]bucket // other processes, by incarnation
	heard    map[uint64]time.Time           // member → its last report (wall clock)
	wall     func() time.Time
}

func newPeerState() peerState {
	return peerState{inc: rand.Uint64() | 1, tables: map[uint64]map[string][]bucket{}, heard: map[uint64]time.Time{}, wall: time.Now}
}

// members is how many nodes share the allowance: this one and those heard
// from recently.
func (p *peerState) members() int {
	n := 1
	now := p.wall()
	for _, at := range p.heard {
		if now.Sub(at) < peerLiveness {
			n++
		}
	}
	return n
}

// inWindow is what each other process reported for key that a window
// starting at cutoff (ns) still counts: a second counts while any of it is
// in the window. Each list is oldest first.
func (p *peerState) inWindow(key string, cutoff int64) [][]bucket {
	var out [][]bucket
	for _, t := range p.tables {
		bs := t[key]
		if i := sort.Search(len(bs), func(i int) bool { return ends(bs[i]) > cutoff }); i < len(bs) {
			out = append(out, bs[i:])
		}
	}
	return out
}

// ends is when (ns) a second's requests leave every window.
func ends(b bucket) int64 { return (b.sec + 1) * int64(time.Second) }

// counted is what the other processes accepted for key in a window that
// starts at cutoff, and when (ns) the oldest of it leaves (0: none).
func (p *peerState) counted(key string, cutoff int64) (n int, first int64) {
	for _, bs := range p.inWindow(key, cutoff) {
		if first == 0 || ends(bs[0]) < first {
			first = ends(bs[0])
		}
		for _, b := range bs {
			n += int(b.n)
		}
	}
	return n, first
}

// report is this process's gossip at now, from its logs: the seconds that
// changed since the last report (those from its second on), or everything
// with the other tables (full). Nothing new and not full: false. (What is
// admitted at the very instant of a report, which only a test clock that
// stands still allows, waits for the next full report.)
func (l *limiter) report(now time.Time, full bool) (LimitReport, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := &l.peers
	from := p.reported / int64(time.Second) * int64(time.Second)
	own := LimitTable{Incarnation: p.inc, Keys: map[string][][2]int64{}}
	for k, lg := range l.logs {
		ts := lg.times
		switch {
		case len(ts) == 0:
		case full:
			own.Keys[k] = bySecond(ts)
		case ts[len(ts)-1] > p.reported:
			own.Keys[k] = bySecond(ts[sort.Search(len(ts), func(i int) bool { return ts[i] >= from }):])
		}
	}
	if !full && len(own.Keys) == 0 {
		return LimitReport{}, false
	}
	p.reported = now.UnixNano()
	rep := LimitReport{Tables: []LimitTable{own}}
	if full {
		for inc, t := range p.tables {
			lt := LimitTable{Incarnation: inc, Keys: make(map[string][][2]int64, len(t))}
			for k, bs := range t {
				lt.Keys[k] = make([][2]int64, len(bs))
				for i, b := range bs {
					lt.Keys[k][i] = [2]int64{b.sec, b.n}
				}
			}
			rep.Tables = append(rep.Tables, lt)
		}
	}
	return rep, true
}

// bySecond counts sorted times (ns) by second: [second, count] pairs.
func bySecond(ts []int64) [][2]int64 {
	var out [][2]int64
	for _, t := range ts {
		sec := t / int64(time.Second)
		if n := len(out); n > 0 && out[n-1][0] == sec {
			out[n-1][1]++
		} else {
			out = append(out, [2]int64{sec, 1})
		}
	}
	return out
}

// merge takes in a report from member from, keeping per second the larger
// count. It reports whether it held a process not heard of before (a
// member that started, or restarted), which the caller answers with a full
// report.
func (p *peerState) merge(from uint64, rep LimitReport, ns int64) (newProcess bool) {
	p.heard[from] = p.wall()
	oldest := ns/int64(time.Second) - int64(time.Hour/time.Second)
	for _, lt := range rep.Tables {
		if lt.Incarnation == p.inc {
			continue // our own counts, echoed back
		}
		t := p.tables[lt.Incarnation]
		if t == nil {
			t = map[string][]bucket{}
			p.tables[lt.Incarnation] = t
			newProcess = true
		}
		for k, ps := range lt.Keys {
			t[k] = mergeBuckets(t[k], ps, oldest)
		}
	}
	return newProcess
}

// mergeBuckets merges the sorted pairs into the sorted buckets, keeping the
// larger count of a second and dropping seconds before oldest.
func mergeBuckets(bs []bucket, ps [][2]int64, oldest int64) []bucket {
	out := make([]bucket, 0, max(len(bs), len(ps)))
	i, j := 0, 0
	for i < len(bs) || j < len(ps) {
		var b bucket
		switch {
		case j == len(ps) || (i < len(bs) && bs[i].sec < ps[j][0]):
			b = bs[i]
			i++
		case i == len(bs) || ps[j][0] < bs[i].sec:
			b = bucket{sec: ps[j][0], n: ps[j][1]}
			j++
		default:
			b = bucket{sec: bs[i].sec, n: max(bs[i].n, ps[j][1])}
			i++
			j++
		}
		if b.sec >= oldest && b.n > 0 {
			out = append(out, b)
		}
	}
	return out
}

// sweep drops the other processes' seconds older than an hour before ns,
// and what is left empty.
func (p *peerState) sweep(ns int64) {
	oldest := ns/int64(time.Second) - int64(time.Hour/time.Second)
	for inc, t := range p.tables {
		for k, bs := range t {
			i := sort.Search(len(bs), func(i int) bool { return bs[i].sec >= oldest })
			if i == len(bs) {
				delete(t, k)
			} else if i > 0 {
				t[k] = slices.Clone(bs[i:])
			}
		}
		if len(t) == 0 {
			delete(p.tables, inc)
		}
	}
	now := p.wall()
	for id, at := range p.heard {
		if now.Sub(at) > time.Hour {
			delete(p.heard, id)
		}
	}
}

// LimitReport is this node's rate-limit gossip (see ratelimit_peers.go);
// full adds every table it knows of. Nothing to say gives ok false.
func (s *Server) LimitReport(full bool) (LimitReport, bool) {
	return s.limits.report(s.now(), full)
}

// PeerLimits takes in member from's rate-limit gossip. It reports whether
// the report came from a process not heard of before, which deserves a
// full report back.
func (s *Server) PeerLimits(from uint64, rep LimitReport) bool {
	return s.limits.merge(from, rep, s.now())
}

func (l *limiter) merge(from uint64, rep LimitReport, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.peers.merge(from, rep, now.UnixNano())
}

package httpapi

import (
	"cmp"
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

// peerState is the limiter's cluster side, guarded by limiter.mu.
type peerState struct {
	inc      uint64                         // this process
	own      map[string][]bucket            // this process's accepts by second
	dirty    map[string]bool                // keys accepted since the last report
	reported int64                          // own accepts up to this time (ns) were reported
	tables   map[uint64]map[string][]bucket // other processes, by incarnation
	heard    map[uint64]time.Time           // member → its last report (wall clock)
	wall     func() time.Time
}

func newPeerState() peerState {
	return peerState{
		inc: rand.Uint64() | 1, own: map[string][]bucket{}, dirty: map[string]bool{},
		tables: map[uint64]map[string][]bucket{}, heard: map[uint64]time.Time{}, wall: time.Now,
	}
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

// counted is what the other processes accepted for key at or after cutoff
// (ns): a second counts while any of it is in the window.
func (p *peerState) counted(key string, cutoff int64) int {
	n := 0
	for _, t := range p.tables {
		bs := t[key]
		i := sort.Search(len(bs), func(i int) bool { return (bs[i].sec+1)*int64(time.Second) > cutoff })
		for _, b := range bs[i:] {
			n += int(b.n)
		}
	}
	return n
}

// firstLeaving is when (ns) the oldest of the other processes' counted
// requests for key leaves a window that starts at cutoff; 0 if none counts.
func (p *peerState) firstLeaving(key string, cutoff int64) int64 {
	first := int64(0)
	for _, t := range p.tables {
		bs := t[key]
		i := sort.Search(len(bs), func(i int) bool { return (bs[i].sec+1)*int64(time.Second) > cutoff })
		if i < len(bs) {
			if end := (bs[i].sec + 1) * int64(time.Second); first == 0 || end < first {
				first = end
			}
		}
	}
	return first
}

// leaving lists, oldest first, when (ns) each of the other processes'
// counted requests for key leaves a window that starts at cutoff.
func (p *peerState) leaving(key string, cutoff int64) []bucket {
	var out []bucket
	for _, t := range p.tables {
		for _, b := range t[key] {
			if end := (b.sec + 1) * int64(time.Second); end > cutoff {
				out = append(out, bucket{sec: end, n: b.n})
			}
		}
	}
	slices.SortFunc(out, func(a, b bucket) int { return cmp.Compare(a.sec, b.sec) })
	return out
}

// accepted records one of this process's accepts at ns.
func (p *peerState) accepted(key string, ns int64) {
	sec := ns / int64(time.Second)
	bs := p.own[key]
	if n := len(bs); n > 0 && bs[n-1].sec >= sec {
		// The clock never goes back here, but a test clock may stand still.
		bs[n-1].n++
	} else {
		p.own[key] = append(bs, bucket{sec: sec, n: 1})
	}
	p.dirty[key] = true
}

// report is this process's gossip at ns: the seconds that changed since
// the last report (those from its second on), or everything with the
// other tables (full).
func (p *peerState) report(ns int64, full bool) LimitReport {
	own := LimitTable{Incarnation: p.inc, Keys: map[string][][2]int64{}}
	since := p.reported / int64(time.Second)
	for k, bs := range p.own {
		switch {
		case full:
			own.Keys[k] = pairs(bs)
		case p.dirty[k]:
			i := sort.Search(len(bs), func(i int) bool { return bs[i].sec >= since })
			own.Keys[k] = pairs(bs[i:])
		}
	}
	clear(p.dirty)
	p.reported = ns
	rep := LimitReport{Tables: []LimitTable{own}}
	if full {
		for inc, t := range p.tables {
			lt := LimitTable{Incarnation: inc, Keys: make(map[string][][2]int64, len(t))}
			for k, bs := range t {
				lt.Keys[k] = pairs(bs)
			}
			rep.Tables = append(rep.Tables, lt)
		}
	}
	return rep
}

func pairs(bs []bucket) [][2]int64 {
	out := make([][2]int64, len(bs))
	for i, b := range bs {
		out[i] = [2]int64{b.sec, b.n}
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

// sweep drops seconds older than an hour before ns, and what is left empty.
func (p *peerState) sweep(ns int64) {
	oldest := ns/int64(time.Second) - int64(time.Hour/time.Second)
	trim := func(m map[string][]bucket) {
		for k, bs := range m {
			i := sort.Search(len(bs), func(i int) bool { return bs[i].sec >= oldest })
			if i == len(bs) {
				delete(m, k)
			} else if i > 0 {
				m[k] = slices.Clone(bs[i:])
			}
		}
	}
	trim(p.own)
	for k := range p.dirty {
		if _, ok := p.own[k]; !ok {
			delete(p.dirty, k)
		}
	}
	for inc, t := range p.tables {
		trim(t)
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

func (l *limiter) report(now time.Time, full bool) (LimitReport, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !full && len(l.peers.dirty) == 0 {
		return LimitReport{}, false
	}
	return l.peers.report(now.UnixNano(), full), true
}

func (l *limiter) merge(from uint64, rep LimitReport, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.peers.merge(from, rep, now.UnixNano())
}

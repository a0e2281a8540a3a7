package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/teamflow/teamflow/cluster/transport"
	"github.com/teamflow/teamflow/httpapi"
)

// What the members of a cluster share outside the log, over the
// transport's gossip (best effort, newest state wins): who is viewing what
// (presence.go) and how many requests each has admitted under the rate
// limits (limitRelay). One envelope says which.
type gossipMsg struct {
	Kind string          `json:"kind"`
	Body json.RawMessage `json:"body"`
}

const (
	gossipPresence = "presence"
	gossipLimits   = "limits"
)

// gossipRelays dispatches what the transport receives.
type gossipRelays struct {
	presence *presenceRelay
	limits   *limitRelay
	log      *slog.Logger
}

func newGossipRelays(log *slog.Logger) *gossipRelays {
	return &gossipRelays{
		presence: newPresenceRelay(log.With("component", "presence")),
		limits:   &limitRelay{log: log.With("component", "ratelimit")},
		log:      log,
	}
}

// receive is the cluster transport's gossip receiver.
func (g *gossipRelays) receive(from uint64, body []byte) {
	var m gossipMsg
	if err := json.Unmarshal(body, &m); err != nil {
		g.log.Warn("gossip from a peer does not decode", "peer", from, "err", err)
		return
	}
	switch m.Kind {
	case gossipPresence:
		g.presence.receive(from, m.Body)
	case gossipLimits:
		g.limits.receive(from, m.Body)
	default:
		g.log.Warn("gossip of an unknown kind", "peer", from, "kind", m.Kind)
	}
}

// decodeGossip decodes a peer's gossip body for the API a relay serves;
// false before the API is attached (the raft node starts first; the next
// report repeats what was missed) or when the body does not decode.
func decodeGossip[T any](api *atomic.Pointer[httpapi.Server], log *slog.Logger, from uint64, body []byte) (*httpapi.Server, T, bool) {
	var v T
	s := api.Load()
	if s == nil {
		return nil, v, false
	}
	if err := json.Unmarshal(body, &v); err != nil {
		log.Warn("gossip from a peer does not decode", "peer", from, "err", err)
		return nil, v, false
	}
	return s, v, true
}

// sender wraps the transport's Gossip for one kind.
func sender(gossip func([]byte), kind string) func([]byte) {
	return func(body []byte) {
		b, err := json.Marshal(gossipMsg{Kind: kind, Body: body})
		if err != nil {
			return
		}
		gossip(b)
	}
}

// limitsInterval is how often a member reports the requests it admitted
// since its last report (when there are any): what it admitted in the last
// interval is all a sudden death can take from the others' counts. Every
// limitsFullEvery-th report, and the first, is full: every count of the
// last hour it knows, which repairs lost reports and gives a restarted
// member its previous counts back before it serves. A full report grows
// with the keys (users, workspaces, addresses) that made requests in the
// hour, about 15 bytes a second in which a key had any; past the
// transport's gossip cap the peers refuse it (limitRelay logs it), and only
// the small reports of changes still flow.
const (
	limitsInterval  = 20 * time.Millisecond
	limitsFullEvery = 250 // every 5 s
)

// limitRelay shares the rate limiter's counts (httpapi/ratelimit_peers.go).
type limitRelay struct {
	api    atomic.Pointer[httpapi.Server]
	log    *slog.Logger
	full   atomic.Bool // a new process was heard of: answer with everything
	warned bool        // run's: the cap was reported once
}

func (r *limitRelay) receive(from uint64, body []byte) {
	api, rep, ok := decodeGossip[httpapi.LimitReport](&r.api, r.log, from, body)
	if !ok {
		return
	}
	if api.PeerLimits(from, rep) {
		r.full.Store(true)
	}
}

func (r *limitRelay) run(ctx context.Context, api *httpapi.Server, send func([]byte)) {
	r.api.Store(api)
	r.report(api, true, send)
	t := time.NewTicker(limitsInterval)
	defer t.Stop()
	for i := 1; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.report(api, i%limitsFullEvery == 0 || r.full.Swap(false), send)
		}
	}
}

// report sends this node's counts (full: everything it knows), if it has
// anything to say.
func (r *limitRelay) report(api *httpapi.Server, full bool, send func([]byte)) {
	rep, ok := api.LimitReport(full)
	if !ok {
		return
	}
	body, err := json.Marshal(rep)
	if err != nil {
		r.log.Error("encode rate-limit counts", "err", err)
		return
	}
	if len(body) > transport.MaxGossipBytes && !r.warned {
		r.warned = true
		r.log.Warn("rate-limit counts exceed the gossip cap: peers refuse the full report, so a restarted member does not learn its previous counts",
			"bytes", len(body), "cap", transport.MaxGossipBytes)
	}
	send(body)
}

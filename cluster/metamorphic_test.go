package cluster_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/teamflow/teamflow/cluster"
	"github.com/teamflow/teamflow/cluster/clustertest"
	"github.com/teamflow/teamflow/internal/figures"
	"github.com/teamflow/teamflow/storage"
)

// TestMetamorphicStorage is RELIABILITY S7: one seeded history of commands
// (puts with and without preconditions, deletes, range deletes, bounded and
// unbounded counters, hash-chain appends, records keyed and stamped by a
// counter of the same command, re-proposed request IDs) runs under several
// configurations of the log. Apply is deterministic, so every configuration
// must give each command the same result and leave every tenant's keyspace
// byte-identical:
//
//   - local: the single-node log (storage.LocalLog), one proposal at a time;
//   - batch16: Store.Apply with 16 entries per batch;
//   - batch128-restart500: 128 per batch, the store closed and reopened
//     after every 500 commands;
//   - raft3-snap50: a 3-node raft cluster that snapshots and compacts every
//     50 entries, one follower stopped for a stretch so that it must catch
//     up by snapshot; all three nodes are compared.
//
// Search is left out: Bleve is fed by observers of these same entries, and
// its rebuild is checked by the index package's differential test.
func TestMetamorphicStorage(t *testing.T) {
	seed := figures.Seed(t)
	n := 5000
	if testing.Short() {
		n = 1000
	}
	h := genHistory(seed, n)

	type outcome struct {
		name    string
		results []string
		hashes  map[string][]byte
	}
	runs := []outcome{}
	add := func(name string, res []string, hs map[string][]byte) {
		runs = append(runs, outcome{name, res, hs})
	}
	res, hs := runLocal(t, h)
	add("local", res, hs)
	res, hs = runBatched(t, h, 16, 0)
	add("batch16", res, hs)
	res, hs = runBatched(t, h, 128, 500)
	add("batch128-restart500", res, hs)
	res, hashesByNode, snaps := runRaft(t, h)
	for id, hs := range hashesByNode {
		add(fmt.Sprintf("raft3-snap50/node%d", id), res, hs)
	}

	ref := runs[0]
	diffs := 0
	for _, o := range runs[1:] {
		for i := range ref.results {
			if o.results[i] != ref.results[i] {
				diffs++
				t.Errorf("seed %d: command %d (%s) under %s: %s; under %s: %s", seed, i, h.cmds[i].RequestID, o.name, o.results[i], ref.name, ref.results[i])
				break
			}
		}
		for _, tn := range metaTenants {
			if !bytes.Equal(o.hashes[tn], ref.hashes[tn]) {
				diffs++
				t.Errorf("seed %d: tenant %s under %s hashes %x; under %s %x", seed, tn, o.name, o.hashes[tn], ref.name, ref.hashes[tn])
			}
		}
	}
	kinds := map[string]int{}
	for i, r := range ref.results {
		if h.repeat[i] {
			kinds["repeat"]++
			continue
		}
		kinds[resultKind(r)]++
	}
	t.Logf("S7: %d commands, %d configurations; results by kind %v", n, len(runs), kinds)
	figures.Report(t, "S7", seed, []figures.Figure{
		figures.Eq("history_diffs", float64(diffs), 0),
		figures.Guard("configurations", float64(len(runs)), 6),
		// The history must exercise every outcome Apply can give.
		figures.Guard("applied", float64(kinds["ok"]), float64(n/4)),
		figures.Guard("conflicts", float64(kinds["conflict"]), 10),
		figures.Guard("limits", float64(kinds["limit"]), 10),
		figures.Guard("repeats", float64(kinds["repeat"]), 10),
		figures.Guard("snapshots_installed", float64(snaps), 1),
	})
}

var metaTenants = []string{"t1", "t2", "t3"}

// history is the commands in order; repeat[i] marks a re-proposal of an
// earlier one.
type history struct {
	cmds   []*storage.Command
	repeat []bool
}

// genHistory makes n commands from seed. Re-proposals repeat an earlier
// command, request ID and all, as a client retrying after a timeout does.
func genHistory(seed int64, n int) history {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x57))
	key := func() storage.Key { return storage.K("k", fmt.Sprint(rng.IntN(12))) }
	var h history
	for i := range n {
		if i > 10 && rng.IntN(100) < 3 {
			h.cmds = append(h.cmds, h.cmds[i-1-rng.IntN(10)])
			h.repeat = append(h.repeat, true)
			continue
		}
		cmd := &storage.Command{
			RequestID: fmt.Sprintf("s7-%d-%d", seed, i),
			Tenant:    metaTenants[rng.IntN(len(metaTenants))],
			Kind:      "s7",
			Actor:     "s7",
			At:        int64(i),
		}
		for range 1 + rng.IntN(4) {
			switch p := rng.IntN(100); {
			case p < 35:
				cmd.Ops = append(cmd.Ops, storage.Op{Type: storage.OpPut, Key: key(), Value: fmt.Appendf(nil, "v%d", rng.IntN(1000)), Version: uint64(1 + rng.IntN(4))})
			case p < 50:
				// Versions 0-3 and "any": some hold, some conflict.
				v := uint64(rng.IntN(4))
				if rng.IntN(5) == 0 {
					v = storage.AnyVersion
				}
				cmd.Preconditions = append(cmd.Preconditions, storage.Precondition{Key: key(), Version: v})
			case p < 60:
				cmd.Ops = append(cmd.Ops, storage.Op{Type: storage.OpDelete, Key: key()})
			case p < 62:
				lo := rng.IntN(10)
				cmd.Ops = append(cmd.Ops, storage.Op{Type: storage.OpDeleteRange, Key: storage.K("k", fmt.Sprint(lo)), End: storage.K("k", fmt.Sprint(lo+2))})
			case p < 63:
				// A counter reset: Apply's knowledge of the batch's counters
				// must forget it.
				if rng.IntN(2) == 0 {
					cmd.Ops = append(cmd.Ops, storage.Op{Type: storage.OpDelete, Key: storage.K("cnt", fmt.Sprint(rng.IntN(3)))})
				} else {
					cmd.Ops = append(cmd.Ops, storage.Op{Type: storage.OpDeleteRange, Key: storage.K("cnt")})
				}
			case p < 78:
				op := storage.Op{Type: storage.OpAdd, Key: storage.K("cnt", fmt.Sprint(rng.IntN(3))), Delta: int64(rng.IntN(7) - 2)}
				if rng.IntN(2) == 0 {
					op.Bounded, op.Min, op.Max, op.Limit = true, 0, 8, "s7"
				}
				cmd.Ops = append(cmd.Ops, op)
			case p < 88:
				cmd.Ops = append(cmd.Ops, storage.Op{Type: storage.OpChain, Key: storage.K("chainhead"), End: storage.K("chain"), Value: fmt.Appendf(nil, "entry %d", i)})
			default:
				// A number allocated in Apply, used as a key and a stamp.
				ref := uint16(len(cmd.Ops) + 1)
				cmd.Ops = append(cmd.Ops,
					storage.Op{Type: storage.OpAdd, Key: storage.K("seq"), Delta: 1},
					storage.Op{Type: storage.OpPut, Key: storage.K("num"), KeyRef: ref, StampRef: ref, Value: []byte("numbered"), Version: 1})
			}
		}
		h.cmds = append(h.cmds, cmd)
		h.repeat = append(h.repeat, false)
	}
	return h
}

// describe renders what the configurations must agree on: everything but
// the log index, which differs by the entries raft adds of its own. The
// Duplicate flag is left out where it may differ: on a re-proposal that
// raced its first proposal's apply on a lagging member, raft answers with
// the first application's result (both are the same apply, once), and a
// cluster retry may find its first attempt applied.
func describe(r storage.Result, hideDup bool) string {
	e := "ok"
	switch {
	case r.Err != nil:
		e = r.Err.Error()
	case r.Duplicate && !hideDup:
		e = "duplicate"
	}
	return fmt.Sprintf("seq=%d values=%v %s", r.Seq, r.Values, e)
}

func resultKind(desc string) string {
	for _, k := range []string{"conflict", "limit", "ok"} {
		if strings.Contains(desc, k) {
			return k
		}
	}
	return "other"
}

func tenantHashes(t *testing.T, s *storage.Store) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, tn := range metaTenants {
		h, err := s.TenantHash(tn)
		if err != nil {
			t.Fatal(err)
		}
		out[tn] = h
	}
	return out
}

func openMetaStore(t *testing.T, dir string) *storage.Store {
	t.Helper()
	s, err := storage.Open(dir, storage.Options{CacheSize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func runLocal(t *testing.T, h history) ([]string, map[string][]byte) {
	s := openMetaStore(t, t.TempDir())
	defer s.Close()
	l := storage.NewLocalLog(s, storage.LocalLogOptions{})
	defer l.Close()
	out := make([]string, len(h.cmds))
	for i, cmd := range h.cmds {
		r, err := l.Propose(context.Background(), cmd)
		if err != nil {
			t.Fatalf("local: command %d: %v", i, err)
		}
		// The local log answers a repeat from the dedupe table, always.
		if h.repeat[i] != r.Duplicate {
			t.Errorf("local: command %d: repeat %t, answered as duplicate %t", i, h.repeat[i], r.Duplicate)
		}
		out[i] = describe(r, h.repeat[i])
	}
	return out, tenantHashes(t, s)
}

func runBatched(t *testing.T, h history, batch, restartEvery int) ([]string, map[string][]byte) {
	dir := t.TempDir()
	s := openMetaStore(t, dir)
	defer func() { s.Close() }()
	out := make([]string, 0, len(h.cmds))
	for start := 0; start < len(h.cmds); start += batch {
		end := min(start+batch, len(h.cmds))
		entries := make([]storage.Entry, 0, end-start)
		for i := start; i < end; i++ {
			entries = append(entries, storage.Entry{Index: uint64(i + 1), Data: storage.EncodeCommand(h.cmds[i])})
		}
		rs, err := s.Apply(entries)
		if err != nil {
			t.Fatalf("batch of %d at %d: %v", batch, start, err)
		}
		for j, r := range rs {
			out = append(out, describe(r, h.repeat[start+j]))
		}
		if restartEvery > 0 && end/restartEvery != start/restartEvery {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openMetaStore(t, dir)
		}
	}
	return out, tenantHashes(t, s)
}

// runRaft proposes the history, in order, round-robin on the running
// members of a 3-node cluster (a follower forwards to the leader). Member 3
// is down for the middle fifth, long enough for the others to compact past
// it.
func runRaft(t *testing.T, h history) ([]string, map[uint64]map[string][]byte, uint64) {
	c := clustertest.New(t, clustertest.Options{Nodes: 3, Configure: func(cfg *cluster.Config) {
		cfg.SnapshotEntries = 50
		cfg.CatchUpEntries = 10
	}})
	c.Leader(long)
	out := make([]string, len(h.cmds))
	down := c.Member(3)
	for i, cmd := range h.cmds {
		switch i {
		case len(h.cmds) * 2 / 5:
			down.Stop()
		case len(h.cmds) * 3 / 5:
			down.Start()
		}
		running := c.Running()
		out[i] = proposeRetrying(t, running[i%len(running)], cmd, h.repeat[i])
	}
	c.WaitConverged(long)
	byNode := map[uint64]map[string][]byte{}
	for _, m := range c.Running() {
		byNode[m.ID] = tenantHashes(t, m.Store)
	}
	return out, byNode, down.Node.Stats().SnapshotsInstalled
}

// proposeRetrying is clustertest.Propose that remembers whether it had to
// retry: the retry's answer may then say Duplicate where the other
// configurations, which never retry, do not.
func proposeRetrying(t *testing.T, m *clustertest.Member, cmd *storage.Command, repeat bool) string {
	t.Helper()
	deadline := time.Now().Add(long)
	retried := false
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r, err := m.Node.Propose(ctx, cmd)
		cancel()
		if err == nil {
			return describe(r, retried || repeat)
		}
		if time.Now().After(deadline) || errors.Is(err, cluster.ErrClosed) {
			t.Fatalf("raft: propose %s on %d: %v", cmd.RequestID, m.ID, err)
		}
		retried = true
	}
}

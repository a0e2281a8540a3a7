package storage_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/teamflow/teamflow/internal/figures"
	"github.com/teamflow/teamflow/storage"
)

// RELIABILITY.md S2: power loss, in process. Concurrent proposers send
// realistic multi-op commands (a task record, its secondary index entries,
// counters, an activity entry and an outbox row) through the LocalLog on
// Pebble's crashable in-memory filesystem. At random moments, while other
// proposals are in flight, the filesystem is cloned as a power loss would
// leave it (unsynced data kept with probability 0, 50 or 100 %). Each clone
// is reopened and checked:
//
//   open_failures        the clone does not open, or does not take a write
//   lost_synced_acked    a command acknowledged before the clone is missing
//   torn_batches         a command is partly present
//   prefix_mismatch      the state is not exactly the first AppliedIndex
//                        entries of the log (replayed on a model store)
//   invariant_violations an index entry without its live record, a record
//                        without its index entries, a counter that disagrees
//
// SEED replays the op streams, the crash schedule and the clone RNG; the
// interleaving of the proposers is the scheduler's. S2_CRASH_POINTS sets the
// number of crash points (200 by default; the soak runs 10,000).

var s2Tenants = []string{"acme", "acme2", "a\x00b"}

const (
	s2CrashesPerRun = 5
	s2Proposers     = 4
	s2PerProposer   = 60
)

type s2Crash struct {
	clone   *vfs.MemFS
	percent int
	acked   []string // request IDs acknowledged before the clone
}

type s2Cmd struct {
	tenant string
	data   []byte
}

type s2Task struct {
	version uint64
	status  string
	stamp   uint64
}

// s2Command draws the next command of a proposer that owns tasks.
func s2Command(r *rand.Rand, tenant, rid string, owner string, n int, tasks map[string]*s2Task) (*storage.Command, func(storage.Result)) {
	statuses := []string{"open", "doing", "done"}
	payload := func() string {
		size := r.IntN(64)
		if r.IntN(5) == 0 {
			size = 1000 + r.IntN(7000) // spans 4 KiB blocks of the crashable FS
		}
		return strings.Repeat(string(rune('a'+r.IntN(26))), size)
	}
	markers := []storage.Op{
		put(storage.K("act", rid), rid, 1),
		put(storage.K("outbox", rid), rid, 1),
	}
	var ids []string
	for id := range tasks {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	action := r.IntN(10)
	if len(ids) == 0 || action < 5 {
		id := fmt.Sprintf("%s-%d", owner, n)
		st := statuses[r.IntN(len(statuses))]
		c := &storage.Command{RequestID: rid, Tenant: tenant, Kind: "task.create",
			Preconditions: []storage.Precondition{{Key: storage.K("task", id)}},
			Ops: append([]storage.Op{
				add(storage.K("ctr", "tasknum"), 1),
				{Type: storage.OpPut, Key: storage.K("task", id), Value: []byte(st + "|" + payload()), Version: 1, StampRef: 1},
				put(storage.K("ix", "status", st, id), "", 1),
				{Type: storage.OpPut, Key: storage.K("ix", "num"), Value: []byte(id), Version: 1, KeyRef: 1},
				bounded(storage.K("ctr", "live"), 1, 0, 1_000_000, "tasks"),
			}, markers...)}
		return c, func(res storage.Result) {
			tasks[id] = &s2Task{version: 1, status: st, stamp: uint64(res.Values[0])}
		}
	}
	id := ids[r.IntN(len(ids))]
	tk := tasks[id]
	if action < 8 {
		st := statuses[r.IntN(len(statuses))]
		c := &storage.Command{RequestID: rid, Tenant: tenant, Kind: "task.update",
			Preconditions: []storage.Precondition{{Key: storage.K("task", id), Version: tk.version}},
			Ops: append([]storage.Op{
				{Type: storage.OpPut, Key: storage.K("task", id), Value: []byte(st + "|" + payload()), Version: tk.version + 1, Stamp: tk.stamp},
				del(storage.K("ix", "status", tk.status, id)),
				put(storage.K("ix", "status", st, id), "", 1),
			}, markers...)}
		return c, func(storage.Result) { tk.version++; tk.status = st }
	}
	c := &storage.Command{RequestID: rid, Tenant: tenant, Kind: "task.delete",
		Preconditions: []storage.Precondition{{Key: storage.K("task", id), Version: tk.version}},
		Ops: append([]storage.Op{
			del(storage.K("task", id)),
			del(storage.K("ix", "status", tk.status, id)),
			del(storage.K("ix", "num").AddUint(tk.stamp)),
			bounded(storage.K("ctr", "live"), -1, 0, 1_000_000, "tasks"),
		}, markers...)}
	return c, func(storage.Result) { delete(tasks, id) }
}

// s2Invariants counts broken cross-record invariants of one tenant.
func s2Invariants(t testing.TB, v storage.View) (violations int) {
	type task struct {
		status       string
		stamp        uint64
		ixStatus, ix int
	}
	tasks := map[string]*task{}
	bad := func(format string, args ...any) {
		violations++
		if violations <= 3 {
			t.Logf("invariant: "+format, args...)
		}
	}
	scan := func(prefix storage.Key, fn func(parts [][]byte, r storage.Record)) {
		if err := v.Scan(prefix, storage.ScanOptions{}, func(k storage.Key, r storage.Record) error {
			parts, err := k.Parts()
			if err != nil {
				bad("undecodable key %x", []byte(k))
				return nil
			}
			fn(parts, r)
			return nil
		}); err != nil {
			bad("scan %s: %v", prefix, err)
		}
	}
	scan(storage.K("task"), func(p [][]byte, r storage.Record) {
		st, _, _ := strings.Cut(string(r.Value), "|")
		tasks[string(p[1])] = &task{status: st, stamp: r.Stamp}
	})
	scan(storage.K("ix", "status"), func(p [][]byte, _ storage.Record) {
		tk := tasks[string(p[3])]
		if tk == nil || tk.status != string(p[2]) {
			bad("ix/status/%s/%s without its record", p[2], p[3])
			return
		}
		tk.ixStatus++
	})
	scan(storage.K("ix", "num"), func(p [][]byte, r storage.Record) {
		n, _ := storage.Uint(p[2])
		tk := tasks[string(r.Value)]
		if tk == nil || tk.stamp != n {
			bad("ix/num/%d → %s without its record", n, r.Value)
			return
		}
		tk.ix++
	})
	var maxStamp uint64
	for id, tk := range tasks {
		if tk.ixStatus != 1 || tk.ix != 1 {
			bad("task %s has %d status and %d number index entries", id, tk.ixStatus, tk.ix)
		}
		maxStamp = max(maxStamp, tk.stamp)
	}
	counterOr0 := func(k storage.Key) int64 {
		rec, err := v.Get(k)
		if err != nil {
			return 0
		}
		if len(rec.Value) != 8 {
			bad("counter %s holds %d bytes", k, len(rec.Value))
			return 0
		}
		return int64(binary.BigEndian.Uint64(rec.Value))
	}
	if live := counterOr0(storage.K("ctr", "live")); live != int64(len(tasks)) {
		bad("live counter %d, %d tasks", live, len(tasks))
	}
	if n := counterOr0(storage.K("ctr", "tasknum")); n < int64(maxStamp) {
		bad("task number counter %d below stamp %d", n, maxStamp)
	}
	acts, outs := 0, 0
	scan(storage.K("act"), func([][]byte, storage.Record) { acts++ })
	scan(storage.K("outbox"), func([][]byte, storage.Record) { outs++ })
	if seq := counterOr0(storage.TenantSeqKey()); seq != int64(acts) || acts != outs {
		bad("event sequence %d, %d activity entries, %d outbox rows", seq, acts, outs)
	}
	return violations
}

type s2Figures struct {
	openFailures, lost, torn, prefix, invariants int
	acked, crashes, ackedAtCrash, recovered      int
	crashesWithLoss, flushes                     int
	byPercent                                    map[int]int
}

func s2Run(t *testing.T, run int, seed int64, f *s2Figures) {
	r := rand.New(rand.NewPCG(uint64(seed), uint64(run)))
	fs := vfs.NewCrashableMem()
	s, err := storage.Open("db", storage.Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	l := storage.NewLocalLog(s, storage.LocalLogOptions{})
	total := s2Proposers * s2PerProposer

	// Crash after these acknowledgement counts.
	var targets []int
	for len(targets) < s2CrashesPerRun {
		n := 1 + r.IntN(total-1)
		if !containsInt(targets, n) {
			targets = append(targets, n)
		}
	}
	sort.Ints(targets)
	// Flushes and a compaction start at these acknowledgement counts, so
	// that crashes also hit sstable and MANIFEST writes, not only the WAL.
	flushAt := map[int]bool{1 + r.IntN(total-1): true, 1 + r.IntN(total-1): true}
	compactAt := 1 + r.IntN(total-1)
	var (
		bg    sync.WaitGroup
		bgMu  sync.Mutex
		bgErr error
		bgOps int
	)
	background := func(what string, fn func() error) {
		bg.Add(1)
		go func() {
			defer bg.Done()
			err := fn()
			bgMu.Lock()
			defer bgMu.Unlock()
			bgOps++
			if err != nil {
				bgErr = fmt.Errorf("%s: %w", what, err)
			}
		}()
	}

	var (
		mu      sync.Mutex
		acked   []string
		log     = map[uint64]s2Cmd{}
		tenants = map[string]string{} // request ID → tenant
		index   = map[string]uint64{}
		crashes []s2Crash
		failure error
	)
	seeds := make([]uint64, s2Proposers)
	for p := range seeds {
		seeds[p] = r.Uint64()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for p := 0; p < s2Proposers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pr := rand.New(rand.NewPCG(seeds[p], 7))
			tenant := s2Tenants[p%len(s2Tenants)]
			tasks := map[string]*s2Task{}
			for i := 0; i < s2PerProposer; i++ {
				rid := fmt.Sprintf("r%d-p%d-%d", run, p, i)
				cmd, onApplied := s2Command(pr, tenant, rid, fmt.Sprintf("p%d", p), i, tasks)
				res, err := l.Propose(ctx, cmd)
				mu.Lock()
				if err != nil || res.Err != nil {
					if failure == nil {
						failure = fmt.Errorf("%s: %v %v", rid, err, res.Err)
					}
					mu.Unlock()
					return
				}
				onApplied(res)
				log[res.Index] = s2Cmd{tenant: tenant, data: storage.EncodeCommand(cmd)}
				tenants[rid] = tenant
				index[rid] = res.Index
				acked = append(acked, rid)
				if flushAt[len(acked)] {
					background("flush", s.Flush)
				}
				if len(acked) == compactAt {
					background("compact", s.Compact)
				}
				if len(crashes) < len(targets) && len(acked) == targets[len(crashes)] {
					// Power loss now, with other proposals in flight.
					n := run*s2CrashesPerRun + len(crashes)
					pct := []int{0, 50, 100}[n%3]
					snapshot := append([]string(nil), acked...)
					clone := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: pct, RNG: rand.New(rand.NewPCG(uint64(seed), uint64(n)))})
					crashes = append(crashes, s2Crash{clone: clone, percent: pct, acked: snapshot})
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	bg.Wait()
	if bgErr != nil {
		t.Fatalf("run %d: %v", run, bgErr)
	}
	f.flushes += bgOps
	l.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if failure != nil {
		t.Fatalf("run %d: a proposal failed: %v", run, failure)
	}
	if len(log) != total {
		t.Fatalf("run %d: %d log entries for %d proposals", run, len(log), total)
	}
	f.acked += len(acked)

	type recovered struct {
		applied uint64
		hashes  map[string][]byte
	}
	var points []recovered
	for _, c := range crashes {
		f.crashes++
		f.byPercent[c.percent]++
		f.ackedAtCrash += len(c.acked)
		cs, err := storage.Open("db", storage.Options{FS: c.clone})
		if err != nil {
			f.openFailures++
			t.Errorf("run %d: open after crash (%d%%): %v", run, c.percent, err)
			continue
		}
		applied := cs.AppliedIndex()
		f.recovered += int(applied)
		lost := 0
		for _, rid := range c.acked {
			if _, err := cs.Tenant(tenants[rid]).Get(storage.K("act", rid)); err != nil {
				lost++
			}
		}
		if lost > 0 {
			f.crashesWithLoss++
			if !storage.BugNoSync {
				t.Errorf("run %d: %d of %d acknowledged commands lost (%d%% unsynced kept, applied index %d)", run, lost, len(c.acked), c.percent, applied)
			}
		}
		f.lost += lost
		for rid, idx := range index {
			v := cs.Tenant(tenants[rid])
			_, errAct := v.Get(storage.K("act", rid))
			_, errOut := v.Get(storage.K("outbox", rid))
			if (errAct == nil) != (errOut == nil) {
				f.torn++
				t.Errorf("run %d: command %s (index %d) is torn", run, rid, idx)
			}
			if (errAct == nil) != (idx <= applied) {
				f.prefix++
				t.Errorf("run %d: command %s (index %d) present=%v at applied index %d", run, rid, idx, errAct == nil, applied)
			}
		}
		hashes := map[string][]byte{}
		for _, tn := range s2Tenants {
			if n := s2Invariants(t, cs.Tenant(tn)); n > 0 {
				f.invariants += n
				t.Errorf("run %d: tenant %q breaks %d invariants after a crash", run, tn, n)
			}
			h, err := cs.TenantHash(tn)
			if err != nil {
				t.Fatal(err)
			}
			hashes[tn] = h
		}
		points = append(points, recovered{applied, hashes})
		// The recovered store takes writes again.
		cl := storage.NewLocalLog(cs, storage.LocalLogOptions{})
		if res, err := cl.Propose(ctx, &storage.Command{Tenant: "acme", Ops: []storage.Op{put(storage.K("after"), "x", 1)}}); err != nil || res.Err != nil || res.Index != applied+1 {
			f.openFailures++
			t.Errorf("run %d: write after recovery: %+v %v", run, res, err)
		}
		cl.Close()
		if err := cs.Close(); err != nil {
			t.Errorf("run %d: close recovered store: %v", run, err)
		}
	}

	// Replay the log on a model store; at each recovered applied index the
	// tenants' hashes must be the same.
	sort.Slice(points, func(i, j int) bool { return points[i].applied < points[j].applied })
	model, err := storage.Open("model", storage.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer model.Close()
	for _, pt := range points {
		var entries []storage.Entry
		for i := model.AppliedIndex() + 1; i <= pt.applied; i++ {
			entries = append(entries, storage.Entry{Index: i, Data: log[i].data})
		}
		if len(entries) > 0 {
			if _, err := model.Apply(entries); err != nil {
				t.Fatal(err)
			}
		}
		for _, tn := range s2Tenants {
			h, err := model.TenantHash(tn)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(h, pt.hashes[tn]) {
				f.prefix++
				t.Errorf("run %d: tenant %q after a crash differs from the log replayed to index %d", run, tn, pt.applied)
			}
		}
	}
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestS2PowerLoss(t *testing.T) {
	seed := figures.Seed(t)
	points := 200
	if v := os.Getenv("S2_CRASH_POINTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < s2CrashesPerRun {
			t.Fatalf("S2_CRASH_POINTS=%q", v)
		}
		points = n
	}
	f := &s2Figures{byPercent: map[int]int{}}
	start := time.Now()
	for run := 0; run < points/s2CrashesPerRun; run++ {
		s2Run(t, run, seed, f)
		if t.Failed() && !storage.BugNoSync {
			t.Logf("stopping after run %d; replay with SEED=%d", run, seed)
			break
		}
	}
	t.Logf("%d crash points in %v (%d / %d / %d at 0 / 50 / 100 %% unsynced kept); %d commands acknowledged before the crashes, %d recovered",
		f.crashes, time.Since(start).Round(time.Millisecond), f.byPercent[0], f.byPercent[50], f.byPercent[100], f.ackedAtCrash, f.recovered)
	figs := []figures.Figure{
		figures.Eq("open_failures", float64(f.openFailures), 0),
		figures.Eq("lost_synced_acked", float64(f.lost), 0),
		figures.Eq("torn_batches", float64(f.torn), 0),
		figures.Eq("prefix_mismatch", float64(f.prefix), 0),
		figures.Eq("invariant_violations", float64(f.invariants), 0),
		figures.Guard("faults_injected", float64(f.crashes), float64(points)),
		figures.Guard("acked_ops", float64(f.acked), float64(points/s2CrashesPerRun*s2Proposers*s2PerProposer)),
		figures.Guard("acked_before_crash", float64(f.ackedAtCrash), float64(points)),
		figures.Guard("flushes_and_compactions", float64(f.flushes), float64(points/s2CrashesPerRun*2)),
	}
	file := "S2.json"
	if storage.BugNoSync {
		// Negative control: the checker must see the bug class.
		figs = append(figs, figures.Figure{Metric: "control_detect_rate", Value: float64(f.crashesWithLoss) / float64(max(f.crashes, 1)), Op: ">", Limit: 0})
		file = "S2.bug_nosync.json"
	}
	figures.ReportFile(t, file, "S2", seed, figs)
}

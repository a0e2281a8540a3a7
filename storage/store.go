// Package storage holds TeamFlow's state on Pebble: the key layout, the
// Command wire format, the one deterministic Apply that every Log calls,
// tenant-scoped read handles, and the single-node Log with group commit.
//
// See DESIGN.md in this folder for the invariants.
package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Options configure a Store.
type Options struct {
	// FS is the filesystem; nil means the operating system's. Tests pass
	// vfs.NewCrashableMem() to simulate power loss.
	FS vfs.FS
	// NoSync skips the fsync of each applied batch. Only a cluster may set
	// it, because there the synced raft log already makes entries durable
	// and a restart replays them.
	NoSync bool
	// Logger receives Pebble's messages; nil discards informational ones.
	Logger *slog.Logger
	// DedupeWindow is how many log entries a RequestID is remembered for.
	DedupeWindow uint64
	// CacheSize is the block cache in bytes (default 192 MiB). Pebble
	// reserves each memtable's size out of this cache (two 32 MiB
	// memtables while one flushes), so the default leaves 128 MiB for
	// blocks; at 64 MiB the reservations left no room and point reads hit
	// the cache 24% of the time instead of 97%.
	CacheSize int64
	// ObserverBuffer is how many applied batches may wait for slow observers
	// before Apply waits for them.
	ObserverBuffer int
	// OnFatal, when set, is called instead of exiting the process when
	// Pebble reports an error it cannot carry on from (a failed WAL write or
	// sync, a failed MANIFEST write). The store has already marked itself
	// failed: Healthy reports the error and every later Apply refuses.
	// Tests set it; nil exits the process with status 70.
	OnFatal func(msg string)
	// Watch lists tenant-relative key prefixes whose writes raise the
	// tenant's watch counter (View.Watch), so a reader may cache what it
	// decoded from them. Empty: views hand out no watch.
	Watch []Key
}

// Applied is one applied command, as observers see it.
type Applied struct {
	Index   uint64
	Command *Command
	Result  Result
}

// Observer receives applied commands in log order, off the apply path.
type Observer func([]Applied)

// Store is the Pebble-backed state machine.
type Store struct {
	db     *pebble.DB
	opts   Options
	closed atomic.Bool

	applyMu   sync.Mutex    // serialises Apply
	evaluated uint64        // last index evaluated into the DB (visible, maybe not yet durable); under applyMu
	applied   atomic.Uint64 // last applied and durable log index
	failed    atomic.Pointer[error]

	waitMu sync.Mutex
	waitCh chan struct{} // closed and replaced whenever applied advances

	closeMu   sync.RWMutex  // held by Wait while it hands batches to observers; Close takes it to close obsCh
	closing   chan struct{} // closed when Close starts
	obsMu     sync.RWMutex
	observers []Observer
	obsCh     chan []Applied
	obsDone   chan struct{}
	watches   watches
}

var appliedKey = metaKey("applied")

// Open opens (or creates) the store in dir.
func Open(dir string, opts Options) (*Store, error) {
	if opts.DedupeWindow == 0 {
		opts.DedupeWindow = 100_000
	}
	if opts.ObserverBuffer == 0 {
		opts.ObserverBuffer = 1024
	}
	s := &Store{
		opts:    opts,
		waitCh:  make(chan struct{}),
		obsCh:   make(chan []Applied, opts.ObserverBuffer),
		obsDone: make(chan struct{}),
		closing: make(chan struct{}),
		watches: watches{prefixes: opts.Watch},
	}
	if opts.CacheSize == 0 {
		opts.CacheSize = 192 << 20
	}
	cache := pebble.NewCache(opts.CacheSize)
	defer cache.Unref()
	po := &pebble.Options{
		FS:                 opts.FS,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebbleLogger{l: opts.Logger, store: s},
		MemTableSize:       32 << 20,
		Cache:              cache,
	}
	// Bloom filters let point reads (a record behind an index entry, a
	// precondition, a dedupe lookup) skip the sstables that lack the key.
	for i := range po.Levels {
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	if po.FS == nil {
		po.FS = vfs.Default
	}
	db, err := pebble.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", dir, err)
	}
	s.db = db
	v, closer, err := db.Get(appliedKey)
	switch {
	case err == nil:
		if len(v) == 8 {
			s.applied.Store(binary.BigEndian.Uint64(v))
		}
		closer.Close()
	case errors.Is(err, pebble.ErrNotFound):
	default:
		db.Close()
		return nil, fmt.Errorf("storage: read applied index: %w", err)
	}
	s.evaluated = s.applied.Load()
	go s.runObservers()
	return s, nil
}

// Close flushes and closes the store. Observers get every batch applied
// before Close.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(s.closing)
	s.applyMu.Lock()
	s.closeMu.Lock()
	close(s.obsCh)
	s.waitMu.Lock()
	close(s.waitCh)
	s.waitMu.Unlock()
	s.closeMu.Unlock()
	s.applyMu.Unlock()
	<-s.obsDone
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("storage: close: %w", err)
	}
	return nil
}

// AppliedIndex is the index of the last applied log entry.
func (s *Store) AppliedIndex() uint64 { return s.applied.Load() }

// Healthy reports nil while the store can accept writes; after a failed
// write it reports that error for good: there is no retrying an fsync.
func (s *Store) Healthy() error {
	if s.closed.Load() {
		return ErrClosed
	}
	if e := s.failed.Load(); e != nil {
		return *e
	}
	return nil
}

// WaitApplied blocks until the applied index reaches idx or ctx ends.
func (s *Store) WaitApplied(ctx context.Context, idx uint64) error {
	for {
		s.waitMu.Lock()
		ch := s.waitCh
		s.waitMu.Unlock()
		if s.applied.Load() >= idx {
			return nil
		}
		if s.closed.Load() {
			return ErrClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Observe registers an observer of applied commands. Observers run on one
// goroutine, in log order; a slow one delays the others, never Apply (until
// ObserverBuffer batches are waiting).
func (s *Store) Observe(o Observer) {
	s.obsMu.Lock()
	s.observers = append(s.observers, o)
	s.obsMu.Unlock()
}

func (s *Store) runObservers() {
	defer close(s.obsDone)
	for batch := range s.obsCh {
		s.obsMu.RLock()
		obs := s.observers
		s.obsMu.RUnlock()
		for _, o := range obs {
			o(batch)
		}
	}
}

// Entry is one log entry to apply. Data is an encoded Command; empty Data
// (raft's leader no-ops, membership changes) only advances the index.
type Entry struct {
	Index uint64
	Data  []byte
}

// Apply applies entries, in order, as ONE Pebble batch together with the new
// applied index, waits until the batch is durable (unless NoSync), then tells
// the observers. Entries at or below the applied index are skipped (a
// restart replays them). It returns one Result per entry. Apply is
// deterministic: the same entries on the same state give the same bytes on
// every node. An error means the store could not write; the store then
// refuses every later Apply.
func (s *Store) Apply(entries []Entry) ([]Result, error) {
	p, err := s.ApplyAsync(entries)
	if err != nil {
		return nil, err
	}
	return p.Wait()
}

// Pending is a batch that is applied (visible to reads and to the next
// batch) but may not be durable yet.
type Pending struct {
	s       *Store
	b       *pebble.Batch
	sync    bool
	last    uint64
	results []Result
	applied []Applied
}

// ApplyAsync evaluates entries into one batch and makes it visible, without
// waiting for the WAL sync; Wait then waits for durability. The next
// ApplyAsync may start at once, so a log can evaluate batch N+1 while batch N
// syncs, and Pebble folds both into one fsync when it can. A later batch is
// never durable without the earlier ones (the WAL is sequential), and
// callers must be answered only after Wait. Pendings must be waited for in
// the order they were created.
func (s *Store) ApplyAsync(entries []Entry) (*Pending, error) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if e := s.failed.Load(); e != nil {
		return nil, *e
	}
	p := &Pending{s: s, results: make([]Result, len(entries)), last: s.evaluated}
	b := s.db.NewIndexedBatch()
	// The counters this batch has written so far: the commands of a batch
	// often add to the same ones (a project's task numbers, its roll-ups,
	// the tenant's sequence), and a map is much cheaper than a batch read.
	known := batchCounters{}
	for i, e := range entries {
		if e.Index <= p.last {
			p.results[i] = Result{Index: e.Index, Duplicate: true}
			continue
		}
		if e.Index != p.last+1 {
			b.Close()
			return nil, fmt.Errorf("storage: apply index %d after %d", e.Index, p.last)
		}
		p.last = e.Index
		if err := s.applyEntry(b, known, e, &p.results[i], &p.applied); err != nil {
			b.Close()
			return nil, s.fail(err)
		}
		// Every entry, whatever it holds, moves the dedupe window on.
		if err := s.forget(b, e.Index); err != nil {
			b.Close()
			return nil, s.fail(err)
		}
	}
	if p.last == s.evaluated {
		b.Close()
		return p, nil
	}
	var idx [8]byte
	binary.BigEndian.PutUint64(idx[:], p.last)
	if err := b.Set(appliedKey, idx[:], nil); err != nil {
		b.Close()
		return nil, s.fail(err)
	}
	p.sync = !s.opts.NoSync && !bugNoSync
	var err error
	if p.sync {
		err = s.db.ApplyNoSyncWait(b, pebble.Sync)
	} else {
		err = b.Commit(pebble.NoSync)
	}
	if err != nil {
		b.Close()
		return nil, s.fail(fmt.Errorf("storage: commit: %w", err))
	}
	p.b = b
	s.evaluated = p.last
	// After the commit (the new records are readable) and before any
	// result is handed back: see watches.
	for _, a := range p.applied {
		s.watches.note(a.Command)
	}
	return p, nil
}

// Wait waits until the batch is durable, then advances the applied index,
// wakes WaitApplied callers and hands the commands to the observers.
func (p *Pending) Wait() ([]Result, error) {
	s := p.s
	if p.b == nil {
		return p.results, nil
	}
	defer p.b.Close()
	if p.sync {
		if err := p.b.SyncWait(); err != nil {
			return nil, s.fail(fmt.Errorf("storage: sync: %w", err))
		}
	}
	// Pebble reports a failed WAL write or sync through Logger.Fatalf and
	// may still return nil: the batch is not durable then.
	if e := s.failed.Load(); e != nil {
		return nil, *e
	}
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed.Load() {
		// Durable, but the store is closing: answer, tell nobody else.
		return p.results, nil
	}
	s.applied.Store(p.last)
	s.waitMu.Lock()
	close(s.waitCh)
	s.waitCh = make(chan struct{})
	s.waitMu.Unlock()
	if len(p.applied) > 0 {
		select {
		case s.obsCh <- p.applied:
		case <-s.closing:
			// A stuck observer must not keep Close waiting forever.
		}
	}
	return p.results, nil
}

// applyEntry evaluates one new entry into b. An error is an I/O failure.
func (s *Store) applyEntry(b *pebble.Batch, known batchCounters, e Entry, result *Result, applied *[]Applied) error {
	if len(e.Data) == 0 {
		*result = Result{Index: e.Index}
		return nil
	}
	cmd, err := DecodeCommand(e.Data)
	if err != nil {
		// Every node decodes the same bytes the same way, so a bad entry
		// is a deterministic no-op with an error result.
		*result = Result{Index: e.Index, Err: err}
		return nil
	}
	res, err := s.applyCommand(b, known, e.Index, cmd)
	if err != nil {
		return err
	}
	*result = res
	if res.Err == nil && !res.Duplicate {
		*applied = append(*applied, Applied{Index: e.Index, Command: cmd, Result: res})
	}
	return nil
}

func (s *Store) fail(err error) error {
	err = fmt.Errorf("%w: %w", ErrFailed, err)
	s.failed.CompareAndSwap(nil, &err)
	return err
}

// applyCommand evaluates one command into b. An error return is an I/O
// failure; a refused command is a Result with Err set and nothing written.
func (s *Store) applyCommand(b *pebble.Batch, known batchCounters, index uint64, cmd *Command) (Result, error) {
	res := Result{Index: index}
	var reqKey []byte
	if cmd.RequestID != "" {
		reqKey = metaKey("req", cmd.RequestID)
		v, err := getBytes(b, reqKey)
		if err == nil {
			prev, derr := decodeResult(v)
			if derr != nil {
				return res, derr
			}
			prev.Duplicate = true
			return prev, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return res, err
		}
	}
	res, err := s.evaluate(b, known, index, cmd)
	if err != nil {
		return res, err
	}
	if reqKey != nil {
		if err := s.remember(b, index, reqKey, cmd.RequestID, res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// spaces holds a command's absolute space prefixes, built once per command
// rather than once per op (they were a measurable share of Apply).
type spaces struct {
	tenant Key // nil for a command without a tenant
	seqKey []byte
}

func commandSpaces(cmd *Command) spaces {
	if cmd.Tenant == "" {
		return spaces{}
	}
	tp := TenantPrefix(cmd.Tenant)
	return spaces{tenant: tp, seqKey: absolute(tp, seqRelKey)}
}

// prefix is the absolute prefix of space sp, or false if the command may
// not address it.
func (c spaces) prefix(sp Space) (Key, bool) {
	switch sp {
	case SpaceTenant:
		return c.tenant, c.tenant != nil
	case SpaceSys:
		return sysKeyPrefix, true
	}
	return nil, false
}

var errBadCommand = fmt.Errorf("%w: invalid command", ErrCorrupt)

type counter struct {
	key     []byte
	value   int64
	version uint64
}

// counterSet holds the counters one command touches, in first-use order so
// that Apply writes them deterministically.
type counterSet struct{ list []*counter }

func (s *Store) evaluate(b *pebble.Batch, known batchCounters, index uint64, cmd *Command) (Result, error) {
	res := Result{Index: index}
	sp := commandSpaces(cmd)
	for _, p := range cmd.Preconditions {
		prefix, ok := sp.prefix(p.Space)
		if !ok {
			res.Err = errBadCommand
			return res, nil
		}
		key := absolute(prefix, p.Key)
		var actual uint64
		v, err := getBytes(b, key)
		switch {
		case err == nil:
			rec, derr := decodeRecord(v)
			if derr != nil {
				return res, derr
			}
			actual = rec.Version
		case errors.Is(err, ErrNotFound):
		default:
			return res, err
		}
		if p.Version == AnyVersion && actual != 0 {
			continue
		}
		if actual != p.Version {
			res.Err = &ConflictError{Key: p.Key.String(), Expected: p.Version, Actual: actual}
			return res, nil
		}
	}

	// Phase 1: compute every op's result and check bounds, writing nothing.
	res.Values = make([]int64, len(cmd.Ops))
	counters := &counterSet{}
	chains := &chainSet{}
	chainEntries := map[int][]byte{} // op index → the entry's stored value
	abs := make([][]byte, len(cmd.Ops))
	for i, op := range cmd.Ops {
		prefix, ok := sp.prefix(op.Space)
		if !ok || (op.Type != OpDeleteRange && len(op.Key) == 0) {
			res.Err = errBadCommand
			return res, nil
		}
		abs[i] = absolute(prefix, op.Key)
		switch op.Type {
		case OpPut:
			if !validRef(cmd, op.KeyRef, i) || !validRef(cmd, op.StampRef, i) {
				res.Err = errBadCommand
				return res, nil
			}
			if op.KeyRef > 0 {
				abs[i] = Key(abs[i]).AddUint(uint64(res.Values[op.KeyRef-1]))
			}
			// The event sequence is Apply's own counter: a record written
			// over it would make every later command of the tenant fail.
			if sp.seqKey != nil && bytes.Equal(abs[i], sp.seqKey) {
				res.Err = errBadCommand
				return res, nil
			}
		case OpDelete, OpDeleteRange:
		case OpAdd:
			c, err := loadCounter(b, known, counters, abs[i])
			if errors.Is(err, ErrCorrupt) {
				// The key holds a record that is not a counter: the command
				// is invalid, the same way on every node; it must not stop
				// the store (a restart would replay it and stop again).
				res.Err = errBadCommand
				return res, nil
			}
			if err != nil {
				return res, err
			}
			next := c.value + op.Delta
			// Bounds are checked in the direction of motion only: a limit
			// lowered by a plan change must never block a delete. A sum
			// that wraps around int64 has passed the bound too.
			overflow := (op.Delta > 0 && next < c.value) || (op.Delta < 0 && next > c.value)
			if op.Bounded && (overflow || (op.Delta > 0 && next > op.Max) || (op.Delta < 0 && next < op.Min)) {
				res.Err = &LimitError{Limit: op.Limit, Max: op.Max}
				return res, nil
			}
			c.value = next
			res.Values[i] = next
		case OpChain:
			if len(op.End) == 0 {
				res.Err = errBadCommand
				return res, nil
			}
			c, err := loadChain(b, chains, abs[i])
			if errors.Is(err, ErrCorrupt) {
				res.Err = errBadCommand
				return res, nil
			}
			if err != nil {
				return res, err
			}
			c.seq++
			c.hash = ChainHash(c.hash, c.seq, op.Value)
			res.Values[i] = int64(c.seq)
			entry := make([]byte, 0, len(c.hash)+len(op.Value))
			entry = append(append(entry, c.hash[:]...), op.Value...)
			chainEntries[i] = entry
			abs[i] = Key(absolute(prefix, op.End)).AddUint(c.seq)
		default:
			res.Err = errBadCommand
			return res, nil
		}
	}

	// Phase 2: write.
	for i, op := range cmd.Ops {
		var err error
		switch op.Type {
		case OpPut:
			stamp := op.Stamp
			if op.StampRef > 0 {
				stamp = uint64(res.Values[op.StampRef-1])
			}
			err = b.Set(abs[i], encodeRecord(Record{Value: op.Value, Version: op.Version, Stamp: stamp, KeyID: op.KeyID}), nil)
		case OpDelete:
			err = b.Delete(abs[i], nil)
		case OpChain:
			err = b.Set(abs[i], encodeRecord(Record{Value: chainEntries[i], Version: 1, Stamp: uint64(res.Values[i])}), nil)
		case OpDeleteRange:
			prefix, _ := sp.prefix(op.Space)
			start := abs[i]
			var end []byte
			if len(op.End) == 0 {
				if len(op.Key) == 0 {
					end = prefix.PrefixEnd()
				} else {
					end = Key(start).PrefixEnd()
				}
			} else {
				end = absolute(prefix, op.End)
			}
			if bytes.Compare(start, end) < 0 {
				err = b.DeleteRange(start, end, nil)
			}
		}
		if err != nil {
			return res, fmt.Errorf("storage: write op: %w", err)
		}
	}
	for _, c := range counters.list {
		if err := b.Set(c.key, encodeCounter(c.value, c.version+1), nil); err != nil {
			return res, fmt.Errorf("storage: write counter: %w", err)
		}
	}
	known.wrote(cmd, abs, counters, chains)
	for _, c := range chains.list {
		head := make([]byte, 8, 8+len(c.hash))
		binary.BigEndian.PutUint64(head, c.seq)
		head = append(head, c.hash[:]...)
		if err := b.Set(c.key, encodeRecord(Record{Value: head, Version: c.version + 1}), nil); err != nil {
			return res, fmt.Errorf("storage: write chain head: %w", err)
		}
	}
	if cmd.Tenant != "" && !dropsTenant(cmd) {
		seqKey := sp.seqKey
		c, err := loadCounter(b, known, &counterSet{}, seqKey)
		if err != nil {
			return res, err
		}
		c.value++
		res.Seq = uint64(c.value)
		if err := b.Set(seqKey, encodeCounter(c.value, c.version+1), nil); err != nil {
			return res, fmt.Errorf("storage: write seq: %w", err)
		}
		known.set(c)
	}
	return res, nil
}

// dropsTenant reports whether cmd deletes its tenant's whole keyspace (an
// OpDeleteRange in SpaceTenant with neither Key nor End: the flip of a move
// to a dedicated store). Apply then leaves the tenant's event sequence
// alone, so the store keeps no key of the tenant at all.
func dropsTenant(cmd *Command) bool {
	for _, op := range cmd.Ops {
		if op.Type == OpDeleteRange && op.Space == SpaceTenant && len(op.Key) == 0 && len(op.End) == 0 {
			return true
		}
	}
	return false
}

// ChainHash is the hash of chain entry seq with payload after prev:
// SHA-256(prev || big-endian seq || payload).
func ChainHash(prev [32]byte, seq uint64, payload []byte) [32]byte {
	h := sha256.New()
	h.Write(prev[:])
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], seq)
	h.Write(n[:])
	h.Write(payload)
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

// ChainHead decodes a chain head record's value: the last sequence number
// and hash.
func ChainHead(value []byte) (uint64, [32]byte, error) {
	var h [32]byte
	if len(value) != 8+32 {
		return 0, h, fmt.Errorf("%w: chain head", ErrCorrupt)
	}
	copy(h[:], value[8:])
	return binary.BigEndian.Uint64(value[:8]), h, nil
}

// ChainEntry splits a stored chain entry into its hash and payload.
func ChainEntry(value []byte) ([32]byte, []byte, error) {
	var h [32]byte
	if len(value) < 32 {
		return h, nil, fmt.Errorf("%w: chain entry", ErrCorrupt)
	}
	copy(h[:], value[:32])
	return h, value[32:], nil
}

type chain struct {
	key     []byte
	seq     uint64
	hash    [32]byte
	version uint64
}

// chainSet holds the chains one command appends to, in first-use order.
type chainSet struct{ list []*chain }

func loadChain(b *pebble.Batch, set *chainSet, key []byte) (*chain, error) {
	for _, c := range set.list {
		if bytes.Equal(c.key, key) {
			return c, nil
		}
	}
	c := &chain{key: key}
	v, err := getBytes(b, key)
	switch {
	case err == nil:
		rec, err := decodeRecord(v)
		if err != nil {
			return nil, err
		}
		if c.seq, c.hash, err = ChainHead(rec.Value); err != nil {
			return nil, err
		}
		c.version = rec.Version
	case errors.Is(err, ErrNotFound):
	default:
		return nil, err
	}
	set.list = append(set.list, c)
	return c, nil
}

// seqRelKey holds a tenant's event sequence, advanced by every command that
// applies in that tenant.
var seqRelKey = K("~seq")

// TenantSeqKey is the tenant-relative key of the event sequence.
func TenantSeqKey() Key { return seqRelKey }

func validRef(cmd *Command, ref uint16, at int) bool {
	if ref == 0 {
		return true
	}
	i := int(ref) - 1
	return i < at && cmd.Ops[i].Type == OpAdd
}

func loadCounter(b *pebble.Batch, known batchCounters, set *counterSet, key []byte) (*counter, error) {
	for _, c := range set.list {
		if bytes.Equal(c.key, key) {
			return c, nil
		}
	}
	c := &counter{key: key}
	if k, ok := known[string(key)]; ok {
		// A copy: a command that fails after adding changes nothing.
		c.value, c.version = k.value, k.version
		set.list = append(set.list, c)
		return c, nil
	}
	v, err := getBytes(b, key)
	switch {
	case err == nil:
		c.value, c.version, err = counterValue(v)
		if err != nil {
			return nil, err
		}
	case errors.Is(err, ErrNotFound):
	default:
		return nil, err
	}
	set.list = append(set.list, c)
	return c, nil
}

// batchCounters are the counters written by the commands of one batch so
// far, as the batch holds them: key → value and version.
type batchCounters map[string]counter

func (k batchCounters) set(c *counter) {
	k[string(c.key)] = counter{value: c.value, version: c.version + 1}
}

// wrote records what a command that applied left in the batch: its
// counters, written after its ops (so they win over a put on the same
// key), and nothing known of a key another op wrote or a range dropped.
func (k batchCounters) wrote(cmd *Command, abs [][]byte, counters *counterSet, chains *chainSet) {
	for i, op := range cmd.Ops {
		switch op.Type {
		case OpDeleteRange:
			clear(k)
		case OpPut, OpDelete, OpChain:
			delete(k, string(abs[i]))
		}
	}
	for _, c := range chains.list {
		delete(k, string(c.key))
	}
	for _, c := range counters.list {
		k.set(c)
	}
}

// remember stores the result under the request ID.
func (s *Store) remember(b *pebble.Batch, index uint64, reqKey []byte, rid string, res Result) error {
	if err := b.Set(reqKey, encodeResult(res), nil); err != nil {
		return err
	}
	idxKey := metaKey("reqidx").AddUint(index)
	return b.Set(idxKey, []byte(rid), nil)
}

// forget drops the request applied DedupeWindow entries before index, if
// there was one, so the dedupe table stays bounded. Apply calls it for every
// entry (commands without a request ID, duplicates, raft no-ops and
// undecodable entries too); otherwise the request IDs whose window ends on
// such an entry would never be forgotten.
func (s *Store) forget(b *pebble.Batch, index uint64) error {
	if index <= s.opts.DedupeWindow {
		return nil
	}
	old := metaKey("reqidx").AddUint(index - s.opts.DedupeWindow)
	v, err := getBytes(b, old)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := b.Delete(metaKey("req", string(v)), nil); err != nil {
		return err
	}
	return b.Delete(old, nil)
}

type getter interface {
	Get(key []byte) ([]byte, io.Closer, error)
}

// getBytes returns a copy of the value at key, or ErrNotFound.
func getBytes(g getter, key []byte) ([]byte, error) {
	v, closer, err := g.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("storage: get: %w", err)
	}
	out := make([]byte, len(v))
	copy(out, v)
	closer.Close()
	return out, nil
}

func encodeResult(r Result) []byte {
	w := encoder{}
	w.uvarint(r.Index)
	w.uvarint(r.Seq)
	w.uvarint(uint64(len(r.Values)))
	for _, v := range r.Values {
		w.varint(v)
	}
	var ce *ConflictError
	var le *LimitError
	switch {
	case r.Err == nil:
		w.byte(0)
	case errors.As(r.Err, &ce):
		w.byte(1)
		w.str(ce.Key)
		w.uvarint(ce.Expected)
		w.uvarint(ce.Actual)
	case errors.As(r.Err, &le):
		w.byte(2)
		w.str(le.Limit)
		w.varint(le.Max)
	default:
		w.byte(3)
	}
	return w.buf
}

func decodeResult(b []byte) (Result, error) {
	r := decoder{buf: b}
	res := Result{Index: r.uvarint(), Seq: r.uvarint()}
	if n := r.count(); n > 0 {
		res.Values = make([]int64, n)
		for i := range res.Values {
			res.Values[i] = r.varint()
		}
	}
	switch r.byte() {
	case 0:
	case 1:
		res.Err = &ConflictError{Key: r.str(), Expected: r.uvarint(), Actual: r.uvarint()}
	case 2:
		res.Err = &LimitError{Limit: r.str(), Max: r.varint()}
	case 3:
		res.Err = errBadCommand
	}
	if r.err != nil {
		return Result{}, fmt.Errorf("storage: stored result: %w", r.err)
	}
	return res, nil
}

// TenantHash is a SHA-256 over every key and value of a tenant's keyspace, in
// key order. Replicas at the same applied index must agree on it.
func (s *Store) TenantHash(tenant string) ([]byte, error) {
	prefix := TenantPrefix(tenant)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefix.PrefixEnd()})
	if err != nil {
		return nil, fmt.Errorf("storage: hash: %w", err)
	}
	defer it.Close()
	h := sha256.New()
	var n [8]byte
	for it.First(); it.Valid(); it.Next() {
		binary.BigEndian.PutUint64(n[:], uint64(len(it.Key())))
		h.Write(n[:])
		h.Write(it.Key())
		v := it.Value()
		binary.BigEndian.PutUint64(n[:], uint64(len(v)))
		h.Write(n[:])
		h.Write(v)
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("storage: hash: %w", err)
	}
	return h.Sum(nil), nil
}

type pebbleLogger struct {
	l     *slog.Logger
	store *Store
}

func (p pebbleLogger) Infof(format string, args ...any) {}

func (p pebbleLogger) Errorf(format string, args ...any) {
	if p.l != nil {
		p.l.Error("pebble", "msg", fmt.Sprintf(format, args...))
	}
}

// Fatalf is called by Pebble when it cannot go on (for example a failed WAL
// sync). Acknowledging writes after such an error could lose them, so the
// store fails for good and the process stops (or, with Options.OnFatal,
// the hook runs).
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if p.l != nil {
		p.l.Error("pebble fatal", "msg", msg)
	}
	p.store.fail(fmt.Errorf("storage: fatal: %s", msg))
	if p.store.opts.OnFatal != nil {
		p.store.opts.OnFatal(msg)
		return
	}
	fmt.Fprintln(os.Stderr, "teamflow: fatal storage error:", msg)
	os.Exit(70)
}

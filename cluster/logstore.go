package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// logStore is raft's Storage over a Pebble instance of its own (Dir/raft),
// separate from the state store: compacting or snapshotting one never
// touches the other.
//
// Keys:
//
//	"i"                 this node's ID, checked on open
//	"h"                 HardState
//	"s"                 metadata of the latest snapshot (index, term, ConfState)
//	"c"                 compaction point: index and term of the entry before the first kept one
//	"e" + index (BE64)  log entries
//
// Only the Ready goroutine writes; raft's goroutine reads concurrently. A
// tail of recent entries is kept in memory so that appends to followers and
// Term lookups rarely touch Pebble.
type logStore struct {
	db   *pebble.DB
	sync *pebble.WriteOptions

	mu          sync.RWMutex
	hs          *pb.HardState
	cs          *pb.ConfState
	snap        *pb.SnapshotMetadata
	compact     uint64 // entries <= compact are gone; its term is kept
	compactTerm uint64
	last        uint64
	tail        []*pb.Entry // contiguous entries ending at last
	maxTail     int
}

var (
	keyNodeID    = []byte("i")
	keyHardState = []byte("h")
	keySnapshot  = []byte("s")
	keyCompact   = []byte("c")
	entriesEnd   = []byte("f") // just past every "e" key
)

func entryKey(i uint64) []byte {
	k := make([]byte, 9)
	k[0] = 'e'
	binary.BigEndian.PutUint64(k[1:], i)
	return k
}

func openLogStore(dir string, fs vfs.FS, nodeID uint64, logger *slog.Logger) (*logStore, error) {
	if fs == nil { // (tools that open a log on its own)
		fs = vfs.Default
	}
	db, err := pebble.Open(dir, &pebble.Options{
		FS:                 fs,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebbleLogger{l: logger},
		MemTableSize:       16 << 20,
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: open raft log %s: %w", dir, err)
	}
	s := &logStore{db: db, sync: pebble.Sync, maxTail: 8192}
	if raftLogNoSync {
		s.sync = pebble.NoSync
	}
	if err := s.load(nodeID); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func (s *logStore) load(nodeID uint64) error {
	v, err := s.get(keyNodeID)
	switch {
	case err == nil:
		if len(v) != 8 || binary.BigEndian.Uint64(v) != nodeID {
			return fmt.Errorf("cluster: raft log belongs to node %x, not %d", v, nodeID)
		}
	case errors.Is(err, pebble.ErrNotFound):
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], nodeID)
		if err := s.db.Set(keyNodeID, b[:], pebble.Sync); err != nil {
			return fmt.Errorf("cluster: raft log: %w", err)
		}
	default:
		return err
	}
	s.hs = &pb.HardState{}
	if v, err := s.get(keyHardState); err == nil {
		if err := proto.Unmarshal(v, s.hs); err != nil {
			return fmt.Errorf("cluster: raft log: hard state: %w", err)
		}
	} else if !errors.Is(err, pebble.ErrNotFound) {
		return err
	}
	if v, err := s.get(keySnapshot); err == nil {
		s.snap = &pb.SnapshotMetadata{}
		if err := proto.Unmarshal(v, s.snap); err != nil {
			return fmt.Errorf("cluster: raft log: snapshot: %w", err)
		}
	} else if !errors.Is(err, pebble.ErrNotFound) {
		return err
	}
	if v, err := s.get(keyCompact); err == nil {
		if len(v) != 16 {
			return errors.New("cluster: raft log: bad compaction record")
		}
		s.compact = binary.BigEndian.Uint64(v)
		s.compactTerm = binary.BigEndian.Uint64(v[8:])
	} else if !errors.Is(err, pebble.ErrNotFound) {
		return err
	}
	s.last = s.compact
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: entryKey(0), UpperBound: entriesEnd})
	if err != nil {
		return err
	}
	defer it.Close()
	if it.Last() {
		s.last = binary.BigEndian.Uint64(it.Key()[1:])
	}
	if err := it.Error(); err != nil {
		return err
	}
	if s.last < s.compact {
		return fmt.Errorf("cluster: raft log: last index %d below compaction point %d", s.last, s.compact)
	}
	return nil
}

func (s *logStore) get(k []byte) ([]byte, error) {
	v, closer, err := s.db.Get(k)
	if err != nil {
		return nil, err
	}
	out := append([]byte(nil), v...)
	closer.Close()
	return out, nil
}

func (s *logStore) close() error { return s.db.Close() }

// --- raft.Storage ---

func (s *logStore) InitialState() (*pb.HardState, *pb.ConfState, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	cs := &pb.ConfState{}
	if s.cs != nil {
		cs = proto.Clone(s.cs).(*pb.ConfState)
	}
	return proto.Clone(s.hs).(*pb.HardState), cs, nil
}

func (s *logStore) Entries(lo, hi, maxSize uint64) ([]*pb.Entry, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if lo <= s.compact {
		return nil, raft.ErrCompacted
	}
	if hi > s.last+1 || lo >= hi {
		return nil, raft.ErrUnavailable
	}
	out := make([]*pb.Entry, 0, min(hi-lo, 64))
	var size uint64
	full := func(e *pb.Entry) bool {
		size += uint64(proto.Size(e))
		return len(out) > 0 && size > maxSize
	}
	tailStart := s.last + 1 - uint64(len(s.tail))
	if lo < tailStart {
		end := min(hi, tailStart)
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: entryKey(lo), UpperBound: entryKey(end)})
		if err != nil {
			return nil, err
		}
		next := lo
		for it.First(); it.Valid(); it.Next() {
			e := &pb.Entry{}
			if err := proto.Unmarshal(it.Value(), e); err != nil {
				it.Close()
				return nil, fmt.Errorf("cluster: raft log entry: %w", err)
			}
			if e.GetIndex() != next {
				it.Close()
				return nil, raft.ErrUnavailable
			}
			if full(e) {
				it.Close()
				return out, nil
			}
			out = append(out, e)
			next++
		}
		err = it.Error()
		it.Close()
		if err != nil {
			return nil, err
		}
		if next != end {
			return nil, raft.ErrUnavailable
		}
	}
	for i := max(lo, tailStart); i < hi; i++ {
		e := s.tail[i-tailStart]
		if full(e) {
			return out, nil
		}
		out = append(out, e)
	}
	return out, nil
}

func (s *logStore) Term(i uint64) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	switch {
	case i == s.compact:
		return s.compactTerm, nil
	case i < s.compact:
		return 0, raft.ErrCompacted
	case i > s.last:
		return 0, raft.ErrUnavailable
	}
	if tailStart := s.last + 1 - uint64(len(s.tail)); i >= tailStart {
		return s.tail[i-tailStart].GetTerm(), nil
	}
	v, err := s.get(entryKey(i))
	if err != nil {
		if errors.Is(err, pebble.ErrNotFound) {
			return 0, raft.ErrUnavailable
		}
		return 0, err
	}
	e := &pb.Entry{}
	if err := proto.Unmarshal(v, e); err != nil {
		return 0, fmt.Errorf("cluster: raft log entry: %w", err)
	}
	return e.GetTerm(), nil
}

func (s *logStore) LastIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.last, nil
}

func (s *logStore) FirstIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.compact + 1, nil
}

// Snapshot returns the metadata of the latest snapshot. Its Data is empty:
// the state itself is the state store, streamed when the snapshot is sent.
func (s *logStore) Snapshot() (*pb.Snapshot, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.snap == nil {
		return &pb.Snapshot{}, nil
	}
	return &pb.Snapshot{Metadata: proto.Clone(s.snap).(*pb.SnapshotMetadata)}, nil
}

// --- writes, from the Ready goroutine only ---

// setConfState sets the ConfState InitialState reports: the membership as of
// the state store's applied index, read from the store before raft starts.
func (s *logStore) setConfState(cs *pb.ConfState) {
	s.mu.Lock()
	s.cs = proto.Clone(cs).(*pb.ConfState)
	s.mu.Unlock()
}

// save persists one Ready's snapshot metadata, entries and HardState in one
// batch, synced when mustSync. Entries at or after the first new one that
// are not overwritten are discarded, as raft requires.
func (s *logStore) save(hs *pb.HardState, ents []*pb.Entry, snap *pb.Snapshot, mustSync bool) error {
	hasSnap := !raft.IsEmptySnap(snap)
	if !hasSnap && len(ents) == 0 && raft.IsEmptyHardState(hs) {
		return nil
	}
	b := s.db.NewBatch()
	defer b.Close()
	compact, compactTerm, last := s.compact, s.compactTerm, s.last
	if hasSnap {
		meta := snap.GetMetadata()
		data, err := proto.Marshal(meta)
		if err != nil {
			return err
		}
		b.Set(keySnapshot, data, nil)
		compact, compactTerm, last = meta.GetIndex(), meta.GetTerm(), meta.GetIndex()
		b.Set(keyCompact, compactRecord(compact, compactTerm), nil)
		b.DeleteRange(entryKey(0), entriesEnd, nil)
	}
	if len(ents) > 0 {
		first, newLast := ents[0].GetIndex(), ents[len(ents)-1].GetIndex()
		if first <= compact || first > last+1 {
			return fmt.Errorf("cluster: raft log: append at %d, log is (%d, %d]", first, compact, last)
		}
		if newLast < last {
			b.DeleteRange(entryKey(newLast+1), entryKey(last+1), nil)
		}
		buf := make([]byte, 0, 512)
		for _, e := range ents {
			var err error
			buf, err = proto.MarshalOptions{}.MarshalAppend(buf[:0], e)
			if err != nil {
				return err
			}
			if err := b.Set(entryKey(e.GetIndex()), buf, nil); err != nil {
				return err
			}
		}
		last = newLast
	}
	if !raft.IsEmptyHardState(hs) {
		data, err := proto.Marshal(hs)
		if err != nil {
			return err
		}
		b.Set(keyHardState, data, nil)
	}
	wo := pebble.NoSync
	if mustSync || hasSnap {
		wo = s.sync
	}
	if err := b.Commit(wo); err != nil {
		return fmt.Errorf("cluster: raft log: commit: %w", err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if hasSnap {
		s.snap = proto.Clone(snap.GetMetadata()).(*pb.SnapshotMetadata)
		s.tail = nil
	}
	if len(ents) > 0 {
		first := ents[0].GetIndex()
		if tailStart := s.last + 1 - uint64(len(s.tail)); hasSnap || first < tailStart {
			s.tail = nil
		} else {
			s.tail = s.tail[:first-tailStart]
		}
		s.tail = append(s.tail, ents...)
		if len(s.tail) > s.maxTail {
			s.tail = append([]*pb.Entry(nil), s.tail[len(s.tail)-s.maxTail/2:]...)
		}
	}
	if !raft.IsEmptyHardState(hs) {
		s.hs = proto.Clone(hs).(*pb.HardState)
	}
	s.compact, s.compactTerm, s.last = compact, compactTerm, last
	return nil
}

// snapshotAndCompact records a snapshot at index (the state store, synced
// first by the caller, is its data) and discards entries up to compactTo.
func (s *logStore) snapshotAndCompact(index, term uint64, cs *pb.ConfState, compactTo uint64) error {
	meta := &pb.SnapshotMetadata{Index: proto.Uint64(index), Term: proto.Uint64(term), ConfState: proto.Clone(cs).(*pb.ConfState)}
	data, err := proto.Marshal(meta)
	if err != nil {
		return err
	}
	b := s.db.NewBatch()
	defer b.Close()
	b.Set(keySnapshot, data, nil)
	var cterm uint64
	compacting := compactTo > s.compact && compactTo <= s.last
	if compacting {
		if cterm, err = s.Term(compactTo); err != nil {
			return err
		}
		b.Set(keyCompact, compactRecord(compactTo, cterm), nil)
		b.DeleteRange(entryKey(0), entryKey(compactTo+1), nil)
	}
	// Publish the new first index before deleting, so no reader looks for
	// an entry that is going away.
	s.mu.Lock()
	s.snap = meta
	if compacting {
		s.compact, s.compactTerm = compactTo, cterm
		if tailStart := s.last + 1 - uint64(len(s.tail)); compactTo >= tailStart {
			s.tail = append([]*pb.Entry(nil), s.tail[compactTo+1-tailStart:]...)
		}
	}
	s.mu.Unlock()
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("cluster: raft log: compact: %w", err)
	}
	return nil
}

// forceCommit raises the stored commit index (see New: a state store that
// applied further than the synced HardState records).
func (s *logStore) forceCommit(commit uint64) error {
	s.mu.Lock()
	hs := proto.Clone(s.hs).(*pb.HardState)
	s.mu.Unlock()
	hs.Commit = proto.Uint64(commit)
	return s.save(hs, nil, nil, true)
}

func (s *logStore) state() (compact, last uint64, snap *pb.SnapshotMetadata, hs *pb.HardState) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.compact, s.last, s.snap, s.hs
}

func compactRecord(index, term uint64) []byte {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:], index)
	binary.BigEndian.PutUint64(b[8:], term)
	return b[:]
}

type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error("raft log pebble", "msg", fmt.Sprintf(format, args...))
}

// Fatalf is Pebble giving up (a failed WAL sync): acknowledging writes after
// that could lose them, so the process stops, as the state store does.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error("raft log pebble fatal", "msg", msg)
	fmt.Fprintln(os.Stderr, "teamflow: fatal raft log error:", msg)
	os.Exit(70)
}

package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/teamflow/teamflow/storage"
)

func ent(index, term uint64, data string) *pb.Entry {
	return &pb.Entry{Index: proto.Uint64(index), Term: proto.Uint64(term), Type: pb.EntryNormal.Enum(), Data: []byte(data)}
}

func ents(from, to, term uint64) []*pb.Entry {
	var out []*pb.Entry
	for i := from; i <= to; i++ {
		out = append(out, ent(i, term, fmt.Sprintf("e%d-t%d", i, term)))
	}
	return out
}

func hs(term, vote, commit uint64) *pb.HardState {
	return &pb.HardState{Term: proto.Uint64(term), Vote: proto.Uint64(vote), Commit: proto.Uint64(commit)}
}

func openLS(t *testing.T, dir string, maxTail int) *logStore {
	t.Helper()
	s, err := openLogStore(dir, nil, 7, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if maxTail > 0 {
		s.maxTail = maxTail
	}
	return s
}

func checkEntries(t *testing.T, s *logStore, lo, hi uint64, want []*pb.Entry) {
	t.Helper()
	got, err := s.Entries(lo, hi, 1<<30)
	if err != nil {
		t.Fatalf("Entries(%d, %d): %v", lo, hi, err)
	}
	if len(got) != len(want) {
		t.Fatalf("Entries(%d, %d): %d entries, want %d", lo, hi, len(got), len(want))
	}
	for i := range got {
		if !proto.Equal(got[i], want[i]) {
			t.Fatalf("Entries(%d, %d)[%d] = %v, want %v", lo, hi, i, got[i], want[i])
		}
	}
}

// The raft log store keeps what raft wrote across reopen, truncates a
// conflicting suffix, limits Entries by size, serves from its cache and
// from Pebble alike, and compacts.
func TestLogStore(t *testing.T) {
	for _, maxTail := range []int{4, 8192} { // mostly from Pebble, mostly from memory
		t.Run(fmt.Sprint("tail", maxTail), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "raft")
			s := openLS(t, dir, maxTail)
			if f, _ := s.FirstIndex(); f != 1 {
				t.Fatalf("first %d", f)
			}
			if err := s.save(hs(1, 1, 0), ents(1, 10, 1), nil, true); err != nil {
				t.Fatal(err)
			}
			// Overwrite 6.. with a shorter suffix of term 2: 9 and 10 go.
			if err := s.save(hs(2, 2, 5), ents(6, 8, 2), nil, true); err != nil {
				t.Fatal(err)
			}
			want := append(ents(1, 5, 1), ents(6, 8, 2)...)
			checkEntries(t, s, 1, 9, want)
			if _, err := s.Entries(1, 10, 1<<30); !errors.Is(err, raft.ErrUnavailable) {
				t.Fatalf("entries past the end: %v", err)
			}
			if term, _ := s.Term(7); term != 2 {
				t.Fatalf("Term(7) = %d", term)
			}
			if _, err := s.Term(9); !errors.Is(err, raft.ErrUnavailable) {
				t.Fatalf("Term(9): %v", err)
			}
			// maxSize: at least one entry, then as many as fit.
			one, _ := s.Entries(2, 9, 1)
			if len(one) != 1 {
				t.Fatalf("maxSize 1 gave %d entries", len(one))
			}
			size := uint64(proto.Size(want[1]) + proto.Size(want[2]))
			two, _ := s.Entries(2, 9, size)
			if len(two) != 2 {
				t.Fatalf("maxSize %d gave %d entries", size, len(two))
			}
			s.close()

			// Reopen: everything is there, the HardState too.
			s = openLS(t, dir, maxTail)
			checkEntries(t, s, 1, 9, want)
			h, _, _ := s.InitialState()
			if h.GetTerm() != 2 || h.GetCommit() != 5 {
				t.Fatalf("hard state after reopen: %v", h)
			}
			// Compact to 4 with a snapshot at 6.
			cs := &pb.ConfState{Voters: []uint64{7}}
			if err := s.snapshotAndCompact(6, 2, cs, 4); err != nil {
				t.Fatal(err)
			}
			if f, _ := s.FirstIndex(); f != 5 {
				t.Fatalf("first after compaction %d", f)
			}
			if _, err := s.Entries(4, 6, 1<<30); !errors.Is(err, raft.ErrCompacted) {
				t.Fatalf("compacted entries: %v", err)
			}
			if term, err := s.Term(4); err != nil || term != 1 {
				t.Fatalf("term of the compaction point: %d %v", term, err)
			}
			if _, err := s.Term(3); !errors.Is(err, raft.ErrCompacted) {
				t.Fatalf("Term(3): %v", err)
			}
			checkEntries(t, s, 5, 9, want[4:])
			snap, _ := s.Snapshot()
			if snap.GetMetadata().GetIndex() != 6 || snap.GetMetadata().GetTerm() != 2 {
				t.Fatalf("snapshot %v", snap.GetMetadata())
			}
			s.close()

			s = openLS(t, dir, maxTail)
			defer s.close()
			if f, _ := s.FirstIndex(); f != 5 {
				t.Fatalf("first after reopen %d", f)
			}
			if l, _ := s.LastIndex(); l != 8 {
				t.Fatalf("last after reopen %d", l)
			}
			checkEntries(t, s, 5, 9, want[4:])

			// A snapshot from the leader replaces the whole log.
			meta := &pb.SnapshotMetadata{Index: proto.Uint64(20), Term: proto.Uint64(3), ConfState: cs}
			if err := s.save(hs(3, 0, 20), ents(21, 22, 3), &pb.Snapshot{Metadata: meta}, false); err != nil {
				t.Fatal(err)
			}
			if f, _ := s.FirstIndex(); f != 21 {
				t.Fatalf("first after snapshot %d", f)
			}
			if term, _ := s.Term(20); term != 3 {
				t.Fatalf("term of the snapshot index %d", term)
			}
			checkEntries(t, s, 21, 23, ents(21, 22, 3))
			if _, err := s.Entries(8, 9, 1<<30); !errors.Is(err, raft.ErrCompacted) {
				t.Fatalf("old entries after snapshot: %v", err)
			}
		})
	}
}

// A raft log belongs to one node ID.
func TestLogStoreRefusesOtherNodeID(t *testing.T) {
	dir := t.TempDir()
	s := openLS(t, dir, 0)
	s.close()
	if _, err := openLogStore(dir, nil, 8, slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("opened node 7's raft log as node 8")
	}
}

// Applying a committed change that re-adds a removed ID, or removes the
// last voter, is refused the same way on every node (it is decided from
// the replicated record alone).
func TestMembershipVet(t *testing.T) {
	m := &membership{Voters: []uint64{1, 2}, Removed: []uint64{3}}
	add := func(typ pb.ConfChangeType, id uint64) *pb.ConfChangeV2 {
		return (&pb.ConfChange{Type: typ.Enum(), NodeId: proto.Uint64(id)}).AsV2()
	}
	if err := m.vet(add(pb.ConfChangeAddLearnerNode, 3)); !errors.Is(err, ErrIDRemoved) {
		t.Fatalf("re-adding a removed ID: %v", err)
	}
	if err := m.vet(add(pb.ConfChangeAddNode, 3)); !errors.Is(err, ErrIDRemoved) {
		t.Fatalf("re-adding a removed ID as voter: %v", err)
	}
	if err := m.vet(add(pb.ConfChangeAddLearnerNode, 4)); err != nil {
		t.Fatal(err)
	}
	if err := m.vet(add(pb.ConfChangeRemoveNode, 2)); err != nil {
		t.Fatal(err)
	}
	one := &membership{Voters: []uint64{1}}
	if err := one.vet(add(pb.ConfChangeRemoveNode, 1)); !errors.Is(err, ErrConfChangeRefused) {
		t.Fatalf("removing the last voter: %v", err)
	}
	// The record is deterministic: the same changes give the same bytes.
	a, b := &membership{}, &membership{}
	for _, x := range []*membership{a, b} {
		cc := add(pb.ConfChangeAddNode, 2)
		cc.Context = []byte("h2:1")
		x.applied(cc, &pb.ConfState{Voters: []uint64{2, 1}})
		cc = add(pb.ConfChangeAddNode, 1)
		cc.Context = []byte("h1:1")
		x.applied(cc, &pb.ConfState{Voters: []uint64{1, 2}})
		x.applied(add(pb.ConfChangeRemoveNode, 2), &pb.ConfState{Voters: []uint64{1}})
	}
	if !bytes.Equal(a.command(9), b.command(9)) {
		t.Fatal("membership record encodes differently")
	}
	if a.addr(1) != "h1:1" || a.addr(2) != "" || !a.isRemoved(2) {
		t.Fatalf("record %+v", a)
	}
	cmd, err := storage.DecodeCommand(a.command(9))
	if err != nil || cmd.Kind != MembershipKind || cmd.RequestID != "" {
		t.Fatalf("command %+v %v", cmd, err)
	}
}

func TestParsePeers(t *testing.T) {
	p, err := ParsePeers("1=127.0.0.1:7001, 2=localhost:7002,3=[::1]:7003")
	if err != nil || len(p) != 3 || p[3] != "[::1]:7003" {
		t.Fatalf("%v %v", p, err)
	}
	if got := FormatPeers(p); got != "1=127.0.0.1:7001,2=localhost:7002,3=[::1]:7003" {
		t.Fatalf("format: %s", got)
	}
	for _, bad := range []string{"", "1=", "0=h:1", "x=h:1", "1=h", "1=h:1,1=h:2"} {
		if _, err := ParsePeers(bad); err == nil {
			t.Fatalf("%q accepted", bad)
		}
	}
}

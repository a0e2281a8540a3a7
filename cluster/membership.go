package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/teamflow/teamflow/storage"
)

// The membership record is replicated state: every applied membership change
// rewrites it, in the same Apply batch as the applied index, under the
// platform key cluster/membership. So the ConfState a restarting node hands
// raft always matches the index its store has applied, snapshots carry it,
// and the removed IDs are known to every node that ever applies the log.

// membershipKey is the platform-relative key of the membership record.
var membershipKey = storage.K("cluster", "membership")

// MembershipKind is the Command.Kind of the entries that record membership
// changes; observers of applied commands can skip them.
const MembershipKind = "cluster.membership"

type memberAddr struct {
	ID   uint64 `json:"id"`
	Addr string `json:"addr"`
}

// membership is the decoded record. Every slice is sorted, so the encoding is
// the same on every node.
type membership struct {
	Voters         []uint64     `json:"voters"`
	Learners       []uint64     `json:"learners,omitempty"`
	VotersOutgoing []uint64     `json:"voters_outgoing,omitempty"`
	LearnersNext   []uint64     `json:"learners_next,omitempty"`
	AutoLeave      bool         `json:"auto_leave,omitempty"`
	Addrs          []memberAddr `json:"addrs"`
	Removed        []uint64     `json:"removed,omitempty"`
}

func readMembership(s *storage.Store) (*membership, error) {
	rec, err := s.Sys().Get(membershipKey)
	if errors.Is(err, storage.ErrNotFound) {
		return &membership{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: read membership: %w", err)
	}
	m := &membership{}
	if err := json.Unmarshal(rec.Value, m); err != nil {
		return nil, fmt.Errorf("cluster: decode membership: %w", err)
	}
	return m, nil
}

func (m *membership) clone() *membership {
	c := *m
	c.Voters = slices.Clone(m.Voters)
	c.Learners = slices.Clone(m.Learners)
	c.VotersOutgoing = slices.Clone(m.VotersOutgoing)
	c.LearnersNext = slices.Clone(m.LearnersNext)
	c.Addrs = slices.Clone(m.Addrs)
	c.Removed = slices.Clone(m.Removed)
	return &c
}

func (m *membership) confState() *pb.ConfState {
	return &pb.ConfState{
		Voters:         slices.Clone(m.Voters),
		Learners:       slices.Clone(m.Learners),
		VotersOutgoing: slices.Clone(m.VotersOutgoing),
		LearnersNext:   slices.Clone(m.LearnersNext),
		AutoLeave:      proto.Bool(m.AutoLeave),
	}
}

func (m *membership) setConfState(cs *pb.ConfState) {
	m.Voters = sorted(cs.GetVoters())
	m.Learners = sorted(cs.GetLearners())
	m.VotersOutgoing = sorted(cs.GetVotersOutgoing())
	m.LearnersNext = sorted(cs.GetLearnersNext())
	m.AutoLeave = cs.GetAutoLeave()
}

func sorted(ids []uint64) []uint64 {
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}

func (m *membership) isVoter(id uint64) bool {
	return slices.Contains(m.Voters, id) || slices.Contains(m.VotersOutgoing, id)
}

func (m *membership) isLearner(id uint64) bool {
	return slices.Contains(m.Learners, id) || slices.Contains(m.LearnersNext, id)
}

func (m *membership) isMember(id uint64) bool { return m.isVoter(id) || m.isLearner(id) }

func (m *membership) isRemoved(id uint64) bool {
	_, ok := slices.BinarySearch(m.Removed, id)
	return ok
}

func (m *membership) addr(id uint64) string {
	for _, a := range m.Addrs {
		if a.ID == id {
			return a.Addr
		}
	}
	return ""
}

func (m *membership) setAddr(id uint64, addr string) {
	i, ok := slices.BinarySearchFunc(m.Addrs, id, func(a memberAddr, id uint64) int { return cmpU64(a.ID, id) })
	if ok {
		m.Addrs[i].Addr = addr
		return
	}
	m.Addrs = slices.Insert(m.Addrs, i, memberAddr{ID: id, Addr: addr})
}

func (m *membership) remove(id uint64) {
	m.Addrs = slices.DeleteFunc(m.Addrs, func(a memberAddr) bool { return a.ID == id })
	if i, ok := slices.BinarySearch(m.Removed, id); !ok {
		m.Removed = slices.Insert(m.Removed, i, id)
	}
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// vet decides, from the replicated state alone, whether a committed change
// may apply: re-adding a removed ID, or a change that would leave no voter
// (raft panics on it), is refused and becomes a no-op on every node.
func (m *membership) vet(cc *pb.ConfChangeV2) error {
	voters := map[uint64]bool{}
	for _, id := range m.Voters {
		voters[id] = true
	}
	for _, ch := range cc.GetChanges() {
		id := ch.GetNodeId()
		switch ch.GetType() {
		case pb.ConfChangeAddNode:
			if m.isRemoved(id) {
				return fmt.Errorf("%w: node %d: %w", ErrConfChangeRefused, id, ErrIDRemoved)
			}
			voters[id] = true
		case pb.ConfChangeAddLearnerNode:
			if m.isRemoved(id) {
				return fmt.Errorf("%w: node %d: %w", ErrConfChangeRefused, id, ErrIDRemoved)
			}
			delete(voters, id)
		case pb.ConfChangeRemoveNode:
			delete(voters, id)
		}
	}
	if len(cc.GetChanges()) > 0 && len(voters) == 0 {
		return fmt.Errorf("%w: it would remove the last voter", ErrConfChangeRefused)
	}
	return nil
}

// applied updates the record after raft applied cc and returned cs.
func (m *membership) applied(cc *pb.ConfChangeV2, cs *pb.ConfState) {
	m.setConfState(cs)
	for _, ch := range cc.GetChanges() {
		id := ch.GetNodeId()
		switch ch.GetType() {
		case pb.ConfChangeAddNode, pb.ConfChangeAddLearnerNode, pb.ConfChangeUpdateNode:
			if len(cc.GetContext()) > 0 {
				m.setAddr(id, string(cc.GetContext()))
			}
		case pb.ConfChangeRemoveNode:
			m.remove(id)
		}
	}
}

// command is the entry Apply stores for a membership change at index.
func (m *membership) command(index uint64) []byte {
	data, err := json.Marshal(m)
	if err != nil {
		panic(err) // plain structs of numbers and strings always encode
	}
	return storage.EncodeCommand(&storage.Command{
		Kind:  MembershipKind,
		Actor: "cluster",
		Ops: []storage.Op{{
			Type:    storage.OpPut,
			Space:   storage.SpaceSys,
			Key:     membershipKey,
			Value:   data,
			Version: index,
		}},
	})
}

// confChangeKey is the waiter key of a membership change proposed here.
func confChangeKey(id uint64) string { return fmt.Sprintf("\x00conf/%d", id) }

// decodeConfChange reads the change in a conf change entry and the waiter key
// of the node that proposed it.
func decodeConfChange(e *pb.Entry) (*pb.ConfChangeV2, string, error) {
	switch e.GetType() {
	case pb.EntryConfChange:
		var cc pb.ConfChange
		if err := proto.Unmarshal(e.GetData(), &cc); err != nil {
			return nil, "", err
		}
		return cc.AsV2(), confChangeKey(cc.GetId()), nil
	case pb.EntryConfChangeV2:
		var cc pb.ConfChangeV2
		if err := proto.Unmarshal(e.GetData(), &cc); err != nil {
			return nil, "", err
		}
		return &cc, "", nil
	}
	return nil, "", fmt.Errorf("cluster: entry type %v is not a conf change", e.GetType())
}

package cluster

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/teamflow/teamflow/storage"
)

// Config configures a Node. Zero values take the documented defaults.
type Config struct {
	// NodeID identifies this node for all time. It must be non-zero, must
	// not be derived from an address, and is never reused once removed.
	NodeID uint64
	// Peers maps node IDs to raft addresses (host:port), this node included.
	// On a first start without Join it is the static bootstrap membership
	// and must be identical on every node: the bootstrap log entries are
	// built from it. Later it only fills gaps in the address book; the
	// replicated membership wins.
	Peers map[uint64]string
	// Join starts a node that an existing member is adding (AddLearner): it
	// does not bootstrap, and waits for the leader to send it the log or a
	// snapshot. Peers must name at least one current member.
	Join bool

	// Dir holds the node's raft data: Dir/raft is the Pebble instance with
	// the raft log and HardState, Dir/snap holds received snapshots until
	// they are installed. It must not be the state store's directory.
	Dir string
	// FS is the filesystem of Dir (the raft log and received snapshots);
	// nil means the operating system's. The deterministic cluster test passes a
	// crashable in-memory one to cut power between two syncs.
	FS vfs.FS
	// Store is the state machine, opened by the caller with
	// storage.Options{NoSync: true} (the synced raft log makes entries
	// durable). Register observers before New so they see every entry. The
	// caller closes it after the Node.
	Store *storage.Store

	// ListenAddr is where the raft endpoint listens (default Peers[NodeID]).
	ListenAddr string
	// Listener, when set, is used instead of ListenAddr (tests pass a
	// listener on 127.0.0.1:0). The Node closes it.
	Listener net.Listener
	// TLS is the mutual-TLS configuration used both to serve and to dial
	// peers: a certificate of this node, the cluster CA as RootCAs and
	// ClientCAs. LoadTLS builds it from the files GenerateCerts writes.
	TLS *tls.Config

	// TickInterval is the raft clock (default 100 ms).
	TickInterval time.Duration
	// ElectionTicks is the election timeout in ticks (default 10, so 1 s).
	ElectionTicks int
	// HeartbeatTicks is the heartbeat interval in ticks (default 1).
	HeartbeatTicks int

	// SnapshotEntries: every this many applied entries the node syncs the
	// state store, records a raft snapshot at the applied index and
	// compacts its raft log (default 10,000).
	SnapshotEntries uint64
	// CatchUpEntries is how many entries are kept behind a snapshot so a
	// follower that lags a little catches up from the log rather than by a
	// snapshot (default 5,000; at most SnapshotEntries).
	CatchUpEntries uint64

	// MaxSizePerMsg caps the entries carried by one append message
	// (default 1 MiB).
	MaxSizePerMsg uint64
	// MaxInflightMsgs caps the append messages in flight to one follower
	// (default 256).
	MaxInflightMsgs int
	// MaxUncommittedBytes caps the leader's uncommitted log, so a stalled
	// quorum cannot make it buffer without bound (default 64 MiB).
	MaxUncommittedBytes uint64
	// MaxEntryBytes refuses larger encoded commands (default 8 MiB).
	MaxEntryBytes int
	// ProposeTimeout bounds Propose, ReadBarrier and membership calls whose
	// context has no deadline (default 30 s).
	ProposeTimeout time.Duration

	// PeerQueue is how many messages may wait for one peer before new ones
	// are dropped and the peer is reported unreachable (default 4096).
	PeerQueue int
	// DialTimeout bounds connecting to a peer (default 2 s).
	DialTimeout time.Duration

	// Logger receives the node's messages (default: discarded).
	Logger *slog.Logger
	// Gossip, when set, receives what other members send with Node.Gossip
	// (in-memory state such as presence, never the log's business).
	Gossip func(from uint64, body []byte)
	// OnSnapshotInstalled is called on the Ready goroutine after a snapshot
	// from the leader replaced the state store: observers did not see the
	// commands it skipped, so derived data (search) must be rebuilt. It
	// must not block.
	OnSnapshotInstalled func(index uint64)
}

// Defaults.
const (
	DefaultTickInterval        = 100 * time.Millisecond
	DefaultElectionTicks       = 10
	DefaultHeartbeatTicks      = 1
	DefaultSnapshotEntries     = 10_000
	DefaultCatchUpEntries      = 5_000
	DefaultMaxSizePerMsg       = 1 << 20
	DefaultMaxInflightMsgs     = 256
	DefaultMaxUncommittedBytes = 64 << 20
	DefaultMaxEntryBytes       = 8 << 20
	DefaultProposeTimeout      = 30 * time.Second
	DefaultPeerQueue           = 4096
	DefaultDialTimeout         = 2 * time.Second
)

func (c *Config) setDefaults() error {
	if c.NodeID == 0 {
		return errors.New("cluster: NodeID must be non-zero")
	}
	if c.Store == nil {
		return errors.New("cluster: Store is required")
	}
	if c.Dir == "" {
		return errors.New("cluster: Dir is required")
	}
	if c.TLS == nil {
		return errors.New("cluster: TLS is required (mutual TLS between nodes)")
	}
	if c.Listener == nil && c.ListenAddr == "" {
		c.ListenAddr = c.Peers[c.NodeID]
		if c.ListenAddr == "" {
			return fmt.Errorf("cluster: no address for node %d: set ListenAddr or Peers[%d]", c.NodeID, c.NodeID)
		}
	}
	if !c.Join {
		if _, ok := c.Peers[c.NodeID]; !ok {
			return fmt.Errorf("cluster: Peers must include this node (%d)", c.NodeID)
		}
	}
	for id, addr := range c.Peers {
		if id == 0 {
			return errors.New("cluster: peer ID 0 is invalid")
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("cluster: peer %d address %q: %w", id, addr, err)
		}
	}
	if c.TickInterval <= 0 {
		c.TickInterval = DefaultTickInterval
	}
	if c.HeartbeatTicks <= 0 {
		c.HeartbeatTicks = DefaultHeartbeatTicks
	}
	if c.ElectionTicks <= 0 {
		c.ElectionTicks = DefaultElectionTicks
	}
	if c.ElectionTicks <= c.HeartbeatTicks {
		return errors.New("cluster: ElectionTicks must exceed HeartbeatTicks")
	}
	if c.SnapshotEntries == 0 {
		c.SnapshotEntries = DefaultSnapshotEntries
	}
	if c.CatchUpEntries == 0 {
		c.CatchUpEntries = DefaultCatchUpEntries
	}
	if c.CatchUpEntries > c.SnapshotEntries {
		c.CatchUpEntries = c.SnapshotEntries
	}
	if c.MaxSizePerMsg == 0 {
		c.MaxSizePerMsg = DefaultMaxSizePerMsg
	}
	if c.MaxInflightMsgs <= 0 {
		c.MaxInflightMsgs = DefaultMaxInflightMsgs
	}
	if c.MaxUncommittedBytes == 0 {
		c.MaxUncommittedBytes = DefaultMaxUncommittedBytes
	}
	if c.MaxEntryBytes <= 0 {
		c.MaxEntryBytes = DefaultMaxEntryBytes
	}
	if c.ProposeTimeout <= 0 {
		c.ProposeTimeout = DefaultProposeTimeout
	}
	if c.PeerQueue <= 0 {
		c.PeerQueue = DefaultPeerQueue
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// ParsePeers parses a peer list as given on a command line:
// "1=10.0.0.1:7000,2=10.0.0.2:7000,3=10.0.0.3:7000".
func ParsePeers(s string) (map[uint64]string, error) {
	peers := map[uint64]string{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		idStr, addr, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("cluster: peer %q: want id=host:port", part)
		}
		id, err := strconv.ParseUint(strings.TrimSpace(idStr), 10, 64)
		if err != nil || id == 0 {
			return nil, fmt.Errorf("cluster: peer %q: the ID must be a positive integer", part)
		}
		addr = strings.TrimSpace(addr)
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("cluster: peer %q: %w", part, err)
		}
		if _, dup := peers[id]; dup {
			return nil, fmt.Errorf("cluster: peer %d given twice", id)
		}
		peers[id] = addr
	}
	if len(peers) == 0 {
		return nil, errors.New("cluster: empty peer list")
	}
	return peers, nil
}

// FormatPeers is the inverse of ParsePeers, in ID order.
func FormatPeers(peers map[uint64]string) string {
	ids := make([]uint64, 0, len(peers))
	for id := range peers {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprintf("%d=%s", id, peers[id])
	}
	return strings.Join(parts, ",")
}

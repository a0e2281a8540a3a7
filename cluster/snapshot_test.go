package cluster_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/teamflow/teamflow/cluster"
	"github.com/teamflow/teamflow/cluster/clustertest"
	"github.com/teamflow/teamflow/cluster/transport"
	"github.com/teamflow/teamflow/storage"
)

func openStore(t *testing.T) *storage.Store {
	t.Helper()
	s, err := storage.Open(t.TempDir(), storage.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// applyN applies n commands of tag to s at the next indexes and returns
// them, encoded.
func applyN(t *testing.T, s *storage.Store, tag string, n int) [][]byte {
	t.Helper()
	var ents []storage.Entry
	var out [][]byte
	for i := 0; i < n; i++ {
		data := storage.EncodeCommand(writeCmd(tag))
		out = append(out, data)
		ents = append(ents, storage.Entry{Index: s.AppliedIndex() + 1 + uint64(i), Data: data})
	}
	if _, err := s.Apply(ents); err != nil {
		t.Fatal(err)
	}
	return out
}

func mustHash(t *testing.T, s *storage.Store) []byte {
	t.Helper()
	h, err := s.TenantHash(tenant)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// A snapshot stream installs as an exact copy of the source store, applied
// index included; old keys of the target are gone.
func TestStoreSnapshotRoundTrip(t *testing.T) {
	src, dst := openStore(t), openStore(t)
	srcCmds := applyN(t, src, "src", 50)
	applyN(t, dst, "dst", 80) // different data, a higher index
	var buf bytes.Buffer
	idx, err := src.WriteSnapshot(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if idx != 50 {
		t.Fatalf("snapshot index %d, want 50", idx)
	}
	if got, err := storage.VerifySnapshot(bytes.NewReader(buf.Bytes())); err != nil || got != 50 {
		t.Fatalf("verify: %d %v", got, err)
	}
	if err := dst.InstallSnapshot(bytes.NewReader(buf.Bytes()), 50); err != nil {
		t.Fatal(err)
	}
	if dst.AppliedIndex() != 50 {
		t.Fatalf("applied %d after install", dst.AppliedIndex())
	}
	if !bytes.Equal(mustHash(t, src), mustHash(t, dst)) {
		t.Fatal("installed store differs from the source")
	}
	// The dedupe table came along: a replay of a source command is a
	// duplicate on the target, with its first result.
	res, err := dst.Apply([]storage.Entry{{Index: 51, Data: srcCmds[7]}})
	if err != nil || !res[0].Duplicate || res[0].Values[0] != 8 {
		t.Fatalf("replay after install: %v %+v, want a duplicate of value 8", err, res)
	}
	if _, err := src.Apply([]storage.Entry{{Index: 51, Data: srcCmds[7]}}); err != nil {
		t.Fatal(err)
	}
	// Both stores go on identically.
	cmd := storage.EncodeCommand(writeCmd("next"))
	r1, _ := src.Apply([]storage.Entry{{Index: 52, Data: cmd}})
	r2, _ := dst.Apply([]storage.Entry{{Index: 52, Data: cmd}})
	if r1[0].Values[0] != r2[0].Values[0] || !bytes.Equal(mustHash(t, src), mustHash(t, dst)) {
		t.Fatalf("diverged after install: %v vs %v", r1[0].Values, r2[0].Values)
	}
	// WaitApplied sees the installed index.
	ctx, cancel := context.WithTimeout(context.Background(), long)
	defer cancel()
	if err := dst.WaitApplied(ctx, 52); err != nil {
		t.Fatal(err)
	}
}

// Truncated, corrupted or mislabelled streams are refused and leave the
// store exactly as it was.
func TestStoreSnapshotCorruptionRefused(t *testing.T) {
	src, dst := openStore(t), openStore(t)
	applyN(t, src, "src", 30)
	applyN(t, dst, "dst", 10)
	var buf bytes.Buffer
	if _, err := src.WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	before, beforeIdx := mustHash(t, dst), dst.AppliedIndex()
	check := func(name string, stream []byte, index uint64) {
		t.Helper()
		err := dst.InstallSnapshot(bytes.NewReader(stream), index)
		if !errors.Is(err, storage.ErrSnapshotCorrupt) || !errors.Is(err, storage.ErrCorrupt) {
			t.Fatalf("%s: install returned %v, want ErrSnapshotCorrupt", name, err)
		}
		if _, err := storage.VerifySnapshot(bytes.NewReader(stream)); err == nil && index == 30 {
			t.Fatalf("%s: verify accepted it", name)
		}
		if !bytes.Equal(mustHash(t, dst), before) || dst.AppliedIndex() != beforeIdx {
			t.Fatalf("%s: a refused snapshot changed the store", name)
		}
	}
	flips := 0
	for pos := 0; pos < len(good); pos += max(1, len(good)/97) {
		bad := bytes.Clone(good)
		bad[pos] ^= 0x20
		check(fmt.Sprintf("flip at %d", pos), bad, 30)
		flips++
	}
	for _, pos := range []int{len(good) - 1, len(good) - 32, len(good) - 40} {
		bad := bytes.Clone(good)
		bad[pos] ^= 0x01
		check(fmt.Sprintf("flip at %d", pos), bad, 30)
	}
	for _, n := range []int{0, 5, 15, len(good) / 3, len(good) / 2, len(good) - 33, len(good) - 1} {
		check(fmt.Sprintf("truncated to %d", n), good[:n], 30)
	}
	check("trailing garbage", append(bytes.Clone(good), 0), 30)
	check("wrong index", good, 31)
	check("not a snapshot", []byte(strings.Repeat("x", 100)), 30)
	if flips < 50 {
		t.Fatalf("only %d flips tried", flips)
	}
	// The good stream still installs.
	if err := dst.InstallSnapshot(bytes.NewReader(good), 30); err != nil {
		t.Fatal(err)
	}
}

// The raft endpoint refuses a corrupted or truncated snapshot stream: the
// node keeps its state, records the refusal, keeps no file, and the
// cluster goes on. An intact stream from a peer is accepted.
func TestCorruptSnapshotRefusedByNode(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{Nodes: 3})
	leader := c.Leader(long)
	for i := 0; i < 10; i++ {
		clustertest.Propose(t, leader, writeCmd("s"), long)
	}
	c.WaitConverged(long)
	target := c.Followers(leader)[0]

	// A stream as the leader would send it, ahead of the target.
	src := openStore(t)
	applyN(t, src, "foreign", int(leader.Store.AppliedIndex())+50)
	var buf bytes.Buffer
	idx, err := src.WriteSnapshot(&buf)
	if err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	before, beforeIdx := mustHash(t, target.Store), target.Store.AppliedIndex()

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: c.TLS(leader.ID), ForceAttemptHTTP2: true}}
	send := func(body []byte, index uint64) int {
		m := &pb.Message{
			Type: pb.MsgSnap.Enum(), To: proto.Uint64(target.ID), From: proto.Uint64(leader.ID),
			Term:     proto.Uint64(1), // stale: even if it were accepted, raft would ignore it
			Snapshot: &pb.Snapshot{Metadata: &pb.SnapshotMetadata{Index: proto.Uint64(index), Term: proto.Uint64(1), ConfState: &pb.ConfState{Voters: []uint64{1, 2, 3}}}},
		}
		hdr, _ := proto.Marshal(m)
		req, _ := http.NewRequest(http.MethodPost, "https://"+target.Addr+transport.PathSnapshot, bytes.NewReader(body))
		req.Header.Set("Teamflow-Raft-Message", base64.StdEncoding.EncodeToString(hdr))
		req.Header.Set("Teamflow-Raft-From", fmt.Sprint(leader.ID))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("post snapshot: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 {
			t.Fatalf("raft endpoint answered over HTTP/%d", resp.ProtoMajor)
		}
		return resp.StatusCode
	}
	corrupt := bytes.Clone(good)
	corrupt[len(corrupt)/2] ^= 0xff
	cases := []struct {
		name  string
		body  []byte
		index uint64
	}{
		{"corrupted", corrupt, idx},
		{"truncated", good[:len(good)*2/3], idx},
		{"index mismatch", good, idx + 7},
		{"empty", nil, idx},
	}
	for _, tc := range cases {
		if code := send(tc.body, tc.index); code != http.StatusUnprocessableEntity {
			t.Fatalf("%s snapshot: status %d, want 422", tc.name, code)
		}
	}
	if got := target.Node.Stats().SnapshotsRefused; got != uint64(len(cases)) {
		t.Fatalf("SnapshotsRefused = %d, want %d", got, len(cases))
	}
	if !bytes.Equal(mustHash(t, target.Store), before) || target.Store.AppliedIndex() < beforeIdx {
		t.Fatal("a refused snapshot changed the node's state")
	}
	files, _ := os.ReadDir(filepath.Join(target.Dir, "raft", "snap"))
	if len(files) != 0 {
		t.Fatalf("refused snapshots left files: %v", files)
	}
	// An intact stream passes the check (raft then ignores it: its term
	// is stale), and the cluster is unharmed.
	if code := send(good, idx); code != http.StatusNoContent {
		t.Fatalf("intact snapshot: status %d", code)
	}
	if target.Node.Stats().SnapshotsInstalled != 0 {
		t.Fatal("a snapshot of a stale term was installed")
	}
	clustertest.Propose(t, target, writeCmd("after"), long)
	waitSameHash(t, c)
}

// The raft endpoint speaks only HTTP/2 over mutual TLS: a client without
// a certificate, or with one from another CA, is refused during the
// handshake; a certified peer gets through.
func TestTransportRequiresMutualTLS(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{Nodes: 3})
	target := c.Member(1)
	url := "https://" + target.Addr + transport.PathMessages
	post := func(conf *tls.Config) (*http.Response, error) {
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: conf, ForceAttemptHTTP2: true}}
		defer client.CloseIdleConnections()
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(nil))
		req.Header.Set("Teamflow-Raft-From", "2")
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return resp, err
	}
	// No client certificate.
	noCert := c.TLS(2).Clone()
	noCert.Certificates = nil
	if _, err := post(noCert); err == nil {
		t.Fatal("a client without a certificate was served")
	}
	// A certificate from another CA.
	other := t.TempDir()
	if err := cluster.GenerateCerts(other, []string{"intruder"}); err != nil {
		t.Fatal(err)
	}
	cert, key := cluster.CertFiles(other, "intruder")
	foreign, err := cluster.LoadTLS(filepath.Join(other, cluster.CAFile), cert, key)
	if err != nil {
		t.Fatal(err)
	}
	foreign.RootCAs = c.TLS(2).RootCAs // it trusts the server; the server must not trust it
	if _, err := post(foreign); err == nil {
		t.Fatal("a client certified by another CA was served")
	}
	// A member's certificate: an empty batch is fine, over HTTP/2.
	resp, err := post(c.TLS(2))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusNoContent || resp.ProtoMajor != 2 {
		t.Fatalf("member post: %d over HTTP/%d", resp.StatusCode, resp.ProtoMajor)
	}
	// The server's certificate is checked too: a client trusting another
	// CA refuses the node.
	distrust := c.TLS(2).Clone()
	distrust.RootCAs = foreign.ClientCAs
	if _, err := post(distrust); err == nil {
		t.Fatal("client accepted a server certificate of an untrusted CA")
	}
}

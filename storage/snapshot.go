package storage

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"slices"

	"github.com/cockroachdb/pebble/v2"
)

// Snapshots of the state store.
//
// A snapshot is the whole keyspace (tenants, platform records and the store's
// own bookkeeping, applied index and dedupe table included) as of one applied
// index, written as a self-checking stream:
//
//	header   "TFSNAP" | format byte | 8-byte big-endian applied index
//	records  0x01 | uvarint key length | key | uvarint value length | value   (key order)
//	trailer  0x00 | 8-byte big-endian record count | SHA-256 of every byte before the hash
//
// InstallSnapshot reads the whole stream into one Pebble batch and commits it
// only after the trailer checks out, so a truncated, corrupted or foreign
// stream leaves the store exactly as it was. The cluster streams snapshots to
// lagging or new nodes; backup writes the same stream to a file (with
// dedicated groups, one stream merged from several stores' snapshots:
// WriteMergedTo).

// SnapshotFormat is the version byte of the snapshot stream. A store refuses
// a stream of a format it does not know.
const SnapshotFormat = 1

var snapMagic = []byte("TFSNAP")

const (
	snapRecord  = 0x01
	snapTrailer = 0x00
	// maxSnapKey bounds one key of a snapshot stream, so that a damaged
	// length cannot make the reader allocate without bound.
	maxSnapKey = 1 << 20
)

// ErrSnapshotCorrupt reports a snapshot stream that is truncated, damaged, of
// an unknown format, or not at the expected index. errors.Is(err, ErrCorrupt)
// holds for it too.
var ErrSnapshotCorrupt = fmt.Errorf("%w: snapshot stream", ErrCorrupt)

// Snapshot is a consistent, point-in-time view of the whole store, pinned
// until Close. Taking one is cheap (a Pebble snapshot); writing it out
// streams every key.
type Snapshot struct {
	snap  *pebble.Snapshot
	index uint64
}

// OpenSnapshot pins the store's current state and the index it reflects.
// Apply may go on meanwhile; the snapshot keeps seeing the state it was
// taken at. Close it when done, or Pebble keeps old data alive.
//
// The state is every batch evaluated so far (on a store without NoSync, the
// last one may still be syncing).
func (s *Store) OpenSnapshot() (*Snapshot, error) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if s.closed.Load() {
		return nil, ErrClosed
	}
	return &Snapshot{snap: s.db.NewSnapshot(), index: s.evaluated}, nil
}

// Index is the applied index the snapshot was taken at.
func (sn *Snapshot) Index() uint64 { return sn.index }

// Close releases the snapshot.
func (sn *Snapshot) Close() error {
	if sn.snap == nil {
		return nil
	}
	err := sn.snap.Close()
	sn.snap = nil
	return err
}

// WriteTo writes the snapshot stream to w.
func (sn *Snapshot) WriteTo(w io.Writer) (int64, error) { return sn.write(w, []span{{src: sn.snap}}) }

// WriteMergedTo writes the snapshot stream of sn with the keyspaces of some
// tenants read from other snapshots (tenants: tenant → the snapshot of the
// store that holds it, a dedicated group's), each in its place in key
// order and in place of whatever sn holds there, and without the platform
// records under the prefixes skip (relative to the platform space). The
// header carries sn's index. It is one valid stream: installed, it lays
// every tenant out in one store, as if none lived elsewhere.
func (sn *Snapshot) WriteMergedTo(w io.Writer, tenants map[string]*Snapshot, skip ...Key) (int64, error) {
	if sn.snap == nil {
		return 0, ErrClosed
	}
	// Cuts: the ranges not read from sn, each read from another snapshot
	// (src set) or left out.
	cuts := make([]span, 0, len(tenants)+len(skip))
	for tenant, src := range tenants {
		if src.snap == nil {
			return 0, ErrClosed
		}
		prefix := TenantPrefix(tenant)
		cuts = append(cuts, span{lo: prefix, hi: prefix.PrefixEnd(), src: src.snap})
	}
	for _, k := range skip {
		abs := Key(absolute(sysKeyPrefix, k))
		cuts = append(cuts, span{lo: abs, hi: abs.PrefixEnd()})
	}
	spans, err := around(sn.snap, cuts)
	if err != nil {
		return 0, err
	}
	return sn.write(w, spans)
}

// around covers the whole keyspace with spans in key order: the cuts that
// have a source, and src between them (the cuts without one are left out).
// The cuts must not overlap.
func around(src *pebble.Snapshot, cuts []span) ([]span, error) {
	slices.SortFunc(cuts, func(a, b span) int { return bytes.Compare(a.lo, b.lo) })
	spans := make([]span, 0, 2*len(cuts)+1)
	var at []byte // nil: the start of the keyspace
	for _, c := range cuts {
		if at != nil && bytes.Compare(c.lo, at) < 0 {
			return nil, fmt.Errorf("storage: snapshot: overlapping ranges at %s", Key(c.lo))
		}
		if at == nil || bytes.Compare(at, c.lo) < 0 {
			spans = append(spans, span{lo: at, hi: c.lo, src: src})
		}
		if c.src != nil {
			spans = append(spans, c)
		}
		at = c.hi
	}
	return append(spans, span{lo: at, src: src}), nil
}

// WriteTenantTo writes a snapshot stream of one workspace: every key of its
// keyspace and the platform records named by sys (keys relative to the
// platform space, e.g. the workspace's registry entry), nothing else: no
// other workspace, no platform secret, none of the store's bookkeeping. It
// is a valid stream (same format and checks): installed into an empty
// store, it holds that workspace alone. It reads only those keys.
func (sn *Snapshot) WriteTenantTo(w io.Writer, tenant string, sys ...Key) (int64, error) {
	return sn.WriteTenantFrom(w, sn, tenant, sys...)
}

// WriteTenantFrom is WriteTenantTo with the workspace's keyspace read from
// src, the snapshot of the store it lives in (its dedicated group's), and
// the platform records from sn, whose index the header carries.
func (sn *Snapshot) WriteTenantFrom(w io.Writer, src *Snapshot, tenant string, sys ...Key) (int64, error) {
	if sn.snap == nil || src.snap == nil {
		return 0, ErrClosed
	}
	spans := make([]span, 0, len(sys)+1)
	for _, k := range sys {
		abs := absolute(sysKeyPrefix, k)
		spans = append(spans, span{lo: abs, hi: append(slices.Clip(abs), 0), src: sn.snap})
	}
	prefix := TenantPrefix(tenant)
	spans = append(spans, span{lo: prefix, hi: prefix.PrefixEnd(), src: src.snap})
	// The stream is in key order: spans in order, each once.
	slices.SortFunc(spans, func(a, b span) int { return bytes.Compare(a.lo, b.lo) })
	spans = slices.CompactFunc(spans, func(a, b span) bool { return bytes.Equal(a.lo, b.lo) })
	return sn.write(w, spans)
}

// span is a key range [lo, hi) of the snapshot src; nil bounds are open.
type span struct {
	lo, hi []byte
	src    *pebble.Snapshot
}

// write streams the keys of spans, which are in key order and disjoint,
// under a header naming sn's index.
func (sn *Snapshot) write(w io.Writer, spans []span) (int64, error) {
	if sn.snap == nil {
		return 0, ErrClosed
	}
	cw := &countWriter{w: w}
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(cw, h), 256<<10)
	var hdr [15]byte
	copy(hdr[:], snapMagic)
	hdr[6] = SnapshotFormat
	binary.BigEndian.PutUint64(hdr[7:], sn.index)
	bw.Write(hdr[:])
	var count uint64
	var lenBuf [binary.MaxVarintLen64]byte
	for _, sp := range spans {
		it, err := sp.src.NewIter(&pebble.IterOptions{LowerBound: sp.lo, UpperBound: sp.hi})
		if err != nil {
			return cw.n, fmt.Errorf("storage: snapshot: %w", err)
		}
		for it.First(); it.Valid(); it.Next() {
			k := it.Key()
			v, err := it.ValueAndErr()
			if err != nil {
				it.Close()
				return cw.n, fmt.Errorf("storage: snapshot: %w", err)
			}
			bw.WriteByte(snapRecord)
			bw.Write(lenBuf[:binary.PutUvarint(lenBuf[:], uint64(len(k)))])
			bw.Write(k)
			bw.Write(lenBuf[:binary.PutUvarint(lenBuf[:], uint64(len(v)))])
			if _, err := bw.Write(v); err != nil {
				it.Close()
				return cw.n, fmt.Errorf("storage: snapshot: write: %w", err)
			}
			count++
		}
		if err := it.Close(); err != nil {
			return cw.n, fmt.Errorf("storage: snapshot: %w", err)
		}
	}
	var tr [9]byte
	tr[0] = snapTrailer
	binary.BigEndian.PutUint64(tr[1:], count)
	bw.Write(tr[:])
	if err := bw.Flush(); err != nil {
		return cw.n, fmt.Errorf("storage: snapshot: write: %w", err)
	}
	if _, err := cw.Write(h.Sum(nil)); err != nil {
		return cw.n, fmt.Errorf("storage: snapshot: write: %w", err)
	}
	return cw.n, nil
}

// WriteSnapshot writes a consistent snapshot of the whole store to w and
// returns the applied index it was taken at.
func (s *Store) WriteSnapshot(w io.Writer) (uint64, error) {
	sn, err := s.OpenSnapshot()
	if err != nil {
		return 0, err
	}
	defer sn.Close()
	if _, err := sn.WriteTo(w); err != nil {
		return 0, err
	}
	return sn.index, nil
}

// VerifySnapshot reads a whole snapshot stream and checks its format and
// checksum without installing it. It returns the applied index the stream
// was taken at.
func VerifySnapshot(r io.Reader) (uint64, error) {
	return readSnapshot(r, nil)
}

// InstallSnapshot replaces the whole keyspace with the snapshot read from r,
// which must have been taken at applied index index, and sets the applied
// index to it: in place, as one synced Pebble batch committed only after the
// stream's checksum is verified. On any error the store is unchanged. Readers
// see the old state or the new one, never a mix.
//
// Observers are not told about the commands the snapshot skipped over: a
// derived index must be rebuilt from the store after an install.
//
// The batch holds the whole snapshot in memory until it commits. No batch of
// ApplyAsync may be pending (waiting in Wait) during an install.
func (s *Store) InstallSnapshot(r io.Reader, index uint64) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if s.closed.Load() {
		return ErrClosed
	}
	if e := s.failed.Load(); e != nil {
		return *e
	}
	b := s.db.NewBatch()
	defer b.Close()
	// Every stored key starts with a space component ("t", "s" or "m"), so
	// [0x00, 0xff) covers the whole keyspace.
	if err := b.DeleteRange([]byte{0x00}, []byte{0xff}, nil); err != nil {
		return fmt.Errorf("storage: install snapshot: %w", err)
	}
	got, err := readSnapshot(r, func(k, v []byte) error {
		if len(k) == 0 || k[0] == 0xff {
			return fmt.Errorf("%w: key out of range", ErrSnapshotCorrupt)
		}
		return b.Set(k, v, nil)
	})
	if err != nil {
		return err
	}
	if got != index {
		return fmt.Errorf("%w: taken at index %d, expected %d", ErrSnapshotCorrupt, got, index)
	}
	var idx [8]byte
	binary.BigEndian.PutUint64(idx[:], index)
	if err := b.Set(appliedKey, idx[:], nil); err != nil {
		return fmt.Errorf("storage: install snapshot: %w", err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return s.fail(fmt.Errorf("storage: install snapshot: commit: %w", err))
	}
	if e := s.failed.Load(); e != nil {
		return *e
	}
	s.watches.all()
	s.evaluated = index
	s.applied.Store(index)
	s.waitMu.Lock()
	close(s.waitCh)
	s.waitCh = make(chan struct{})
	s.waitMu.Unlock()
	return nil
}

// readSnapshot parses a stream, calling set for every record, and checks the
// trailer. set may be nil.
func readSnapshot(r io.Reader, set func(k, v []byte) error) (uint64, error) {
	h := sha256.New()
	hr := &hashReader{r: bufio.NewReaderSize(r, 256<<10), h: h}
	var hdr [15]byte
	if _, err := io.ReadFull(hr, hdr[:]); err != nil {
		return 0, fmt.Errorf("%w: header: %v", ErrSnapshotCorrupt, err)
	}
	if !bytes.Equal(hdr[:6], snapMagic) {
		return 0, fmt.Errorf("%w: not a snapshot", ErrSnapshotCorrupt)
	}
	if hdr[6] != SnapshotFormat {
		return 0, fmt.Errorf("%w: format %d", ErrSnapshotCorrupt, hdr[6])
	}
	index := binary.BigEndian.Uint64(hdr[7:])
	var count uint64
	var key, val []byte
	for {
		tag, err := hr.ReadByte()
		if err != nil {
			return 0, fmt.Errorf("%w: truncated after %d records", ErrSnapshotCorrupt, count)
		}
		if tag == snapTrailer {
			break
		}
		if tag != snapRecord {
			return 0, fmt.Errorf("%w: bad record tag", ErrSnapshotCorrupt)
		}
		if key, err = hr.readField(key, maxSnapKey); err != nil {
			return 0, err
		}
		if val, err = hr.readField(val, maxFieldLen); err != nil {
			return 0, err
		}
		if set != nil {
			if err := set(key, val); err != nil {
				return 0, err
			}
		}
		count++
	}
	var n [8]byte
	if _, err := io.ReadFull(hr, n[:]); err != nil {
		return 0, fmt.Errorf("%w: truncated trailer", ErrSnapshotCorrupt)
	}
	want := h.Sum(nil)
	var sum [sha256.Size]byte
	if _, err := io.ReadFull(hr.r, sum[:]); err != nil {
		return 0, fmt.Errorf("%w: truncated checksum", ErrSnapshotCorrupt)
	}
	if !bytes.Equal(sum[:], want) {
		return 0, fmt.Errorf("%w: checksum mismatch", ErrSnapshotCorrupt)
	}
	if binary.BigEndian.Uint64(n[:]) != count {
		return 0, fmt.Errorf("%w: record count", ErrSnapshotCorrupt)
	}
	if _, err := hr.r.ReadByte(); err != io.EOF {
		return 0, fmt.Errorf("%w: trailing bytes", ErrSnapshotCorrupt)
	}
	return index, nil
}

type hashReader struct {
	r *bufio.Reader
	h hash.Hash
}

func (hr *hashReader) Read(p []byte) (int, error) {
	n, err := hr.r.Read(p)
	hr.h.Write(p[:n])
	return n, err
}

func (hr *hashReader) ReadByte() (byte, error) {
	b, err := hr.r.ReadByte()
	if err == nil {
		hr.h.Write([]byte{b})
	}
	return b, err
}

func (hr *hashReader) readField(buf []byte, limit uint64) ([]byte, error) {
	n, err := binary.ReadUvarint(hr)
	if err != nil {
		return nil, fmt.Errorf("%w: truncated record", ErrSnapshotCorrupt)
	}
	if n > limit {
		return nil, fmt.Errorf("%w: record too long", ErrSnapshotCorrupt)
	}
	if uint64(cap(buf)) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(hr, buf); err != nil {
		return nil, fmt.Errorf("%w: truncated record", ErrSnapshotCorrupt)
	}
	return buf, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

package storage

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// SeedTenant fills an empty store with one tenant's keyspace as src holds
// it, and records index as its applied index: the first state of a
// dedicated store, built on every node from its own shared store at the
// move's fence (where the tenant's keyspace is the same on every replica).
// want is the keyspace's TenantHash as the node that started the move
// computed it: a store whose copy hashes otherwise is left empty and the
// call fails, so no node ever seeds different bytes under the same index.
// The batch is committed synced.
func (s *Store) SeedTenant(src *Snapshot, tenant string, index uint64, want []byte) error {
	if src.snap == nil {
		return ErrClosed
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if s.closed.Load() {
		return ErrClosed
	}
	if s.evaluated != 0 {
		return fmt.Errorf("storage: seed tenant %s: the store is not empty (applied index %d)", tenant, s.evaluated)
	}
	if index == 0 {
		return errors.New("storage: seed tenant: index must be non-zero")
	}
	prefix := TenantPrefix(tenant)
	it, err := src.snap.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefix.PrefixEnd()})
	if err != nil {
		return fmt.Errorf("storage: seed tenant %s: %w", tenant, err)
	}
	defer it.Close()
	b := s.db.NewBatch()
	defer b.Close()
	// The hash is TenantHash's, computed over what is copied.
	h := sha256.New()
	var n [8]byte
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("storage: seed tenant %s: %w", tenant, err)
		}
		binary.BigEndian.PutUint64(n[:], uint64(len(it.Key())))
		h.Write(n[:])
		h.Write(it.Key())
		binary.BigEndian.PutUint64(n[:], uint64(len(v)))
		h.Write(n[:])
		h.Write(v)
		if err := b.Set(it.Key(), v, nil); err != nil {
			return fmt.Errorf("storage: seed tenant %s: %w", tenant, err)
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("storage: seed tenant %s: %w", tenant, err)
	}
	if got := h.Sum(nil); !bytes.Equal(got, want) {
		return fmt.Errorf("storage: seed tenant %s: the keyspace hashes %x here, %x where the move began", tenant, got, want)
	}
	var idx [8]byte
	binary.BigEndian.PutUint64(idx[:], index)
	if err := b.Set(appliedKey, idx[:], nil); err != nil {
		return fmt.Errorf("storage: seed tenant %s: %w", tenant, err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return s.fail(fmt.Errorf("storage: seed tenant %s: commit: %w", tenant, err))
	}
	s.watches.all()
	s.evaluated = index
	s.applied.Store(index)
	return nil
}

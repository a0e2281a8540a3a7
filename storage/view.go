package storage

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// View reads one keyspace (a tenant's, or the platform's) through keys
// relative to it. A View is the only way to read tenant data: there is no
// call that takes a raw key.
type View struct {
	db     pebble.Reader // the store, or a pinned snapshot of it
	prefix Key
	watch  Watch // the tenant's counter in the store; zero for snapshots and Sys
}

// Tenant returns the read handle of one tenant's keyspace.
func (s *Store) Tenant(tenant string) View {
	if tenant == "" {
		panic("storage: empty tenant")
	}
	v := View{db: s.db, prefix: TenantPrefix(tenant)}
	if len(s.watches.prefixes) > 0 {
		v.watch = Watch{s.watches.counter(tenant)}
	}
	return v
}

// Sys returns the read handle of the platform keyspace.
func (s *Store) Sys() View { return View{db: s.db, prefix: sysKeyPrefix} }

// Sys returns the read handle of the platform keyspace as the snapshot
// holds it.
func (sn *Snapshot) Sys() View { return View{db: sn.snap, prefix: sysKeyPrefix} }

// Watch is the counter of writes to the store's watched keys of the view's
// tenant (Options.Watch); invalid for a snapshot's or the platform's view.
func (v View) Watch() Watch { return v.watch }

// Prefix identifies the keyspace the view reads (for caches keyed by it).
func (v View) Prefix() Key { return v.prefix }

// Get reads one record.
func (v View) Get(k Key) (Record, error) {
	b, err := getBytes(v.db, absolute(v.prefix, k))
	if err != nil {
		return Record{}, err
	}
	rec, err := decodeRecord(b)
	if err != nil {
		return Record{}, fmt.Errorf("storage: record %s: %w", k, err)
	}
	return rec, nil
}

// ScanOptions shape a Scan.
type ScanOptions struct {
	// After, when set, starts the scan strictly after this relative key (in
	// scan direction): the cursor of a paginated list.
	After Key
	// Reverse scans from the largest key down.
	Reverse bool
}

// ErrStop, returned by a Scan callback, ends the scan without an error.
var ErrStop = errors.New("stop scan")

// Scan calls fn for each record whose key lies under prefix, in key order
// (or reverse), with the key relative to the view; fn may keep the key. The
// Record's Value is only valid during the call.
func (v View) Scan(prefix Key, opts ScanOptions, fn func(k Key, r Record) error) error {
	lower := absolute(v.prefix, prefix)
	upper := Key(lower).PrefixEnd()
	if len(prefix) == 0 {
		upper = v.prefix.PrefixEnd()
	}
	it, err := v.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("storage: scan: %w", err)
	}
	defer it.Close()
	var ok bool
	switch {
	case opts.After != nil && opts.Reverse:
		ok = it.SeekLT(absolute(v.prefix, opts.After))
	case opts.After != nil:
		ok = it.SeekGE(absolute(v.prefix, opts.After))
		if ok && string(it.Key()) == string(absolute(v.prefix, opts.After)) {
			ok = it.Next()
		}
	case opts.Reverse:
		ok = it.Last()
	default:
		ok = it.First()
	}
	for ; ok; ok = step(it, opts.Reverse) {
		rec, err := decodeRecord(it.Value())
		if err != nil {
			return fmt.Errorf("storage: record %s: %w", Key(it.Key()), err)
		}
		// The callback owns the key (callers keep keys in commands and
		// cursors); only the value is borrowed from the iterator.
		rel := Key(bytes.Clone(it.Key()[len(v.prefix):]))
		if err := fn(rel, rec); err != nil {
			if errors.Is(err, ErrStop) {
				return nil
			}
			return err
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("storage: scan: %w", err)
	}
	return nil
}

func step(it *pebble.Iterator, reverse bool) bool {
	if reverse {
		return it.Prev()
	}
	return it.Next()
}

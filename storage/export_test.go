package storage

import "context"

// Hooks into the package's internals for the external tests.

// EncodeRecordForTest and DecodeRecordForTest expose the value envelope.
func EncodeRecordForTest(r Record) []byte { return encodeRecord(r) }

func DecodeRecordForTest(b []byte) (Record, error) { return decodeRecord(b) }

// QueueLen is how many proposals wait in the log's queue.
func (l *LocalLog) QueueLen() int { return len(l.in) }

// EvaluatedBatches counts the batches the log has made visible.
func (l *LocalLog) EvaluatedBatches() uint64 { return l.evaluated.Load() }

// Closing reports whether Close has been called.
func (l *LocalLog) Closing() bool {
	select {
	case <-l.quit:
		return true
	default:
		return false
	}
}

// DedupeEntries counts the dedupe table's rows: remembered request IDs and
// their index entries.
func (s *Store) DedupeEntries() (reqs, idx int, err error) {
	count := func(prefix Key) (int, error) {
		it, err := s.db.NewIter(nil)
		if err != nil {
			return 0, err
		}
		defer it.Close()
		n := 0
		for ok := it.SeekGE(prefix); ok && string(it.Key()) < string(prefix.PrefixEnd()); ok = it.Next() {
			n++
		}
		return n, it.Error()
	}
	if reqs, err = count(metaKey("req")); err != nil {
		return
	}
	idx, err = count(metaKey("reqidx"))
	return
}

// RawKeys lists every key of the store, absolute, in order.
func (s *Store) RawKeys() ([][]byte, error) {
	it, err := s.db.NewIter(nil)
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out [][]byte
	for ok := it.First(); ok; ok = it.Next() {
		out = append(out, append([]byte(nil), it.Key()...))
	}
	return out, it.Error()
}

// BugNoSync reports a build with the bug_nosync negative control.
const BugNoSync = bugNoSync

// Flush writes the memtable to an sstable (the S2 test crashes during
// flushes and compactions too, not only with data in the WAL).
func (s *Store) Flush() error { return s.db.Flush() }

// Compact compacts the whole keyspace.
func (s *Store) Compact() error {
	return s.db.Compact(context.Background(), []byte{0}, []byte{0xff, 0xff}, false)
}

package storage

import (
	"encoding/binary"
	"fmt"
)

// RecordFormat is the version of the value envelope written by Apply.
const RecordFormat = 1

// Record is a stored value with its envelope decoded.
//
// On disk: [format byte][uvarint key ID][uvarint version][uvarint stamp][payload].
// The key ID names the data key that encrypts the payload (0 = plaintext), so
// per-workspace encryption can arrive without rewriting the format.
type Record struct {
	Value   []byte
	Version uint64
	Stamp   uint64
	KeyID   uint32
}

func encodeRecord(r Record) []byte {
	buf := make([]byte, 0, len(r.Value)+12)
	buf = append(buf, RecordFormat)
	buf = binary.AppendUvarint(buf, uint64(r.KeyID))
	buf = binary.AppendUvarint(buf, r.Version)
	buf = binary.AppendUvarint(buf, r.Stamp)
	return append(buf, r.Value...)
}

// decodeRecord parses an envelope. The returned Value aliases b.
func decodeRecord(b []byte) (Record, error) {
	if len(b) < 1 || b[0] != RecordFormat {
		return Record{}, fmt.Errorf("%w: record format", ErrCorrupt)
	}
	r := decoder{buf: b[1:]}
	keyID := r.uvarint()
	version := r.uvarint()
	stamp := r.uvarint()
	if r.err != nil || keyID > 1<<32-1 {
		return Record{}, fmt.Errorf("%w: record envelope", ErrCorrupt)
	}
	return Record{Value: r.buf, Version: version, Stamp: stamp, KeyID: uint32(keyID)}, nil
}

// counterValue reads a counter stored by OpAdd (an envelope whose payload is
// an 8-byte big-endian int64).
func counterValue(b []byte) (int64, uint64, error) {
	rec, err := decodeRecord(b)
	if err != nil {
		return 0, 0, err
	}
	if len(rec.Value) != 8 {
		return 0, 0, fmt.Errorf("%w: counter", ErrCorrupt)
	}
	return int64(binary.BigEndian.Uint64(rec.Value)), rec.Version, nil
}

func encodeCounter(v int64, version uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(v))
	return encodeRecord(Record{Value: b[:], Version: version})
}

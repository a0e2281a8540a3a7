package storage_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"testing"

	"github.com/teamflow/teamflow/storage"
)

// Native fuzz targets (RELIABILITY.md F2). Their seed corpora (the f.Add
// calls and testdata/fuzz/<Target>/) run in every plain `go test`.

func inRange(k, prefix storage.Key) bool {
	return bytes.Compare(k, prefix) >= 0 && bytes.Compare(k, prefix.PrefixEnd()) < 0
}

// FuzzTenantKey: whatever two tenant IDs and relative key bytes, a key of
// tenant A never falls inside tenant B's prefix range, tenant prefixes order
// like their IDs, and keys survive the Parts round trip.
func FuzzTenantKey(f *testing.F) {
	f.Add("ab", "abc", []byte("task"))
	f.Add("ab", "ab\x00", []byte{0x00, 0x01})
	f.Add("", "a", []byte{})
	f.Add("a\x00", "a", []byte{0xff, 0xff})
	f.Add("/", "//", []byte("a/b"))
	f.Add("\xff", "\xff\xff", []byte{0x00, 0xff, 0x00, 0x01})
	f.Add("a\x00\x01", "a", []byte{0x00, 0x01, 0x00, 0x01})
	f.Add("same", "same", []byte("x"))
	f.Fuzz(func(t *testing.T, a, b string, rel []byte) {
		pa, pb := storage.TenantPrefix(a), storage.TenantPrefix(b)
		ka := storage.Key(append(append([]byte{}, pa...), rel...))
		kb := storage.Key(append(append([]byte{}, pb...), rel...))
		if !inRange(ka, pa) {
			t.Fatalf("key %x of tenant %q outside its own range", ka, a)
		}
		if a != b {
			if inRange(ka, pb) {
				t.Fatalf("key %x of tenant %q inside the range of tenant %q", ka, a, b)
			}
			if inRange(kb, pa) {
				t.Fatalf("key %x of tenant %q inside the range of tenant %q", kb, b, a)
			}
		}
		if want, got := sign(bytes.Compare([]byte(a), []byte(b))), sign(bytes.Compare(pa, pb)); want != got {
			t.Fatalf("prefix order of %q, %q: %d, want %d", a, b, got, want)
		}

		k := storage.K(a, b, string(rel))
		parts, err := k.Parts()
		if err != nil || len(parts) != 3 || string(parts[0]) != a || string(parts[1]) != b || !bytes.Equal(parts[2], rel) {
			t.Fatalf("K(%q, %q, %x).Parts() = %q, %v", a, b, rel, parts, err)
		}
		// Arbitrary bytes: Parts never panics, and what it accepts is the
		// one canonical encoding of its parts.
		if p, err := storage.Key(rel).Parts(); err == nil {
			if !bytes.Equal(storage.K(strs(p)...), rel) {
				t.Fatalf("Parts(%x) = %q does not re-encode to the input", rel, p)
			}
		} else if !errors.Is(err, storage.ErrBadKey) {
			t.Fatalf("Parts(%x): %v", rel, err)
		}
		_ = storage.Key(rel).String()
	})
}

// fuzzReader turns fuzz bytes into the choices of a command generator.
type fuzzReader struct{ b []byte }

func (r *fuzzReader) u8() byte {
	if len(r.b) == 0 {
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *fuzzReader) u64() uint64 {
	var buf [8]byte
	n := int(r.u8() % 9)
	for i := 0; i < n; i++ {
		buf[7-i] = r.u8()
	}
	v := binary.BigEndian.Uint64(buf[:])
	switch r.u8() % 8 {
	case 0:
		return math.MaxUint64 - v%3
	case 1:
		return uint64(math.MaxInt64) + v%3
	}
	return v
}

func (r *fuzzReader) bytes() []byte {
	n := int(r.u8())
	switch n {
	case 255:
		n = 300 + int(r.u8())*4 // long fields
	case 254:
		return nil
	}
	out := make([]byte, n)
	for i := range out {
		out[i] = r.u8()
	}
	return out
}

func (r *fuzzReader) str() string { return string(r.bytes()) }

// command builds a Command holding only the fields its wire format carries.
func (r *fuzzReader) command() *storage.Command {
	c := &storage.Command{
		RequestID: r.str(),
		Tenant:    r.str(),
		Kind:      r.str(),
		Actor:     r.str(),
		At:        int64(r.u64()),
	}
	for n := int(r.u8() % 5); n > 0; n-- {
		c.Preconditions = append(c.Preconditions, storage.Precondition{
			Space: storage.Space(r.u8() % 2), Key: r.bytes(), Version: r.u64(),
		})
	}
	for n := int(r.u8() % 8); n > 0; n-- {
		op := storage.Op{Type: storage.OpType(1 + r.u8()%4), Space: storage.Space(r.u8() % 2), Key: r.bytes()}
		switch op.Type {
		case storage.OpPut:
			op.Value = r.bytes()
			op.Version = r.u64()
			op.Stamp = r.u64()
			op.KeyID = uint32(r.u64())
			op.KeyRef = uint16(r.u64())
			op.StampRef = uint16(r.u64())
		case storage.OpDeleteRange:
			op.End = r.bytes()
		case storage.OpAdd:
			op.Delta = int64(r.u64())
			if r.u8()%2 == 1 {
				op.Bounded = true
				op.Min = int64(r.u64())
				op.Max = int64(r.u64())
				op.Limit = r.str()
			}
		}
		c.Ops = append(c.Ops, op)
	}
	return c
}

// sameCommand compares commands, treating nil and empty alike.
func sameCommand(a, b *storage.Command) bool {
	if a.RequestID != b.RequestID || a.Tenant != b.Tenant || a.Kind != b.Kind || a.Actor != b.Actor || a.At != b.At ||
		len(a.Preconditions) != len(b.Preconditions) || len(a.Ops) != len(b.Ops) {
		return false
	}
	for i, p := range a.Preconditions {
		q := b.Preconditions[i]
		if p.Space != q.Space || !bytes.Equal(p.Key, q.Key) || p.Version != q.Version {
			return false
		}
	}
	for i, o := range a.Ops {
		p := b.Ops[i]
		if o.Type != p.Type || o.Space != p.Space || !bytes.Equal(o.Key, p.Key) || !bytes.Equal(o.End, p.End) ||
			!bytes.Equal(o.Value, p.Value) || o.Version != p.Version || o.Stamp != p.Stamp || o.KeyID != p.KeyID ||
			o.KeyRef != p.KeyRef || o.StampRef != p.StampRef || o.Delta != p.Delta || o.Bounded != p.Bounded ||
			o.Min != p.Min || o.Max != p.Max || o.Limit != p.Limit {
			return false
		}
	}
	return true
}

func seedCommands() []*storage.Command {
	return []*storage.Command{
		{},
		{RequestID: "r1", Tenant: "acme", Kind: "task.create", Actor: "u1", At: 1_700_000_000_000,
			Preconditions: []storage.Precondition{{Key: storage.K("task", "t1")}, {Space: storage.SpaceSys, Key: storage.K("ws", "acme"), Version: storage.AnyVersion}},
			Ops: []storage.Op{
				{Type: storage.OpAdd, Key: storage.K("ctr", "task"), Delta: 1},
				{Type: storage.OpPut, Key: storage.K("task", "t1"), Value: []byte(`{"title":"x"}`), Version: 1, StampRef: 1, KeyID: 7},
				{Type: storage.OpPut, Key: storage.K("ix", "num"), Value: []byte("t1"), Version: 1, KeyRef: 1},
				{Type: storage.OpAdd, Key: storage.K("ctr", "users"), Delta: -1, Bounded: true, Min: 0, Max: 10, Limit: "users"},
				{Type: storage.OpDelete, Key: storage.K("ix", "status", "open", "t1")},
				{Type: storage.OpDeleteRange, Key: storage.K("tmp"), End: storage.K("tmq")},
				{Type: storage.OpDeleteRange},
			}},
		{Tenant: "a\x00b", At: -1, Ops: []storage.Op{{Type: storage.OpAdd, Space: storage.SpaceSys, Key: storage.K("n"), Delta: math.MinInt64, Bounded: true, Min: math.MinInt64, Max: math.MaxInt64}}},
		{Ops: []storage.Op{{Type: storage.OpPut, Key: storage.K("x"), Version: math.MaxUint64, Stamp: math.MaxUint64, KeyID: math.MaxUint32, KeyRef: math.MaxUint16, StampRef: math.MaxUint16}}},
	}
}

// FuzzCommandCodec: decode(encode(x)) == x for commands built from the fuzz
// input; arbitrary bytes given to DecodeCommand give an error, never a panic,
// and what decodes re-encodes to something that decodes the same.
func FuzzCommandCodec(f *testing.F) {
	for _, c := range seedCommands() {
		f.Add(storage.EncodeCommand(c))
	}
	f.Add([]byte{})
	f.Add([]byte{storage.CommandVersion})
	f.Add([]byte{storage.CommandVersion + 1, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x04})
	f.Fuzz(func(t *testing.T, data []byte) {
		// Arbitrary bytes.
		c, err := storage.DecodeCommand(data)
		if err != nil {
			if !errors.Is(err, storage.ErrCorrupt) {
				t.Fatalf("DecodeCommand error %v is not ErrCorrupt", err)
			}
		} else {
			again, err := storage.DecodeCommand(storage.EncodeCommand(c))
			if err != nil || !sameCommand(c, again) {
				t.Fatalf("re-encoding a decoded command: %v\n%+v\n%+v", err, c, again)
			}
		}
		// A command generated from the bytes.
		r := &fuzzReader{b: data}
		want := r.command()
		enc := storage.EncodeCommand(want)
		got, err := storage.DecodeCommand(enc)
		if err != nil {
			t.Fatalf("decode(encode(%+v)): %v", want, err)
		}
		if !sameCommand(want, got) {
			t.Fatalf("decode(encode(x)) != x\nwant %+v\n got %+v", want, got)
		}
		if !bytes.Equal(storage.EncodeCommand(got), enc) {
			t.Fatal("encoding is not stable")
		}
		// Strict prefixes of a valid encoding are refused (never a panic).
		for _, cut := range []int{int(r.u8()), len(enc) / 2, len(enc) - 1, len(enc) - 2} {
			if cut < 0 || cut >= len(enc) {
				continue
			}
			if _, err := storage.DecodeCommand(enc[:cut]); err == nil {
				t.Fatalf("a %d-byte prefix of a %d-byte command decoded", cut, len(enc))
			}
		}
	})
}

// FuzzRecordDecode: the value envelope decodes arbitrary bytes without
// panicking, and encode/decode round-trips.
func FuzzRecordDecode(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{storage.RecordFormat})
	f.Add([]byte{storage.RecordFormat, 0, 1, 0})
	f.Add([]byte{storage.RecordFormat, 0, 1, 0, 'h', 'i'})
	f.Add([]byte{storage.RecordFormat, 0xff, 0xff, 0xff, 0xff, 0x10, 1, 1})
	f.Add([]byte{storage.RecordFormat, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 1})
	f.Add([]byte{2, 0, 1, 0})
	f.Add(storage.EncodeRecordForTest(storage.Record{Value: []byte("v"), Version: math.MaxUint64, Stamp: 3, KeyID: math.MaxUint32}))
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := storage.DecodeRecordForTest(data)
		if err != nil {
			if !errors.Is(err, storage.ErrCorrupt) {
				t.Fatalf("decode error %v is not ErrCorrupt", err)
			}
		} else {
			again, err := storage.DecodeRecordForTest(storage.EncodeRecordForTest(rec))
			if err != nil || !sameRecord(rec, again) {
				t.Fatalf("re-encoding %+v gives %+v, %v", rec, again, err)
			}
		}
		if err == nil {
			// Nothing is silently truncated: the key ID read is the key
			// ID on the wire.
			if v, n := binary.Uvarint(data[1:]); n <= 0 || v != uint64(rec.KeyID) {
				t.Fatalf("key ID %d on the wire decoded as %d", v, rec.KeyID)
			}
		}
		r := &fuzzReader{b: data}
		want := storage.Record{KeyID: uint32(r.u64()), Version: r.u64(), Stamp: r.u64(), Value: r.b}
		got, err := storage.DecodeRecordForTest(storage.EncodeRecordForTest(want))
		if err != nil || !sameRecord(want, got) {
			t.Fatalf("decode(encode(%+v)) = %+v, %v", want, got, err)
		}
	})
}

func sameRecord(a, b storage.Record) bool {
	return bytes.Equal(a.Value, b.Value) && a.Version == b.Version && a.Stamp == b.Stamp && a.KeyID == b.KeyID
}

// TestDecodeCommandRejects pins the refusals of the seed corpus: out-of-range
// fields are errors, not silent truncations; short input is an error, not a
// panic.
func TestDecodeCommandRejects(t *testing.T) {
	valid := storage.EncodeCommand(&storage.Command{RequestID: "r", Tenant: "t", Ops: []storage.Op{
		{Type: storage.OpPut, Key: storage.K("k"), Value: []byte("v"), Version: 1},
	}})
	if _, err := storage.DecodeCommand(valid); err != nil {
		t.Fatal(err)
	}
	// header: version, four empty strings, At 0, no preconditions
	head := []byte{1, 0, 0, 0, 0, 0, 0}
	op := func(tail ...byte) []byte { return append(append(append([]byte{}, head...), 1), tail...) }
	for name, b := range map[string][]byte{
		"empty":                  {},
		"unknown version":        {2, 0, 0, 0, 0, 0, 0, 0},
		"field past the end":     {1, 5, 'a', 'b'},
		"huge field":             {1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
		"huge count":             append(append([]byte{}, head[:6]...), 0xff, 0xff, 0xff, 0xff, 0x0f),
		"bad space":              op(byte(storage.OpDelete), 2, 1, 'k'),
		"bad precondition space": append(append([]byte{}, head[:6]...), 1, 2, 0, 0, 0),
		"bad op type":            op(9, 0, 1, 'k'),
		"op type zero":           op(0, 0, 1, 'k'),
		"bad bounded flag":       op(byte(storage.OpAdd), 0, 1, 'k', 2, 2),
		"key ID over uint32":     op(byte(storage.OpPut), 0, 1, 'k', 0, 1, 0, 0x80, 0x80, 0x80, 0x80, 0x10, 0, 0),
		"KeyRef over uint16":     op(byte(storage.OpPut), 0, 1, 'k', 0, 1, 0, 0, 0x80, 0x80, 0x04, 0),
		"StampRef over uint16":   op(byte(storage.OpPut), 0, 1, 'k', 0, 1, 0, 0, 0, 0x80, 0x80, 0x04),
		"trailing byte":          append(append([]byte{}, valid...), 0),
		"varint overflow":        {1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
	} {
		if c, err := storage.DecodeCommand(b); err == nil {
			t.Errorf("%s: decoded %+v", name, c)
		} else if !errors.Is(err, storage.ErrCorrupt) {
			t.Errorf("%s: %v is not ErrCorrupt", name, err)
		}
	}
}

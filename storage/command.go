package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// CommandVersion is the wire format version of an encoded Command. It is the
// first byte of every log entry; a node refuses entries of a version it does
// not know rather than guessing.
const CommandVersion = 1

// Space says which keyspace an op or precondition key is relative to.
type Space uint8

const (
	// SpaceTenant keys live under the command's tenant prefix.
	SpaceTenant Space = iota
	// SpaceSys keys are platform records (tenant registry, signing keys).
	SpaceSys
)

// OpType names what an Op does.
type OpType uint8

const (
	// OpPut writes Value at Key with record version Version and stamp Stamp
	// (or the result of op StampRef-1).
	OpPut OpType = iota + 1
	// OpDelete removes Key.
	OpDelete
	// OpDeleteRange removes every key in [Key, End).
	OpDeleteRange
	// OpAdd adds Delta to the counter at Key and fails the whole command with
	// a LimitError when the new value would leave [Min, Max] (when Bounded).
	// Its result is the new value. Allocating the next number of a sequence
	// is OpAdd with Delta 1.
	OpAdd
	// OpChain appends Value to the hash chain whose head is at Key: entry n
	// is stored at End + n with hash_n = SHA-256(hash_{n-1} || n || Value)
	// beside it, and the head moves to (n, hash_n). Its result is n. The
	// audit trail is such a chain: tamper-evident, and equal on replicas.
	OpChain
)

// AnyVersion in a Precondition asks only that the key exists.
const AnyVersion = math.MaxUint64

// Precondition is a version a key must have for the command to apply.
// Version 0 means the key must be absent.
type Precondition struct {
	Space   Space
	Key     Key
	Version uint64
}

// Op is one resolved write. Ops run in order inside one batch.
type Op struct {
	Type  OpType
	Space Space
	Key   Key
	End   Key // OpDeleteRange: exclusive end, relative like Key

	Value   []byte // OpPut payload
	Version uint64 // OpPut: the record version to store
	Stamp   uint64 // OpPut: a store-assigned number kept with the record
	KeyID   uint32 // OpPut: encryption key ID of Value; 0 = plaintext

	// KeyRef (1-based op index) appends that op's result to Key as a uint
	// component; StampRef stores that op's result as the record's stamp.
	// They let a record carry a number allocated by an earlier OpAdd of the
	// same command, so hot counters never conflict.
	KeyRef   uint16
	StampRef uint16

	Delta    int64 // OpAdd
	Bounded  bool  // OpAdd: enforce [Min, Max]
	Min, Max int64 // OpAdd bounds
	Limit    string
}

// Command is one entry of the log: resolved writes plus what they mean.
// Everything non-deterministic (IDs, times, hashes, model output) was decided
// before it was proposed.
type Command struct {
	RequestID     string // idempotency key: Apply skips an ID it has applied
	Tenant        string // "" for platform commands
	Kind          string // what happened, e.g. "task.create"
	Actor         string
	At            int64 // unix milliseconds, chosen by the proposer
	Preconditions []Precondition
	Ops           []Op
}

// Result is what Apply decided for one command.
type Result struct {
	Index     uint64  // log index of the entry
	Seq       uint64  // the tenant's event sequence after this command (0 for platform commands)
	Values    []int64 // per-op results (OpAdd), zero for other ops
	Err       error   // ErrConflict (as *ConflictError) or ErrLimit (as *LimitError); nothing was written
	Duplicate bool    // the RequestID had already been applied; Values and Err are the original ones
}

// ConflictError says which precondition failed.
type ConflictError struct {
	Key      string
	Expected uint64
	Actual   uint64
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("storage: conflict on %s: expected version %d, found %d", e.Key, e.Expected, e.Actual)
}

// Unwrap makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Unwrap() error { return ErrConflict }

// LimitError says which bounded counter refused the command.
type LimitError struct {
	Limit string // the name given by the proposer, e.g. "users"
	Max   int64
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("storage: limit %s (%d) reached", e.Limit, e.Max)
}

// Unwrap makes errors.Is(err, ErrLimit) true.
func (e *LimitError) Unwrap() error { return ErrLimit }

// ErrCorrupt reports bytes that do not decode.
var ErrCorrupt = errors.New("storage: corrupt encoding")

// limits of the codec, so that a hostile or damaged entry cannot make the
// decoder allocate without bound.
const (
	maxFieldLen = 64 << 20
	maxItems    = 1 << 20
)

// EncodeCommand serialises c in the versioned wire format.
func EncodeCommand(c *Command) []byte {
	w := encoder{buf: make([]byte, 0, 256)}
	w.byte(CommandVersion)
	w.str(c.RequestID)
	w.str(c.Tenant)
	w.str(c.Kind)
	w.str(c.Actor)
	w.varint(c.At)
	w.uvarint(uint64(len(c.Preconditions)))
	for _, p := range c.Preconditions {
		w.byte(byte(p.Space))
		w.bytes(p.Key)
		w.uvarint(p.Version)
	}
	w.uvarint(uint64(len(c.Ops)))
	for _, op := range c.Ops {
		w.byte(byte(op.Type))
		w.byte(byte(op.Space))
		w.bytes(op.Key)
		switch op.Type {
		case OpPut:
			w.bytes(op.Value)
			w.uvarint(op.Version)
			w.uvarint(op.Stamp)
			w.uvarint(uint64(op.KeyID))
			w.uvarint(uint64(op.KeyRef))
			w.uvarint(uint64(op.StampRef))
		case OpDeleteRange:
			w.bytes(op.End)
		case OpChain:
			w.bytes(op.End)
			w.bytes(op.Value)
		case OpAdd:
			w.varint(op.Delta)
			if op.Bounded {
				w.byte(1)
				w.varint(op.Min)
				w.varint(op.Max)
				w.str(op.Limit)
			} else {
				w.byte(0)
			}
		}
	}
	return w.buf
}

// DecodeCommand parses an entry written by EncodeCommand. Arbitrary bytes
// give an error, never a panic.
func DecodeCommand(b []byte) (*Command, error) {
	r := decoder{buf: b}
	if v := r.byte(); v != CommandVersion {
		if r.err != nil {
			return nil, r.err
		}
		return nil, fmt.Errorf("%w: command version %d", ErrCorrupt, v)
	}
	c := &Command{}
	c.RequestID = r.str()
	c.Tenant = r.str()
	c.Kind = r.str()
	c.Actor = r.str()
	c.At = r.varint()
	if n := r.count(); n > 0 {
		c.Preconditions = make([]Precondition, n)
		for i := range c.Preconditions {
			p := &c.Preconditions[i]
			p.Space = r.space()
			p.Key = r.bytes()
			p.Version = r.uvarint()
		}
	}
	if n := r.count(); n > 0 {
		c.Ops = make([]Op, n)
		for i := range c.Ops {
			op := &c.Ops[i]
			op.Type = OpType(r.byte())
			op.Space = r.space()
			op.Key = r.bytes()
			switch op.Type {
			case OpPut:
				op.Value = r.bytes()
				op.Version = r.uvarint()
				op.Stamp = r.uvarint()
				op.KeyID = uint32(r.bounded(math.MaxUint32))
				op.KeyRef = uint16(r.bounded(math.MaxUint16))
				op.StampRef = uint16(r.bounded(math.MaxUint16))
			case OpDelete:
			case OpDeleteRange:
				op.End = r.bytes()
			case OpChain:
				op.End = r.bytes()
				op.Value = r.bytes()
			case OpAdd:
				op.Delta = r.varint()
				switch r.byte() {
				case 0:
				case 1:
					op.Bounded = true
					op.Min = r.varint()
					op.Max = r.varint()
					op.Limit = r.str()
				default:
					r.fail()
				}
			default:
				r.fail()
			}
			if r.err != nil {
				return nil, r.err
			}
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.buf) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(r.buf))
	}
	return c, nil
}

type encoder struct{ buf []byte }

func (w *encoder) byte(b byte)      { w.buf = append(w.buf, b) }
func (w *encoder) uvarint(v uint64) { w.buf = binary.AppendUvarint(w.buf, v) }
func (w *encoder) varint(v int64)   { w.buf = binary.AppendVarint(w.buf, v) }
func (w *encoder) bytes(b []byte)   { w.uvarint(uint64(len(b))); w.buf = append(w.buf, b...) }
func (w *encoder) str(s string)     { w.uvarint(uint64(len(s))); w.buf = append(w.buf, s...) }
func (r *decoder) bounded(max uint64) uint64 {
	v := r.uvarint()
	if v > max {
		r.fail()
		return 0
	}
	return v
}

type decoder struct {
	buf []byte
	err error
}

func (r *decoder) fail() {
	if r.err == nil {
		r.err = ErrCorrupt
	}
	r.buf = nil
}

func (r *decoder) byte() byte {
	if r.err != nil || len(r.buf) < 1 {
		r.fail()
		return 0
	}
	b := r.buf[0]
	r.buf = r.buf[1:]
	return b
}

func (r *decoder) space() Space {
	s := Space(r.byte())
	if s > SpaceSys {
		r.fail()
	}
	return s
}

func (r *decoder) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.buf)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.buf = r.buf[n:]
	return v
}

func (r *decoder) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.buf)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.buf = r.buf[n:]
	return v
}

func (r *decoder) count() int {
	n := r.uvarint()
	if n > maxItems || n > uint64(len(r.buf)) {
		r.fail()
		return 0
	}
	return int(n)
}

func (r *decoder) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > maxFieldLen || n > uint64(len(r.buf)) {
		r.fail()
		return nil
	}
	out := make([]byte, n)
	copy(out, r.buf[:n])
	r.buf = r.buf[n:]
	return out
}

func (r *decoder) str() string { return string(r.bytes()) }

package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Key layout.
//
// Every stored key is a sequence of components. A component is its bytes with
// 0x00 escaped as 0x00 0xFF, followed by the terminator 0x00 0x01. The
// encoding is order-preserving (component by component) and prefix-free: the
// encoding of one component is never a proper prefix of the encoding of a
// different component, so the range of tenant "ab" can never contain a key of
// tenant "abc", whatever bytes a tenant ID holds.
//
// The first component names the space:
//
//	t / <tenant> / <kind> / <id> ...   tenant records and their secondary indexes
//	s / <kind> / <id> ...              platform records (tenant registry, keys, setup)
//	m / ...                            the store's own bookkeeping (applied index, dedupe)
//
// Commands carry keys relative to their space (a Key built with K); Apply adds
// the space and tenant prefix, so a command for one tenant cannot name a key of
// another.

const (
	escByte  = 0x00
	escEsc   = 0xFF
	escTerm  = 0x01
	spaceTen = "t"
	spaceSys = "s"
	spaceMet = "m"
)

// ErrBadKey reports a key that does not decode as a sequence of components.
var ErrBadKey = errors.New("storage: malformed key")

// Key is an encoded sequence of components. The zero Key is empty.
type Key []byte

// K builds a key from string components.
func K(parts ...string) Key {
	k := make(Key, 0, componentsLen(parts))
	for _, p := range parts {
		k = appendComponent(k, p)
	}
	return k
}

// componentsLen is the encoded length of parts without escapes (exact for
// almost every key), so building a key allocates once.
func componentsLen(parts []string) int {
	n := 0
	for _, p := range parts {
		n += len(p) + 2
	}
	return n
}

// Add returns a new key with the string components appended.
func (k Key) Add(parts ...string) Key {
	out := make(Key, len(k), len(k)+componentsLen(parts))
	copy(out, k)
	for _, p := range parts {
		out = appendComponent(out, p)
	}
	return out
}

// AddUint returns a new key with v appended as an 8-byte big-endian
// component, so that numeric components sort numerically.
func (k Key) AddUint(v uint64) Key {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	out := make(Key, len(k), len(k)+18)
	copy(out, k)
	return appendComponent(out, b[:])
}

// PrefixEnd returns the smallest key greater than every key that has k as a
// prefix of whole components, for use as the exclusive end of a range scan.
func (k Key) PrefixEnd() Key {
	// k ends with a terminator 0x00 0x01. Every key under k is k followed by
	// more bytes, so k with its last byte raised to 0x02 sorts after all of
	// them and before any key that is not under k.
	if len(k) == 0 {
		return nil
	}
	end := make(Key, len(k))
	copy(end, k)
	end[len(end)-1]++
	return end
}

// Parts decodes k into its components.
func (k Key) Parts() ([][]byte, error) {
	var parts [][]byte
	rest := []byte(k)
	for len(rest) > 0 {
		var part []byte
		for {
			i := bytes.IndexByte(rest, escByte)
			if i < 0 || i+1 >= len(rest) {
				return nil, ErrBadKey
			}
			part = append(part, rest[:i]...)
			switch rest[i+1] {
			case escEsc:
				part = append(part, escByte)
				rest = rest[i+2:]
				continue
			case escTerm:
				rest = rest[i+2:]
			default:
				return nil, ErrBadKey
			}
			break
		}
		if part == nil {
			part = []byte{}
		}
		parts = append(parts, part)
	}
	return parts, nil
}

// String renders the key as slash-separated components for logs and errors.
// Last decodes only the key's final component (the ID, in most index
// keys): a scan that needs just the ID skips decoding the whole key.
func (k Key) Last() (string, error) {
	start, pos := 0, 0
	for pos < len(k) {
		start = pos
		for {
			i := bytes.IndexByte(k[pos:], escByte)
			if i < 0 || pos+i+1 >= len(k) {
				return "", ErrBadKey
			}
			pos += i
			esc := k[pos+1]
			pos += 2
			if esc == escTerm {
				break
			}
			if esc != escEsc {
				return "", ErrBadKey
			}
		}
	}
	if pos == 0 {
		return "", ErrBadKey
	}
	last := k[start : pos-2]
	if bytes.IndexByte(last, escByte) < 0 {
		return string(last), nil
	}
	parts, err := k[start:].Parts()
	if err != nil {
		return "", err
	}
	return string(parts[0]), nil
}

func (k Key) String() string {
	parts, err := k.Parts()
	if err != nil {
		return fmt.Sprintf("%x", []byte(k))
	}
	var sb strings.Builder
	for i, p := range parts {
		if i > 0 {
			sb.WriteByte('/')
		}
		if len(p) == 8 && !printable(p) {
			fmt.Fprintf(&sb, "#%d", binary.BigEndian.Uint64(p))
			continue
		}
		fmt.Fprintf(&sb, "%s", strings.ToValidUTF8(string(p), "?"))
	}
	return sb.String()
}

func printable(p []byte) bool {
	for _, c := range p {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

func appendComponent[S ~string | ~[]byte](dst []byte, part S) []byte {
	start := 0
	for i := 0; i < len(part); i++ {
		if part[i] == escByte {
			dst = append(dst, part[start:i]...)
			dst = append(dst, escByte, escEsc)
			start = i + 1
		}
	}
	dst = append(dst, part[start:]...)
	return append(dst, escByte, escTerm)
}

// TenantPrefix returns the absolute prefix of a tenant's keyspace.
func TenantPrefix(tenant string) Key { return K(spaceTen, tenant) }

// sysKeyPrefix is the absolute prefix of the platform space, shared by every
// reader: clipped, so that appending to it always copies.
var sysKeyPrefix = slices.Clip(K(spaceSys))

func metaKey(parts ...string) Key { return K(append([]string{spaceMet}, parts...)...) }

// absolute joins a space prefix and a relative key.
func absolute(prefix, rel Key) []byte {
	out := make([]byte, 0, len(prefix)+len(rel))
	out = append(out, prefix...)
	return append(out, rel...)
}

// Uint decodes an 8-byte big-endian component written by AddUint.
func Uint(part []byte) (uint64, bool) {
	if len(part) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(part), true
}

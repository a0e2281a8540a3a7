package storage_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/teamflow/teamflow/internal/figures"
	"github.com/teamflow/teamflow/storage"
)

// trickyAlphabet makes random components collide, nest and escape often.
var trickyAlphabet = []byte{0x00, 0x00, 0x01, 0x02, 0xfe, 0xff, 0xff, '/', '/', 'a', 'b', 'c'}

// randComponent returns a random component: usually short and made of the
// tricky alphabet, sometimes empty, sometimes long, sometimes any byte.
func randComponent(r *rand.Rand) []byte {
	n := r.IntN(7)
	switch r.IntN(20) {
	case 0:
		n = 0
	case 1:
		n = 64 + r.IntN(300)
	}
	b := make([]byte, n)
	anyByte := r.IntN(4) == 0
	for i := range b {
		if anyByte {
			b[i] = byte(r.UintN(256))
		} else {
			b[i] = trickyAlphabet[r.IntN(len(trickyAlphabet))]
		}
	}
	return b
}

func randParts(r *rand.Rand, max int) [][]byte {
	n := r.IntN(max + 1)
	parts := make([][]byte, n)
	for i := range parts {
		parts[i] = randComponent(r)
	}
	return parts
}

func strs(parts [][]byte) []string {
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = string(p)
	}
	return out
}

// compareParts orders component sequences component by component; a
// sequence sorts before every longer sequence it is a prefix of.
func compareParts(a, b [][]byte) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if c := bytes.Compare(a[i], b[i]); c != 0 {
			return c
		}
	}
	return len(a) - len(b)
}

func sign(c int) int {
	switch {
	case c < 0:
		return -1
	case c > 0:
		return 1
	}
	return 0
}

func equalParts(a, b [][]byte) bool {
	return slices.EqualFunc(a, b, bytes.Equal)
}

func hasComponentPrefix(k, p [][]byte) bool {
	return len(p) <= len(k) && equalParts(k[:len(p)], p)
}

func TestKeyRoundTrip(t *testing.T) {
	seed := figures.Seed(t)
	r := rand.New(rand.NewPCG(uint64(seed), 1))
	for i := 0; i < 20000; i++ {
		parts := randParts(r, 6)
		k := storage.K(strs(parts)...)
		got, err := k.Parts()
		if err != nil {
			t.Fatalf("K(%q).Parts(): %v", parts, err)
		}
		if !equalParts(got, parts) {
			t.Fatalf("K(%q).Parts() = %q", parts, got)
		}
		if last, err := k.Last(); len(parts) > 0 && (err != nil || last != string(parts[len(parts)-1])) {
			t.Fatalf("K(%q).Last() = %q, %v", parts, last, err)
		}
		// Add builds the same bytes as K with all the parts.
		if len(parts) > 0 {
			head := storage.K(strs(parts[:1])...)
			if !bytes.Equal(head.Add(strs(parts[1:])...), k) {
				t.Fatalf("K(%q).Add(...) differs from K(...)", parts[:1])
			}
			// Add must not write into the receiver's spare capacity.
			before := append([]byte(nil), head...)
			_ = head.Add("x")
			_ = head.Add("y")
			if !bytes.Equal(before, head) {
				t.Fatal("Add changed its receiver")
			}
		}
		v := r.Uint64()
		ku := k.AddUint(v)
		up, err := ku.Parts()
		if err != nil || len(up) != len(parts)+1 {
			t.Fatalf("AddUint parts: %q, %v", up, err)
		}
		if got, ok := storage.Uint(up[len(up)-1]); !ok || got != v {
			t.Fatalf("Uint(AddUint(%d)) = %d, %v", v, got, ok)
		}
	}
	if p, err := storage.K().Parts(); err != nil || len(p) != 0 {
		t.Fatalf("empty key: %q, %v", p, err)
	}
	if p, err := storage.K("").Parts(); err != nil || len(p) != 1 || p[0] == nil || len(p[0]) != 0 {
		t.Fatalf("K(\"\").Parts() = %#v, %v", p, err)
	}
	if _, ok := storage.Uint([]byte{1, 2, 3}); ok {
		t.Fatal("Uint accepted 3 bytes")
	}
	if got := storage.K("task", "a\xffb").AddUint(7).String(); got != "task/a?b/#7" {
		t.Fatalf("String = %q", got)
	}
}

func TestKeyPartsRejectsMalformed(t *testing.T) {
	for _, raw := range []string{
		"a",                 // no terminator
		"\x00",              // lone escape
		"a\x00",             // escape at the end
		"a\x00\x02",         // unknown escape
		"a\x00\x01b",        // second component unterminated
		"a\x00\xff",         // escaped zero, then nothing
		"a\x00\x01\x00\x00", // bad escape in the second component
		"\x00\x01\x00\xfe\x00\x01",
	} {
		if p, err := storage.Key(raw).Parts(); !errors.Is(err, storage.ErrBadKey) {
			t.Errorf("Parts(%q) = %q, %v; want ErrBadKey", raw, p, err)
		}
		if l, err := storage.Key(raw).Last(); !errors.Is(err, storage.ErrBadKey) {
			t.Errorf("Last(%q) = %q, %v; want ErrBadKey", raw, l, err)
		}
		// String never panics and falls back to hex.
		_ = storage.Key(raw).String()
	}
}

func TestKeyOrderPreserved(t *testing.T) {
	seed := figures.Seed(t)
	r := rand.New(rand.NewPCG(uint64(seed), 2))
	for i := 0; i < 50000; i++ {
		a, b := randParts(r, 4), randParts(r, 4)
		if r.IntN(3) == 0 && len(a) > 0 {
			// share a head so the interesting comparisons happen deeper
			b = append(slices.Clone(a[:r.IntN(len(a)+1)]), b...)
		}
		if r.IntN(5) == 0 && len(a) > 0 && len(b) > 0 {
			// one component a byte-prefix of the other
			last := len(b) - 1
			b[last] = append(slices.Clone(a[len(a)-1]), b[last]...)
			a = append(slices.Clone(b[:last]), a[len(a)-1])
		}
		want := sign(compareParts(a, b))
		got := sign(bytes.Compare(storage.K(strs(a)...), storage.K(strs(b)...)))
		if got != want {
			t.Fatalf("order of %q vs %q: encoded %d, component-wise %d", a, b, got, want)
		}
	}
	// Numbers sort numerically.
	for i := 0; i < 10000; i++ {
		x, y := r.Uint64(), r.Uint64()
		if r.IntN(2) == 0 {
			y = x + uint64(r.IntN(3)) - 1
		}
		base := storage.K("ix", "num")
		got := sign(bytes.Compare(base.AddUint(x), base.AddUint(y)))
		want := 0
		if x < y {
			want = -1
		} else if x > y {
			want = 1
		}
		if got != want {
			t.Fatalf("AddUint order %d vs %d: %d", x, y, got)
		}
	}
}

func TestPrefixEndBoundsExactly(t *testing.T) {
	seed := figures.Seed(t)
	r := rand.New(rand.NewPCG(uint64(seed), 3))
	if storage.K().PrefixEnd() != nil {
		t.Fatal("PrefixEnd of the empty key is not nil")
	}
	for round := 0; round < 40; round++ {
		// A small alphabet of components so that keys share prefixes.
		comps := make([][]byte, 6)
		for i := range comps {
			comps[i] = randComponent(r)
		}
		type entry struct {
			parts [][]byte
			enc   storage.Key
		}
		var keys []entry
		for i := 0; i < 300; i++ {
			n := 1 + r.IntN(4)
			p := make([][]byte, n)
			for j := range p {
				p[j] = comps[r.IntN(len(comps))]
			}
			keys = append(keys, entry{p, storage.K(strs(p)...)})
		}
		for _, pre := range keys[:60] {
			p := pre.parts[:1+r.IntN(len(pre.parts))]
			lo := storage.K(strs(p)...)
			hi := lo.PrefixEnd()
			if bytes.Compare(lo, hi) >= 0 {
				t.Fatalf("PrefixEnd(%q) = %x not above %x", p, hi, lo)
			}
			for _, k := range keys {
				in := bytes.Compare(k.enc, lo) >= 0 && bytes.Compare(k.enc, hi) < 0
				if under := hasComponentPrefix(k.parts, p); in != under {
					t.Fatalf("key %q in [K(%q), PrefixEnd) = %v, under prefix = %v", k.parts, p, in, under)
				}
			}
		}
	}
}

// t3Tenants returns tenant IDs built to break a careless key layout: IDs
// that are byte-prefixes of each other, the empty ID, long IDs, and IDs made
// of 0x00, 0xff and '/'.
func t3Tenants(r *rand.Rand) []string {
	fixed := []string{
		"", "a", "ab", "abc", "ab/", "ab/c", "a/b", "/", "//", "a\x00", "a\x00b", "a\x00\x01",
		"a\x00\xff", "\x00", "\x00\x00", "\x00\x01", "\xff", "\xff\xff", "ab\xff", "ab\x00",
		"t", "s", "m", "~seq", strings.Repeat("x", 1024), strings.Repeat("x", 1023),
		strings.Repeat("\x00", 300), strings.Repeat("\xff", 300),
	}
	seen := map[string]bool{}
	var out []string
	for _, s := range fixed {
		seen[s] = true
		out = append(out, s)
	}
	for len(out) < 48 {
		var s string
		if r.IntN(2) == 0 {
			// extend an existing tenant ID so it is a prefix of the new one
			base := out[r.IntN(len(out))]
			if len(base) > 64 {
				continue
			}
			s = base + string(trickyAlphabet[r.IntN(len(trickyAlphabet))])
		} else {
			s = string(randComponent(r))
		}
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// TestT3TenantKeyProperty is RELIABILITY.md T3: 100,000 random keys written
// through Apply for tenants whose IDs are prefixes of each other; a scan
// through one tenant's View never returns another tenant's key.
func TestT3TenantKeyProperty(t *testing.T) {
	seed := figures.Seed(t)
	r := rand.New(rand.NewPCG(uint64(seed), 4))
	const totalKeys = 100_000
	tenants := t3Tenants(r)

	prefixPairs := 0
	for _, a := range tenants {
		for _, b := range tenants {
			if a != b && strings.HasPrefix(b, a) {
				prefixPairs++
			}
		}
	}

	type want struct {
		parts [][]byte // nil for a raw (non-canonical) relative key
	}
	expected := make(map[string]map[string]want) // tenant → relative key → want
	for _, tn := range tenants {
		expected[tn] = map[string]want{}
	}
	roundtripFailures := 0
	var cmds []*storage.Command
	cur := map[string]*storage.Command{}
	for i := 0; i < totalKeys; i++ {
		tn := tenants[r.IntN(len(tenants))]
		var rel storage.Key
		var parts [][]byte
		if r.IntN(20) == 0 {
			// A raw relative key: a command may carry any bytes.
			rel = storage.Key(randComponent(r))
			if len(rel) == 0 {
				rel = storage.Key{0xff}
			}
		} else {
			parts = randParts(r, 4)
			if len(parts) == 0 {
				parts = [][]byte{{}}
			}
			rel = storage.K(strs(parts)...)
			got, err := rel.Parts()
			if err != nil || !equalParts(got, parts) {
				roundtripFailures++
			}
		}
		if _, dup := expected[tn][string(rel)]; !dup || parts != nil {
			expected[tn][string(rel)] = want{parts: parts}
		}
		if tn == "" {
			continue // the empty ID is only checked at the codec level below
		}
		c := cur[tn]
		if c == nil || len(c.Ops) == 1000 {
			c = &storage.Command{Tenant: tn, Kind: "t3.fill"}
			cur[tn] = c
			cmds = append(cmds, c)
		}
		c.Ops = append(c.Ops, storage.Op{Type: storage.OpPut, Key: rel, Value: []byte(tn), Version: 1})
	}
	// Platform records too: they must never show up in a tenant's scan.
	sysCmd := &storage.Command{Kind: "t3.sys"}
	sysKeys := map[string]bool{}
	for i := 0; i < 500; i++ {
		k := storage.K(strs(randParts(r, 3))...)
		if len(k) == 0 {
			continue
		}
		sysKeys[string(k)] = true
		sysCmd.Ops = append(sysCmd.Ops, storage.Op{Type: storage.OpPut, Space: storage.SpaceSys, Key: k, Value: []byte("sys"), Version: 1})
	}
	cmds = append(cmds, sysCmd)

	s := openStore(t, t.TempDir(), storage.Options{})
	var next uint64 = 1
	for len(cmds) > 0 {
		n := min(len(cmds), 16)
		var entries []storage.Entry
		for _, c := range cmds[:n] {
			entries = append(entries, storage.Entry{Index: next, Data: storage.EncodeCommand(c)})
			next++
		}
		cmds = cmds[n:]
		res, err := s.Apply(entries)
		if err != nil {
			t.Fatal(err)
		}
		for _, rs := range res {
			if rs.Err != nil {
				t.Fatalf("entry %d refused: %v", rs.Index, rs.Err)
			}
		}
	}

	foreign, missing, scanned, scans := 0, 0, 0, 0
	seqKey := string(storage.TenantSeqKey())
	check := func(tn string, k storage.Key, rec storage.Record) {
		scanned++
		w, ok := expected[tn][string(k)]
		if string(k) == seqKey && len(expected[tn]) > 0 {
			return
		}
		if !ok || string(rec.Value) != tn {
			foreign++
			if foreign < 5 {
				t.Errorf("tenant %q scan returned %x (value %q)", tn, []byte(k), rec.Value)
			}
			return
		}
		if w.parts != nil {
			got, err := k.Parts()
			if err != nil || !equalParts(got, w.parts) {
				roundtripFailures++
			}
		}
	}
	for _, tn := range tenants {
		if tn == "" {
			continue
		}
		v := s.Tenant(tn)
		seen := 0
		var order []string
		scans++
		err := v.Scan(nil, storage.ScanOptions{}, func(k storage.Key, rec storage.Record) error {
			check(tn, k, rec)
			if _, ok := expected[tn][string(k)]; ok {
				seen++
			}
			order = append(order, string(k))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		missing += len(expected[tn]) - seen
		if !sort.StringsAreSorted(order) {
			t.Errorf("tenant %q: scan out of order", tn)
		}

		// Reverse scan and paginated scans give the same keys.
		var rev []string
		scans++
		if err := v.Scan(nil, storage.ScanOptions{Reverse: true}, func(k storage.Key, rec storage.Record) error {
			check(tn, k, rec)
			rev = append(rev, string(k))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		slices.Reverse(rev)
		if !slices.Equal(rev, order) {
			t.Errorf("tenant %q: reverse scan differs from forward scan", tn)
		}
		for _, reverse := range []bool{false, true} {
			var paged []string
			var after storage.Key
			for pages := 0; ; pages++ {
				if pages > len(order)/97+2 {
					t.Errorf("tenant %q: pagination does not end", tn)
					break
				}
				n := 0
				scans++
				err := v.Scan(nil, storage.ScanOptions{After: after, Reverse: reverse}, func(k storage.Key, rec storage.Record) error {
					check(tn, k, rec)
					if n == 97 {
						return storage.ErrStop
					}
					n++
					paged = append(paged, string(k))
					after = append(storage.Key{}, k...)
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				if n < 97 {
					break
				}
			}
			if reverse {
				slices.Reverse(paged)
			}
			if !slices.Equal(paged, order) {
				t.Errorf("tenant %q: paginated scan (reverse=%v) gives %d keys, want %d", tn, reverse, len(paged), len(order))
			}
		}

		// Scans under sub-prefixes return exactly the tenant's keys that
		// start with the prefix.
		for i := 0; i < 8 && len(order) > 0; i++ {
			k := storage.Key(order[r.IntN(len(order))])
			if string(k) == seqKey {
				continue
			}
			parts, err := k.Parts()
			if err != nil || len(parts) == 0 {
				continue
			}
			pre := storage.K(strs(parts[:1+r.IntN(len(parts))])...)
			wantN := 0
			for rel := range expected[tn] {
				if strings.HasPrefix(rel, string(pre)) {
					wantN++
				}
			}
			got := 0
			scans++
			err = v.Scan(pre, storage.ScanOptions{Reverse: i%2 == 1}, func(k storage.Key, rec storage.Record) error {
				check(tn, k, rec)
				if !bytes.HasPrefix(k, pre) {
					foreign++
				}
				got++
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if got != wantN {
				t.Errorf("tenant %q prefix %q: %d keys, want %d", tn, pre, got, wantN)
			}
		}
	}
	// The platform view sees the platform records and nothing else.
	sysSeen := 0
	scans++
	if err := s.Sys().Scan(nil, storage.ScanOptions{}, func(k storage.Key, rec storage.Record) error {
		if !sysKeys[string(k)] || string(rec.Value) != "sys" {
			foreign++
		}
		sysSeen++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	missing += len(sysKeys) - sysSeen

	// Codec level, with the empty tenant ID too: the range
	// [TenantPrefix(T), TenantPrefix(T).PrefixEnd()) holds T's keys only.
	type owned struct {
		abs   string
		owner string
	}
	var all []owned
	for tn, keys := range expected {
		for rel := range keys {
			all = append(all, owned{string(storage.TenantPrefix(tn)) + rel, tn})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].abs < all[j].abs })
	codecForeign := 0
	for _, tn := range tenants {
		lo, hi := string(storage.TenantPrefix(tn)), string(storage.TenantPrefix(tn).PrefixEnd())
		i := sort.Search(len(all), func(i int) bool { return all[i].abs >= lo })
		n := 0
		for ; i < len(all) && all[i].abs < hi; i++ {
			n++
			if all[i].owner != tn {
				codecForeign++
			}
		}
		if n != len(expected[tn]) {
			missing += len(expected[tn]) - n
		}
	}

	figures.Report(t, "T3", seed, []figures.Figure{
		figures.Eq("foreign_keys_returned", float64(foreign+codecForeign), 0),
		figures.Eq("roundtrip_failures", float64(roundtripFailures), 0),
		figures.Eq("missing_keys", float64(missing), 0),
		figures.Guard("keys_written", totalKeys, 100_000),
		figures.Guard("keys_scanned", float64(scanned), totalKeys),
		figures.Guard("tenants", float64(len(tenants)), 40),
		figures.Guard("tenant_prefix_pairs", float64(prefixPairs), 20),
		figures.Guard("scans", float64(scans), 100),
	})
}

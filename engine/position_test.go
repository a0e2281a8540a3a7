package engine

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestPositionAppendsStayShort(t *testing.T) {
	last := ""
	for i := range 100_000 {
		p := positionBetween(last, "")
		if !validPosition(p) || (last != "" && p <= last) {
			t.Fatalf("append %d: %q after %q", i, p, last)
		}
		last = p
	}
	if len(last) > 5 {
		t.Fatalf("after 100,000 appends the key is %q (%d bytes)", last, len(last))
	}
	first := ""
	for i := range 100_000 {
		p := positionBetween("", first)
		if !validPosition(p) || (first != "" && p >= first) {
			t.Fatalf("prepend %d: %q before %q", i, p, first)
		}
		first = p
	}
	if len(first) > 6 {
		t.Fatalf("after 100,000 prepends the key is %q", first)
	}
}

func TestPositionRandomInsertsKeepOrder(t *testing.T) {
	seed := uint64(rand.Int64())
	rng := rand.New(rand.NewPCG(seed, 1))
	var col []string
	for i := range 5000 {
		at := rng.IntN(len(col) + 1)
		var a, b string
		if at > 0 {
			a = col[at-1]
		}
		if at < len(col) {
			b = col[at]
		}
		p := positionBetween(a, b)
		if !validPosition(p) || (a != "" && p <= a) || (b != "" && p >= b) {
			t.Fatalf("seed %d insert %d: %q not between %q and %q", seed, i, p, a, b)
		}
		col = slices.Insert(col, at, p)
	}
	if !slices.IsSorted(col) {
		t.Fatalf("seed %d: column out of order", seed)
	}
}

func TestPositionTiesGoAfter(t *testing.T) {
	if p := positionBetween("a5", "a5"); p <= "a5" {
		t.Fatalf("tie gave %q", p)
	}
	if p := positionBetween("b00", "a5"); p <= "b00" {
		t.Fatalf("inverted bounds gave %q", p)
	}
}

func FuzzPositionBetween(f *testing.F) {
	f.Add("a0", "a1")
	f.Add("", "a0")
	f.Add("Zz", "a0V")
	f.Fuzz(func(t *testing.T, a, b string) {
		if (a != "" && !validPosition(a)) || (b != "" && !validPosition(b)) || (a != "" && b != "" && a >= b) {
			return
		}
		p := positionBetween(a, b)
		if !validPosition(p) || (a != "" && p <= a) || (b != "" && p >= b) {
			t.Fatalf("%q not strictly between %q and %q", p, a, b)
		}
	})
}

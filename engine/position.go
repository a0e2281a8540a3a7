package engine

import "strings"

// Kanban positions are fractional indexes: strings that compare
// lexicographically, so a card moves by getting one new key between its
// neighbours and no other card is renumbered.
//
// A key is an integer part followed by an optional fraction. The integer's
// first character says its sign and length: 'a'..'z' is a non-negative
// integer of 1..26 base-62 digits, 'A'..'Z' a negative one of 26..1 digits,
// so integers of every length sort correctly as strings. Appending to the end
// of a column increments the integer (keys grow with the logarithm of the
// column's length, not linearly); inserting between two neighbours with
// the same integer extends the fraction. A fraction never ends with the zero
// digit, so there is always room before any key.

const posDigits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

const posZero = "a0"

func posDigit(c byte) int { return strings.IndexByte(posDigits, c) }

// intLen is the length of the integer part announced by head.
func intLen(head byte) int {
	switch {
	case head >= 'a' && head <= 'z':
		return int(head-'a') + 2
	case head >= 'A' && head <= 'Z':
		return int('Z'-head) + 2
	}
	return 0
}

// splitPosition separates the integer and fraction parts; ok is false for
// a string that is not a position.
func splitPosition(p string) (intPart, frac string, ok bool) {
	if p == "" {
		return "", "", false
	}
	n := intLen(p[0])
	if n == 0 || len(p) < n {
		return "", "", false
	}
	for i := 1; i < len(p); i++ {
		if posDigit(p[i]) < 0 {
			return "", "", false
		}
	}
	intPart, frac = p[:n], p[n:]
	if frac != "" && frac[len(frac)-1] == posDigits[0] {
		return "", "", false
	}
	return intPart, frac, true
}

// validPosition reports whether p is a key positionBetween could produce.
func validPosition(p string) bool {
	_, _, ok := splitPosition(p)
	return ok && len(p) <= 512 && p != smallestInt()
}

func smallestInt() string { return "A" + strings.Repeat(posDigits[:1], 26) }

// positionBetween returns a key strictly between a and b; a == "" means no
// lower bound and b == "" no upper bound. When a >= b (two concurrent moves
// chose the same slot) it returns a key after a; the index breaks the tie by
// task ID.
func positionBetween(a, b string) string {
	if a != "" && b != "" && a >= b {
		b = ""
	}
	if a != "" && !validPosition(a) {
		a = ""
	}
	if b != "" && !validPosition(b) {
		b = ""
	}
	switch {
	case a == "" && b == "":
		return posZero
	case a == "":
		ib, fb, _ := splitPosition(b)
		if ib == smallestInt() {
			return ib + fracMidpoint("", fb)
		}
		if fb != "" {
			return ib
		}
		d, _ := stepInt(ib, -1)
		if d == smallestInt() {
			// Nothing may sit at the bare smallest integer: keep room before.
			return d + fracMidpoint("", "")
		}
		return d
	case b == "":
		ia, fa, _ := splitPosition(a)
		if i, ok := stepInt(ia, +1); ok {
			return i
		}
		return ia + fracMidpoint(fa, "")
	}
	ia, fa, _ := splitPosition(a)
	ib, fb, _ := splitPosition(b)
	if ia == ib {
		return ia + fracMidpoint(fa, fb)
	}
	if i, ok := stepInt(ia, +1); ok && i < b {
		return i
	}
	return ia + fracMidpoint(fa, "")
}

// stepInt adds delta (±1) to an integer part; ok is false past the ends of
// the representable range.
func stepInt(x string, delta int) (string, bool) {
	head := x[0]
	digits := []byte(x[1:])
	last := len(posDigits) - 1
	carried := true
	for i := len(digits) - 1; i >= 0 && carried; i-- {
		d := posDigit(digits[i]) + delta
		switch {
		case d > last:
			digits[i] = posDigits[0]
		case d < 0:
			digits[i] = posDigits[last]
		default:
			digits[i] = posDigits[d]
			carried = false
		}
	}
	if !carried {
		return string(head) + string(digits), true
	}
	// The digits wrapped around: move to the next length.
	switch {
	case delta > 0 && head == 'Z':
		return posZero, true
	case delta > 0 && head == 'z':
		return "", false
	case delta > 0 && head >= 'a':
		return string(head+1) + string(digits) + posDigits[:1], true
	case delta > 0:
		return string(head+1) + string(digits[1:]), true
	case delta < 0 && head == 'a':
		return "Z" + posDigits[last:], true
	case delta < 0 && head == 'A':
		return "", false
	case delta < 0 && head > 'a':
		return string(head-1) + string(digits[1:]), true
	default:
		return string(head-1) + string(digits) + posDigits[last:], true
	}
}

// fracMidpoint returns a fraction strictly between a and b ("" for b means
// no upper bound), never ending with the zero digit.
func fracMidpoint(a, b string) string {
	if b != "" {
		n := 0
		for n < len(b) {
			ca := posDigits[0]
			if n < len(a) {
				ca = a[n]
			}
			if ca != b[n] {
				break
			}
			n++
		}
		if n > 0 {
			rest := ""
			if n < len(a) {
				rest = a[n:]
			}
			return b[:n] + fracMidpoint(rest, b[n:])
		}
	}
	da := 0
	if a != "" {
		da = posDigit(a[0])
	}
	db := len(posDigits)
	if b != "" {
		db = posDigit(b[0])
	}
	if db-da > 1 {
		return string(posDigits[(da+db)/2])
	}
	if b != "" && len(b) > 1 {
		return b[:1]
	}
	rest := ""
	if len(a) > 1 {
		rest = a[1:]
	}
	return string(posDigits[da]) + fracMidpoint(rest, "")
}

package engine

import "strings"

// Kanban positions are fractional indexes: strings over an ordered alphabet
// that compare lexicographically, so a card moves by getting one new key
// between its neighbours and no other card is renumbered. Keys never end
// with the smallest digit, so there is always room before any key.

const posDigits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

func posDigit(c byte) int { return strings.IndexByte(posDigits, c) }

// validPosition reports whether p is a key midpoint could have produced.
func validPosition(p string) bool {
	if p == "" || len(p) > 512 || p[len(p)-1] == posDigits[0] {
		return false
	}
	for i := 0; i < len(p); i++ {
		if posDigit(p[i]) < 0 {
			return false
		}
	}
	return true
}

// positionBetween returns a key strictly between a and b; a == "" means no
// lower bound and b == "" no upper bound. It requires a < b when both are set.
func positionBetween(a, b string) string {
	if b != "" && a >= b {
		// Equal neighbours (two concurrent moves picked the same key): place
		// after a; ties are broken by task ID in the index.
		b = ""
	}
	return midpoint(a, b)
}

func midpoint(a, b string) string {
	if b != "" {
		// Skip the common prefix (a is padded with the zero digit).
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
			return b[:n] + midpoint(rest, b[n:])
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
	// The first digits are consecutive.
	if b != "" && len(b) > 1 {
		return b[:1]
	}
	rest := ""
	if len(a) > 1 {
		rest = a[1:]
	}
	return string(posDigits[da]) + midpoint(rest, "")
}

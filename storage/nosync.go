//go:build !bug_nosync

package storage

// bugNoSync is the negative control of the power-loss test (RELIABILITY.md
// S2): built with -tags bug_nosync, Apply commits without fsync.
const bugNoSync = false

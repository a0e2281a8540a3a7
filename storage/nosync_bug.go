//go:build bug_nosync

package storage

// bugNoSync is the negative control of the power-loss test (RELIABILITY.md
// S2): this build commits every Apply batch with pebble.NoSync, so
// acknowledged writes can be lost on power loss. Never ship it.
const bugNoSync = true

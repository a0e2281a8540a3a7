//go:build failpoints

package failpoint

import (
	"fmt"
	"os"
	"slices"
	"sync"
)

var (
	mu    sync.Mutex
	armed string
	skip  int
)

// Arm makes the process exit at the (skip+1)th hit of point name.
func Arm(name string, skipHits int) error {
	if !slices.Contains(Points, name) {
		return fmt.Errorf("failpoint: no point %q", name)
	}
	mu.Lock()
	defer mu.Unlock()
	armed, skip = name, skipHits
	return nil
}

// Hit passes point name: the process exits here if it is armed and its
// skips are used up.
func Hit(name string) {
	mu.Lock()
	if armed != name {
		mu.Unlock()
		return
	}
	if skip > 0 {
		skip--
		mu.Unlock()
		return
	}
	fmt.Fprintf(os.Stderr, "failpoint %s: exiting\n", name)
	os.Exit(86)
}

//go:build failpoints

package failpoint

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
)

var (
	mu    sync.Mutex
	armed string
	skip  int
)

// A process started with TEAMFLOW_FAILPOINT=<name>[:<skip>] is armed from
// its first step: for the points a node reaches while it starts (a
// follower that restarts behind and is sent a snapshot).
func init() {
	v := os.Getenv("TEAMFLOW_FAILPOINT")
	if v == "" {
		return
	}
	name, n, _ := strings.Cut(v, ":")
	skip, _ := strconv.Atoi(n)
	if err := Arm(name, skip); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
}

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

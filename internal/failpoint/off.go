//go:build !failpoints

package failpoint

import "errors"

// Arm refuses: the points are not compiled in.
func Arm(string, int) error {
	return errors.New("failpoint: not compiled in (build with -tags failpoints)")
}

// Hit does nothing.
func Hit(string) {}

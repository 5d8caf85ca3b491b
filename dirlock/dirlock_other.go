//go:build !unix

package dirlock

import "time"

// Lock reports ErrUnsupported where flock does not exist.
func Lock(dir, name string, wait time.Duration) (release func(), err error) {
	return nil, ErrUnsupported
}

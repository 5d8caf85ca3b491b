// Package dirlock takes exclusive locks on files in a directory. A lock
// lasts until it is released or its process ends, a crash included, so
// it tells a live owner from a dead one: what a process that restarts
// after SIGKILL needs to know before it takes over what it left behind.
package dirlock

import "errors"

var (
	// ErrLocked is a lock another process (or another Lock of this one)
	// holds.
	ErrLocked = errors.New("locked by another process")
	// ErrUnsupported means the system has no file locks here.
	ErrUnsupported = errors.New("file locks are not supported on this system")
)

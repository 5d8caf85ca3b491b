//go:build unix

package dirlock

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Lock takes the lock file name in dir (made if missing) and returns the
// function that releases it. A holder that is letting go (a server of
// this process that just shut down releases its lock a moment later) is
// waited for up to wait; after that, ErrLocked.
func Lock(dir, name string, wait time.Duration) (release func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	// flock locks an open file, not a process: a second Lock in the same
	// process conflicts as well, which is what callers want.
	for deadline := time.Now().Add(wait); ; time.Sleep(50 * time.Millisecond) {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, ErrLocked
			}
			return nil, err
		}
	}
}

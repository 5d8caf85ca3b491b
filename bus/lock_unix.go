//go:build unix

package bus

import (
	"errors"
	"os"
	"syscall"
	"time"
)

// lockDir takes an exclusive lock on dir (a file in it), which the
// returned function releases. NATS does not lock its store: two servers
// on one store lose writes both confirmed. errLocked means another
// process holds it.
func lockDir(dir string) (func(), error) {
	f, err := os.OpenFile(dir+string(os.PathSeparator)+"bilibridge.lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	// A server of this process that just shut down releases its lock a
	// moment later: wait that long before calling the store taken.
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, errLocked
			}
			return nil, err
		}
	}
}

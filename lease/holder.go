package lease

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/uuid"

	"github.com/bilibridge/bilibridge/dirlock"
)

// Holder returns the name under which this process holds leases, and
// the function that gives it up. The name is kept in dir, so that a
// process restarted after a crash or SIGKILL recognises the leases its
// predecessor could not release and takes them back at once (Renew
// accepts a key that already names its holder) instead of waiting out
// their TTL.
//
// Only one live process may use a name, or two would hold one lease: the
// name is locked for as long as this process runs, and a lock dies with
// its process. A second process on the same dir (the lock is held), or a
// system without file locks, gets a fresh random name, as every process
// did before.
func Holder(dir string) (name string, release func(), err error) {
	unlock, err := dirlock.Lock(dir, "lease-holder.lock", 0)
	switch {
	case errors.Is(err, dirlock.ErrLocked), errors.Is(err, dirlock.ErrUnsupported):
		return uuid.NewString(), func() {}, nil
	case err != nil:
		return "", nil, fmt.Errorf("locking the lease holder's name in %s: %w", dir, err)
	}
	file := filepath.Join(dir, "lease-holder")
	if b, err := os.ReadFile(file); err == nil {
		if id, err := uuid.Parse(strings.TrimSpace(string(b))); err == nil {
			return id.String(), unlock, nil
		}
	}
	name = uuid.NewString()
	if err := os.WriteFile(file, []byte(name+"\n"), 0o600); err != nil {
		unlock()
		return "", nil, fmt.Errorf("saving the lease holder's name in %s: %w", dir, err)
	}
	return name, unlock, nil
}

package inbox

import (
	"strconv"
	"strings"
	"sync"
	"time"
)

// limiter counts sign-in attempts per member name and per client address:
// after perName failures for a name (or perClient from an address) within
// window, further tries wait until the oldest failure leaves the window.
// Per name, so that guessing one member's password from many addresses is
// slowed too; per address with a higher bound, so that one address trying
// many names is slowed, but the typos of one member do not lock out the
// team behind a reverse proxy (where every client has its address).
//
// An attempt counts as a failure from the moment it is let through, and
// is taken back if it succeeds: guesses sent all at once cannot pass the
// check together before any of them has failed.
type limiter struct {
	perName, perClient int
	window             time.Duration
	now                func() time.Time

	mu       sync.Mutex
	failures map[string][]time.Time
}

// maxKeys bounds the addresses and names the limiter remembers.
const maxKeys = 10_000

func newLimiter(perName, perClient int, window time.Duration, now func() time.Time) *limiter {
	return &limiter{perName: perName, perClient: perClient, window: window, now: now, failures: map[string][]time.Time{}}
}

// take lets an attempt from client as name through, counted as a failure
// until done says otherwise, and returns 0; or it returns how long the
// client must wait.
func (l *limiter) take(client, name string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	keys := []string{"ip:" + client, "name:" + name}
	var longest time.Duration
	for i, k := range keys {
		bound := l.perClient
		if i == 1 {
			bound = l.perName
		}
		if fs := l.recent(k, now); len(fs) >= bound {
			longest = max(longest, fs[0].Add(l.window).Sub(now))
		}
	}
	if longest > 0 {
		return longest
	}
	for _, k := range keys {
		l.failures[k] = append(l.failures[k], now)
	}
	l.bound(now)
	return 0
}

// succeeded forgets the failures of client and name after a sign-in.
func (l *limiter) succeeded(client, name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.failures, "name:"+name)
	delete(l.failures, "ip:"+client)
}

// undecided takes back the attempt take counted, when the password could
// not be checked at all (the store was unavailable).
func (l *limiter) undecided(client, name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range []string{"ip:" + client, "name:" + name} {
		if fs := l.failures[k]; len(fs) > 0 {
			l.failures[k] = fs[:len(fs)-1]
		}
	}
}

// bound keeps the map under maxKeys: first what left the window, then
// addresses; a member's name is forgotten last, so that a flood of junk
// names from many addresses does not wipe the count of guesses at it.
func (l *limiter) bound(now time.Time) {
	if len(l.failures) <= maxKeys {
		return
	}
	for k := range l.failures {
		l.recent(k, now)
	}
	for _, prefix := range []string{"ip:", "name:"} {
		for k := range l.failures {
			if len(l.failures) <= maxKeys/2 {
				return
			}
			if strings.HasPrefix(k, prefix) {
				delete(l.failures, k)
			}
		}
	}
}

// recent is key's failures inside the window, oldest first.
func (l *limiter) recent(key string, now time.Time) []time.Time {
	fs := l.failures[key]
	i := 0
	for i < len(fs) && now.Sub(fs[i]) >= l.window {
		i++
	}
	fs = fs[i:]
	if len(fs) == 0 {
		delete(l.failures, key)
		return nil
	}
	l.failures[key] = fs
	return fs
}

func strconvSeconds(d time.Duration) string {
	return strconv.Itoa(int((d + time.Second - 1) / time.Second))
}

package inbox

import (
	"strconv"
	"sync"
	"time"
)

// limiter counts failed sign-ins per client address and per member name:
// after max failures within window, further tries wait until the oldest
// failure leaves the window. Per name, so that guessing one member's
// password from many addresses is slowed too.
type limiter struct {
	max    int
	window time.Duration
	now    func() time.Time

	mu       sync.Mutex
	failures map[string][]time.Time
}

func newLimiter(max int, window time.Duration, now func() time.Time) *limiter {
	return &limiter{max: max, window: window, now: now, failures: map[string][]time.Time{}}
}

// wait is how long a sign-in from client as name must wait; 0: go on.
func (l *limiter) wait(client, name string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var longest time.Duration
	for _, k := range []string{"ip:" + client, "name:" + name} {
		fs := l.recent(k, now)
		if len(fs) >= l.max {
			longest = max(longest, fs[0].Add(l.window).Sub(now))
		}
	}
	return longest
}

func (l *limiter) fail(client, name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for _, k := range []string{"ip:" + client, "name:" + name} {
		l.failures[k] = append(l.recent(k, now), now)
	}
	if len(l.failures) > 10_000 {
		// A flood of names: forget the oldest half rather than grow.
		for k := range l.failures {
			if len(l.failures) <= 5_000 {
				break
			}
			delete(l.failures, k)
		}
	}
}

// reset forgets the failures of a name after its member signed in.
func (l *limiter) reset(client, name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.failures, "name:"+name)
	delete(l.failures, "ip:"+client)
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

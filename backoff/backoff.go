// Package backoff holds the two shapes of waiting between attempts that
// bilibridge uses: exponential growth up to a cap, and jitter so that
// many waiters do not come back in step.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Exp is base doubled n-1 times (n ≥ 1 failures so far), at most max.
func Exp(base time.Duration, n int, max time.Duration) time.Duration {
	d := base
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}

// Jitter spreads d randomly by up to frac of itself either way: with
// frac 0.1, 10s becomes anything from 9s to 11s.
func Jitter(d time.Duration, frac float64) time.Duration {
	return d + time.Duration((rand.Float64()*2-1)*frac*float64(d))
}

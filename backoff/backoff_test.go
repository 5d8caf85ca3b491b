package backoff_test

import (
	"testing"
	"time"

	"github.com/bilibridge/bilibridge/backoff"
)

func TestExp(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want time.Duration
	}{
		{0, time.Second}, {1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second},
		{6, 32 * time.Second}, {7, time.Minute}, {100, time.Minute},
	} {
		if got := backoff.Exp(time.Second, tc.n, time.Minute); got != tc.want {
			t.Errorf("Exp(1s, %d, 1m) = %s, want %s", tc.n, got, tc.want)
		}
	}
}

func TestJitterStaysInItsBand(t *testing.T) {
	lo, hi := time.Hour, time.Duration(0)
	for range 10000 {
		d := backoff.Jitter(10*time.Second, 0.1)
		lo, hi = min(lo, d), max(hi, d)
	}
	if lo < 9*time.Second || hi > 11*time.Second {
		t.Fatalf("jitter of 10s by 10%% ranged %s..%s", lo, hi)
	}
	// It does spread: 10,000 draws cover most of the band.
	if hi-lo < 1500*time.Millisecond {
		t.Fatalf("jitter of 10s by 10%% ranged only %s..%s", lo, hi)
	}
}

package bridge

import (
	"testing"
	"time"
)

func TestRetryAfterUsesUpAttemptsOnlyAtTheSchedulesPace(t *testing.T) {
	b := &backoff{schedule: DefaultSchedule}
	attempt := 1
	var elapsed time.Duration
	// An endpoint that answers "Retry-After: 1" for ten minutes.
	for elapsed < 10*time.Minute {
		wait, counts := b.next(attempt, time.Second)
		if wait != time.Second {
			t.Fatalf("waited %s, not the 1s the endpoint asked for", wait)
		}
		elapsed += wait
		if counts {
			attempt++
		}
	}
	// 5s + 30s + 5min of the schedule fit in ten minutes: attempts 2, 3, 4.
	if attempt != 4 {
		t.Errorf("after ten minutes of retry-after: attempt %d, want 4", attempt)
	}
	// Without retry-after the schedule applies, one attempt per step.
	wait, counts := b.next(attempt, 0)
	if !counts || wait < DefaultSchedule[attempt-1]*8/10 || wait > DefaultSchedule[attempt-1]*12/10 {
		t.Errorf("scheduled wait %s (counts %v), want about %s", wait, counts, DefaultSchedule[attempt-1])
	}
}

// Package sinktest holds the conformance checks every sink's tests run
// (in the spirit of Alertmanager's notify/test): that the sink's errors
// tell the runtime the right thing (retry, after how long, give up,
// disable), that no secret reaches an error or the log, and that a batch
// delivered again posts nothing twice.
//
// A sink's test supplies the platform's side — a fake made to fail the
// way each case says — and the checks here are the same for all.
package sinktest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/sinks"
)

// Verdict is what the runtime concludes from a delivery's error.
type Verdict int

// The verdicts.
const (
	Delivered Verdict = iota // nil error
	Retry                    // retry, maybe after the platform's wait
	Permanent                // dead-letter: retrying cannot help
	Disable                  // stop the sink until restart
)

func (v Verdict) String() string {
	return [...]string{"delivered", "retry", "permanent", "disable"}[v]
}

// Case is one answer of the platform and the verdict it must give.
type Case struct {
	Name string
	// Fail makes the platform fail the next delivery the way this case
	// says; nil means it answers normally.
	Fail func()
	Want Verdict
	// RetryAfter is the wait the platform asked for (with Want Retry):
	// the error must carry exactly it.
	RetryAfter time.Duration
}

// Subject is a sink under test.
type Subject struct {
	Sink sinks.Sink
	// Event returns an event to deliver, a new one (new id) each call.
	Event func() events.Event
	// Secrets must never appear in an error's text or in the log.
	Secrets []string
	// Log returns what the sink has logged so far.
	Log func() string
}

// Verdicts delivers one event per case, the platform failing as the case
// says, and checks the verdict of the error and that it names no
// secret; then it checks the log.
func Verdicts(t *testing.T, s Subject, cases []Case) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			if c.Fail != nil {
				c.Fail()
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := s.Sink.Deliver(ctx, s.Event())
			got, after := verdictOf(err)
			if got != c.Want {
				t.Fatalf("verdict %s (err %v), want %s", got, err, c.Want)
			}
			if c.Want == Retry && after != c.RetryAfter {
				t.Errorf("retry after %s, want %s (what the platform asked)", after, c.RetryAfter)
			}
			if err != nil {
				NoSecrets(t, "the error", err.Error(), s.Secrets)
			}
		})
	}
	if s.Log != nil {
		NoSecrets(t, "the log", s.Log(), s.Secrets)
	}
}

func verdictOf(err error) (Verdict, time.Duration) {
	if err == nil {
		return Delivered, 0
	}
	retry, after, disable := sinks.Verdict(err)
	switch {
	case disable:
		return Disable, 0
	case !retry:
		return Permanent, 0
	}
	return Retry, after
}

// NoSecrets fails t when text holds any of secrets.
func NoSecrets(t *testing.T, what, text string, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("%s holds a secret (%.4s…): %.300q", what, s, text)
		}
	}
}

// Batch is a sink that takes batches, with the means to count its posts.
type Batch struct {
	Sink sinks.Batcher
	// Events returns n events of one conversation, new ones each call.
	Events func(n int) []events.Event
	// Posted returns how many events reached the platform so far, each
	// counted once per post (a merged message counts its events).
	Posted func() int
	// FailAfter makes the platform fail every post after the next k.
	FailAfter func(k int)
	// Heal makes the platform answer normally again.
	Heal func()
}

// RedeliveredBatch delivers a batch twice, and a batch whose first
// delivery failed part-way then once more, and checks that every event
// reached the platform exactly once: the runtime redelivers batches after
// a crash or a failure, and a sink must be idempotent per event.
func RedeliveredBatch(t *testing.T, b Batch) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	before := b.Posted()
	evs := b.Events(3)
	if err := b.Sink.DeliverBatch(ctx, evs); err != nil {
		t.Fatalf("first delivery: %v", err)
	}
	if err := b.Sink.DeliverBatch(ctx, evs); err != nil {
		t.Fatalf("redelivery: %v", err)
	}
	if n := b.Posted() - before; n != len(evs) {
		t.Fatalf("a batch of %d delivered twice posted %d, want each event once", len(evs), n)
	}

	before = b.Posted()
	evs = b.Events(3)
	b.FailAfter(1)
	if err := b.Sink.DeliverBatch(ctx, evs); err == nil {
		t.Log("the batch went through in fewer posts than the failure allowed; the redelivery below still must post nothing twice")
	}
	b.Heal()
	if err := b.Sink.DeliverBatch(ctx, evs); err != nil {
		t.Fatalf("redelivery after a partial failure: %v", err)
	}
	if n := b.Posted() - before; n != len(evs) {
		t.Fatalf("a batch of %d that failed part-way and was redelivered posted %d, want each event once", len(evs), n)
	}
}

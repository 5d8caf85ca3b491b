// Package sinks defines what a destination of bilibridge events is: one
// small interface, and the error that tells the delivery runtime whether
// a retry can help. Retries, ordering, dead-lettering and metrics live
// once in the runtime (Runtime, in this package), not in each sink.
package sinks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bilibridge/bilibridge/events"
)

// Sink delivers events to one destination: a webhook endpoint, a Telegram
// chat, a Discord channel.
type Sink interface {
	// Name identifies the sink in consumer names, dead-letter subjects and
	// metrics. It must stay the same across restarts and be one NATS
	// subject token.
	Name() string
	// Deliver delivers one event. A nil error means delivered. Otherwise
	// the error is retried unless it is (or wraps) a *Error that says
	// Permanent.
	Deliver(ctx context.Context, ev events.Event) error
}

// Batcher is implemented by sinks that can deliver several events of a
// conversation at once (a chat that merges a backlog into fewer
// messages). The runtime uses it when a conversation has a backlog.
type Batcher interface {
	// DeliverBatch delivers evs: two or more consecutive events of one
	// conversation, in order. A nil error means all were delivered; an
	// error's verdict (see Verdict) applies to the whole batch. The sink
	// must be idempotent per event: a retried batch may hold events it
	// already posted, and they must not be posted again.
	DeliverBatch(ctx context.Context, evs []events.Event) error
}

// Describer is implemented by sinks that can say, for people, where they
// deliver: "webhook https://hooks.example.com/bili", "telegram chat
// -1001234567890". Logs and status use it; Name stays the stable id.
type Describer interface {
	Describe() string
}

// Describe says where sink delivers: its Describe, or its Name.
func Describe(sink Sink) string {
	if d, ok := sink.(Describer); ok {
		return d.Describe()
	}
	return sink.Name()
}

// Filter is implemented by sinks that want only some events.
type Filter interface {
	// Subjects returns the subject filters of the events the sink wants,
	// built with events.Subjects.
	Subjects(s events.Subjects) []string
}

// Error is a delivery failure with the sink's verdict on retrying.
type Error struct {
	Err error
	// Permanent means retrying the same event cannot succeed (a 4xx, a
	// deleted chat): the event is dead-lettered at once.
	Permanent bool
	// RetryAfter is how long the platform asked us to wait, or zero.
	RetryAfter time.Duration
	// Disable asks the runtime to stop delivering to this sink until
	// restart (an endpoint answered 410 Gone).
	Disable bool
}

func (e *Error) Error() string {
	switch {
	case e.Disable:
		return fmt.Sprintf("%v (sink disabled)", e.Err)
	case e.Permanent:
		return fmt.Sprintf("%v (permanent)", e.Err)
	case e.RetryAfter > 0:
		return fmt.Sprintf("%v (retry after %s)", e.Err, e.RetryAfter)
	}
	return e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Permanent marks err as not worth retrying.
func Permanent(err error) error { return &Error{Err: err, Permanent: true} }

// RetryAfter marks err as retryable after d (zero: the runtime's backoff).
func RetryAfter(err error, d time.Duration) error { return &Error{Err: err, RetryAfter: d} }

// Disabled marks err as a reason to stop delivering to the sink.
func Disabled(err error) error { return &Error{Err: err, Permanent: true, Disable: true} }

// Verdict reads err: whether a retry can help, after how long the platform
// asked for, and whether the sink should be disabled.
func Verdict(err error) (retry bool, after time.Duration, disable bool) {
	var e *Error
	if errors.As(err, &e) {
		return !e.Permanent, e.RetryAfter, e.Disable
	}
	return true, 0, false
}

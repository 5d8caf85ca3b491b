package bus

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bilibridge/bilibridge/events"
)

// Stored is an event as stored on a stream.
type Stored struct {
	Subject string
	Seq     uint64
	Event   events.Event
}

// ErrStop ends Read early without an error.
var ErrStop = errors.New("bus: stop reading")

// Read feeds fn, in stream order, the events on stream whose subject
// passes filters, from sequence start up to the end of the stream as it
// is when the read reaches it. A message that is not an event is skipped.
// fn returning ErrStop ends the read with a nil error; another error ends
// it with that error.
func Read(ctx context.Context, stream jetstream.Stream, filters []string, start uint64, fn func(Stored) error) error {
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: filters,
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    max(start, 1),
		// Gone soon after the read, not kept idle for the default 5 min.
		InactiveThreshold: 30 * time.Second,
	})
	if err != nil {
		return err
	}
	for ctx.Err() == nil {
		// FetchNoWait answers with what is there now: an empty batch is
		// the end of the stream.
		batch, err := cons.FetchNoWait(256)
		if err != nil {
			return err
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			meta, err := msg.Metadata()
			if err != nil {
				continue
			}
			if ev, err := events.Parse(msg.Data()); err == nil {
				err := fn(Stored{Subject: msg.Subject(), Seq: meta.Sequence.Stream, Event: ev})
				if errors.Is(err, ErrStop) {
					return nil
				}
				if err != nil {
					return err
				}
			}
			if meta.NumPending == 0 {
				return batch.Error()
			}
		}
		if err := batch.Error(); err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
	}
	return ctx.Err()
}

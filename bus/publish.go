package bus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bilibridge/bilibridge/events"
)

// Publisher publishes events to JetStream with the event id as
// Nats-Msg-Id, so a retry or a replay after a crash is dropped by the
// stream instead of delivered twice.
type Publisher struct {
	JS jetstream.JetStream
	// AttemptTimeout bounds one publish attempt: during a NATS failover
	// a publish can get no answer at all, and the retry (same id) is what
	// goes through. Default 3s.
	AttemptTimeout time.Duration
}

// Publish publishes ev on subject and returns once JetStream stored it (or
// recognised it as a duplicate). It retries until ctx ends.
func (p *Publisher) Publish(ctx context.Context, subject string, ev events.Event) error {
	data, err := ev.Marshal()
	if err != nil {
		return err
	}
	_, err = p.PublishRaw(ctx, subject, ev.ID, data, nil)
	return err
}

// PublishSeq is Publish that also returns the event's stream sequence
// (the first one's, when the event was a duplicate).
func (p *Publisher) PublishSeq(ctx context.Context, subject string, ev events.Event) (uint64, error) {
	data, err := ev.Marshal()
	if err != nil {
		return 0, err
	}
	ack, err := p.PublishRaw(ctx, subject, ev.ID, data, nil)
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

// ErrConflict is a conditional publish refused: something newer was
// published on the subject since the publisher looked.
var ErrConflict = errors.New("the subject has a newer event")

// PublishIfLast is PublishSeq on condition that the last event on subject
// is still the one at stream sequence last (0: none), so that a decision
// taken on a view of the subject is not published once something newer
// is there; ErrConflict when it is not.
func (p *Publisher) PublishIfLast(ctx context.Context, subject string, ev events.Event, last uint64) (uint64, error) {
	data, err := ev.Marshal()
	if err != nil {
		return 0, err
	}
	ack, err := p.PublishRaw(ctx, subject, ev.ID, data, nats.Header{jetstream.ExpectedLastSubjSeqHeader: []string{strconv.FormatUint(last, 10)}})
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
		return 0, ErrConflict
	}
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

// PublishRaw publishes data with msgID and extra headers, retrying on
// timeouts and missing responders until ctx ends.
func (p *Publisher) PublishRaw(ctx context.Context, subject, msgID string, data []byte, hdr nats.Header) (*jetstream.PubAck, error) {
	timeout := p.AttemptTimeout
	if timeout <= 0 {
		timeout = 3 * time.Second
	}
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	for k, v := range hdr {
		msg.Header[k] = v
	}
	wait := 100 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, timeout)
		ack, err := p.JS.PublishMsg(actx, msg, jetstream.WithMsgID(msgID))
		cancel()
		if err == nil {
			return ack, nil
		}
		if !retryablePublish(err) || ctx.Err() != nil {
			return nil, fmt.Errorf("publishing %s: %w", subject, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("publishing %s: %w", subject, err)
		case <-time.After(wait):
		}
		wait = min(wait*2, 2*time.Second)
	}
}

func retryablePublish(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, nats.ErrDisconnected)
}

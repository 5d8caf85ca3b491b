package bench

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bilibridge/bilibridge/bus"
	"github.com/bilibridge/bilibridge/events"
)

// rawMsg is one event as the bridge published it: the webhook body is
// the event's JSON, byte for byte what the poller put on the stream.
type rawMsg struct {
	subject, id string
	data        []byte
}

// Baseline is the raw JetStream loop over the backlog's payloads.
type Baseline struct {
	Events int
	Bytes  int64
	Wall   time.Duration // first publish to the last consumer ack
	CPU    time.Duration // this process (embedded server, publisher, consumer)
}

// baseline publishes msgs one by one, each waiting for its ack (as the
// poller does), to a fresh embedded JetStream set up as the bridge sets
// up its own (bus.Provision: stream BILI, file storage, duplicate
// window), while a durable pull consumer over the message subjects
// receives and acks each (plain Ack). It measures the first publish to
// the last ack.
func baseline(ctx context.Context, msgs []rawMsg) (Baseline, error) {
	b := Baseline{Events: len(msgs)}
	for _, m := range msgs {
		b.Bytes += int64(len(m.data))
	}
	dir, err := os.MkdirTemp("", "bilibridge-bench-raw-")
	if err != nil {
		return b, err
	}
	defer os.RemoveAll(dir)
	conn, err := bus.Connect(ctx, bus.NATSConfig{Listen: "off", DataDir: dir, Name: "bench baseline"})
	if err != nil {
		return b, err
	}
	defer conn.Close()
	subjects := events.Subjects{Prefix: "bili"}
	store, err := bus.Provision(ctx, conn.JS, bus.StoreConfig{Subjects: subjects, Replicas: 1, MaxAge: 720 * time.Hour})
	if err != nil {
		return b, err
	}
	cons, err := store.Events.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: "baseline", AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: "bili.*.msg.>",
		MaxAckPending: 1000,
	})
	if err != nil {
		return b, err
	}
	var n atomic.Int64
	done := make(chan struct{})
	p := proc{pid: "self"}
	cpu0, _ := p.cpu()
	start := time.Now()
	cc, err := cons.Consume(func(m jetstream.Msg) {
		_ = m.Ack()
		if n.Add(1) == int64(len(msgs)) {
			close(done)
		}
	})
	if err != nil {
		return b, err
	}
	defer cc.Stop()
	for _, m := range msgs {
		if _, err := conn.JS.PublishMsg(ctx, &nats.Msg{Subject: m.subject, Data: m.data}, jetstream.WithMsgID(m.id)); err != nil {
			return b, fmt.Errorf("baseline publish: %w", err)
		}
	}
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		return b, fmt.Errorf("baseline: %d of %d consumed after 5m", n.Load(), len(msgs))
	case <-ctx.Done():
		return b, ctx.Err()
	}
	b.Wall = time.Since(start)
	if cpu, err := p.cpu(); err == nil {
		b.CPU = cpu - cpu0
	}
	return b, nil
}

package sinks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bilibridge/bilibridge/bus"
	"github.com/bilibridge/bilibridge/bus/bustest"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/sinks"
	"github.com/bilibridge/bilibridge/sinks/webhook"
)

// The sink runtime benchmarks (issue 4, "Benchmark"): a real embedded
// JetStream over TCP (bustest), the real webhook sink signing every
// request, and a local receiver that verifies signatures and checks the
// order of each conversation. Run them with
//
//	go test ./bridge -run '^$' -bench Runtime -benchtime 1x -count 3

const (
	benchConvs  = 100    // conversations the events are spread over
	benchEvents = 20_000 // events per throughput run
	// benchSecret is a Standard Webhooks secret (32 bytes of key).
	benchSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw/Ahe2DK6n1Y="
	benchMsgs   = "bili.*.msg.>"
)

// benchReceiver is a webhook endpoint that answers 204, verifies each
// signature and checks that every conversation's msg_keys increase. The
// first problem it sees is kept and fails the benchmark.
type benchReceiver struct {
	srv     *httptest.Server
	secrets []webhook.Secret
	want    int           // requests to wait for
	done    chan struct{} // closed once want distinct events arrived

	mu      sync.Mutex
	last    map[uint64]uint64 // talker → last msg_key
	n       int               // distinct events received
	dups    int
	problem string
	at      map[string]time.Time // webhook-id → first receipt (when recording)
	conns   int                  // TCP connections accepted
}

func newBenchReceiver(b *testing.B, want int, record bool) *benchReceiver {
	b.Helper()
	secrets, err := webhook.ParseSecrets(benchSecret)
	if err != nil {
		b.Fatal(err)
	}
	r := &benchReceiver{secrets: secrets, want: want, done: make(chan struct{}), last: map[uint64]uint64{}}
	if record {
		r.at = make(map[string]time.Time, want)
	}
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(r.serve))
	r.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			r.mu.Lock()
			r.conns++
			r.mu.Unlock()
		}
	}
	r.srv.Start()
	b.Cleanup(r.srv.Close)
	return r
}

func (r *benchReceiver) serve(w http.ResponseWriter, req *http.Request) {
	now := time.Now()
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	var problem string
	var ev struct {
		ID   string `json:"id"`
		Data struct {
			Conversation struct {
				TalkerID uint64 `json:"talker_id,string"`
			} `json:"conversation"`
			Message struct {
				MsgKey uint64 `json:"msg_key,string"`
			} `json:"message"`
		} `json:"data"`
	}
	if err := webhook.Verify(r.secrets, req.Header, body, 0, now); err != nil {
		problem = "signature: " + err.Error()
	} else if err := json.Unmarshal(body, &ev); err != nil || ev.ID != req.Header.Get("webhook-id") {
		problem = fmt.Sprintf("body %q: %v", body, err)
	}
	talker, key := ev.Data.Conversation.TalkerID, ev.Data.Message.MsgKey
	r.mu.Lock()
	if problem == "" {
		switch last := r.last[talker]; {
		case key == last:
			r.dups++ // at-least-once: allowed, but counted
		case key < last:
			problem = fmt.Sprintf("conversation %d out of order: msg_key %d after %d", talker, key, last)
		default:
			r.last[talker] = key
			r.n++
			if r.at != nil {
				r.at[ev.ID] = now
			}
			if r.n == r.want {
				close(r.done)
			}
		}
	}
	if problem != "" && r.problem == "" {
		r.problem = problem
	}
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// wait waits for every event, failing on a problem or after timeout.
func (r *benchReceiver) wait(b *testing.B, timeout time.Duration) {
	b.Helper()
	select {
	case <-r.done:
	case <-time.After(timeout):
		r.mu.Lock()
		defer r.mu.Unlock()
		b.Fatalf("receiver: %d of %d events after %s (problem: %q)", r.n, r.want, timeout, r.problem)
	}
	r.check(b)
}

func (r *benchReceiver) check(b *testing.B) {
	b.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.problem != "" {
		b.Fatal("receiver: " + r.problem)
	}
}

func (r *benchReceiver) sink(b *testing.B, client *http.Client) *webhook.Sink {
	b.Helper()
	s, err := webhook.New(webhook.Config{URL: r.srv.URL, Secrets: r.secrets, HTTPClient: client,
		Timeout: 10 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// benchMsg is a message event ready to publish.
type benchMsg struct {
	subject, id string
	data        []byte
}

// benchMessage is the i-th event (i from 1): conversation (i-1)%100+1,
// msg_key and seqno i, so keys increase within every conversation.
func benchMessage(b *testing.B, i int) benchMsg {
	talker := uint64((i-1)%benchConvs + 1)
	key := uint64(i)
	ev, err := events.New(rtUID, events.TypeMessage, events.MessageID(rtUID, key), events.ConversationSubject(1, talker), time.Now(),
		events.MessageData{AccountUID: rtUID, Conversation: events.Conversation{SessionType: 1, TalkerID: talker, Kind: "user", Name: "talker " + strconv.FormatUint(talker, 10)},
			Message: events.Message{MsgKey: key, Seqno: key, Direction: "in", SenderUID: int64(talker), Timestamp: time.Now(), MsgType: 1,
				Kind: "text", Text: "benchmark message " + strconv.Itoa(i) + ": about as long as an ordinary direct message is", Status: "normal"}})
	if err != nil {
		b.Fatal(err)
	}
	data, err := ev.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	return benchMsg{subject: events.Subjects{}.Message(rtUID, 1, talker), id: ev.ID, data: data}
}

// publishAll stores msgs in the stream (async publish, then waits for
// every ack).
func publishAll(b *testing.B, js jetstream.JetStream, msgs []benchMsg) {
	b.Helper()
	for _, m := range msgs {
		if _, err := js.PublishMsgAsync(&nats.Msg{Subject: m.subject, Data: m.data}, jetstream.WithMsgID(m.id)); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		b.Fatal("publishing timed out")
	}
}

// pooledClient keeps a connection per concurrent conversation alive.
// http.DefaultTransport (what a webhook.Sink without HTTPClient uses)
// keeps only 2 idle connections per host, so with 100 conversations in
// flight most requests would open a new TCP connection.
func pooledClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 2 * benchConvs
	t.MaxIdleConnsPerHost = 2 * benchConvs
	return &http.Client{Transport: t}
}

// BenchmarkRuntimeThroughput: benchEvents events pre-published across 100
// conversations, delivered by the runtime through the real webhook sink
// to a local receiver that checks order. ns/op is one runtime run;
// "events/s" is its throughput. In the same iteration, over the same
// events in the same stream: "ack-events/s" is a plain JetStream pull
// consumer that only acks (the ceiling the issue asks to compare with);
// "post-events/s" is one consumer that POSTs each event with the same
// sink and acks, one event at a time (no runtime, no concurrency). The
// ratios are events/s divided by each.
func BenchmarkRuntimeThroughput(b *testing.B) {
	for _, c := range []struct {
		name   string
		client func() *http.Client
	}{
		{"client=default", func() *http.Client { return nil }},
		{"client=pooled", pooledClient},
	} {
		b.Run(c.name, func(b *testing.B) { benchThroughput(b, c.client) })
	}
}

func benchThroughput(b *testing.B, client func() *http.Client) {
	msgs := make([]benchMsg, benchEvents)
	for i := range msgs {
		msgs[i] = benchMessage(b, i+1)
	}
	var runtimeTook, ackTook, postTook time.Duration
	conns := 0
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		conn := bustest.StartServer(b).Connect(b)
		store := bustest.Provision(b, conn, time.Second)
		since := time.Now().Add(-time.Second)
		publishAll(b, conn.JS, msgs)

		ackTook += benchAckLoop(b, store.Events, len(msgs))

		rcv := newBenchReceiver(b, len(msgs), false)
		rt := sinks.NewRuntime(sinks.RuntimeConfig{Stream: store.Events, Publisher: &bus.Publisher{JS: conn.JS},
			Subjects: events.Subjects{}, Since: since})
		sink := rcv.sink(b, client())
		ctx, cancel := context.WithCancel(context.Background())
		result := make(chan error, 1)
		b.StartTimer()
		start := time.Now()
		go func() { result <- rt.Run(ctx, sink) }()
		rcv.wait(b, 2*time.Minute)
		took := time.Since(start)
		b.StopTimer()
		runtimeTook += took
		// Every event also acked: nothing left for the consumer.
		waitDrained(b, store.Events, sinks.ConsumerName(sink.Name()))
		cancel()
		if err := <-result; err != nil {
			b.Fatal(err)
		}
		rcv.mu.Lock()
		if rcv.dups > 0 {
			b.Logf("%d duplicate deliveries", rcv.dups)
		}
		conns += rcv.conns
		rcv.mu.Unlock()

		postTook += benchPostLoop(b, store.Events, len(msgs), client())
		b.StartTimer()
	}
	n := float64(b.N * len(msgs))
	rate := n / runtimeTook.Seconds()
	ackRate := n / ackTook.Seconds()
	postRate := n / postTook.Seconds()
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(ackRate, "ack-events/s")
	b.ReportMetric(rate/ackRate, "ratio-to-ack")
	b.ReportMetric(postRate, "post-events/s")
	b.ReportMetric(rate/postRate, "ratio-to-post")
	b.ReportMetric(float64(conns)/float64(b.N), "conns/op")
}

// benchAckLoop consumes n events with a plain pull consumer and acks each
// (Ack, not DoubleAck: the simplest loop), returning how long it took.
func benchAckLoop(b *testing.B, s jetstream.Stream, n int) time.Duration {
	b.Helper()
	ctx := context.Background()
	cons, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "bench_ack", FilterSubject: benchMsgs,
		AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 1000})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	got := 0
	start := time.Now()
	cc, err := cons.Consume(func(m jetstream.Msg) {
		if err := m.Ack(); err != nil {
			b.Error(err)
		}
		if got++; got == n {
			close(done)
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		b.Fatalf("ack loop: %d of %d", got, n)
	}
	took := time.Since(start)
	cc.Stop()
	waitDrained(b, s, "bench_ack")
	return took
}

// benchPostLoop consumes n events with a plain pull consumer and, one at
// a time, POSTs each with a webhook sink to a fresh checking receiver and
// acks it: what delivery costs without the runtime.
func benchPostLoop(b *testing.B, s jetstream.Stream, n int, client *http.Client) time.Duration {
	b.Helper()
	ctx := context.Background()
	rcv := newBenchReceiver(b, n, false)
	sink := rcv.sink(b, client)
	cons, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "bench_post", FilterSubject: benchMsgs,
		AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 1000})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	cc, err := cons.Consume(func(m jetstream.Msg) {
		ev, err := events.Parse(m.Data())
		if err == nil {
			err = sink.Deliver(ctx, ev)
		}
		if err != nil {
			b.Error(err)
		}
		_ = m.Ack()
	})
	if err != nil {
		b.Fatal(err)
	}
	rcv.wait(b, 5*time.Minute)
	took := time.Since(start)
	cc.Stop()
	return took
}

// waitDrained waits until consumer name has nothing pending or unacked.
func waitDrained(b *testing.B, s jetstream.Stream, name string) {
	b.Helper()
	bustest.Eventually(b, "consumer "+name+" drained", func() bool {
		c, err := s.Consumer(context.Background(), name)
		if err != nil {
			return false
		}
		info, err := c.Info(context.Background())
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0
	})
}

// BenchmarkRuntimeLatency: with the runtime already running (default
// config, webhook sink with its default client), one event every 10 ms
// (100 events/s) for 10 s per op, round robin over the 100
// conversations. Per event: the receiver's time of receipt minus the
// moment the publisher had JetStream's ack, i.e. what the runtime (pull
// delivery, dispatch, signing, the POST) adds on top of publishing.
func BenchmarkRuntimeLatency(b *testing.B) {
	const (
		perOp = 1000
		every = 10 * time.Millisecond
	)
	conn := bustest.StartServer(b).Connect(b)
	store := bustest.Provision(b, conn, time.Second)
	rcv := newBenchReceiver(b, b.N*perOp, true)
	sink := rcv.sink(b, nil)
	rt := sinks.NewRuntime(sinks.RuntimeConfig{Stream: store.Events, Publisher: &bus.Publisher{JS: conn.JS}, Subjects: events.Subjects{}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	result := make(chan error, 1)
	go func() { result <- rt.Run(ctx, sink) }()
	// The consumer exists before the first event (it would start there anyway).
	bustest.Eventually(b, "the sink's consumer", func() bool {
		_, err := store.Events.Consumer(ctx, sinks.ConsumerName(sink.Name()))
		return err == nil
	})
	msgs := make([]benchMsg, b.N*perOp)
	for i := range msgs {
		msgs[i] = benchMessage(b, i+1)
	}
	sent := make(map[string]time.Time, len(msgs))
	acked := make(map[string]time.Time, len(msgs))
	tick := time.NewTicker(every)
	defer tick.Stop()
	b.ResetTimer()
	for _, m := range msgs {
		<-tick.C
		sent[m.id] = time.Now()
		if _, err := conn.JS.PublishMsg(ctx, &nats.Msg{Subject: m.subject, Data: m.data}, jetstream.WithMsgID(m.id)); err != nil {
			b.Fatal(err)
		}
		acked[m.id] = time.Now()
	}
	rcv.wait(b, time.Minute)
	b.StopTimer()
	cancel()
	if err := <-result; err != nil {
		b.Fatal(err)
	}
	var fromAck, fromSend []time.Duration
	rcv.mu.Lock()
	for id, at := range rcv.at {
		fromAck = append(fromAck, at.Sub(acked[id]))
		fromSend = append(fromSend, at.Sub(sent[id]))
	}
	rcv.mu.Unlock()
	slices.Sort(fromAck)
	slices.Sort(fromSend)
	pct := func(lat []time.Duration, p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds())
	}
	// Added by the runtime: from the publisher holding the ack. It can be
	// negative: the runtime may deliver before the ack reaches the publisher.
	b.ReportMetric(pct(fromAck, 0.50), "p50-µs")
	b.ReportMetric(pct(fromAck, 0.99), "p99-µs")
	b.ReportMetric(float64(fromAck[len(fromAck)-1].Microseconds()), "max-µs")
	// End to end: from the publish call, the publish round trip included.
	b.ReportMetric(pct(fromSend, 0.99), "e2e-p99-µs")
}

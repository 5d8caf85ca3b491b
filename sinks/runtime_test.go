package sinks_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bilibridge/bilibridge/bus"
	"github.com/bilibridge/bilibridge/bus/bustest"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/sinks"
	"github.com/bilibridge/bilibridge/sinks/webhook"
)

const rtUID int64 = 425503913

// receiver is a webhook endpoint that answers with what answer says and
// records every request.
type receiver struct {
	mu     sync.Mutex
	got    []received
	answer func(id string, attempt int) (status int, header http.Header)
	srv    *httptest.Server
}

type received struct {
	id   string // webhook-id
	text string
	at   time.Time
}

func newReceiver(t *testing.T, answer func(id string, attempt int) (int, http.Header)) *receiver {
	t.Helper()
	r := &receiver{answer: answer}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		id := req.Header.Get("webhook-id")
		ev, err := events.Parse(mustRead(req))
		text := ""
		if err == nil {
			var d events.MessageData
			if ev.DecodeData(&d) == nil {
				text = d.Message.Text
			}
		}
		r.mu.Lock()
		attempt := 1
		for _, g := range r.got {
			if g.id == id {
				attempt++
			}
		}
		r.got = append(r.got, received{id: id, text: text, at: time.Now()})
		r.mu.Unlock()
		status, h := r.answer(id, attempt)
		for k, v := range h {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func mustRead(req *http.Request) []byte {
	b, _ := io.ReadAll(req.Body)
	return b
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

// count is how many requests carried webhook-id id.
func (r *receiver) count(id string) int {
	n := 0
	for _, g := range r.requests() {
		if g.id == id {
			n++
		}
	}
	return n
}

type rtRig struct {
	t     *testing.T
	srv   *bustest.Server
	conn  *bus.Conn
	store *bus.Store
	pub   *bus.Publisher
}

func newRTRig(t *testing.T) *rtRig {
	t.Helper()
	srv := bustest.StartServer(t)
	conn := srv.Connect(t)
	store := bustest.Provision(t, conn, time.Second)
	return &rtRig{t: t, srv: srv, conn: conn, store: store, pub: &bus.Publisher{JS: conn.JS}}
}

// publish publishes a text message event in conversation talker and
// returns its id.
func (r *rtRig) publish(talker uint64, key uint64, text string) string {
	r.t.Helper()
	ev, err := events.New(rtUID, events.TypeMessage, events.MessageID(rtUID, key), events.ConversationSubject(1, talker), time.Now(),
		events.MessageData{AccountUID: rtUID, Conversation: events.Conversation{SessionType: 1, TalkerID: talker, Kind: "user"},
			Message: events.Message{MsgKey: key, Direction: "in", Kind: "text", Text: text, Status: "normal"}})
	if err != nil {
		r.t.Fatal(err)
	}
	if err := r.pub.Publish(context.Background(), events.Subjects{}.Message(rtUID, 1, talker), ev); err != nil {
		r.t.Fatal(err)
	}
	return ev.ID
}

// run starts the runtime for a webhook sink to rcv; it stops at cleanup.
func (r *rtRig) run(rcv *receiver, mod func(*sinks.RuntimeConfig)) (stop func(), done <-chan error) {
	r.t.Helper()
	sink, err := webhook.New(webhook.Config{URL: rcv.srv.URL, Timeout: 2 * time.Second})
	if err != nil {
		r.t.Fatal(err)
	}
	cfg := sinks.RuntimeConfig{Stream: r.store.Events, Publisher: r.pub, Subjects: events.Subjects{},
		ProbeEvery: 100 * time.Millisecond, GiveUp: time.Minute, AckWait: time.Second}
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	result := make(chan error, 1)
	// Made here, not in the goroutine: a sink starts with the events
	// published after NewRuntime, and the test publishes right after run.
	rt := sinks.NewRuntime(cfg)
	go func() { result <- rt.Run(ctx, sink) }()
	// done reports the result to the test; stop waits for it.
	go func() { err := <-result; errc <- err; close(errc) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-errc
		})
	}
	r.t.Cleanup(stop)
	return stop, errc
}

func (r *rtRig) deadLetters() []events.DeadLetterData {
	var out []events.DeadLetterData
	for _, m := range bustest.StreamEvents(r.t, r.store.Events) {
		if m.Event.Type == events.TypeDeadLetter {
			var d events.DeadLetterData
			if err := m.Event.DecodeData(&d); err != nil {
				r.t.Fatal(err)
			}
			out = append(out, d)
		}
	}
	return out
}

func TestEndpointFailingThenSucceeding(t *testing.T) {
	r := newRTRig(t)
	rcv := newReceiver(t, func(id string, attempt int) (int, http.Header) {
		if attempt <= 2 {
			return 503, nil
		}
		return 204, nil
	})
	r.run(rcv, nil)
	id := r.publish(1, 1, "hello")
	bustest.Eventually(t, "three attempts", func() bool { return rcv.count(id) == 3 })
	bustest.Eventually(t, "the ack", func() bool { return pending(t, r, rcv) == 0 })
	if n := len(r.deadLetters()); n != 0 {
		t.Errorf("%d dead letters", n)
	}
	for _, g := range rcv.requests() {
		if g.id != id {
			t.Errorf("webhook-id %q differs from the event id %q", g.id, id)
		}
	}
}

// pending is the number of events the consumer of the webhook sink to
// rcv has not finished.
func pending(t *testing.T, r *rtRig, rcv *receiver) int {
	t.Helper()
	sink, _ := webhook.New(webhook.Config{URL: rcv.srv.URL})
	return r.unfinished(sink.Name())
}

// An event that keeps failing is dead-lettered once GiveUp has passed
// since its first failure, with the number of real attempts.
func TestDeadLetterAfterGiveUp(t *testing.T) {
	r := newRTRig(t)
	rcv := newReceiver(t, func(string, int) (int, http.Header) { return 500, nil })
	r.run(rcv, func(c *sinks.RuntimeConfig) { c.GiveUp = time.Second }) // ProbeEvery 100ms
	id := r.publish(1, 1, "doomed")
	bustest.Eventually(t, "a dead letter", func() bool { return len(r.deadLetters()) == 1 })
	d := r.deadLetters()[0]
	if d.Event.ID != id || !strings.Contains(d.Reason, "500") || !strings.Contains(d.Reason, "1s") {
		t.Errorf("dead letter %+v", d)
	}
	reqs := rcv.requests()
	if n := rcv.count(id); d.Attempts != n || n < 2 {
		t.Errorf("dead letter says %d attempts, the endpoint saw %d (want the same, at least 2)", d.Attempts, n)
	}
	if span := reqs[len(reqs)-1].at.Sub(reqs[0].at); span < 900*time.Millisecond {
		t.Errorf("gave up %s after the first failure, before GiveUp (1s)", span)
	}
	bustest.Eventually(t, "the ack", func() bool { return pending(t, r, rcv) == 0 })
	// The dead letter is on bili.<uid>.dead.<sink>.
	for _, m := range bustest.StreamEvents(t, r.store.Events) {
		if m.Event.Type == events.TypeDeadLetter && m.Subject != fmt.Sprintf("bili.%d.dead.%s", rtUID, d.Sink) {
			t.Errorf("dead letter on %s", m.Subject)
		}
	}
}

func TestPermanentFailureIsDeadLetteredAtOnce(t *testing.T) {
	r := newRTRig(t)
	rcv := newReceiver(t, func(string, int) (int, http.Header) { return 400, nil })
	r.run(rcv, nil)
	id := r.publish(1, 1, "bad")
	bustest.Eventually(t, "a dead letter", func() bool { return len(r.deadLetters()) == 1 })
	if n := rcv.count(id); n != 1 {
		t.Errorf("%d attempts for a 400, want 1", n)
	}
}

func TestGoneDisablesTheEndpoint(t *testing.T) {
	r := newRTRig(t)
	rcv := newReceiver(t, func(string, int) (int, http.Header) { return 410, nil })
	var disabled string
	var mu sync.Mutex
	_, done := r.run(rcv, func(c *sinks.RuntimeConfig) {
		c.Disabled = func(_ context.Context, sink string, err error) { mu.Lock(); disabled = sink; mu.Unlock() }
	})
	r.publish(1, 1, "first")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the runtime kept running after 410")
	}
	mu.Lock()
	if disabled == "" {
		t.Error("Disabled was not called")
	}
	mu.Unlock()
	r.publish(1, 2, "second")
	time.Sleep(200 * time.Millisecond) // nothing is consuming: nothing can arrive
	if n := len(rcv.requests()); n != 1 {
		t.Errorf("%d requests after 410, want 1", n)
	}
	if n := len(r.deadLetters()); n != 1 {
		t.Errorf("%d dead letters, want 1", n)
	}
}

// An event that fails on its own (others to the same endpoint succeed)
// keeps its conversation waiting, in order, and does not hold up the
// other conversations.
func TestOrderPerConversationWhileOthersFlow(t *testing.T) {
	r := newRTRig(t)
	var mu sync.Mutex
	failA1 := 6
	var a1 string
	rcv := newReceiver(t, func(id string, attempt int) (int, http.Header) {
		mu.Lock()
		defer mu.Unlock()
		if id == a1 && attempt <= failA1 {
			return 503, nil
		}
		return 200, nil
	})
	r.run(rcv, func(c *sinks.RuntimeConfig) { c.ProbeEvery, c.GiveUp = 300*time.Millisecond, time.Minute })
	mu.Lock()
	a1 = events.MessageID(rtUID, 101)
	mu.Unlock()
	r.publish(100, 101, "A1")
	r.publish(100, 102, "A2")
	r.publish(200, 201, "B1")
	r.publish(100, 103, "A3")
	r.publish(200, 202, "B2")
	r.publish(200, 203, "B3")
	bustest.Eventually(t, "everything", func() bool {
		n := 0
		for _, g := range rcv.requests() {
			if g.text != "" {
				n++
			}
		}
		return n == 12 // A1 seven times, then A2, A3, B1, B2, B3
	})
	var order []string
	var lastB, okA1 time.Time
	for _, g := range rcv.requests() {
		if g.text == "A1" {
			okA1 = g.at // the last A1 request is the one answered 200
		}
		if g.text == "B3" {
			lastB = g.at
		}
		order = append(order, g.text)
	}
	var a []string
	for _, s := range order {
		if s == "A2" || s == "A3" {
			a = append(a, s)
		}
	}
	if fmt.Sprint(a) != "[A2 A3]" {
		t.Errorf("conversation A out of order: %v", order)
	}
	// A2 only after A1 finally succeeded.
	for _, g := range rcv.requests() {
		if g.text == "A2" && g.at.Before(okA1) {
			t.Errorf("A2 delivered before A1 succeeded: %v", order)
		}
	}
	// B did not wait for A's retries.
	if !lastB.Before(okA1) {
		t.Errorf("conversation B waited for A: %v", order)
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	r := newRTRig(t)
	rcv := newReceiver(t, func(id string, attempt int) (int, http.Header) {
		if attempt == 1 {
			return 429, http.Header{"Retry-After": {"1"}}
		}
		return 200, nil
	})
	r.run(rcv, nil)
	id := r.publish(1, 1, "later")
	bustest.Eventually(t, "two attempts", func() bool { return rcv.count(id) == 2 })
	got := rcv.requests()
	// A lower bound, not a speed test: the platform asked for a second.
	if gap := got[1].at.Sub(got[0].at); gap < time.Second {
		t.Errorf("retried after %s, before the asked 1s", gap)
	}
}

func TestCrashAfterDeliveryRedeliversWithTheSameID(t *testing.T) {
	r := newRTRig(t)
	// The process that crashes has a NATS connection of its own, which
	// dies with it: the endpoint got the event, the ack never comes.
	crashing := r.srv.Connect(t)
	stream, err := crashing.JS.Stream(context.Background(), bus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	rcv := newReceiver(t, func(id string, attempt int) (int, http.Header) {
		if attempt == 1 {
			crashing.NC.Close()
		}
		return 200, nil
	})
	stop, _ := r.run(rcv, func(c *sinks.RuntimeConfig) { c.Stream = stream })
	id := r.publish(1, 1, "twice underneath")
	bustest.Eventually(t, "the first attempt", func() bool { return rcv.count(id) == 1 })
	stop()
	r.run(rcv, nil) // the restarted process
	bustest.Eventually(t, "redelivery", func() bool { return rcv.count(id) == 2 })
	for _, g := range rcv.requests() {
		if g.id != id {
			t.Errorf("webhook-id %q on redelivery, want %q", g.id, id)
		}
	}
}

// A graceful stop while a delivery is in flight lets it finish and acks
// it: the event is not delivered twice.
func TestGracefulStopDuringDeliveryDeliversOnce(t *testing.T) {
	r := newRTRig(t)
	var stopFirst func()
	var mu sync.Mutex
	rcv := newReceiver(t, func(id string, attempt int) (int, http.Header) {
		if attempt == 1 {
			mu.Lock()
			stop := stopFirst
			mu.Unlock()
			go stop()
			time.Sleep(300 * time.Millisecond)
		}
		return 200, nil
	})
	stop, _ := r.run(rcv, nil)
	mu.Lock()
	stopFirst = stop
	mu.Unlock()
	id := r.publish(1, 1, "once")
	bustest.Eventually(t, "the first attempt", func() bool { return rcv.count(id) == 1 })
	stop()
	r.run(rcv, nil) // the restarted process
	bustest.Eventually(t, "the consumer to be done", func() bool { return pending(t, r, rcv) == 0 })
	if n := rcv.count(id); n != 1 {
		t.Fatalf("delivered %d times across a graceful stop, want once", n)
	}
}

func TestDeletedConsumerIsRecreated(t *testing.T) {
	r := newRTRig(t)
	rcv := newReceiver(t, func(string, int) (int, http.Header) { return 204, nil })
	r.run(rcv, nil)
	first := r.publish(1, 1, "before")
	bustest.Eventually(t, "the first event", func() bool { return rcv.count(first) == 1 })
	sink, _ := webhook.New(webhook.Config{URL: rcv.srv.URL})
	if err := r.store.Events.DeleteConsumer(context.Background(), sinks.ConsumerName(sink.Name())); err != nil {
		t.Fatal(err)
	}
	second := r.publish(1, 2, "after")
	bustest.Eventually(t, "delivery after the consumer was deleted", func() bool { return rcv.count(second) >= 1 })
}

package sinks_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bilibridge/bilibridge/bus/bustest"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/sinks"
	"github.com/bilibridge/bilibridge/sinks/telegram"
	"github.com/bilibridge/bilibridge/sinks/telegram/telegramtest"
)

// runSink runs the runtime for any sink until the test ends.
func (r *rtRig) runSink(sink sinks.Sink, mod func(*sinks.RuntimeConfig)) {
	r.t.Helper()
	cfg := sinks.RuntimeConfig{Stream: r.store.Events, Publisher: r.pub, Subjects: events.Subjects{},
		ProbeEvery: 100 * time.Millisecond, GiveUp: time.Minute, AckWait: time.Second,
		Since: time.Now().Add(-time.Hour)}
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = sinks.NewRuntime(cfg).Run(ctx, sink)
	}()
	r.t.Cleanup(func() { cancel(); <-done })
}

// unfinished is the number of events sink's consumer has not finished.
func (r *rtRig) unfinished(sink string) int {
	c, err := r.store.Events.Consumer(context.Background(), sinks.ConsumerName(sink))
	if err != nil {
		return -1
	}
	info, err := c.Info(context.Background())
	if err != nil {
		return -1
	}
	return info.NumAckPending + int(info.NumPending)
}

// TestBacklogMergedIntoFewTelegramMessages: after downtime a conversation
// has 30 messages waiting; the Telegram sink gets them in batches and
// posts them, in order, in a handful of messages instead of 30.
func TestBacklogMergedIntoFewTelegramMessages(t *testing.T) {
	r := newRTRig(t)
	const chat int64 = -1001234567890
	fake := telegramtest.NewServer(t)
	fake.AddChat(telegramtest.Chat{ID: chat, Title: "inbox", IsForum: true})
	tg, err := telegram.New(telegram.Config{Token: fake.Token, ChatID: chat, APIURL: fake.URL, State: r.store.State, Records: r.store.Records,
		HTTPClient: fake.Client(), RatePerMinute: 60000, Burst: 100, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 30 {
		ids = append(ids, r.publish(7, uint64(1000+i), fmt.Sprintf("backlog #%02d", i)))
	}
	r.publish(8, 2000, "another conversation")
	r.runSink(tg, nil)
	bustest.Eventually(t, "the backlog delivered", func() bool { return r.unfinished(tg.Name()) == 0 })

	var all strings.Builder
	sent := fake.Sent(chat)
	t.Logf("31 events in %d Telegram messages", len(sent))
	for _, m := range sent {
		all.WriteString(m.Text + "\n")
	}
	// 31 events: the first of a conversation may go alone (its queue held
	// just it), the other 29 in two batches (MaxBatch 20), plus the other
	// conversation.
	if len(sent) > 5 {
		t.Errorf("%d Telegram messages for 31 events, want at most 5", len(sent))
	}
	text := all.String()
	last := -1
	for i := range 30 {
		at := strings.Index(text, fmt.Sprintf("backlog #%02d", i))
		if at < 0 || at < last {
			t.Fatalf("backlog #%02d missing or out of order in:\n%s", i, text)
		}
		last = at
	}
	if n := len(r.deadLetters()); n != 0 {
		t.Errorf("%d dead letters", n)
	}
	// Every event is recorded with the message it ended up in.
	for _, id := range ids {
		if _, err := r.store.Records.Get(context.Background(), "tg.msg."+fmt.Sprint(chat)+"."+id); err != nil {
			t.Errorf("no posted record for %s: %v", id, err)
		}
	}
}

// batchSink records what it was given; fail decides each call's error.
type batchSink struct {
	mu      sync.Mutex
	batches [][]string // texts, per call (a Deliver is a batch of one)
	fail    func(texts []string) error
}

func (s *batchSink) Name() string { return "batchtest" }

func (s *batchSink) Deliver(ctx context.Context, ev events.Event) error {
	return s.DeliverBatch(ctx, []events.Event{ev})
}

func (s *batchSink) DeliverBatch(_ context.Context, evs []events.Event) error {
	var texts []string
	for _, ev := range evs {
		var d events.MessageData
		_ = ev.DecodeData(&d)
		texts = append(texts, d.Message.Text)
	}
	s.mu.Lock()
	s.batches = append(s.batches, texts)
	s.mu.Unlock()
	return s.fail(texts)
}

func (s *batchSink) calls() [][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]string(nil), s.batches...)
}

// TestBatchPermanentFailureBlamesOnlyTheBadEvent: a batch refused for good
// is delivered again one event at a time, so only the bad event is
// dead-lettered, and the others arrive in order.
func TestBatchPermanentFailureBlamesOnlyTheBadEvent(t *testing.T) {
	r := newRTRig(t)
	sink := &batchSink{fail: func(texts []string) error {
		for _, s := range texts {
			if s == "bad" {
				return sinks.Permanent(errors.New("refused"))
			}
		}
		return nil
	}}
	for i, text := range []string{"a", "b", "bad", "c", "d"} {
		r.publish(7, uint64(i+1), text)
	}
	r.runSink(sink, nil)
	bustest.Eventually(t, "all done", func() bool { return r.unfinished(sink.Name()) == 0 })
	dead := r.deadLetters()
	if len(dead) != 1 || dead[0].Event.ID != events.MessageID(rtUID, 3) {
		t.Fatalf("dead letters %+v, want only the bad event", dead)
	}
	var delivered []string // by the calls that succeeded
	batched := false
	for _, c := range sink.calls() {
		batched = batched || len(c) > 1
		if !slices.Contains(c, "bad") {
			delivered = append(delivered, c...)
		}
	}
	if !batched {
		t.Error("no batch was tried")
	}
	if got := strings.Join(delivered, ""); got != "abcd" {
		t.Errorf("delivered one at a time: %v (calls %v)", delivered, sink.calls())
	}
}

// TestBatchRetriedThenDeadLettered: a batch that keeps failing is retried
// as a whole, then, GiveUp after its first failure, each of its events
// is dead-lettered with the number of real attempts.
func TestBatchRetriedThenDeadLettered(t *testing.T) {
	r := newRTRig(t)
	sink := &batchSink{fail: func([]string) error { return errors.New("down") }}
	var want []string
	for i := range 6 {
		want = append(want, r.publish(7, uint64(i+1), fmt.Sprint("m", i)))
	}
	r.runSink(sink, func(c *sinks.RuntimeConfig) { c.MaxBatch = 4; c.GiveUp = 500 * time.Millisecond })
	bustest.Eventually(t, "six dead letters", func() bool { return len(r.deadLetters()) == 6 })
	bustest.Eventually(t, "all done", func() bool { return r.unfinished(sink.Name()) == 0 })
	// Each call was retried as it was, none larger than MaxBatch.
	tries := map[string]int{} // text → calls that carried it
	for _, c := range sink.calls() {
		if len(c) > 4 {
			t.Errorf("a batch of %d", len(c))
		}
		for _, text := range c {
			tries[text]++
		}
	}
	var got []string
	for _, d := range r.deadLetters() {
		got = append(got, d.Event.ID)
		var m events.MessageData
		if err := d.Event.DecodeData(&m); err != nil {
			t.Fatal(err)
		}
		if n := tries[m.Message.Text]; d.Attempts != n || n < 2 {
			t.Errorf("dead letter of %s says %d attempts; it was tried %d times", d.Event.ID, d.Attempts, n)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("dead letters %v, want %v in order", got, want)
	}
}

package sinks_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/bilibridge/bilibridge/bus/bustest"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/sinks"
)

// A dead letter is listed, and a replay delivers its event to its own
// sink once more, and to no other sink.
func TestDeadLetterReplay(t *testing.T) {
	r := newRTRig(t)
	var fixed atomic.Bool
	bad := newReceiver(t, func(string, int) (int, http.Header) {
		if fixed.Load() {
			return 200, nil
		}
		return 400, nil
	})
	good := newReceiver(t, func(string, int) (int, http.Header) { return 200, nil })
	r.run(bad, nil)
	r.run(good, nil)
	id := r.publish(1, 1, "refused")
	bustest.Eventually(t, "a dead letter", func() bool { return len(r.deadLetters()) == 1 })
	bustest.Eventually(t, "the good sink's delivery", func() bool { return good.count(id) == 1 })

	d := &sinks.DeadLetters{Stream: r.store.Events, Records: r.store.Records, Publisher: r.pub}
	ctx := context.Background()
	list, next, err := d.List(ctx, sinks.DeadLetterFilter{}, "", 10)
	if err != nil || len(list) != 1 || next != "" {
		t.Fatalf("List: %+v %q %v", list, next, err)
	}
	dl := list[0]
	if dl.Event.ID != id || dl.AccountUID != rtUID || dl.Replays != 0 || dl.Reason == "" {
		t.Fatalf("dead letter %+v", dl)
	}
	if l, _, _ := d.List(ctx, sinks.DeadLetterFilter{Sink: "another"}, "", 10); len(l) != 0 {
		t.Errorf("the filter by sink lets through %d", len(l))
	}

	fixed.Store(true)
	out, err := d.Replay(ctx, dl.ID, events.Actor{Member: "ana"})
	if err != nil || out.Replays != 1 || out.ReplayedBy == nil || out.ReplayedBy.Member != "ana" {
		t.Fatalf("Replay: %+v %v", out, err)
	}
	bustest.Eventually(t, "the replayed delivery", func() bool { return bad.count(id) == 2 })
	// The other sink had it already; a replay is not for it.
	if n := good.count(id); n != 1 {
		t.Errorf("the other sink got the event %d times, want 1", n)
	}
	if n := len(r.deadLetters()); n != 1 {
		t.Errorf("%d dead letters after a good replay, want still 1", n)
	}
	again, err := d.Get(ctx, dl.ID)
	if err != nil || again.Replays != 1 || again.LastReplay == nil {
		t.Errorf("after the replay: %+v %v", again, err)
	}
	if _, err := d.Replay(ctx, "999999", events.Actor{Service: true}); err != sinks.ErrNoDeadLetter {
		t.Errorf("replay of an unknown id: %v", err)
	}
	// A message that is no dead letter cannot be replayed.
	if _, err := d.Replay(ctx, "1", events.Actor{Service: true}); err != sinks.ErrNoDeadLetter {
		t.Errorf("replay of a message: %v", err)
	}
}

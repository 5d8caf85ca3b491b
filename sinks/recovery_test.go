package sinks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bilibridge/bilibridge/bus/bustest"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/kvkey"
	"github.com/bilibridge/bilibridge/sinks"
	"github.com/bilibridge/bilibridge/sinks/webhook"
)

// switchable is a webhook endpoint that is down (503) or up (200) as the
// test says, and records what it got in order.
type switchable struct {
	srv  *httptest.Server
	down atomic.Bool

	mu       sync.Mutex
	requests []switchReq
}

type switchReq struct {
	id, conv string
	ok       bool
	at       time.Time
}

func newSwitchable(t *testing.T) *switchable {
	t.Helper()
	s := &switchable{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		ev, err := events.Parse(mustRead(req))
		if err != nil {
			w.WriteHeader(400)
			return
		}
		ok := !s.down.Load()
		s.mu.Lock()
		s.requests = append(s.requests, switchReq{id: ev.ID, conv: ev.Subject, ok: ok, at: time.Now()})
		s.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *switchable) got() []switchReq {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// delivered returns, per conversation, the event ids answered 2xx in the
// order they first were.
func (s *switchable) delivered() map[string][]string {
	out := map[string][]string{}
	seen := map[string]bool{}
	for _, r := range s.got() {
		if r.ok && !seen[r.id] {
			seen[r.id] = true
			out[r.conv] = append(out[r.conv], r.id)
		}
	}
	return out
}

func (s *switchable) count(id string) int {
	n := 0
	for _, r := range s.got() {
		if r.id == id {
			n++
		}
	}
	return n
}

// runOn runs a runtime for a webhook sink to s; the returned stop waits
// for it to end.
func (r *rtRig) runOn(s *switchable, mod func(*sinks.RuntimeConfig)) (stop func()) {
	r.t.Helper()
	sink, err := webhook.New(webhook.Config{URL: s.srv.URL, Timeout: 2 * time.Second})
	if err != nil {
		r.t.Fatal(err)
	}
	cfg := sinks.RuntimeConfig{Stream: r.store.Events, Publisher: r.pub, Records: r.store.Records,
		ProbeEvery: 100 * time.Millisecond, GiveUp: time.Minute, AckWait: time.Second, Since: time.Now().Add(-time.Hour)}
	if mod != nil {
		mod(&cfg)
	}
	rt := sinks.NewRuntime(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = rt.Run(ctx, sink) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	r.t.Cleanup(stop)
	return stop
}

// A restart, or a lease handover, hands the held events back to
// JetStream: that must not count as a delivery attempt. With the old
// count (JetStream's delivery count) a dozen restarts during an outage
// dead-lettered an event on its first real failure.
func TestRestartsDoNotUseUpAttempts(t *testing.T) {
	r := newRTRig(t)
	ep := newSwitchable(t)
	ep.down.Store(true)
	id := r.publish(1, 1, "patient")
	const restarts = 12
	for i := range restarts {
		stop := r.runOn(ep, nil)
		// One real attempt per run, then a stop while the endpoint is down.
		bustest.Eventually(t, "an attempt", func() bool { return ep.count(id) >= i+1 })
		stop()
	}
	attempts := ep.count(id)
	// The failure record holds the real attempts and the first failure.
	sink, _ := webhook.New(webhook.Config{URL: ep.srv.URL})
	key := kvkey.Join("delivery", sink.Name(), id)
	e, err := r.store.Records.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("failure record %s: %v", key, err)
	}
	var rec struct {
		First    time.Time `json:"first_failure"`
		Attempts int       `json:"attempts"`
	}
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Attempts != attempts {
		t.Errorf("record says %d attempts, the endpoint saw %d", rec.Attempts, attempts)
	}
	if first := ep.got()[0].at; rec.First.Before(first.Add(-time.Second)) || rec.First.After(first.Add(time.Second)) {
		t.Errorf("record's first failure %s, the endpoint's first request %s", rec.First, first)
	}
	ep.down.Store(false)
	r.runOn(ep, nil)
	bustest.Eventually(t, "the delivery", func() bool { return len(ep.delivered()["1/1"]) == 1 })
	if n := len(r.deadLetters()); n != 0 {
		t.Fatalf("%d dead letters after %d restarts", n, restarts)
	}
	// Done: the record is gone.
	bustest.Eventually(t, "the record removed", func() bool {
		_, err := r.store.Records.Get(context.Background(), key)
		return err != nil
	})
}

// The give-up clock runs from the first failure, across restarts.
func TestGiveUpCountsFromTheFirstFailureAcrossRestarts(t *testing.T) {
	r := newRTRig(t)
	ep := newSwitchable(t)
	ep.down.Store(true)
	id := r.publish(1, 1, "doomed")
	const giveUp = 1500 * time.Millisecond
	mod := func(c *sinks.RuntimeConfig) { c.GiveUp = giveUp }
	for range 4 {
		stop := r.runOn(ep, mod)
		time.Sleep(400 * time.Millisecond)
		stop()
	}
	r.runOn(ep, mod)
	bustest.Eventually(t, "the dead letter", func() bool { return len(r.deadLetters()) == 1 })
	d := r.deadLetters()[0]
	if d.Event.ID != id || d.Attempts != ep.count(id) {
		t.Errorf("dead letter of %s with %d attempts; the endpoint saw %d", d.Event.ID, d.Attempts, ep.count(id))
	}
	reqs := ep.got()
	// Each restart would reset a clock kept in memory: 4×400ms plus the
	// last run's 1.5s. From the first failure it is 1.5s, so the
	// dead letter comes while the fifth run is still young.
	if span := reqs[len(reqs)-1].at.Sub(reqs[0].at); span > 3*time.Second {
		t.Errorf("dead-lettered %s after the first failure, want about %s", span, giveUp)
	}
}

// While an endpoint is down its conversations wait and one event at a
// time probes it, at an interval capped at ProbeEvery; once it answers,
// every waiting conversation resumes at once, in order.
func TestEndpointRecoveryResumesEveryConversation(t *testing.T) {
	r := newRTRig(t)
	ep := newSwitchable(t)
	ep.down.Store(true)
	const probeEvery = time.Second
	r.runOn(ep, func(c *sinks.RuntimeConfig) { c.ProbeEvery = probeEvery })
	want := map[string][]string{}
	for c := range 20 {
		talker := uint64(1000 + c)
		for k := range 3 {
			id := r.publish(talker, talker*10+uint64(k), fmt.Sprint("m", k))
			want[events.ConversationSubject(1, talker)] = append(want[events.ConversationSubject(1, talker)], id)
		}
	}
	bustest.Eventually(t, "the first failure", func() bool { return len(ep.got()) > 0 })
	outage := 3500 * time.Millisecond
	time.Sleep(outage)
	during := len(ep.got())
	ep.down.Store(false)
	back := time.Now()
	bustest.Eventually(t, "every conversation delivered", func() bool {
		d := ep.delivered()
		for c, ids := range want {
			if len(d[c]) != len(ids) {
				return false
			}
		}
		return true
	})
	last := ep.got()[len(ep.got())-1].at
	// Not hammered: the conversations' first tries, then about one probe
	// per interval (100ms, 200ms, 400ms, 800ms, 1s, 1s...).
	if during > 20+10 {
		t.Errorf("%d requests during a %s outage, want at most 30", during, outage)
	}
	// Behaviour, not speed: the return is noticed at the next probe, at
	// most ProbeEvery later, and then nothing waits for another probe.
	// The margin is for a loaded machine; the old per-event schedule
	// waited 30s here.
	if took := last.Sub(back); took > probeEvery+3*time.Second {
		t.Errorf("everything delivered %s after the endpoint came back, want within %s", took, probeEvery)
	}
	d := ep.delivered()
	for c, ids := range want {
		if fmt.Sprint(d[c]) != fmt.Sprint(ids) {
			t.Errorf("conversation %s delivered %v, want %v", c, d[c], ids)
		}
	}
	if n := len(r.deadLetters()); n != 0 {
		t.Errorf("%d dead letters", n)
	}
}

// Events held across a graceful stop, and across a lease handover
// between two bridges, come back in order: at a stop they are handed back
// in stream order, and a redelivery is queued by its stream sequence.
func TestOrderAcrossHandBack(t *testing.T) {
	for _, handover := range []string{"graceful stop", "lease handover"} {
		t.Run(handover, func(t *testing.T) {
			r := newRTRig(t)
			ep := newSwitchable(t)
			mod := func(c *sinks.RuntimeConfig) {
				c.Leases, c.LeaseTTL, c.AckWait = r.store.Leases, time.Second, 500*time.Millisecond
			}
			for round := range 20 {
				ep.down.Store(true)
				first := r.runOn(ep, mod)
				var second func()
				if handover == "lease handover" {
					second = r.runOn(ep, mod) // stands by
				}
				want := map[string][]string{}
				for c := range 3 {
					talker := uint64(round*100 + c + 1)
					for k := range 5 {
						id := r.publish(talker, talker*1000+uint64(k), fmt.Sprint("m", k))
						want[events.ConversationSubject(1, talker)] = append(want[events.ConversationSubject(1, talker)], id)
					}
				}
				// Held: every conversation's head failed at least once.
				bustest.Eventually(t, "the heads tried", func() bool {
					for c := range want {
						if !slices.ContainsFunc(ep.got(), func(q switchReq) bool { return q.conv == c }) {
							return false
						}
					}
					return true
				})
				first()
				ep.down.Store(false)
				if second == nil {
					second = r.runOn(ep, mod)
				}
				bustest.Eventually(t, "the round delivered", func() bool {
					d := ep.delivered()
					for c, ids := range want {
						if len(d[c]) != len(ids) {
							return false
						}
					}
					return true
				})
				d := ep.delivered()
				for c, ids := range want {
					if fmt.Sprint(d[c]) != fmt.Sprint(ids) {
						t.Fatalf("round %d: conversation %s delivered %v, want %v", round, c, d[c], ids)
					}
				}
				second()
			}
		})
	}
}

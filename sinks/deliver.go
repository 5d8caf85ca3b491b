package sinks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bilibridge/bilibridge/events"
)

// shutdownGrace is how long a delivery in flight at a stop may still
// take: cutting it short would deliver its event twice (once now, once
// by the process that takes over).
const shutdownGrace = 5 * time.Second

// work delivers a conversation's events, in order, until its queue is
// empty or the dispatcher stops; events it did not finish stay queued
// for handBack.
func (d *dispatcher) work(c *conversation) {
	defer d.wg.Done()
	for {
		d.mu.Lock()
		if len(c.queue) == 0 {
			delete(d.convs, c.key)
			d.mu.Unlock()
			return
		}
		if d.ctx.Err() != nil {
			d.mu.Unlock()
			return
		}
		unit := d.nextUnit(c)
		c.inFlight = len(unit.held)
		d.mu.Unlock()

		done, permanent := d.deliverSafely(unit)

		d.mu.Lock()
		c.inFlight = 0
		switch {
		case done:
			c.queue = c.queue[len(unit.held):]
		case permanent:
			// A batch failed for good: one at a time, so that only the
			// bad event is dead-lettered (the sink is idempotent: those it
			// posted are not posted again).
			c.singlesUntil = unit.held[len(unit.held)-1].seq
		}
		d.mu.Unlock()
		if !done && !permanent {
			return // stopping
		}
	}
}

// unit is what one delivery attempt carries: one event, or a batch of a
// conversation's leading message events.
type unit struct {
	held []heldEvent
	evs  []events.Event
	bad  error // the head did not parse (held has one event then)
	fail failure
}

func (u *unit) head() string {
	if len(u.evs) > 0 {
		return u.evs[0].ID
	}
	return "unparseable-" + strconv.FormatUint(u.held[0].seq, 10)
}

// nextUnit takes the head of c: a batch when the sink batches and more
// than one message event waits, else the first event. Called locked.
func (d *dispatcher) nextUnit(c *conversation) *unit {
	u := &unit{}
	limit := 1
	if d.batcher != nil && d.rt.cfg.MaxBatch > 1 && c.queue[0].seq > c.singlesUntil {
		limit = d.rt.cfg.MaxBatch
	}
	for _, h := range c.queue {
		if len(u.held) == limit {
			break
		}
		ev, err := events.Parse(h.msg.Data())
		if err != nil {
			if len(u.held) == 0 {
				u.held, u.bad = []heldEvent{h}, err
			}
			break
		}
		if len(u.held) > 0 && ev.Type != events.TypeMessage {
			break
		}
		u.held, u.evs = append(u.held, h), append(u.evs, ev)
		if ev.Type != events.TypeMessage {
			break // only message events are batched
		}
	}
	return u
}

// deliverSafely runs deliver, turning a panic in the runtime into a
// stop of the sink rather than of the process.
func (d *dispatcher) deliverSafely(u *unit) (done, permanent bool) {
	defer func() {
		if p := recover(); p != nil {
			d.log.Error("sink worker panicked; stopping the sink's consumer so its events are redelivered", "panic", p)
			done, permanent = false, false
			d.cancel()
		}
	}()
	return d.deliver(u)
}

// deliver is the one retry loop: it delivers u until it is delivered or
// dead-lettered (done), a batch failed for good (permanent), or the
// dispatcher stops (neither).
func (d *dispatcher) deliver(u *unit) (done, permanent bool) {
	if u.bad != nil {
		ev := events.Event{ID: u.head(), Data: u.held[0].msg.Data()}
		return d.deadLetter([]heldEvent{u.held[0]}, []events.Event{ev}, u.bad.Error(), 0), false
	}
	m := d.rt.cfg.Metrics
	w := newWaiter()
	log := d.log.With("event", u.head())
	if len(u.evs) > 1 {
		log = log.With("events", len(u.evs), "last", u.evs[len(u.evs)-1].ID)
	}
	// An event JetStream handed out before may have failed before: its
	// give-up clock and attempts carry over.
	if u.held[0].delivered > 1 {
		if err := d.records.load(d.ctx, u.head(), &u.fail); err != nil {
			log.Debug("reading the event's failure record", "err", err)
		}
	}
	suspect := false
	for {
		deadline := time.Time{}
		if !u.fail.First.IsZero() {
			deadline = u.fail.First.Add(d.rt.cfg.GiveUp)
		}
		probe := false
		if suspect {
			// Others are delivered while this one fails: its own problem.
			// It waits on its own, without holding the endpoint up.
			if !d.waitAlone(u, deadline) {
				return false, false
			}
		} else {
			switch d.ep.admit(d.ctx, w, deadline) {
			case admitStop:
				return false, false
			case admitGiveUp:
				return d.giveUp(u, log), false
			case admitProbe:
				probe = true
			}
		}
		if d.held != nil && !d.held() {
			// The lease ran out (a pause, a slow NATS): another process
			// may deliver now.
			d.ep.stopped(w)
			d.cancel()
			return false, false
		}

		err := d.attempt(u)
		if errors.Is(err, errNotAttempted) {
			d.ep.stopped(w)
			return false, false
		}
		if err == nil {
			d.ep.succeeded(w)
			d.records.clear(d.ctx, u.head(), &u.fail)
			now := d.rt.cfg.Now()
			d.rt.board.update(d.name, func(s *SinkStatus) { s.LastDelivery, s.Delivered = &now, s.Delivered+uint64(len(u.held)) })
			d.rt.board.poke(d.name)
			for _, h := range u.held {
				if !d.ack(h.msg) {
					return false, false
				}
				m.delivered.WithLabelValues(d.name).Inc()
				if !h.published.IsZero() {
					m.latency.WithLabelValues(d.name).Observe(time.Since(h.published).Seconds())
				}
			}
			return true, false
		}
		retry, after, disable := Verdict(err)
		if d.ctx.Err() != nil && (!retry || disable) {
			// Stopping: the next holder repeats the attempt and decides.
			d.ep.stopped(w)
			return false, false
		}
		log := log.With("attempt", u.fail.Attempts+1, "err", err)
		switch {
		case disable:
			d.ep.stopped(w)
			log.Error("sink disabled until restart")
			u.fail.Attempts++
			d.records.clear(d.ctx, u.head(), &u.fail)
			d.deadLetter(u.held, u.evs, err.Error(), u.fail.Attempts)
			d.disableSink(err)
			return false, false
		case !retry && len(u.evs) > 1:
			d.ep.stopped(w)
			log.Warn("batch delivery failed for good; delivering its events one at a time")
			return false, true
		case !retry:
			d.ep.stopped(w)
			u.fail.Attempts++
			m.failed.WithLabelValues(d.name).Add(float64(len(u.held)))
			log.Warn("delivery failed for good; dead-lettering")
			// A replay of the dead letter starts with a clean slate.
			d.records.clear(d.ctx, u.head(), &u.fail)
			return d.deadLetter(u.held, u.evs, err.Error(), u.fail.Attempts), false
		}

		// A failure a retry may cure.
		_, _, successes := d.ep.state()
		now := d.rt.cfg.Now()
		if err := d.records.load(d.ctx, u.head(), &u.fail); err != nil {
			log.Debug("reading the event's failure record", "err", err)
		}
		if u.fail.Attempts > 0 && successes > u.fail.successes {
			u.fail.lonely++
		}
		// One failure after others succeeded can be the endpoint
		// flapping as it comes back; two are this event's own problem.
		suspect = u.fail.lonely >= 2
		u.fail.retryAfter = after
		if u.fail.First.IsZero() {
			u.fail.First = now
		}
		u.fail.Attempts++
		u.fail.LastError = err.Error()
		u.fail.successes = successes
		if err := d.records.save(d.ctx, u.head(), &u.fail); err != nil {
			log.Debug("recording the failure", "err", err)
		}
		m.retried.WithLabelValues(d.name).Inc()
		if d.ctx.Err() != nil {
			d.ep.stopped(w)
			return false, false
		}
		if now.Sub(u.fail.First) >= d.rt.cfg.GiveUp {
			d.ep.stopped(w)
			return d.giveUp(u, log), false
		}
		if suspect {
			d.ep.stopped(w)
			log.Info("delivery failed while others succeed; retrying it on its own", "failing_for", now.Sub(u.fail.First).Round(time.Second))
		} else {
			d.ep.failed(w, after)
			if probe {
				log.Debug("probe failed")
			} else {
				log.Info("delivery failed; waiting for the endpoint", "retry_after", after)
			}
		}
	}
}

// errNotAttempted: the dispatcher stopped before the call was made.
var errNotAttempted = errors.New("stopped before the attempt")

// attempt makes one delivery call, bounded by DeliverTimeout. A stop does
// not cut it short at once (see shutdownGrace).
func (d *dispatcher) attempt(u *unit) (err error) {
	select {
	case d.slots <- struct{}{}:
	case <-d.ctx.Done():
		return errNotAttempted
	}
	defer func() { <-d.slots }()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(d.ctx), d.rt.cfg.DeliverTimeout)
	defer cancel()
	stop := context.AfterFunc(d.ctx, func() { time.AfterFunc(shutdownGrace, cancel) })
	defer stop()
	defer func() {
		if p := recover(); p != nil {
			err = Permanent(fmt.Errorf("sink panicked: %v", p))
		}
	}()
	if len(u.evs) == 1 {
		return d.sink.Deliver(ctx, u.evs[0])
	}
	return d.batcher.DeliverBatch(ctx, u.evs)
}

// waitAlone waits before retrying an event that fails on its own: a
// wait growing threefold from ProbeEvery up to 60 of them, or the
// platform's Retry-After if longer; false on stop. At the deadline it
// returns true so that the loop gives up.
func (d *dispatcher) waitAlone(u *unit, deadline time.Time) bool {
	wait := d.rt.cfg.ProbeEvery
	for i := 2; i < u.fail.lonely && wait < 60*d.rt.cfg.ProbeEvery; i++ {
		wait *= 3
	}
	wait = max(min(wait, 60*d.rt.cfg.ProbeEvery), u.fail.retryAfter)
	if !deadline.IsZero() {
		wait = min(wait, max(0, deadline.Sub(d.rt.cfg.Now())))
	}
	// If the endpoint is down meanwhile, its return wakes this one too.
	up, down, _ := d.ep.state()
	if !down {
		up = nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-d.ctx.Done():
		return false
	case <-t.C:
	case <-up:
	}
	return true
}

// giveUp dead-letters u: it failed for GiveUp.
func (d *dispatcher) giveUp(u *unit, log *slog.Logger) bool {
	d.rt.cfg.Metrics.failed.WithLabelValues(d.name).Add(float64(len(u.held)))
	log.Warn("delivery failing for too long; dead-lettering", "since", u.fail.First, "attempts", u.fail.Attempts, "give_up", d.rt.cfg.GiveUp)
	reason := fmt.Sprintf("still failing %s after the first failed attempt (%d attempts); last error: %s", d.rt.cfg.GiveUp, u.fail.Attempts, u.fail.LastError)
	if !d.deadLetter(u.held, u.evs, reason, u.fail.Attempts) {
		return false
	}
	d.records.clear(d.ctx, u.head(), &u.fail)
	return true
}

// deadLetter publishes each event with the reason to
// <prefix>.<uid>.dead.<sink> and acks it. It retries the publish until
// it is stored: an event is not acked away without its dead letter, and
// the conversation waits meanwhile, in order. False means stopping.
func (d *dispatcher) deadLetter(held []heldEvent, evs []events.Event, reason string, attempts int) bool {
	for i, h := range held {
		ev := evs[i]
		if ev.Type == events.TypeDeadLetter {
			// A dead letter is not dead-lettered again: that would loop.
			d.log.Warn("dropping an undeliverable dead letter", "event", ev.ID, "reason", reason)
			if !d.ack(h.msg) {
				return false
			}
			continue
		}
		uid := int64(0)
		if r, err := d.rt.cfg.Subjects.ParseSubject(h.msg.Subject()); err == nil {
			uid = r.UID
		}
		dl, err := events.New(uid, events.TypeDeadLetter, ev.ID+"-dead-"+events.Token(d.name), ev.Subject, d.rt.cfg.Now(),
			events.DeadLetterData{Sink: d.name, Reason: reason, Attempts: attempts, Event: ev})
		if err != nil {
			d.log.Error("cannot encode a dead letter; the event stays pending", "event", ev.ID, "err", err)
			return false
		}
		for wait := time.Second; ; wait = min(2*wait, time.Minute) {
			err := d.rt.cfg.Publisher.Publish(d.ctx, d.rt.cfg.Subjects.Dead(uid, d.name), dl)
			if err == nil {
				break
			}
			if d.ctx.Err() != nil {
				return false
			}
			d.log.Error("dead-lettering failed; retrying, the event stays pending", "event", ev.ID, "retry_in", wait, "err", err)
			sleep(d.ctx, wait)
		}
		d.rt.cfg.Metrics.dead.WithLabelValues(d.name).Inc()
		d.rt.board.update(d.name, func(s *SinkStatus) { s.DeadLettered++ })
		if !d.ack(h.msg) {
			return false
		}
	}
	return true
}

// ack acknowledges msg, retrying until the server confirmed it: an ack
// lost without a retry would bring the event back after AckWait, behind
// later events of its conversation. A stop does not cut it short at once
// (the event was delivered; a redelivery would repeat it). After a few
// failures it gives up (the event then comes back once, with the same
// id). False means stopping came first.
func (d *dispatcher) ack(msg jetstream.Msg) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(d.ctx), shutdownGrace)
	defer cancel()
	wait := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := msg.DoubleAck(ctx)
		if err == nil || errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if attempt == 8 {
			d.log.Error("ack failed; the event will be redelivered", "err", err)
			return true
		}
		d.log.Warn("ack failed; retrying", "err", err)
		sleep(ctx, wait)
		wait = min(wait*2, 2*time.Second)
	}
}

package sinks

import (
	"context"
	"slices"
	"sync"
	"time"
)

// endpoint is the delivery state of one sink, shared by all its
// conversations: whether it answers, and whose turn it is to find out.
//
// Recovery is a property of the endpoint, not of each event. When an
// attempt fails with an error a retry may cure, the endpoint is taken to
// be down: its conversations park instead of retrying on their own, and
// one at a time, in turn, probes it with its head event at a growing
// interval capped at probeCap (or later, when the platform asked for a
// Retry-After). The first probe that succeeds brings the endpoint back
// and releases every parked conversation at once. A dead endpoint so sees
// about one request per probeCap, and a recovered one gets its backlog
// within probeCap of its return, however long it was down.
type endpoint struct {
	probeFirst, probeCap time.Duration
	now                  func() time.Time
	// changed is told when the endpoint goes down (false) or comes
	// back (true), outside the lock.
	changed func(up bool, downFor time.Duration, parked int)

	mu        sync.Mutex
	down      bool
	downSince time.Time
	up        chan struct{} // closed when the endpoint answers again
	queue     []*waiter     // parked conversations, in turn order
	prober    *waiter       // whose turn it is, if anyone's
	interval  time.Duration // the wait before the next probe
	nextProbe time.Time
	timer     *time.Timer
	successes uint64 // deliveries that succeeded, ever
}

// waiter is one parked conversation.
type waiter struct {
	turn chan struct{} // told when it is this conversation's turn to probe
}

func newWaiter() *waiter { return &waiter{turn: make(chan struct{}, 1)} }

func newEndpoint(probeFirst, probeCap time.Duration, now func() time.Time, changed func(bool, time.Duration, int)) *endpoint {
	return &endpoint{probeFirst: probeFirst, probeCap: probeCap, now: now, changed: changed, up: make(chan struct{})}
}

// admission is what admit allows.
type admission int

const (
	admitAttempt admission = iota // the endpoint is up: go ahead
	admitProbe                    // the endpoint is down and it is this conversation's turn
	admitGiveUp                   // the deadline passed while parked
	admitStop                     // ctx ended
)

// admit returns at once while the endpoint is up. While it is down, it
// parks w until the endpoint is back, it is w's turn to probe, deadline
// passes (zero: no deadline) or ctx ends.
func (e *endpoint) admit(ctx context.Context, w *waiter, deadline time.Time) admission {
	e.mu.Lock()
	if !e.down {
		e.mu.Unlock()
		return admitAttempt
	}
	up := e.up
	e.queue = append(e.queue, w)
	e.scheduleLocked()
	e.mu.Unlock()

	var expired <-chan time.Time
	if !deadline.IsZero() {
		t := time.NewTimer(max(0, deadline.Sub(e.now())))
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-w.turn:
		return admitProbe
	case <-up:
		e.leave(w)
		return admitAttempt
	case <-expired:
		e.leave(w)
		return admitGiveUp
	case <-ctx.Done():
		e.leave(w)
		return admitStop
	}
}

// leave takes w out of the queue; a turn it was given but did not use
// passes on.
func (e *endpoint) leave(w *waiter) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.queue = slices.DeleteFunc(e.queue, func(x *waiter) bool { return x == w })
	select {
	case <-w.turn:
	default:
	}
	if e.prober == w {
		e.prober = nil
		e.scheduleLocked()
	}
}

// scheduleLocked arms the timer that hands the next turn out, when the
// endpoint is down, nobody is probing and somebody waits.
func (e *endpoint) scheduleLocked() {
	if !e.down || e.prober != nil || len(e.queue) == 0 || e.timer != nil {
		return
	}
	e.timer = time.AfterFunc(max(0, e.nextProbe.Sub(e.now())), e.handTurn)
}

func (e *endpoint) handTurn() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.timer = nil
	if !e.down || e.prober != nil || len(e.queue) == 0 {
		return
	}
	w := e.queue[0]
	e.queue = e.queue[1:]
	e.prober = w
	w.turn <- struct{}{}
}

// succeeded records a delivery that worked: a down endpoint is back, and
// every parked conversation goes on at once.
func (e *endpoint) succeeded(w *waiter) {
	e.mu.Lock()
	e.successes++
	if e.prober == w {
		e.prober = nil
	}
	if !e.down {
		e.mu.Unlock()
		return
	}
	downFor, parked := e.now().Sub(e.downSince), len(e.queue)
	e.down = false
	close(e.up)
	e.queue, e.interval = nil, 0
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	e.mu.Unlock()
	if e.changed != nil {
		e.changed(true, downFor, parked)
	}
}

// failed records an attempt that failed with a retryable error; after is
// the wait the platform asked for, or zero. The endpoint goes down (or
// stays down, with the next probe further away when w was the prober).
func (e *endpoint) failed(w *waiter, after time.Duration) {
	e.mu.Lock()
	now := e.now()
	wentDown := !e.down
	switch {
	case wentDown:
		e.down, e.downSince, e.up = true, now, make(chan struct{})
		e.interval = e.probeFirst
		e.nextProbe = now.Add(max(e.interval, after))
	case e.prober == w:
		e.prober = nil
		e.interval = min(2*e.interval, e.probeCap)
		e.nextProbe = now.Add(max(e.interval, after))
	default:
		// An attempt that started before the endpoint went down: it
		// says nothing new, but a wait the platform asked for holds.
		e.nextProbe = later(e.nextProbe, now.Add(after))
	}
	if e.timer != nil && wentDown {
		e.timer.Stop()
		e.timer = nil
	}
	e.scheduleLocked()
	e.mu.Unlock()
	if wentDown && e.changed != nil {
		e.changed(false, 0, 0)
	}
}

// stopped returns a turn w held without reporting a result (shutdown).
func (e *endpoint) stopped(w *waiter) { e.leave(w) }

// upSignal returns a channel closed when a down endpoint comes back (nil
// while it is up) and the count of successes so far.
func (e *endpoint) state() (up <-chan struct{}, down bool, successes uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.up, e.down, e.successes
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

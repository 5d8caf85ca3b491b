package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/lease"
	"github.com/bilibridge/bilibridge/sinks"
)

// DefaultSchedule is the wait before each retry of a failed delivery: the
// attempts span about a day, so an endpoint that is down overnight still
// gets everything.
var DefaultSchedule = []time.Duration{
	5 * time.Second, 30 * time.Second, 5 * time.Minute, 30 * time.Minute,
	2 * time.Hour, 5 * time.Hour, 8 * time.Hour, 8 * time.Hour,
}

// RuntimeConfig configures the sink runtime.
type RuntimeConfig struct {
	Stream    jetstream.Stream
	Publisher *Publisher
	Subjects  events.Subjects
	// Schedule is the wait before each retry; len(Schedule)+1 attempts in
	// all. Default DefaultSchedule.
	Schedule []time.Duration
	// AckWait is how long JetStream waits before redelivering an event a
	// crashed process held. Held events are kept alive meanwhile.
	AckWait time.Duration
	// MaxPending bounds events in flight per sink (across conversations).
	MaxPending int
	// MaxBatch bounds the events handed to a sinks.Batcher at once;
	// default 20, 1 turns batching off.
	MaxBatch int
	// DeliverTimeout bounds one Deliver (or DeliverBatch) call; default
	// 2 min.
	DeliverTimeout time.Duration
	Metrics        *SinkMetrics
	Logger         *slog.Logger
	// Disabled is told when a sink asks to be disabled (410 Gone).
	Disabled func(ctx context.Context, sink string, err error)
	// Leases, when set, lets one process at a time deliver to a sink (a
	// lease per sink), so that each conversation stays in order when
	// several bridges share a NATS; the others stand by and take over when
	// it stops, or within about two LeaseTTLs when it dies.
	Leases   jetstream.KeyValue
	LeaseTTL time.Duration
	// Holder names this process in the leases; default a random id.
	Holder string
	// Since is where a sink seen for the first time starts: events
	// published from then on (default: when NewRuntime ran). A sink added
	// later does not get a month of history; an existing sink resumes
	// where it left off.
	Since time.Time
}

// Runtime delivers the events of stream BILI to sinks: one durable
// consumer per sink, events of one conversation in order (a later one
// waits until the earlier one was delivered or dead-lettered), retries
// with backoff that honour the platform's retry-after, and dead letters
// after the last attempt.
//
// A sink that implements sinks.Batcher gets a conversation's backlog in
// batches: when more than one event of a conversation waits, the leading
// message events (up to MaxBatch, stopping at any other type) go to one
// DeliverBatch call, with the retries of a single event. Success acks
// them all; after the last attempt each is dead-lettered; a permanent
// failure is not blamed on the whole batch: its events are then
// delivered one at a time, so only the bad one is dead-lettered.
type Runtime struct {
	cfg RuntimeConfig
	log *slog.Logger
}

// NewRuntime returns a runtime for cfg.
func NewRuntime(cfg RuntimeConfig) *Runtime {
	if cfg.Schedule == nil {
		cfg.Schedule = DefaultSchedule
	}
	if cfg.AckWait <= 0 {
		// Shorter than a lease TTL: the events a dead holder had in flight
		// come due before another process can take its lease over.
		cfg.AckWait = 10 * time.Second
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 1000
	}
	if cfg.DeliverTimeout <= 0 {
		cfg.DeliverTimeout = 2 * time.Minute
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 20
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewSinkMetrics(nil)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Since.IsZero() {
		cfg.Since = time.Now()
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 30 * time.Second
	}
	if cfg.Holder == "" {
		cfg.Holder = uuid.NewString()
	}
	return &Runtime{cfg: cfg, log: cfg.Logger}
}

// ConsumerName is the durable consumer of a sink.
func ConsumerName(sink string) string { return "sink_" + events.Token(sink) }

// Run delivers to sink until ctx ends or the sink asks to be disabled.
func (r *Runtime) Run(ctx context.Context, sink sinks.Sink) error {
	name := sink.Name()
	log := r.log.With("sink", name)
	filters := r.cfg.Subjects.Deliverable()
	if f, ok := sink.(sinks.Filter); ok {
		filters = f.Subjects(r.cfg.Subjects)
	}
	cfg := jetstream.ConsumerConfig{
		Durable:        ConsumerName(name),
		Description:    "bilibridge sink " + name,
		FilterSubjects: filters,
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &r.cfg.Since,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        r.cfg.AckWait,
		MaxAckPending:  r.cfg.MaxPending,
	}
	if len(filters) == 1 {
		cfg.FilterSubject, cfg.FilterSubjects = filters[0], nil
	}
	// Where a consumer starts cannot change; an existing one keeps its own.
	if existing, err := r.cfg.Stream.Consumer(ctx, cfg.Durable); err == nil {
		old := existing.CachedInfo().Config
		cfg.DeliverPolicy, cfg.OptStartTime, cfg.OptStartSeq = old.DeliverPolicy, old.OptStartTime, old.OptStartSeq
	}
	log.Info("sink started", "consumer", cfg.Durable, "filters", filters)
	var l *lease.Lease
	if r.cfg.Leases != nil {
		l = lease.New(r.cfg.Leases, "sink."+events.Token(name), r.cfg.Holder, r.cfg.LeaseTTL, log)
		defer l.Release()
	}
	wait := time.Second
	for ctx.Err() == nil {
		if l != nil && !l.Renew(ctx) {
			// Another process delivers (or NATS was slow to answer): stand
			// by, and look again soon, so that a takeover is quick.
			sleep(ctx, min(r.cfg.LeaseTTL/3, 2*time.Second))
			continue
		}
		stop, err := r.consumeHeld(ctx, sink, cfg, l, log)
		switch {
		case err != nil:
			return err
		case stop == stopDisabled:
			return nil
		case stop == stopConsumerLost:
			// Someone deleted the consumer (nats consumer rm): make it
			// again rather than stop delivering without a word.
			log.Warn("sink consumer lost; recreating it", "consumer", cfg.Durable, "retry_in", wait)
			sleep(ctx, wait)
			wait = min(wait*2, time.Minute)
		}
	}
	return nil
}

// consumeHeld consumes while the lease (if any) stays held.
func (r *Runtime) consumeHeld(ctx context.Context, sink sinks.Sink, cfg jetstream.ConsumerConfig, l *lease.Lease, log *slog.Logger) (stopReason, error) {
	if l == nil {
		return r.consume(ctx, sink, cfg, log)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	kept := make(chan struct{})
	go func() {
		defer close(kept)
		t := time.NewTicker(r.cfg.LeaseTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if !l.Renew(ctx) {
					cancel() // lost: another process delivers now
					return
				}
			}
		}
	}()
	stop, err := r.consume(ctx, sink, cfg, log)
	cancel()
	<-kept
	return stop, err
}

// stopReason says why consume returned.
type stopReason int

const (
	stopContext      stopReason = iota // shutdown, or the lease was lost
	stopDisabled                       // the sink asked to be disabled
	stopConsumerLost                   // the consumer was deleted
)

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// consume delivers from the sink's consumer until ctx ends, the sink is
// disabled, or the consumer disappears.
func (r *Runtime) consume(ctx context.Context, sink sinks.Sink, cfg jetstream.ConsumerConfig, log *slog.Logger) (stopReason, error) {
	cons, err := r.cfg.Stream.CreateOrUpdateConsumer(ctx, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return stopContext, nil
		}
		return stopContext, fmt.Errorf("sink %s: creating consumer: %w", sink.Name(), err)
	}
	// Events still in flight (a holder that died, not one that stopped and
	// handed them back) are redelivered after AckWait, and before anything
	// newer: wait for them to come due, or the conversation's order breaks.
	if info, err := cons.Info(ctx); err == nil && info.NumAckPending > 0 {
		log.Info("waiting for the events a previous holder had in flight", "events", info.NumAckPending, "wait", r.cfg.AckWait)
		sleep(ctx, r.cfg.AckWait)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	gone := make(chan struct{}, 1)
	d := &dispatcher{rt: r, sink: sink, name: sink.Name(), log: log, ctx: ctx, cancel: cancel,
		convs: map[string]*convQueue{}, disabled: make(chan struct{})}
	cc, err := cons.Consume(d.dispatch,
		jetstream.PullMaxMessages(min(r.cfg.MaxPending, 500)),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			switch {
			case errors.Is(err, jetstream.ErrConsumerDeleted), errors.Is(err, jetstream.ErrConsumerNotFound):
				select {
				case gone <- struct{}{}:
				default:
				}
			case !errors.Is(err, jetstream.ErrNoHeartbeat):
				log.Debug("consume", "err", err)
			}
		}))
	if err != nil {
		return stopContext, fmt.Errorf("sink %s: consuming: %w", sink.Name(), err)
	}
	stop := stopContext
	select {
	case <-ctx.Done():
	case <-gone:
		stop = stopConsumerLost
	case <-d.disabled:
		stop = stopDisabled
	}
	// Drain hands the messages still buffered to dispatch, which gives
	// them back (nak) now that the dispatcher is closed: another bridge
	// gets them at once instead of after AckWait.
	d.close()
	cancel()
	cc.Drain()
	select {
	case <-cc.Closed():
	case <-time.After(5 * time.Second):
	}
	d.wg.Wait()
	return stop, nil
}

// dispatcher routes a sink's events to one queue per conversation.
type dispatcher struct {
	rt     *Runtime
	sink   sinks.Sink
	name   string
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	convs    map[string]*convQueue
	closed   bool          // no new workers: Run is waiting for the last ones
	disabled chan struct{} // closed when the sink asked to be disabled
	disable  sync.Once
}

// disableSink stops the sink for good (until restart) and says so.
func (d *dispatcher) disableSink(err error) {
	d.disable.Do(func() {
		if d.rt.cfg.Disabled != nil {
			d.rt.cfg.Disabled(d.ctx, d.name, err)
		}
		close(d.disabled)
		d.cancel()
	})
}

// close stops new workers from starting.
func (d *dispatcher) close() {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
}

// convQueue holds the events of one conversation not yet done.
type convQueue struct {
	msgs []jetstream.Msg
}

// dispatch is called by Consume, one message at a time, in stream order.
func (d *dispatcher) dispatch(msg jetstream.Msg) {
	key := d.conversationKey(msg.Subject())
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		_ = msg.Nak() // to whoever consumes next, at once
		return
	}
	if q, ok := d.convs[key]; ok {
		q.msgs = append(q.msgs, msg)
		return
	}
	q := &convQueue{msgs: []jetstream.Msg{msg}}
	d.convs[key] = q
	d.wg.Add(1)
	go d.work(key, q)
}

// conversationKey groups msg and recall events of one conversation.
func (d *dispatcher) conversationKey(subject string) string {
	r, err := d.rt.cfg.Subjects.ParseSubject(subject)
	if err != nil || r.TalkerID == 0 {
		return subject
	}
	return fmt.Sprintf("%d.%d.%d", r.UID, r.SessionType, r.TalkerID)
}

// work delivers a conversation's events in order until its queue is empty.
func (d *dispatcher) work(key string, q *convQueue) {
	defer d.wg.Done()
	defer func() {
		if p := recover(); p != nil {
			d.log.Error("sink worker panicked; its events will be redelivered", "panic", p)
			d.abandon(key, q)
		}
	}()
	stopKeepAlive := d.keepAlive(q)
	defer stopKeepAlive()
	batcher, _ := d.sink.(sinks.Batcher)
	for {
		d.mu.Lock()
		if len(q.msgs) == 0 {
			delete(d.convs, key)
			d.mu.Unlock()
			return
		}
		if d.ctx.Err() != nil {
			d.mu.Unlock()
			d.abandon(key, q)
			return
		}
		msg := q.msgs[0]
		var head []jetstream.Msg
		if batcher != nil && len(q.msgs) > 1 && d.rt.cfg.MaxBatch > 1 {
			// dispatch only appends: the copied head stays the head.
			head = slices.Clone(q.msgs[:min(len(q.msgs), d.rt.cfg.MaxBatch)])
		}
		d.mu.Unlock()
		done := 1
		if msgs, evs := batchPrefix(head); len(msgs) > 1 {
			if !d.deliverBatch(batcher, msgs, evs) {
				d.abandon(key, q)
				return
			}
			done = len(msgs)
		} else if !d.deliver(msg) {
			d.abandon(key, q)
			return
		}
		d.mu.Lock()
		q.msgs = q.msgs[done:]
		d.mu.Unlock()
	}
}

// abandon gives a conversation's held events back to JetStream when its
// worker stops early. At shutdown they go back at once, for the bridge
// that takes over; while running (a dead letter that could not be
// published) they come back after a delay, so the conversation is tried
// again later instead of wedging with a queue no worker serves.
func (d *dispatcher) abandon(key string, q *convQueue) {
	d.mu.Lock()
	held := q.msgs
	q.msgs = nil
	delete(d.convs, key)
	d.mu.Unlock()
	if d.ctx.Err() != nil {
		for _, m := range held {
			_ = m.Nak()
		}
		return
	}
	d.log.Warn("conversation's events handed back for a later try", "conversation", key, "events", len(held))
	for _, m := range held {
		_ = m.NakWithDelay(abandonDelay)
	}
}

// abandonDelay is how long an abandoned conversation waits before its
// events come back.
const abandonDelay = 30 * time.Second

// batchPrefix returns the leading message events of msgs, parsed: the
// events a Batcher may get together.
func batchPrefix(msgs []jetstream.Msg) ([]jetstream.Msg, []events.Event) {
	var evs []events.Event
	for _, m := range msgs {
		ev, err := events.Parse(m.Data())
		if err != nil || ev.Type != events.TypeMessage {
			break
		}
		evs = append(evs, ev)
	}
	return msgs[:len(evs)], evs
}

// keepAlive tells JetStream, every half AckWait, that the conversation's
// held events are still being worked on, so that waiting behind a retry
// does not turn into a redelivery.
func (d *dispatcher) keepAlive(q *convQueue) func() {
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(d.rt.cfg.AckWait / 2)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-d.ctx.Done():
				return
			case <-t.C:
				d.mu.Lock()
				held := append([]jetstream.Msg(nil), q.msgs...)
				d.mu.Unlock()
				for _, m := range held {
					_ = m.InProgress()
				}
			}
		}
	}()
	return func() { close(stop) }
}

// deliver delivers one event with retries and reports whether it is done
// (delivered or dead-lettered, and acked). False means shutdown.
func (d *dispatcher) deliver(msg jetstream.Msg) bool {
	m := d.rt.cfg.Metrics
	attempt := 1
	var published time.Time
	if meta, err := msg.Metadata(); err == nil {
		attempt = max(1, int(meta.NumDelivered))
		published = meta.Timestamp
	}
	ev, err := events.Parse(msg.Data())
	if err != nil {
		return d.deadLetter(msg, events.Event{ID: "unparseable-" + strconv.FormatUint(seq(msg), 10), Data: msg.Data()}, err.Error(), attempt)
	}
	maxAttempts := len(d.rt.cfg.Schedule) + 1
	bo := &backoff{schedule: d.rt.cfg.Schedule}
	for {
		ctx, cancel := context.WithTimeout(d.ctx, d.rt.cfg.DeliverTimeout)
		err := safeDeliver(ctx, d.sink, ev)
		cancel()
		if err == nil {
			if !d.ack(msg) {
				return false
			}
			m.delivered.WithLabelValues(d.name).Inc()
			if !published.IsZero() {
				m.latency.WithLabelValues(d.name).Observe(time.Since(published).Seconds())
			}
			return true
		}
		if d.ctx.Err() != nil {
			return false
		}
		retry, after, disable := sinks.Verdict(err)
		log := d.log.With("event", ev.ID, "attempt", attempt, "err", err)
		if disable {
			log.Error("sink disabled until restart")
			d.deadLetter(msg, ev, err.Error(), attempt)
			d.disableSink(err)
			return false
		}
		if !retry || attempt >= maxAttempts {
			m.failed.WithLabelValues(d.name).Inc()
			log.Warn("delivery failed; dead-lettering", "permanent", !retry)
			return d.deadLetter(msg, ev, err.Error(), attempt)
		}
		var ok bool
		if attempt, ok = d.retryWait(bo, attempt, after, log.With("batch", false)); !ok {
			return false
		}
	}
}

// deliverBatch delivers the events of msgs (evs, parsed) with one
// DeliverBatch call per attempt, under the policy of deliver, and reports
// whether they are all done. False means shutdown.
func (d *dispatcher) deliverBatch(b sinks.Batcher, msgs []jetstream.Msg, evs []events.Event) bool {
	m := d.rt.cfg.Metrics
	attempt := 1
	published := make([]time.Time, len(msgs))
	for i, msg := range msgs {
		if meta, err := msg.Metadata(); err == nil {
			attempt = max(attempt, int(meta.NumDelivered))
			published[i] = meta.Timestamp
		}
	}
	maxAttempts := len(d.rt.cfg.Schedule) + 1
	bo := &backoff{schedule: d.rt.cfg.Schedule}
	for {
		ctx, cancel := context.WithTimeout(d.ctx, d.rt.cfg.DeliverTimeout)
		err := safeDeliverBatch(ctx, b, evs)
		cancel()
		if err == nil {
			for i, msg := range msgs {
				if !d.ack(msg) {
					return false
				}
				m.delivered.WithLabelValues(d.name).Inc()
				if !published[i].IsZero() {
					m.latency.WithLabelValues(d.name).Observe(time.Since(published[i]).Seconds())
				}
			}
			return true
		}
		if d.ctx.Err() != nil {
			return false
		}
		retry, after, disable := sinks.Verdict(err)
		log := d.log.With("events", len(evs), "first", evs[0].ID, "last", evs[len(evs)-1].ID, "attempt", attempt, "err", err)
		switch {
		case disable:
			log.Error("sink disabled until restart; dead-lettering the batch")
			for i, msg := range msgs {
				d.deadLetter(msg, evs[i], err.Error(), attempt)
			}
			d.disableSink(err)
			return false
		case !retry:
			// Likely one bad event: the others must not be dead-lettered
			// with it. One at a time, each gets its own verdict (the sink
			// is idempotent: those already posted are not posted again).
			log.Warn("batch delivery failed for good; delivering its events one at a time")
			for _, msg := range msgs {
				if !d.deliver(msg) {
					return false
				}
			}
			return true
		case attempt >= maxAttempts:
			m.failed.WithLabelValues(d.name).Add(float64(len(msgs)))
			log.Warn("batch delivery failed; dead-lettering its events")
			for i, msg := range msgs {
				if !d.deadLetter(msg, evs[i], err.Error(), attempt) {
					return false
				}
			}
			return true
		}
		var ok bool
		if attempt, ok = d.retryWait(bo, attempt, after, log.With("batch", true)); !ok {
			return false
		}
	}
}

func safeDeliverBatch(ctx context.Context, b sinks.Batcher, evs []events.Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = sinks.Permanent(fmt.Errorf("sink panicked: %v", p))
		}
	}()
	return b.DeliverBatch(ctx, evs)
}

// retryWait waits before the next attempt and returns its number; false
// means shutdown came first.
func (d *dispatcher) retryWait(bo *backoff, attempt int, after time.Duration, log *slog.Logger) (int, bool) {
	wait, counts := bo.next(attempt, after)
	d.rt.cfg.Metrics.retried.WithLabelValues(d.name).Inc()
	log.Info("delivery failed; will retry", "retry_in", wait)
	select {
	case <-d.ctx.Done():
		return attempt, false
	case <-time.After(wait):
	}
	if counts {
		attempt++
	}
	return attempt, true
}

// backoff decides the wait before the next attempt. A wait the platform
// asked for (retry-after) is honoured exactly, but uses up an attempt only
// once such waits add up to the schedule's step: an endpoint that asks for
// a second at a time still gets about a day of retries, not nine seconds.
type backoff struct {
	schedule []time.Duration
	waited   time.Duration
}

func (b *backoff) next(attempt int, after time.Duration) (wait time.Duration, counts bool) {
	step := b.schedule[attempt-1]
	if after <= 0 {
		b.waited = 0
		return jitter(step), true
	}
	b.waited += after
	if b.waited >= step {
		b.waited = 0
		return after, true
	}
	return after, false
}

// safeDeliver keeps a panicking sink from taking the process down.
func safeDeliver(ctx context.Context, s sinks.Sink, ev events.Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = sinks.Permanent(fmt.Errorf("sink panicked: %v", p))
		}
	}()
	return s.Deliver(ctx, ev)
}

// deadLetter publishes ev with the reason to <prefix>.<uid>.dead.<sink>
// and acks the original. False means shutdown before it was done.
func (d *dispatcher) deadLetter(msg jetstream.Msg, ev events.Event, reason string, attempts int) bool {
	if ev.Type == events.TypeDeadLetter {
		// A dead letter is not dead-lettered again: that would loop.
		d.log.Warn("dropping an undeliverable dead letter", "event", ev.ID, "reason", reason)
		return d.ack(msg)
	}
	uid := int64(0)
	if r, err := d.rt.cfg.Subjects.ParseSubject(msg.Subject()); err == nil {
		uid = r.UID
	}
	dl, err := events.New(uid, events.TypeDeadLetter, ev.ID+"-dead-"+events.Token(d.name), ev.Subject, time.Now(),
		events.DeadLetterData{Sink: d.name, Reason: reason, Attempts: attempts, Event: ev})
	if err == nil {
		err = d.rt.cfg.Publisher.Publish(d.ctx, d.rt.cfg.Subjects.Dead(uid, d.name), dl)
	}
	if err != nil {
		// Without its dead letter the event must not be acked away.
		d.log.Error("dead-lettering failed; the event stays pending", "event", ev.ID, "err", err)
		return false
	}
	d.rt.cfg.Metrics.dead.WithLabelValues(d.name).Inc()
	return d.ack(msg)
}

// ack acknowledges msg, retrying until the server confirmed it: an ack
// lost without a retry would bring the event back after AckWait, behind
// later events of its conversation. After a few failures it gives up
// (the event then comes back once, with the same id). False means
// shutdown came first.
func (d *dispatcher) ack(msg jetstream.Msg) bool {
	wait := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := msg.DoubleAck(d.ctx)
		if err == nil || errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
			return true
		}
		if d.ctx.Err() != nil {
			return false
		}
		if attempt == 8 {
			d.log.Error("ack failed; the event will be redelivered", "err", err)
			return true
		}
		d.log.Warn("ack failed; retrying", "err", err)
		select {
		case <-d.ctx.Done():
			return false
		case <-time.After(wait):
		}
		wait = min(wait*2, 2*time.Second)
	}
}

func seq(msg jetstream.Msg) uint64 {
	if meta, err := msg.Metadata(); err == nil {
		return meta.Sequence.Stream
	}
	return 0
}

// jitter spreads retries by ±20% so that a recovering endpoint is not hit
// by every held event at once.
func jitter(d time.Duration) time.Duration {
	return d + time.Duration((rand.Float64()*0.4-0.2)*float64(d))
}

// SinkMetrics are the per-sink delivery metrics.
type SinkMetrics struct {
	delivered, retried, failed, dead *prometheus.CounterVec
	latency                          *prometheus.HistogramVec
}

// NewSinkMetrics registers the sink metrics with reg (nil: unregistered).
func NewSinkMetrics(reg prometheus.Registerer) *SinkMetrics {
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"sink"})
	}
	m := &SinkMetrics{
		delivered: counter("bilibridge_sink_delivered_total", "Events delivered, by sink."),
		retried:   counter("bilibridge_sink_retries_total", "Delivery attempts that failed and will be retried, by sink."),
		failed:    counter("bilibridge_sink_failed_total", "Events that failed for good (permanent error or last attempt), by sink."),
		dead:      counter("bilibridge_sink_dead_letters_total", "Events dead-lettered, by sink."),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bilibridge_sink_delivery_latency_seconds",
			Help:    "Time from an event's publish to its delivery, by sink.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 12),
		}, []string{"sink"}),
	}
	if reg != nil {
		reg.MustRegister(m.delivered, m.retried, m.failed, m.dead, m.latency)
	}
	return m
}

package sinks

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/lease"
)

// Publisher stores an event on JetStream and returns once it is stored.
type Publisher interface {
	Publish(ctx context.Context, subject string, ev events.Event) error
}

// Defaults of RuntimeConfig.
const (
	DefaultGiveUp     = 24 * time.Hour
	DefaultProbeEvery = 10 * time.Second
)

// RuntimeConfig configures the delivery runtime.
type RuntimeConfig struct {
	Stream    jetstream.Stream
	Publisher Publisher
	Subjects  events.Subjects
	// Records is the KV bucket where a failing event's first failure and
	// attempts are kept, so that restarts neither reset its give-up clock
	// nor count as attempts. Optional (tests): in memory otherwise.
	Records jetstream.KeyValue
	// GiveUp is how long after its first failed attempt an event is
	// dead-lettered (DELIVERY_GIVE_UP); default DefaultGiveUp.
	GiveUp time.Duration
	// ProbeEvery caps the interval at which a failing endpoint is probed;
	// default DefaultProbeEvery. The first probe comes after ProbeEvery/10.
	ProbeEvery time.Duration
	// AckWait is how long JetStream waits before redelivering an event a
	// crashed process held. Held events are kept alive meanwhile.
	AckWait time.Duration
	// MaxPending bounds events held per sink (across conversations).
	MaxPending int
	// MaxConcurrent bounds the deliveries in flight per sink, so that an
	// endpoint that comes back is not hit by every conversation at once;
	// default 32.
	MaxConcurrent int
	// MaxBatch bounds the events handed to a Batcher at once; default 20,
	// 1 turns batching off.
	MaxBatch int
	// DeliverTimeout bounds one Deliver (or DeliverBatch) call; default
	// 2 min.
	DeliverTimeout time.Duration
	Metrics        *Metrics
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
	// BacklogEvery is how often each sink's backlog is read; default
	// BacklogEvery.
	BacklogEvery time.Duration
	// Since is where a sink seen for the first time starts: events
	// published from then on (default: when NewRuntime ran). A sink added
	// later does not get a month of history; an existing sink resumes
	// where it left off.
	Since time.Time
	// Now is the clock of the give-up rule; default time.Now.
	Now func() time.Time
}

// Runtime delivers the events of stream BILI to sinks: one durable
// consumer per sink, and for each the one policy of the product.
//
//   - Order: the events of one conversation are delivered one after the
//     other in stream order; a later one waits until the earlier one is
//     delivered or dead-lettered. Other conversations do not wait.
//   - Retries: an error the sink marks permanent dead-letters the event
//     at once. Any other failure takes the endpoint down (see endpoint):
//     its conversations wait while one probes it, and all resume when it
//     answers. An event is dead-lettered GiveUp after its first failure.
//     A wait the platform asks for (Retry-After) is honoured.
//   - Batches: a sink that implements Batcher gets a conversation's
//     backlog in batches (up to MaxBatch message events) under the same
//     policy; a permanent failure of a batch is not blamed on all of it:
//     its events are then delivered one at a time.
//   - Hand-over: at a stop the events held are handed back to JetStream
//     at once, in stream order, for the process that takes over.
type Runtime struct {
	cfg   RuntimeConfig
	log   *slog.Logger
	board board
}

// NewRuntime returns a runtime for cfg.
func NewRuntime(cfg RuntimeConfig) *Runtime {
	if cfg.GiveUp <= 0 {
		cfg.GiveUp = DefaultGiveUp
	}
	if cfg.ProbeEvery <= 0 {
		cfg.ProbeEvery = DefaultProbeEvery
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 30 * time.Second
	}
	if cfg.AckWait <= 0 {
		// No longer than a lease TTL: the events a dead holder had in
		// flight come due by the time another process can take its lease.
		cfg.AckWait = min(10*time.Second, max(cfg.LeaseTTL, time.Second))
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 1000
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = 32
	}
	if cfg.DeliverTimeout <= 0 {
		cfg.DeliverTimeout = 2 * time.Minute
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 20
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Since.IsZero() {
		cfg.Since = cfg.Now()
	}
	if cfg.Holder == "" {
		cfg.Holder = uuid.NewString()
	}
	if cfg.BacklogEvery <= 0 {
		cfg.BacklogEvery = BacklogEvery
	}
	return &Runtime{cfg: cfg, log: cfg.Logger}
}

// ConsumerName is the durable consumer of a sink.
func ConsumerName(sink string) string { return "sink_" + events.Token(sink) }

// Run delivers to sink until ctx ends or the sink asks to be disabled.
// NATS failures are logged and retried, so it returns nil.
func (r *Runtime) Run(ctx context.Context, sink Sink) error {
	name := sink.Name()
	log := r.log.With("sink", Describe(sink), "sink_id", name)
	filters := r.cfg.Subjects.Deliverable()
	if f, ok := sink.(Filter); ok {
		filters = f.Subjects(r.cfg.Subjects)
	}
	// A dead letter replayed to this sink (and to no other) comes back
	// on its own subject.
	filters = append(slices.Clone(filters), r.cfg.Subjects.Replays(name))
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
	log.Info("sink started", "consumer", cfg.Durable, "filters", filters)
	r.board.update(name, func(s *SinkStatus) { s.Description = Describe(sink) })
	r.board.setState(name, StateStarting, r.cfg.Now())
	go r.watchBacklog(ctx, name, cfg.Durable)
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
			r.board.setState(name, StateStandby, r.cfg.Now())
			sleep(ctx, min(r.cfg.LeaseTTL/3, 2*time.Second))
			continue
		}
		stop, err := r.consumeHeld(ctx, sink, cfg, l, log)
		switch {
		case err != nil:
			// NATS unavailable, or a consumer it would not update: say so
			// and try again, rather than stop delivering.
			log.Error("sink cannot consume; retrying", "retry_in", wait, "err", err)
			sleep(ctx, wait)
			wait = min(wait*2, time.Minute)
		case stop == stopDisabled:
			r.board.setState(name, StateDisabled, r.cfg.Now())
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
func (r *Runtime) consumeHeld(ctx context.Context, sink Sink, cfg jetstream.ConsumerConfig, l *lease.Lease, log *slog.Logger) (stopReason, error) {
	if l == nil {
		return r.consume(ctx, sink, cfg, nil, log)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	kept := make(chan struct{})
	go func() {
		defer close(kept)
		l.Keep(ctx, func(held bool) {
			if !held {
				cancel() // lost: another process delivers now
			}
		})
	}()
	stop, err := r.consume(ctx, sink, cfg, l.Held, log)
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
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// consume delivers from the sink's consumer until ctx ends, the sink is
// disabled, the lease is no longer held (held, when not nil) or the
// consumer disappears.
func (r *Runtime) consume(ctx context.Context, sink Sink, cfg jetstream.ConsumerConfig, held func() bool, log *slog.Logger) (stopReason, error) {
	// Where a consumer starts cannot change: an existing one keeps its
	// own (another process may have made it a moment ago).
	if existing, err := r.cfg.Stream.Consumer(ctx, cfg.Durable); err == nil {
		old := existing.CachedInfo().Config
		cfg.DeliverPolicy, cfg.OptStartTime, cfg.OptStartSeq = old.DeliverPolicy, old.OptStartTime, old.OptStartSeq
	}
	cons, err := r.cfg.Stream.CreateOrUpdateConsumer(ctx, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return stopContext, nil
		}
		return stopContext, fmt.Errorf("sink %s: creating consumer: %w", sink.Name(), err)
	}
	r.waitForPredecessor(ctx, cons, log)
	if ctx.Err() != nil || (held != nil && !held()) {
		// Stopped, or the lease lapsed, while waiting: pull nothing.
		return stopContext, nil
	}
	d := newDispatcher(ctx, r, sink, log, held)
	gone := make(chan struct{}, 1)
	cc, err := cons.Consume(d.dispatch,
		jetstream.PullMaxMessages(min(r.cfg.MaxPending, 500)),
		jetstream.PullExpiry(r.pullExpiry()),
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
		d.cancel()
		return stopContext, fmt.Errorf("sink %s: consuming: %w", sink.Name(), err)
	}
	go d.keepAlive()
	stop := stopContext
	select {
	case <-d.ctx.Done():
	case <-gone:
		stop = stopConsumerLost
	case <-d.disabled:
		stop = stopDisabled
	}
	// Workers stop; Drain hands the messages still buffered to dispatch,
	// which keeps them aside now that the dispatcher is closed. Then every
	// held event goes back, in stream order.
	d.close()
	cc.Drain()
	select {
	case <-cc.Closed():
	case <-time.After(5 * time.Second):
	}
	d.wg.Wait()
	d.handBack(cons)
	return stop, nil
}

// pullExpiry is how long a pull request of this process lives at the
// server: shorter than a lease, so that a process paused past its lease
// (which cannot withdraw its requests) is gone from the consumer by the
// time another takes over.
func (r *Runtime) pullExpiry() time.Duration {
	return min(30*time.Second, max(r.cfg.LeaseTTL/3, time.Second))
}

// waitForPredecessor waits until the previous holder is gone from the
// consumer before this process pulls. Its pull requests, until they
// expire, would take events beside ours; the events it had in flight
// (a holder that died rather than handed them back) are redelivered
// after AckWait and before anything newer. Either would break a
// conversation's order.
func (r *Runtime) waitForPredecessor(ctx context.Context, cons jetstream.Consumer, log *slog.Logger) {
	deadline := time.Now().Add(r.pullExpiry() + time.Second)
	for ctx.Err() == nil {
		info, err := cons.Info(ctx)
		if err != nil || info.NumWaiting == 0 || time.Now().After(deadline) {
			break
		}
		sleep(ctx, 100*time.Millisecond)
	}
	if info, err := cons.Info(ctx); err == nil && info.NumAckPending > 0 {
		log.Info("waiting for the events a previous holder had in flight", "events", info.NumAckPending, "wait", r.cfg.AckWait)
		sleep(ctx, r.cfg.AckWait)
	}
}

// dispatcher routes a sink's events to one queue per conversation and
// runs a worker for each queue that holds events.
type dispatcher struct {
	rt      *Runtime
	sink    Sink
	batcher Batcher // sink as a Batcher, or nil
	name    string
	log     *slog.Logger
	ctx     context.Context
	cancel  context.CancelFunc
	held    func() bool // the lease, or nil
	ep      *endpoint
	records failures
	slots   chan struct{} // MaxConcurrent deliveries at a time
	wg      sync.WaitGroup

	mu       sync.Mutex
	convs    map[string]*conversation
	closed   bool          // stopping: no new workers, arrivals kept aside
	aside    []heldEvent   // arrivals after close, handed back with the rest
	disabled chan struct{} // closed when the sink asked to be disabled
	disable  sync.Once
}

// conversation is the queue of one conversation's held events, in
// stream order. The first inFlight of them are being delivered.
type conversation struct {
	key      string
	queue    []heldEvent
	inFlight int
	// singlesUntil: events up to this stream sequence go one at a time
	// (their batch failed for good).
	singlesUntil uint64
}

// heldEvent is a message the dispatcher holds, with its stream sequence.
type heldEvent struct {
	msg jetstream.Msg
	seq uint64
	// delivered is how often JetStream has handed it out (1: never before).
	delivered uint64
	published time.Time
}

func newDispatcher(ctx context.Context, r *Runtime, sink Sink, log *slog.Logger, held func() bool) *dispatcher {
	ctx, cancel := context.WithCancel(ctx)
	d := &dispatcher{
		rt: r, sink: sink, name: sink.Name(), log: log, ctx: ctx, cancel: cancel, held: held,
		records:  failures{kv: r.cfg.Records, sink: sink.Name()},
		slots:    make(chan struct{}, r.cfg.MaxConcurrent),
		convs:    map[string]*conversation{},
		disabled: make(chan struct{}),
	}
	d.batcher, _ = sink.(Batcher)
	m := r.cfg.Metrics
	d.ep = newEndpoint(max(r.cfg.ProbeEvery/10, time.Millisecond), r.cfg.ProbeEvery, r.cfg.Now,
		func(up bool, downFor time.Duration, parked int) {
			if up {
				r.board.setState(d.name, StateDelivering, r.cfg.Now())
				m.up.WithLabelValues(d.name).Set(1)
				log.Info("sink back: resuming every waiting conversation", "down_for", downFor.Round(time.Millisecond), "conversations", parked)
				return
			}
			m.up.WithLabelValues(d.name).Set(0)
			r.board.setState(d.name, StateDown, r.cfg.Now())
			log.Warn("sink down: its conversations wait while one event probes it", "probe_every_max", r.cfg.ProbeEvery)
		})
	m.up.WithLabelValues(d.name).Set(1)
	r.board.setState(d.name, StateDelivering, r.cfg.Now())
	return d
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

// close stops workers and keeps later arrivals aside.
func (d *dispatcher) close() {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	d.cancel()
}

// dispatch is called by Consume, one message at a time. JetStream hands
// out new events in stream order, but redeliveries (after a hand-back or
// a crash) can come in any order: each event is inserted by its stream
// sequence, never ahead of one being delivered.
func (d *dispatcher) dispatch(msg jetstream.Msg) {
	h := heldEvent{msg: msg, delivered: 1}
	if meta, err := msg.Metadata(); err == nil {
		h.seq, h.delivered, h.published = meta.Sequence.Stream, meta.NumDelivered, meta.Timestamp
	}
	key := d.conversationKey(msg.Subject())
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || (d.held != nil && !d.held()) {
		// Stopping, or the lease lapsed (a process that was paused):
		// nothing new starts; the event goes back with the rest.
		d.aside = append(d.aside, h)
		if !d.closed {
			d.closed = true
			d.cancel()
		}
		return
	}
	c, ok := d.convs[key]
	if !ok {
		c = &conversation{key: key}
		d.convs[key] = c
	}
	i := c.inFlight + sortPos(c.queue[c.inFlight:], h.seq)
	if i < len(c.queue) && c.queue[i].seq == h.seq && h.seq != 0 {
		c.queue[i] = h // a redelivery of one held already: answer on the newer one
	} else {
		c.queue = slices.Insert(c.queue, i, h)
	}
	if !ok {
		d.wg.Add(1)
		go d.work(c)
	}
}

// sortPos is where seq goes in q (ordered by seq).
func sortPos(q []heldEvent, seq uint64) int {
	i, _ := slices.BinarySearchFunc(q, seq, func(h heldEvent, s uint64) int { return cmp.Compare(h.seq, s) })
	return i
}

// conversationKey groups msg, recall and sent events of one conversation.
func (d *dispatcher) conversationKey(subject string) string {
	r, err := d.rt.cfg.Subjects.ParseSubject(subject)
	if err != nil || r.TalkerID == 0 {
		return subject
	}
	return fmt.Sprintf("%d.%d.%d", r.UID, r.SessionType, r.TalkerID)
}

// handBack gives every held event back to JetStream, in stream order, so
// that the process that consumes next gets each conversation in order.
//
// It first makes sure the server holds no pull request of this process:
// otherwise the server hands the first event straight back to the stale
// request, where it is lost until AckWait and comes back behind later
// events of its conversation.
func (d *dispatcher) handBack(cons jetstream.Consumer) {
	// A consumer info request makes the server drop the waiting pull
	// requests nobody listens to any more, ours among them.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(d.ctx), 2*time.Second)
	_, _ = cons.Info(ctx)
	cancel()
	d.mu.Lock()
	all := d.aside
	d.aside = nil
	for _, c := range d.convs {
		all = append(all, c.queue...)
	}
	d.convs = map[string]*conversation{}
	d.mu.Unlock()
	slices.SortStableFunc(all, func(a, b heldEvent) int { return cmp.Compare(a.seq, b.seq) })
	for _, h := range all {
		_ = h.msg.Nak()
	}
	if len(all) > 0 {
		d.log.Debug("handed held events back", "events", len(all))
	}
}

// keepAlive tells JetStream, every half AckWait, that the held events
// are still being worked on, so that waiting behind a retry does not
// turn into a redelivery.
func (d *dispatcher) keepAlive() {
	t := time.NewTicker(d.rt.cfg.AckWait / 2)
	defer t.Stop()
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-t.C:
		}
		d.mu.Lock()
		var held []jetstream.Msg
		for _, c := range d.convs {
			for _, h := range c.queue {
				held = append(held, h.msg)
			}
		}
		d.mu.Unlock()
		for _, m := range held {
			_ = m.InProgress()
		}
	}
}

package team

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bilibridge/bilibridge/bus"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/lease"
)

// Publisher stores an event on JetStream and returns its stream sequence
// once stored (bus.Publisher implements it).
type Publisher interface {
	PublishSeq(ctx context.Context, subject string, ev events.Event) (uint64, error)
	// PublishIfLast publishes only while the last event on subject is at
	// stream sequence last, else bus.ErrConflict.
	PublishIfLast(ctx context.Context, subject string, ev events.Event, last uint64) (uint64, error)
}

// ProjectionConfig configures a Projection.
type ProjectionConfig struct {
	Stream   jetstream.Stream   // BILI
	KV       jetstream.KeyValue // bili_conversations
	Subjects events.Subjects
	// Publisher publishes what the projection decides on its own: a
	// conversation an incoming message reopened, a snooze that ran out.
	Publisher Publisher
	// Leases, when set, lets one process at a time save to KV and publish
	// (the others only read); LeaseTTL is the bucket's TTL.
	Leases   jetstream.KeyValue
	LeaseTTL time.Duration
	Holder   string
	// SaveEvery is how often changed conversations are saved; default 1s.
	SaveEvery time.Duration
	Logger    *slog.Logger
	Now       func() time.Time
}

// Event is an applied event with its stream sequence, as subscribers
// (the HTTP API's event stream) receive it.
type Event struct {
	Subject string
	Seq     uint64
	Event   events.Event
}

// Projection keeps the state of every conversation in memory, applying
// the events of stream BILI (messages, recalls, send results, team
// actions) in stream order. Every bridge process runs one, so every
// process answers from its own memory; one process at a time (a lease)
// also saves the state to KV, so that a restart resumes from it rather
// than from the start of the stream, and publishes what the projection
// decides on its own.
type Projection struct {
	cfg ProjectionConfig
	log *slog.Logger

	mu      sync.RWMutex
	convs   map[events.ConversationKey]*Conversation
	applied uint64        // stream sequence of the last event applied
	wake    chan struct{} // closed and replaced at each applied event
	dirty   map[events.ConversationKey]bool
	ready   bool
	subs    map[chan Event]struct{}
	history map[events.ConversationKey]*historyIndex
}

// checkpointKey holds the stream sequence every saved conversation
// reflects at least.
const checkpointKey = "checkpoint"

// NewProjection returns a projection of cfg.Stream.
func NewProjection(cfg ProjectionConfig) *Projection {
	if cfg.SaveEvery <= 0 {
		cfg.SaveEvery = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 30 * time.Second
	}
	if cfg.Holder == "" {
		cfg.Holder = uuid.NewString()
	}
	return &Projection{
		cfg: cfg, log: cfg.Logger.With("component", "team"),
		convs: map[events.ConversationKey]*Conversation{}, wake: make(chan struct{}),
		dirty: map[events.ConversationKey]bool{}, subs: map[chan Event]struct{}{},
		history: map[events.ConversationKey]*historyIndex{},
	}
}

// Run loads the saved state, then applies the stream from where the
// saved state ends, until ctx ends.
func (p *Projection) Run(ctx context.Context) error {
	start, err := p.load(ctx)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if p.cfg.KV != nil || p.cfg.Publisher != nil {
		wg.Add(1)
		go func() { defer wg.Done(); p.keep(ctx) }()
	}
	wait := time.Second
	for ctx.Err() == nil {
		err := p.consume(ctx, start)
		if ctx.Err() != nil {
			return nil
		}
		p.log.Warn("team projection: consuming stream BILI failed; retrying", "retry_in", wait, "err", err)
		sleep(ctx, wait)
		wait = min(2*wait, time.Minute)
		p.mu.RLock()
		start = p.applied + 1
		p.mu.RUnlock()
	}
	return nil
}

// load reads the saved conversations and returns the stream sequence to
// resume from: after the checkpoint, or the start of the stream when
// there is none (a first start, or the bucket was lost).
func (p *Projection) load(ctx context.Context) (uint64, error) {
	if p.cfg.KV == nil {
		return 1, nil
	}
	lister, err := p.cfg.KV.ListKeys(ctx)
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			p.log.Info("team state: nothing saved; building it from stream BILI")
			return 1, nil
		}
		return 0, fmt.Errorf("team state: listing saved conversations: %w", err)
	}
	defer func() { _ = lister.Stop() }()
	var checkpoint uint64
	n := 0
	for k := range lister.Keys() {
		e, err := p.cfg.KV.Get(ctx, k)
		if err != nil {
			continue
		}
		if k == checkpointKey {
			checkpoint, _ = strconv.ParseUint(string(e.Value()), 10, 64)
			continue
		}
		key, err := events.ParseConversationKey(k)
		if err != nil {
			continue
		}
		var c Conversation
		if json.Unmarshal(e.Value(), &c) != nil {
			p.log.Warn("team state: a saved conversation is unreadable; it is rebuilt from the stream", "conversation", k)
			continue
		}
		c.Key = key
		c.index()
		p.convs[key] = &c
		n++
	}
	if checkpoint == 0 {
		p.log.Info("team state: no checkpoint; building it from stream BILI", "saved_conversations", n)
		return 1, nil
	}
	p.log.Info("team state loaded", "conversations", n, "resume_after", checkpoint)
	return checkpoint + 1, nil
}

// consume applies the stream from sequence start with an ordered
// consumer (which recreates itself after a gap) until ctx ends or it
// fails.
func (p *Projection) consume(ctx context.Context, start uint64) error {
	cons, err := p.cfg.Stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		// One filter, the kinds sorted out in Apply: several filters make
		// the server far slower (see events.Subjects.Stream).
		FilterSubjects: []string{p.cfg.Subjects.Stream()},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    max(start, 1),
	})
	if err != nil {
		return err
	}
	info, err := p.cfg.Stream.Info(ctx)
	if err != nil {
		return err
	}
	if info.State.LastSeq < max(start, 1) {
		p.setReady()
	}
	caughtUpAt := info.State.LastSeq
	failed := make(chan error, 1)
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		meta, err := msg.Metadata()
		if err != nil {
			return
		}
		ev, err := events.Parse(msg.Data())
		if err != nil {
			p.log.Warn("team projection: skipping an event that does not parse", "seq", meta.Sequence.Stream, "err", err)
			p.advance(meta.Sequence.Stream)
			return
		}
		p.Apply(msg.Subject(), meta.Sequence.Stream, ev)
		if meta.Sequence.Stream >= caughtUpAt || meta.NumPending == 0 {
			p.setReady()
		}
	}, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrNoHeartbeat) {
			select {
			case failed <- err:
			default:
			}
		}
	}))
	if err != nil {
		return err
	}
	defer cc.Stop()
	select {
	case <-ctx.Done():
		return nil
	case err := <-failed:
		return err
	}
}

func (p *Projection) setReady() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.ready {
		p.ready = true
		p.log.Info("team state up to date", "conversations", len(p.convs), "seq", p.applied)
	}
}

// Ready reports whether the projection has caught up with the stream
// once since it started.
func (p *Projection) Ready() bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.ready
}

// Apply applies ev, found at stream sequence seq on subject; tests and
// the consumer call it, in stream order.
func (p *Projection) Apply(subject string, seq uint64, ev events.Event) {
	route, err := p.cfg.Subjects.ParseSubject(subject)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil || !p.cfg.Subjects.InInbox(subject) {
		// Dead letters, replays: not what the team sees.
		p.advanceLocked(seq)
		return
	}
	if route.TalkerID != 0 {
		p.applyLocked(events.ConversationKey{AccountUID: route.UID, SessionType: route.SessionType, TalkerID: route.TalkerID}, seq, ev)
	}
	p.advanceLocked(seq)
	for s := range p.subs {
		select {
		case s <- Event{Subject: subject, Seq: seq, Event: ev}:
		default:
			// A subscriber that does not keep up is dropped rather than
			// left with a gap it cannot see: its channel closes, and it
			// resumes from the stream after the last sequence it had.
			close(s)
			delete(p.subs, s)
		}
	}
}

// applyLocked applies a conversation's event.
func (p *Projection) applyLocked(key events.ConversationKey, seq uint64, ev events.Event) {
	c, ok := p.convs[key]
	if !ok {
		// A team action or a send result may come before any message of
		// the conversation is known: kept, its name comes later.
		c = &Conversation{Key: key, AccountUID: key.AccountUID, SessionType: key.SessionType, TalkerID: key.TalkerID}
		p.convs[key] = c
	}
	if c.apply(seq, ev) {
		c.index()
		p.dirty[key] = true
		if h := p.history[key]; h != nil {
			h.add(seq, ev)
		}
	}
}

func (p *Projection) advance(seq uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.advanceLocked(seq)
}

func (p *Projection) advanceLocked(seq uint64) {
	if seq > p.applied {
		p.applied = seq
		close(p.wake)
		p.wake = make(chan struct{})
	}
}

// WaitApplied waits until the event at stream sequence seq is applied
// (read-your-writes after an action), or ctx ends.
func (p *Projection) WaitApplied(ctx context.Context, seq uint64) error {
	for {
		p.mu.RLock()
		applied, wake := p.applied, p.wake
		p.mu.RUnlock()
		if applied >= seq {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		}
	}
}

// Applied is the stream sequence of the last event applied.
func (p *Projection) Applied() uint64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.applied
}

// Get returns a copy of the conversation with key.
func (p *Projection) Get(key events.ConversationKey) (*Conversation, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	c, ok := p.convs[key]
	if !ok || c.LastMessage == nil && c.Name == "" {
		return nil, false
	}
	return c.clone(), true
}

// Subscribe returns a channel of every event applied from now on, and the
// function that ends the subscription. A subscriber that falls more than
// buffer events behind is dropped: its channel is closed (see Apply).
func (p *Projection) Subscribe(buffer int) (<-chan Event, func()) {
	ch := make(chan Event, buffer)
	p.mu.Lock()
	p.subs[ch] = struct{}{}
	p.mu.Unlock()
	return ch, func() {
		p.mu.Lock()
		if _, ok := p.subs[ch]; ok {
			delete(p.subs, ch)
			close(ch)
		}
		p.mu.Unlock()
	}
}

// keep runs what one process at a time does: save changed conversations
// to KV, and publish what the projection decided.
func (p *Projection) keep(ctx context.Context) {
	held := func() bool { return true }
	if p.cfg.Leases != nil {
		l := lease.New(p.cfg.Leases, "team", p.cfg.Holder, p.cfg.LeaseTTL, p.log)
		go l.Keep(ctx, nil)
		held = l.Held
	}
	t := time.NewTicker(p.cfg.SaveEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if held() {
				p.save(context.WithoutCancel(ctx))
			}
			return
		case <-t.C:
		}
		if !held() {
			continue
		}
		p.save(ctx)
		// Decisions are taken on the whole stream's state, not on a
		// projection still catching up (which would see old reopenings).
		if p.Ready() {
			p.publishDecisions(ctx)
		}
	}
}

// save writes the changed conversations, then the checkpoint.
func (p *Projection) save(ctx context.Context) {
	if p.cfg.KV == nil {
		return
	}
	p.mu.Lock()
	if len(p.dirty) == 0 {
		p.mu.Unlock()
		return
	}
	applied := p.applied
	todo := make(map[events.ConversationKey][]byte, len(p.dirty))
	for key := range p.dirty {
		b, err := json.Marshal(p.convs[key])
		if err == nil {
			todo[key] = b
		}
	}
	p.dirty = map[events.ConversationKey]bool{}
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for key, b := range todo {
		if _, err := p.cfg.KV.Put(ctx, key.String(), b); err != nil {
			p.log.Warn("team state: saving a conversation failed; it is saved again later", "conversation", key, "err", err)
			// This one and every one not written yet: no checkpoint may
			// pass them before they are saved.
			p.mu.Lock()
			for k := range todo {
				p.dirty[k] = true
			}
			p.mu.Unlock()
			return
		}
		delete(todo, key)
	}
	if _, err := p.cfg.KV.Put(ctx, checkpointKey, []byte(strconv.FormatUint(applied, 10))); err != nil {
		p.log.Warn("team state: saving the checkpoint failed", "err", err)
	}
}

// publishDecisions publishes a status event (by the bridge) for every
// conversation an incoming message reopened and every snooze that ran
// out, so that every surface shows it. The decisions are read from the
// state (kept in KV with it), so one that fails is tried again at the
// next tick, and a process that takes over the lease announces what its
// predecessor did not. Each is published only if the conversation's last
// team event is still the one it was taken on: a member who marked it
// done meanwhile wins. Their ids are deterministic, so a decision
// published by two processes around a lease change is one event.
func (p *Projection) publishDecisions(ctx context.Context) {
	if p.cfg.Publisher == nil {
		return
	}
	now := p.cfg.Now()
	type decision struct {
		id   string
		conv events.Conversation
		key  events.ConversationKey
		seen uint64 // the conversation's last event applied
	}
	var todo []decision
	p.mu.Lock()
	for key, c := range p.convs {
		switch {
		case c.ReopenedBy != 0:
			todo = append(todo, decision{fmt.Sprintf("%s-reopened-%d", key, c.ReopenedBy), conversationOf(c), key, c.Seq})
		case c.Status == events.ConversationSnoozed && c.SnoozedUntil != nil && !now.Before(*c.SnoozedUntil):
			todo = append(todo, decision{fmt.Sprintf("%s-unsnoozed-%d", key, c.SnoozedUntil.Unix()), conversationOf(c), key, c.Seq})
		}
	}
	p.mu.Unlock()
	for _, d := range todo {
		ev, err := events.New(d.key.AccountUID, events.TypeTeamStatus, d.id, d.key.Subject(), now, events.StatusData{
			TeamBase: events.TeamBase{AccountUID: d.key.AccountUID, Conversation: d.conv, By: events.Actor{System: true}},
			Status:   events.ConversationOpen,
		})
		if err != nil {
			continue
		}
		subject := p.cfg.Subjects.Team(d.key.AccountUID, d.key.SessionType, d.key.TalkerID)
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		last, err := p.lastOn(pctx, subject)
		if err == nil && last > d.seen {
			cancel()
			continue // a team action this view has not applied yet: it decides
		}
		if err == nil {
			_, err = p.cfg.Publisher.PublishIfLast(pctx, subject, ev, last)
		}
		cancel()
		switch {
		case errors.Is(err, bus.ErrConflict):
			// A newer team action: it decides, once applied.
		case err != nil:
			p.log.Warn("team state: publishing a reopening failed; it is tried again", "conversation", d.key, "err", err)
		}
	}
}

// lastOn is the stream sequence of the last event on subject, 0 for none.
func (p *Projection) lastOn(ctx context.Context, subject string) (uint64, error) {
	m, err := p.cfg.Stream.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return m.Sequence, nil
}

// conversationOf is the event model's description of c.
func conversationOf(c *Conversation) events.Conversation {
	return events.Conversation{SessionType: c.SessionType, TalkerID: c.TalkerID, Kind: c.Kind, Name: c.Name, Avatar: c.Avatar}
}

// all returns every conversation (not copied: callers hold p.mu).
func (p *Projection) sortedLocked(keep func(*Conversation) bool) []*Conversation {
	out := make([]*Conversation, 0, len(p.convs))
	for _, c := range p.convs {
		if c.LastMessage == nil && c.Name == "" {
			continue // only team actions seen so far: nothing to show
		}
		if keep(c) {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b *Conversation) int {
		if c := b.LastActivity.Compare(a.LastActivity); c != 0 {
			return c
		}
		return cmp.Compare(a.Key.String(), b.Key.String())
	})
	return out
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

package team

import (
	"cmp"
	"context"
	"encoding/json"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilibridge/bilibridge/events"
)

// How long presence lasts without being said again: the browser repeats
// "viewing" every 10 s and "typing" every 2 s while it is so.
const (
	ViewingTTL = 30 * time.Second
	TypingTTL  = 5 * time.Second
)

// Viewer is a member who has a conversation open.
type Viewer struct {
	Member string `json:"member"`
	Typing bool   `json:"typing"`
}

// PresenceUpdate is who has one conversation open now.
type PresenceUpdate struct {
	Conversation events.ConversationKey
	Viewers      []Viewer // sorted by member; empty: nobody
}

// presenceMsg is what processes tell each other on Subjects.Presence.
type presenceMsg struct {
	Conversation string `json:"conversation"` // ConversationKey.String
	Member       string `json:"member"`
	Typing       bool   `json:"typing,omitempty"`
	Left         bool   `json:"left,omitempty"`
}

type presence struct {
	viewing, typing time.Time // until when
}

// Presence is who has which conversation open in the browser inbox and
// who is typing a reply there, so that two members do not answer the same
// person. It is only true for seconds, so it is not stored: processes
// tell each other over core NATS, and each keeps what it heard.
type Presence struct {
	nc      *nats.Conn
	subject string
	now     func() time.Time

	mu    sync.Mutex
	state map[events.ConversationKey]map[string]presence
	subs  map[chan PresenceUpdate]struct{}
}

// NewPresence returns the presence shared over nc.
func NewPresence(nc *nats.Conn, subjects events.Subjects) *Presence {
	return &Presence{nc: nc, subject: subjects.Presence(), now: time.Now,
		state: map[events.ConversationKey]map[string]presence{}, subs: map[chan PresenceUpdate]struct{}{}}
}

// Run listens to the other processes and lets presence run out, until
// ctx ends.
func (p *Presence) Run(ctx context.Context) error {
	sub, err := p.nc.Subscribe(p.subject, func(m *nats.Msg) {
		var pm presenceMsg
		if json.Unmarshal(m.Data, &pm) != nil || pm.Member == "" {
			return
		}
		key, err := events.ParseConversationKey(pm.Conversation)
		if err != nil {
			return
		}
		p.apply(key, pm)
	})
	if err != nil {
		return err
	}
	defer func() { _ = sub.Unsubscribe() }()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			p.expire()
		}
	}
}

// Say tells every process that member has the conversation open (and is
// typing), or with left that they closed it.
func (p *Presence) Say(key events.ConversationKey, member string, typing, left bool) error {
	b, err := json.Marshal(presenceMsg{Conversation: key.String(), Member: member, Typing: typing, Left: left})
	if err != nil {
		return err
	}
	return p.nc.Publish(p.subject, b)
}

// apply records what a process said and tells the subscribers when it
// changes what they see.
func (p *Presence) apply(key events.ConversationKey, pm presenceMsg) {
	p.mu.Lock()
	defer p.mu.Unlock()
	conv := p.state[key]
	before := viewersOf(conv, p.now())
	if pm.Left {
		delete(conv, pm.Member)
	} else {
		if conv == nil {
			conv = map[string]presence{}
			p.state[key] = conv
		}
		now := p.now()
		pr := presence{viewing: now.Add(ViewingTTL)}
		if pm.Typing {
			pr.typing = now.Add(TypingTTL)
		}
		conv[pm.Member] = pr
	}
	if len(conv) == 0 {
		delete(p.state, key)
	}
	if after := viewersOf(conv, p.now()); !slices.Equal(before, after) {
		p.notifyLocked(PresenceUpdate{Conversation: key, Viewers: after})
	}
}

// expire drops what ran out, and says so.
func (p *Presence) expire() {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	for key, conv := range p.state {
		changed := false
		for m, pr := range conv {
			switch {
			case now.After(pr.viewing):
				delete(conv, m)
				changed = true
			case !pr.typing.IsZero() && now.After(pr.typing):
				pr.typing = time.Time{}
				conv[m] = pr
				changed = true
			}
		}
		if len(conv) == 0 {
			delete(p.state, key)
		}
		if changed {
			p.notifyLocked(PresenceUpdate{Conversation: key, Viewers: viewersOf(conv, now)})
		}
	}
}

// Snapshot is every conversation someone has open now.
func (p *Presence) Snapshot() []PresenceUpdate {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]PresenceUpdate, 0, len(p.state))
	for key, conv := range p.state {
		if v := viewersOf(conv, p.now()); len(v) > 0 {
			out = append(out, PresenceUpdate{Conversation: key, Viewers: v})
		}
	}
	return out
}

// Subscribe returns a channel of the changes from now on, and the
// function that ends the subscription. A subscriber more than buffer
// changes behind misses changes (presence is refreshed every few
// seconds anyway).
func (p *Presence) Subscribe(buffer int) (<-chan PresenceUpdate, func()) {
	ch := make(chan PresenceUpdate, buffer)
	p.mu.Lock()
	p.subs[ch] = struct{}{}
	p.mu.Unlock()
	return ch, func() {
		p.mu.Lock()
		delete(p.subs, ch)
		p.mu.Unlock()
	}
}

func (p *Presence) notifyLocked(u PresenceUpdate) {
	for ch := range p.subs {
		select {
		case ch <- u:
		default:
		}
	}
}

func viewersOf(conv map[string]presence, now time.Time) []Viewer {
	out := []Viewer{}
	for m, pr := range conv {
		if now.After(pr.viewing) {
			continue
		}
		out = append(out, Viewer{Member: m, Typing: !pr.typing.IsZero() && now.Before(pr.typing)})
	}
	slices.SortFunc(out, func(a, b Viewer) int { return cmp.Compare(a.Member, b.Member) })
	return out
}

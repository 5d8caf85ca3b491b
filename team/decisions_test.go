package team_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bilibridge/bilibridge/bus"
	"github.com/bilibridge/bilibridge/bus/bustest"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/team"
	"github.com/bilibridge/bilibridge/team/teamtest"
)

// The bridge's own decisions (reopening a conversation for a new DM,
// ending a snooze) must never undo a member's newer action, must not be
// lost when a publish fails, and must not come back after a lease
// hand-over; the state is saved whole even when a KV write fails.

// startProjection runs a projection of r with cfg (the rig's stream and
// publisher by default) and a service on it; stop ends it.
func startProjection(t *testing.T, r *teamtest.Rig, cfg team.ProjectionConfig) (s *team.Service, stop func()) {
	t.Helper()
	if cfg.Stream == nil {
		cfg.Stream = r.Store.Events
	}
	if cfg.Publisher == nil {
		cfg.Publisher = r.Pub
	}
	p := team.NewProjection(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(ctx) }()
	var once atomic.Bool
	stop = func() {
		if once.CompareAndSwap(false, true) {
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	bustest.Eventually(t, "the projection up to date", p.Ready)
	return team.NewService(team.ServiceConfig{Projection: p, Publisher: r.Pub, Members: r.Members}), stop
}

// statuses are the status events of conv on the stream: "done/ana",
// "open/the bridge", …
func statuses(r *teamtest.Rig) []string {
	var out []string
	for _, e := range r.TeamEvents(conv) {
		var d events.StatusData
		if e.Type == events.TypeTeamStatus && e.DecodeData(&d) == nil {
			out = append(out, d.Status+"/"+d.By.String())
		}
	}
	return out
}

func systemReopenings(r *teamtest.Rig) int {
	n := 0
	for _, s := range statuses(r) {
		if s == events.ConversationOpen+"/"+(events.Actor{System: true}).String() {
			n++
		}
	}
	return n
}

func setStatus(t *testing.T, s *team.Service, status string) {
	t.Helper()
	if _, err := s.SetStatus(context.Background(), conv, status, time.Time{}, ana); err != nil {
		t.Fatal(err)
	}
}

// flakyPublisher fails its next fails publishes.
type flakyPublisher struct {
	*bus.Publisher
	fails atomic.Int32
}

func (f *flakyPublisher) PublishSeq(ctx context.Context, subject string, ev events.Event) (uint64, error) {
	if f.fails.Add(-1) >= 0 {
		return 0, errors.New("nats: timeout")
	}
	return f.Publisher.PublishSeq(ctx, subject, ev)
}

func (f *flakyPublisher) PublishIfLast(ctx context.Context, subject string, ev events.Event, last uint64) (uint64, error) {
	if f.fails.Add(-1) >= 0 {
		return 0, errors.New("nats: timeout")
	}
	return f.Publisher.PublishIfLast(ctx, subject, ev, last)
}

func TestReopeningIsAnnouncedAfterAFailedPublish(t *testing.T) {
	r := newRig(t)
	pub := &flakyPublisher{Publisher: r.Pub}
	s, _ := startProjection(t, r.Rig, team.ProjectionConfig{KV: r.Store.Conversations, Publisher: pub, SaveEvery: 50 * time.Millisecond})
	r.message(events.DirectionIn, "hi")
	bustest.Eventually(t, "the conversation", func() bool { _, err := s.Get(conv); return err == nil })
	setStatus(t, s, events.ConversationDone)
	pub.fails.Store(1)
	r.message(events.DirectionIn, "one more thing")
	bustest.Eventually(t, "the reopening announced", func() bool { return systemReopenings(r.Rig) == 1 })
}

func TestMembersActionAfterANewDMIsNotUndone(t *testing.T) {
	r := newRig(t)
	s, _ := startProjection(t, r.Rig, team.ProjectionConfig{KV: r.Store.Conversations, SaveEvery: 300 * time.Millisecond})
	r.message(events.DirectionIn, "hi")
	bustest.Eventually(t, "the conversation", func() bool { _, err := s.Get(conv); return err == nil })
	setStatus(t, s, events.ConversationDone)
	r.message(events.DirectionIn, "thanks, bye")
	bustest.Eventually(t, "reopened", func() bool { c, _ := s.Get(conv); return c.Status == events.ConversationOpen })
	setStatus(t, s, events.ConversationDone) // at once, before the bridge announces the reopening
	time.Sleep(time.Second)                  // several of the bridge's rounds of decisions
	if c, _ := s.Get(conv); c.Status != events.ConversationDone {
		t.Fatalf("the member's done after the DM was undone: %s (status events %v)", c.Status, statuses(r.Rig))
	}
}

// A process that takes the lease over does not announce reopenings its
// predecessor announced (or a member overrode) long ago, past the
// stream's duplicate window (1 s here, 1 h in production).
func TestLeaseHandOverDoesNotRepeatOldDecisions(t *testing.T) {
	conn := bustest.StartServer(t).Connect(t)
	st, err := bus.Provision(context.Background(), conn.JS, bus.StoreConfig{DuplicateWindow: time.Second, LeaseTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	r := &teamtest.Rig{T: t, Conn: conn, Store: st, Pub: &bus.Publisher{JS: conn.JS}, Members: team.NewMembers(st.Team)}
	r.AddMember("ana", team.RoleAgent)
	cfg := team.ProjectionConfig{KV: st.Conversations, Leases: st.Leases, LeaseTTL: time.Second, SaveEvery: 50 * time.Millisecond}
	cfg.Holder = "first"
	first, stopFirst := startProjection(t, r, cfg)
	cfg.Holder = "second"
	second, _ := startProjection(t, r, cfg)
	r.Message(conv, events.DirectionIn, "hi")
	bustest.Eventually(t, "the conversation", func() bool { _, err := first.Get(conv); return err == nil })
	setStatus(t, first, events.ConversationDone)
	r.Message(conv, events.DirectionIn, "one more")
	bustest.Eventually(t, "the reopening announced", func() bool { return systemReopenings(r) == 1 })
	setStatus(t, first, events.ConversationDone)
	time.Sleep(1500 * time.Millisecond) // past the duplicate window
	stopFirst()
	bustest.Eventually(t, "the second process holding the lease", func() bool {
		e, err := st.Leases.Get(context.Background(), "team")
		return err == nil && string(e.Value()) == "second"
	})
	time.Sleep(time.Second) // its rounds of decisions
	if c, _ := second.Get(conv); c.Status != events.ConversationDone || systemReopenings(r) != 1 {
		t.Fatalf("after the hand-over: %s, status events %v", c.Status, statuses(r))
	}
}

// flakyKV fails its next fails writes of a conversation.
type flakyKV struct {
	jetstream.KeyValue
	fails atomic.Int32
}

func (f *flakyKV) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	if key != "checkpoint" && f.fails.Add(-1) >= 0 {
		return 0, errors.New("nats: timeout")
	}
	return f.KeyValue.Put(ctx, key, value)
}

func TestAFailedSaveLosesNoConversation(t *testing.T) {
	r := newRig(t)
	kv := &flakyKV{KeyValue: r.Store.Conversations}
	s, stop := startProjection(t, r.Rig, team.ProjectionConfig{KV: kv, SaveEvery: 200 * time.Millisecond})
	var keys []events.ConversationKey
	for i := range uint64(5) {
		k := events.ConversationKey{AccountUID: uid, SessionType: 1, TalkerID: 1000 + i}
		keys = append(keys, k)
		r.Message(k, events.DirectionIn, "hi")
	}
	bustest.Eventually(t, "the conversations", func() bool { _, err := s.Get(keys[4]); return err == nil })
	time.Sleep(500 * time.Millisecond) // saved
	kv.fails.Store(1)
	for _, k := range keys {
		if _, err := s.SetStatus(context.Background(), k, events.ConversationDone, time.Time{}, ana); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(500 * time.Millisecond) // one save fails, the next succeeds
	r.Message(events.ConversationKey{AccountUID: uid, SessionType: 1, TalkerID: 999}, events.DirectionIn, "later")
	time.Sleep(500 * time.Millisecond) // saved, checkpoint past it all
	stop()
	// A restart loads the saved state and goes on from its checkpoint.
	again, _ := startProjection(t, r.Rig, team.ProjectionConfig{KV: r.Store.Conversations, SaveEvery: time.Hour})
	for _, k := range keys {
		if c, err := again.Get(k); err != nil || c.Status != events.ConversationDone {
			t.Errorf("after a failed save and a restart, %s: %+v %v", k, c, err)
		}
	}
}

// A read up to a message reads nothing newer: a read computed before a
// new DM was applied (or sent by a process that is behind) leaves it
// unread.
func TestReadUpToAnOlderMessageLeavesNewerUnread(t *testing.T) {
	p := team.NewProjection(team.ProjectionConfig{})
	subjects := events.Subjects{}
	seq := uint64(0)
	message := func(key uint64) {
		seq++
		ev, _ := events.New(uid, events.TypeMessage, events.MessageID(uid, key), conv.Subject(), time.Now(), events.MessageData{AccountUID: uid,
			Conversation: events.Conversation{SessionType: 1, TalkerID: talker, Name: "fan"},
			Message:      events.Message{MsgKey: key, Seqno: key, Direction: events.DirectionIn, Timestamp: time.Now(), Kind: events.KindText, Text: "t"}})
		p.Apply(subjects.Message(uid, 1, talker), seq, ev)
	}
	read := func(key uint64) {
		seq++
		ev, _ := events.New(uid, events.TypeTeamRead, "read-"+time.Now().String(), conv.Subject(), time.Now(), events.ReadData{TeamBase: events.TeamBase{AccountUID: uid}, ReadUpTo: key})
		p.Apply(subjects.Team(uid, 1, talker), seq, ev)
	}
	message(100)
	message(150)
	read(100)
	message(200)
	read(100) // again, stale
	if c, _ := p.Get(conv); c.Unread != 2 || c.ReadUpTo != 100 {
		t.Fatalf("unread %d, read up to %d; want 2 (150 and 200), 100", c.Unread, c.ReadUpTo)
	}
	read(150)
	if c, _ := p.Get(conv); c.Unread != 1 || c.ReadUpTo != 150 {
		t.Fatalf("unread %d, read up to %d; want 1 (200), 150", c.Unread, c.ReadUpTo)
	}
	read(200)
	if c, _ := p.Get(conv); c.Unread != 0 {
		t.Fatalf("unread %d after reading the newest", c.Unread)
	}
}

// An action recorded on the stream but not applied by this process in
// time is reported as such (the API answers 202), and in a chat as done:
// repeating it would record it twice.
func TestActionRecordedButNotVisibleYet(t *testing.T) {
	r := newRig(t)
	s, stop := startProjection(t, r.Rig, team.ProjectionConfig{})
	r.message(events.DirectionIn, "hi")
	bustest.Eventually(t, "the conversation", func() bool { _, err := s.Get(conv); return err == nil })
	stop() // this process applies nothing more
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := s.AddNote(ctx, conv, "first", ana); !errors.Is(err, team.ErrNotVisibleYet) {
		t.Fatalf("AddNote: %v, want ErrNotVisibleYet", err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	answer, err := s.Do(ctx2, conv, team.Action{Kind: team.ActNote, Note: "second"}, ana)
	if err != nil || !strings.Contains(answer, "in a moment") {
		t.Fatalf("Do: %q %v, want done, shown in a moment", answer, err)
	}
	notes := 0
	for _, e := range r.TeamEvents(conv) {
		if e.Type == events.TypeTeamNote {
			notes++
		}
	}
	if notes != 2 {
		t.Fatalf("%d notes on the stream, want 2", notes)
	}
}

package team_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bilibridge/bilibridge/bus/bustest"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/team"
	"github.com/bilibridge/bilibridge/team/teamtest"
)

const (
	uid    = teamtest.UID
	talker = teamtest.Talker
)

var (
	conv = teamtest.Conv
	ana  = events.Actor{Member: "ana"}
)

type rig struct{ *teamtest.Rig }

func newRig(t *testing.T) rig {
	r := rig{teamtest.New(t)}
	r.AddMember("ana", team.RoleAgent)
	r.AddMember("bo", team.RoleAgent)
	return r
}

func (r rig) process(backfill team.Backfill) (*team.Projection, *team.Service) {
	r.T.Helper()
	p := r.Process(teamtest.Options{Backfill: backfill})
	return p.Projection, p.Service
}

func (r rig) message(direction, text string) uint64 {
	r.T.Helper()
	return r.Message(conv, direction, text)
}

func (r rig) teamEvents() []events.Event { r.T.Helper(); return r.TeamEvents(conv) }

func get(t *testing.T, s *team.Service) *team.Conversation {
	t.Helper()
	c, err := s.Get(conv)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The life of a conversation: a DM arrives (open, unread), it is
// assigned, a reply reads it, it is done, and the next DM reopens it.
func TestConversationLifecycle(t *testing.T) {
	r := newRig(t)
	p, s := r.process(nil)
	r.message(events.DirectionIn, "hello")
	r.message(events.DirectionIn, "anyone there?")
	bustest.Eventually(t, "the DMs in the team state", func() bool { c, err := s.Get(conv); return err == nil && c.Unread == 2 })
	c := get(t, s)
	if c.Status != events.ConversationOpen || c.Assignee != nil || c.Name != "社会易姐QwQ" || c.LastMessage.Text != "anyone there?" {
		t.Fatalf("after two DMs: %+v", c)
	}

	c, err := s.Assign(context.Background(), conv, "ana", events.Actor{Service: true})
	if err != nil || c.Assignee == nil || *c.Assignee != "ana" {
		t.Fatalf("Assign: %+v %v", c, err)
	}
	// The account answers (from the phone, or a send through the bridge).
	r.message(events.DirectionOut, "we are here")
	bustest.Eventually(t, "the reply reading the conversation", func() bool { return get(t, s).Unread == 0 })

	if c, err = s.SetStatus(context.Background(), conv, events.ConversationDone, time.Time{}, ana); err != nil || c.Status != events.ConversationDone {
		t.Fatalf("done: %+v %v", c, err)
	}
	r.message(events.DirectionIn, "one more thing")
	bustest.Eventually(t, "the new DM reopening it", func() bool { c := get(t, s); return c.Status == events.ConversationOpen && c.Unread == 1 })
	// The reopening is an event too (by the bridge), for every surface.
	bustest.Eventually(t, "the reopening event", func() bool {
		for _, ev := range r.teamEvents() {
			var d events.StatusData
			if ev.Type == events.TypeTeamStatus && ev.DecodeData(&d) == nil && d.By.System && d.Status == events.ConversationOpen {
				return true
			}
		}
		return false
	})
	var types []string
	for _, ev := range r.teamEvents() {
		types = append(types, ev.Type)
	}
	want := []string{events.TypeTeamAssigned, events.TypeTeamStatus, events.TypeTeamStatus}
	if !slices.Equal(types, want) {
		t.Errorf("team events %v, want %v", types, want)
	}
	_ = p
}

// A snooze that runs out reopens the conversation, and says so.
func TestSnoozeRunsOut(t *testing.T) {
	r := newRig(t)
	_, s := r.process(nil)
	r.message(events.DirectionIn, "hi")
	bustest.Eventually(t, "the DM", func() bool { _, err := s.Get(conv); return err == nil })
	until := time.Now().Add(300 * time.Millisecond)
	c, err := s.SetStatus(context.Background(), conv, events.ConversationSnoozed, until, ana)
	if err != nil || c.Status != events.ConversationSnoozed || c.SnoozedUntil == nil {
		t.Fatalf("snooze: %+v %v", c, err)
	}
	list, _, err := s.List(team.Filter{Status: events.ConversationSnoozed}, "", 10)
	if err != nil || len(list) != 1 {
		t.Fatalf("snoozed list: %d %v", len(list), err)
	}
	bustest.Eventually(t, "the snooze to run out", func() bool { return get(t, s).Status == events.ConversationOpen })
	bustest.Eventually(t, "the event that says so", func() bool {
		evs := r.teamEvents()
		var d events.StatusData
		return len(evs) == 2 && evs[1].DecodeData(&d) == nil && d.By.System && d.Status == events.ConversationOpen
	})
}

// Notes are the team's: they are on the conversation and in the stream as
// team events, and never become a send command.
func TestNotesStayInTheTeam(t *testing.T) {
	r := newRig(t)
	_, s := r.process(nil)
	r.message(events.DirectionIn, "where is my order?")
	bustest.Eventually(t, "the DM", func() bool { _, err := s.Get(conv); return err == nil })
	c, err := s.AddNote(context.Background(), conv, "asked the shop; waiting", ana)
	if err != nil || len(c.Notes) != 1 || c.Notes[0].Text != "asked the shop; waiting" || c.Notes[0].By.Member != "ana" {
		t.Fatalf("AddNote: %+v %v", c, err)
	}
	info, err := r.Store.Outbox.Info(context.Background())
	if err != nil || info.State.Msgs != 0 {
		t.Fatalf("the outbox holds %d commands (%v): a note must never be sent", info.State.Msgs, err)
	}
}

// Bad input is refused with an error the API answers 4xx, and changes
// nothing.
func TestBadInput(t *testing.T) {
	r := newRig(t)
	_, s := r.process(nil)
	r.message(events.DirectionIn, "hi")
	bustest.Eventually(t, "the DM", func() bool { _, err := s.Get(conv); return err == nil })
	ctx := context.Background()
	other := events.ConversationKey{AccountUID: uid, SessionType: 1, TalkerID: 1}
	for _, tc := range []struct {
		name string
		do   func() error
		want error
	}{
		{"unknown member", func() error { _, err := s.Assign(ctx, conv, "nobody", ana); return err }, team.ErrNoMember},
		{"unknown conversation", func() error { _, err := s.AddNote(ctx, other, "x", ana); return err }, team.ErrNoConversation},
		{"snooze in the past", func() error {
			_, err := s.SetStatus(ctx, conv, events.ConversationSnoozed, time.Now().Add(-time.Hour), ana)
			return err
		}, nil},
		{"unknown status", func() error { _, err := s.SetStatus(ctx, conv, "archived", time.Time{}, ana); return err }, nil},
		{"empty note", func() error { _, err := s.AddNote(ctx, conv, "  ", ana); return err }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do()
			if err == nil || !team.IsInput(err) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("err = %v, want an input error %v", err, tc.want)
			}
		})
	}
	if n := len(r.teamEvents()); n != 0 {
		t.Fatalf("%d team events after refused requests", n)
	}
}

// The state is a projection: a second process sees the same, and after
// the bucket is lost it is rebuilt from the stream.
func TestStateSharedAndRebuilt(t *testing.T) {
	r := newRig(t)
	_, s1 := r.process(nil)
	r.message(events.DirectionIn, "hello")
	bustest.Eventually(t, "the DM", func() bool { _, err := s1.Get(conv); return err == nil })
	if _, err := s1.Assign(context.Background(), conv, "bo", ana); err != nil {
		t.Fatal(err)
	}
	if _, err := s1.AddNote(context.Background(), conv, "VIP", ana); err != nil {
		t.Fatal(err)
	}
	_, s2 := r.process(nil)
	c := get(t, s2)
	if c.Assignee == nil || *c.Assignee != "bo" || len(c.Notes) != 1 || c.Unread != 1 {
		t.Fatalf("the second process sees %+v", c)
	}
	// The state was saved; lose the bucket, start afresh: rebuilt.
	bustest.Eventually(t, "the state saved", func() bool {
		_, err := r.Store.Conversations.Get(context.Background(), conv.String())
		return err == nil
	})
	if err := r.Store.Conversations.Purge(context.Background(), conv.String()); err != nil {
		t.Fatal(err)
	}
	_ = r.Store.Conversations.Purge(context.Background(), "checkpoint")
	_, s3 := r.process(nil)
	c = get(t, s3)
	if c.Assignee == nil || *c.Assignee != "bo" || len(c.Notes) != 1 || c.Unread != 1 || c.Name != "社会易姐QwQ" {
		t.Fatalf("rebuilt from the stream: %+v", c)
	}
}

// Lists filter by status, assignee and text, newest activity first, and
// page with a cursor.
func TestList(t *testing.T) {
	r := newRig(t)
	_, s := r.process(nil)
	ctx := context.Background()
	for i := range 5 {
		k := events.ConversationKey{AccountUID: uid, SessionType: 1, TalkerID: uint64(100 + i)}
		ev, _ := events.New(uid, events.TypeMessage, fmt.Sprint(uid, "-", i), k.Subject(), time.Now().Add(time.Duration(i)*time.Second), events.MessageData{
			AccountUID: uid, Conversation: events.Conversation{SessionType: 1, TalkerID: k.TalkerID, Name: fmt.Sprint("fan ", i)},
			Message: events.Message{MsgKey: uint64(1000 + i), Direction: events.DirectionIn, Timestamp: time.Now().Add(time.Duration(i) * time.Second),
				Kind: events.KindText, Text: fmt.Sprint("question ", i)},
		})
		if err := r.Pub.Publish(ctx, events.Subjects{}.Message(uid, 1, k.TalkerID), ev); err != nil {
			t.Fatal(err)
		}
	}
	bustest.Eventually(t, "five conversations", func() bool { l, _, _ := s.List(team.Filter{}, "", 10); return len(l) == 5 })
	k3 := events.ConversationKey{AccountUID: uid, SessionType: 1, TalkerID: 103}
	if _, err := s.Assign(ctx, k3, "ana", ana); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetStatus(ctx, events.ConversationKey{AccountUID: uid, SessionType: 1, TalkerID: 101}, events.ConversationDone, time.Time{}, ana); err != nil {
		t.Fatal(err)
	}
	names := func(f team.Filter) []string {
		l, _, err := s.List(f, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, c := range l {
			out = append(out, c.Name)
		}
		return out
	}
	for _, tc := range []struct {
		f    team.Filter
		want []string
	}{
		{team.Filter{}, []string{"fan 4", "fan 3", "fan 2", "fan 1", "fan 0"}},
		{team.Filter{Status: "open"}, []string{"fan 4", "fan 3", "fan 2", "fan 0"}},
		{team.Filter{Status: "done"}, []string{"fan 1"}},
		{team.Filter{Assignee: "ana"}, []string{"fan 3"}},
		{team.Filter{Assignee: "none", Status: "open"}, []string{"fan 4", "fan 2", "fan 0"}},
		{team.Filter{Query: "QUESTION 2"}, []string{"fan 2"}},
		{team.Filter{Account: 1}, nil},
	} {
		if got := names(tc.f); !slices.Equal(got, tc.want) {
			t.Errorf("List(%+v) = %v, want %v", tc.f, got, tc.want)
		}
	}
	// Pages of two, by cursor, cover the list once, in order.
	var all []string
	cursor := ""
	for range 5 {
		page, next, err := s.List(team.Filter{}, cursor, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range page {
			all = append(all, c.Name)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if want := []string{"fan 4", "fan 3", "fan 2", "fan 1", "fan 0"}; !slices.Equal(all, want) {
		t.Errorf("paged %v, want %v", all, want)
	}
	if _, _, err := s.List(team.Filter{}, "not-a-cursor", 2); !team.IsInput(err) {
		t.Errorf("a bad cursor: %v", err)
	}
}

// History pages back from the newest message: from the stream, then from
// Bilibili for what is older than the bridge.
func TestMessagesPageIntoBilibilisPast(t *testing.T) {
	r := newRig(t)
	var asked []uint64
	var mu sync.Mutex
	backfill := func(_ context.Context, k events.ConversationKey, before uint64, n int) ([]events.MessageData, error) {
		mu.Lock()
		asked = append(asked, before)
		mu.Unlock()
		var out []events.MessageData
		for i := n; i >= 1; i-- { // oldest first: the n before `before`
			seqno := before - uint64(i)
			out = append(out, events.MessageData{AccountUID: uid, Message: events.Message{MsgKey: 9_000_000 + seqno, Seqno: seqno, Text: fmt.Sprint("old ", seqno)}})
		}
		return out, nil
	}
	_, s := r.process(backfill)
	var keys []uint64
	for i := range 5 {
		keys = append(keys, r.message(events.DirectionIn, fmt.Sprint("m", i)))
	}
	bustest.Eventually(t, "the DMs", func() bool { c, err := s.Get(conv); return err == nil && c.Unread == 5 })
	ctx := context.Background()
	page, err := s.Messages(ctx, conv, 0, 3)
	if err != nil || len(page) != 3 || page[0].Message.Text != "m2" || page[2].Message.Text != "m4" {
		t.Fatalf("newest page: %v %v", texts(page), err)
	}
	page, err = s.Messages(ctx, conv, page[0].Message.MsgKey, 3)
	if err != nil || len(page) != 3 || page[1].Message.Text != "m0" || page[2].Message.Text != "m1" {
		t.Fatalf("second page: %v %v", texts(page), err)
	}
	// The stream had two; the third is Bilibili's, before the oldest.
	if len(asked) != 1 || asked[0] != keys[0]%1_000_000 {
		t.Fatalf("Bilibili asked for messages before %v, want before the oldest seqno %d", asked, keys[0]%1_000_000)
	}
	page, err = s.Messages(ctx, conv, page[0].Message.MsgKey, 2)
	if err != nil || len(page) != 2 || len(asked) != 2 {
		t.Fatalf("a page wholly from Bilibili: %v %v (asked %v)", texts(page), err, asked)
	}
	// Another process (behind the same load balancer, or this one
	// restarted) pages on from the cursor this one gave.
	_, other := r.process(backfill)
	oldest := page[0].Message
	page, err = other.Messages(ctx, conv, oldest.MsgKey, 2)
	if err != nil || len(page) != 2 || asked[len(asked)-1] != oldest.Seqno {
		t.Fatalf("another process paging on before seqno %d: %v %v (asked %v)", oldest.Seqno, texts(page), err, asked)
	}
}

// A recalled message shows as recalled in the history, whether the
// recall came before the conversation was first opened or after, and
// whether the page is the first one read (while indexing) or a later one.
func TestMessagesShowRecalls(t *testing.T) {
	r := newRig(t)
	_, s := r.process(nil)
	var keys []uint64
	for i := range 4 {
		keys = append(keys, r.message(events.DirectionIn, fmt.Sprint("m", i)))
	}
	r.Recall(conv, keys[1])
	// A recalled DM is no longer unread.
	bustest.Eventually(t, "the DMs", func() bool { c, err := s.Get(conv); return err == nil && c.Unread == 3 })
	ctx := context.Background()
	statuses := func() []string {
		t.Helper()
		page, err := s.Messages(ctx, conv, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, m := range page {
			out = append(out, m.Message.Text+":"+m.Message.Status)
		}
		return out
	}
	want := []string{"m0:normal", "m1:recalled", "m2:normal", "m3:normal"}
	if got := statuses(); !slices.Equal(got, want) {
		t.Fatalf("first read: %v, want %v", got, want)
	}
	if got := statuses(); !slices.Equal(got, want) {
		t.Fatalf("read again: %v, want %v", got, want)
	}
	r.Recall(conv, keys[3])
	want[3] = "m3:recalled"
	bustest.Eventually(t, "the later recall", func() bool { return slices.Equal(statuses(), want) })
	// A second process indexes the conversation afresh.
	_, s2 := r.process(nil)
	bustest.Eventually(t, "the second process", func() bool {
		page, err := s2.Messages(ctx, conv, 0, 10)
		return err == nil && len(page) == 4 && page[1].Message.Status == events.StatusRecalled && page[3].Message.Status == events.StatusRecalled
	})
}

func texts(ms []events.MessageData) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Message.Text)
	}
	return out
}

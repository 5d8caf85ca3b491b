package telegram_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bilibridge/bilibridge/bus/bustest"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/sinks/telegram"
	"github.com/bilibridge/bilibridge/sinks/telegram/telegramtest"
	"github.com/bilibridge/bilibridge/team"
)

// ana is linked to the member "ana" and is not in the allowlist; alice
// (allowlisted) is linked to no member; mallory is neither.
var ana = telegramtest.User{ID: 2222, FirstName: "Ana"}

// teamNow is the sinks' clock in team tests: snoozes are dated from it.
var teamNow = time.Date(2026, 11, 28, 22, 30, 0, 0, time.UTC)

// teamCall is one call of recordingTeam.Do.
type teamCall struct {
	Key    events.ConversationKey
	Action team.Action
	By     events.Actor
}

// recordingTeam is the team inbox as the sink sees it: it records the
// actions and answers reply, or err.
type recordingTeam struct {
	mu      sync.Mutex
	members map[int64]string
	calls   []teamCall
	reply   string
	err     error
}

var _ telegram.Team = (*recordingTeam)(nil)

func newTeam() *recordingTeam {
	return &recordingTeam{members: map[int64]string{ana.ID: "ana"}, reply: "👍 done by the team"}
}

func (r *recordingTeam) Do(_ context.Context, key events.ConversationKey, a team.Action, by events.Actor) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, teamCall{Key: key, Action: a, By: by})
	if r.err != nil {
		return "", r.err
	}
	return r.reply, nil
}

func (r *recordingTeam) MemberByTelegram(_ context.Context, id int64) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	name, ok := r.members[id]
	return name, ok
}

func (r *recordingTeam) all() []teamCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]teamCall(nil), r.calls...)
}

func (r *recordingTeam) failWith(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.err = err
}

// teamSink is a forum (or flat) sink with the team inbox tm, alice in
// the allowlist, and the outbox out.
func (e *env) teamSink(chat int64, tm telegram.Team, out *countingOutbox) *telegram.Sink {
	return e.sink(chat, func(c *telegram.Config) {
		c.AllowedUsers, c.Outbox, c.Team = []int64{alice.ID}, out, tm
		c.Now = func() time.Time { return teamNow }
		c.Location = time.UTC
	})
}

// answersTo returns the bot's messages that reply to message id.
func answersTo(e *env, chat int64, id int) []telegramtest.Message {
	var out []telegramtest.Message
	for _, m := range e.fake.Sent(chat) {
		if m.ReplyTo == id {
			out = append(out, m)
		}
	}
	return out
}

// handled waits until the updates injected so far are handled: a marker
// from alice behind them reaches the outbox (updates are handled in
// order).
func handled(t *testing.T, e *env, chat int64, thread int, out *countingOutbox, marker string) {
	t.Helper()
	e.fake.UserMessage(chat, thread, alice, marker)
	bustest.Eventually(t, "the marker", func() bool {
		reqs := out.all()
		return len(reqs) > 0 && reqs[len(reqs)-1].Command.Text == marker
	})
}

func TestTeamCommandsInTopic(t *testing.T) {
	e := newEnv(t)
	out, tm := &countingOutbox{}, newTeam()
	s := e.teamSink(forumChat, tm, out)
	thread := threadOf(t, e, s)
	runSink(t, s)
	key := events.ConversationKey{AccountUID: accountUID, SessionType: userConv.SessionType, TalkerID: talkerID}
	for i, tc := range []struct {
		name    string
		from    telegramtest.User
		text    string
		teamErr error
		// want is the action Do gets; nil: Do is not called.
		want *team.Action
		// answer is in the bot's answer to the command; "": no answer.
		answer string
		// notIn must not be in the answer.
		notIn string
	}{
		{name: "claim by a linked member", from: ana, text: "/claim", want: &team.Action{Kind: team.ActClaim}, answer: "👍 done by the team"},
		{name: "assign", from: ana, text: "/assign @bob", want: &team.Action{Kind: team.ActAssign, Assignee: "bob"}, answer: "👍 done by the team"},
		{name: "unassign", from: ana, text: "/unassign", want: &team.Action{Kind: team.ActAssign}, answer: "👍 done by the team"},
		{name: "done", from: ana, text: "/done", want: &team.Action{Kind: team.ActStatus, Status: events.ConversationDone}, answer: "👍"},
		{name: "reopen", from: ana, text: "/reopen", want: &team.Action{Kind: team.ActStatus, Status: events.ConversationOpen}, answer: "👍"},
		{name: "snooze 2h passes until", from: ana, text: "/snooze 2h",
			want: &team.Action{Kind: team.ActStatus, Status: events.ConversationSnoozed, Until: teamNow.Add(2 * time.Hour)}, answer: "👍"},
		{name: "snooze tomorrow", from: ana, text: "/snooze tomorrow",
			want: &team.Action{Kind: team.ActStatus, Status: events.ConversationSnoozed, Until: time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)}, answer: "👍"},
		{name: "snooze soon is answered, nothing done", from: ana, text: "/snooze soon", answer: `"soon" is no snooze length`},
		{name: "note", from: ana, text: "/note asked for the invoice <b>", want: &team.Action{Kind: team.ActNote, Note: "asked for the invoice <b>"}, answer: "👍"},
		{name: "addressed to this bot", from: ana, text: "/claim@bilibridge_bot", want: &team.Action{Kind: team.ActClaim}, answer: "👍"},
		{name: "addressed to another bot", from: ana, text: "/claim@other_bot"},
		{name: "no such member", from: ana, text: "/assign ghost", teamErr: fmt.Errorf("team: assigning: %w", team.ErrNoMember),
			want: &team.Action{Kind: team.ActAssign, Assignee: "ghost"}, answer: "no member called ghost"},
		{name: "team failure stays generic", from: ana, text: "/claim", teamErr: errors.New("nats: timeout writing kv bili_team"),
			want: &team.Action{Kind: team.ActClaim}, answer: "did not work", notIn: "nats"},
		{name: "allowlisted but not linked gets link instructions", from: alice, text: "/claim",
			answer: "bilibridge member add NAME --telegram 1111"},
		{name: "note from an allowlisted user who is not linked", from: alice, text: "/note secret plan", answer: "--telegram 1111"},
		{name: "stranger gets nothing", from: mallory, text: "/claim"},
		{name: "stranger's note gets nothing", from: mallory, text: "/note psst"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tm.failWith(tc.teamErr)
			before := len(tm.all())
			id := e.fake.UserMessage(forumChat, thread, tc.from, tc.text)
			marker := fmt.Sprintf("marker %d", i)
			handled(t, e, forumChat, thread, out, marker)

			calls := tm.all()[before:]
			switch {
			case tc.want == nil && len(calls) != 0:
				t.Errorf("Do called: %+v", calls)
			case tc.want != nil && len(calls) != 1:
				t.Errorf("%d calls of Do, want 1: %+v", len(calls), calls)
			case tc.want != nil:
				c, w := calls[0], *tc.want
				if c.Key != key || c.By != (events.Actor{Member: "ana"}) || c.Action.Kind != w.Kind || c.Action.Assignee != w.Assignee ||
					c.Action.Status != w.Status || c.Action.Note != w.Note || !c.Action.Until.Equal(w.Until) {
					t.Errorf("Do(%+v, %+v, %+v), want the conversation, %+v, by ana", c.Key, c.Action, c.By, w)
				}
			}
			answers := answersTo(e, forumChat, id)
			if tc.answer == "" {
				if len(answers) != 0 {
					t.Errorf("answered %+v", answers)
				}
			} else if len(answers) != 1 || answers[0].ThreadID != thread || !strings.Contains(answers[0].Text, esc(tc.answer)) ||
				(tc.notIn != "" && strings.Contains(answers[0].Text, tc.notIn)) {
				t.Errorf("answers = %+v, want one in the topic with %q", answers, tc.answer)
			}
			for _, r := range out.all() {
				if !strings.HasPrefix(r.Command.Text, "marker") {
					t.Errorf("sent to Bilibili: %q", r.Command.Text)
				}
			}
		})
	}
}

// esc is the HTML escaping the bot's answers carry.
func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;").Replace(s)
}

func TestTeamCommandsWhenTheTeamInboxIsOff(t *testing.T) {
	e := newEnv(t)
	out := &countingOutbox{}
	s := e.sink(forumChat, func(c *telegram.Config) { c.AllowedUsers, c.Outbox = []int64{alice.ID}, out })
	thread := threadOf(t, e, s)
	runSink(t, s)
	claim := e.fake.UserMessage(forumChat, thread, alice, "/claim")
	note := e.fake.UserMessage(forumChat, thread, alice, "/note not for Bilibili")
	stranger := e.fake.UserMessage(forumChat, thread, mallory, "/claim")
	help := e.fake.UserMessage(forumChat, thread, alice, "/help")
	handled(t, e, forumChat, thread, out, "marker")
	for _, id := range []int{claim, note} {
		if a := answersTo(e, forumChat, id); len(a) != 1 || !strings.Contains(a[0].Text, "team inbox is off on this bridge") {
			t.Errorf("answers to %d = %+v", id, a)
		}
	}
	if a := answersTo(e, forumChat, stranger); len(a) != 0 {
		t.Errorf("a stranger was answered: %+v", a)
	}
	if a := answersTo(e, forumChat, help); len(a) != 1 || !strings.Contains(a[0].Text, "team inbox is off") {
		t.Errorf("help = %+v", a)
	}
	if reqs := out.all(); len(reqs) != 1 {
		t.Errorf("sent to Bilibili: %+v", reqs)
	}
}

func TestHelpListsTeamCommands(t *testing.T) {
	e := newEnv(t)
	out := &countingOutbox{}
	s := e.teamSink(forumChat, newTeam(), out)
	thread := threadOf(t, e, s)
	runSink(t, s)
	id := e.fake.UserMessage(forumChat, thread, ana, "/help")
	handled(t, e, forumChat, thread, out, "marker")
	if a := answersTo(e, forumChat, id); len(a) != 1 || !strings.Contains(a[0].Text, team.Commands) {
		t.Errorf("help = %+v, want the team commands", a)
	}
}

// A member linked to a Telegram account replies to Bilibili without
// being in TELEGRAM_ALLOWED_USERS, even when it is empty; a stranger
// still cannot.
func TestLinkedMemberMayReply(t *testing.T) {
	for _, allow := range [][]int64{{alice.ID}, nil} {
		t.Run(fmt.Sprintf("allowlist %v", allow), func(t *testing.T) {
			e := newEnv(t)
			out := &countingOutbox{}
			s := e.sink(forumChat, func(c *telegram.Config) { c.AllowedUsers, c.Outbox, c.Team = allow, out, newTeam() })
			thread := threadOf(t, e, s)
			runSink(t, s)
			e.fake.UserMessage(forumChat, thread, mallory, "from a stranger")
			e.fake.UserMessage(forumChat, thread, ana, "from ana")
			bustest.Eventually(t, "ana's reply", func() bool { return len(out.all()) >= 1 })
			waitConfirmed(t, e)
			reqs := out.all()
			if len(reqs) != 1 || reqs[0].Command.Text != "from ana" || reqs[0].TalkerID != talkerID ||
				reqs[0].Command.Origin == nil || reqs[0].Command.Origin.User != "2222" {
				t.Errorf("sent to Bilibili: %+v", reqs)
			}
			for _, m := range e.fake.Sent(forumChat) {
				if strings.Contains(m.Text, "Replies to Bilibili are off") {
					t.Errorf("the bot says replies are off: %q", m.Text)
				}
			}
		})
	}
}

// In a flat chat a command is a reply to a posted message, like a reply
// to Bilibili; team state has no topic to show on there.
func TestTeamCommandsInFlatChat(t *testing.T) {
	e := newEnv(t)
	out, tm := &countingOutbox{}, newTeam()
	s := e.teamSink(flatChat, tm, out)
	deliver(t, s, textEvent(t, 1, "hello"))
	posted := e.fake.Sent(flatChat)[0].ID
	runSink(t, s)
	notReply := e.fake.UserMessage(flatChat, 0, ana, "/claim")
	claim := e.fake.UserReply(flatChat, posted, ana, "/claim")
	e.fake.UserReply(flatChat, posted, alice, "marker")
	bustest.Eventually(t, "the marker", func() bool { return len(out.all()) == 1 })
	calls := tm.all()
	if len(calls) != 1 || calls[0].Action.Kind != team.ActClaim || calls[0].Key.TalkerID != talkerID || calls[0].By.Member != "ana" {
		t.Fatalf("calls = %+v", calls)
	}
	if a := answersTo(e, flatChat, claim); len(a) != 1 || !strings.Contains(a[0].Text, "done by the team") {
		t.Errorf("answer = %+v", a)
	}
	if a := answersTo(e, flatChat, notReply); len(a) != 1 || !strings.Contains(a[0].Text, "inside a conversation") {
		t.Errorf("answer outside a conversation = %+v", a)
	}
	deliver(t, s, assigned(t, "a1", "ana"))
	deliver(t, s, status(t, "s1", events.ConversationDone))
	for _, m := range []string{"editForumTopic", "closeForumTopic", "createForumTopic"} {
		if n := e.fake.CallCount(m); n != 0 {
			t.Errorf("%s called %d times in a flat chat", m, n)
		}
	}
}

// teamEvent builds a team event on the user conversation; the
// conversation's name is left out, as a team event may lack it.
func teamEvent(t *testing.T, typ, id string, data any) events.Event {
	t.Helper()
	ev, err := events.New(accountUID, typ, id, userConv.Subject(), teamNow, data)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func teamBase(by string) events.TeamBase {
	return events.TeamBase{AccountUID: accountUID, By: events.Actor{Member: by},
		Conversation: events.Conversation{SessionType: userConv.SessionType, TalkerID: talkerID, Kind: events.ConversationUser}}
}

// assigned is a team.assigned event; "" assigns nobody.
func assigned(t *testing.T, id, assignee string) events.Event {
	d := events.AssignedData{TeamBase: teamBase("ana")}
	if assignee != "" {
		d.Assignee = &assignee
	}
	return teamEvent(t, events.TypeTeamAssigned, id, d)
}

func status(t *testing.T, id, st string) events.Event {
	d := events.StatusData{TeamBase: teamBase("ana"), Status: st}
	if st == events.ConversationSnoozed {
		until := teamNow.Add(2 * time.Hour)
		d.SnoozedUntil = &until
	}
	return teamEvent(t, events.TypeTeamStatus, id, d)
}

func note(t *testing.T, id, by, text string) events.Event {
	return teamEvent(t, events.TypeTeamNote, id, events.NoteData{TeamBase: teamBase(by),
		Note: events.Note{ID: id, Text: text, Time: teamNow, By: events.Actor{Member: by}}})
}

func TestTeamStateShowsOnTopic(t *testing.T) {
	e := newEnv(t)
	s := e.sink(forumChat, nil) // team events show without Config.Team too
	thread := threadOf(t, e, s)
	topic := func() telegramtest.Topic {
		for _, tp := range e.fake.Topics(forumChat) {
			if tp.ThreadID == thread {
				return tp
			}
		}
		t.Fatal("the topic is gone")
		return telegramtest.Topic{}
	}
	const base = "社会易姐QwQ · 293793435"
	for _, step := range []struct {
		name    string
		ev      events.Event
		again   bool // delivered once more, and after a restart
		want    string
		closed  bool
		renames int // editForumTopic calls so far
		toggles int // closeForumTopic + reopenForumTopic calls so far
	}{
		{name: "assigned", ev: assigned(t, "a1", "ana"), again: true, want: "[ana] " + base, renames: 1},
		{name: "done", ev: status(t, "s1", events.ConversationDone), again: true, want: "✅ [ana] " + base, closed: true, renames: 2, toggles: 1},
		{name: "reassigned while done", ev: assigned(t, "a2", "bob"), want: "✅ [bob] " + base, closed: true, renames: 3, toggles: 1},
		{name: "open reopens", ev: status(t, "s2", events.ConversationOpen), again: true, want: "[bob] " + base, renames: 4, toggles: 2},
		{name: "snoozed", ev: status(t, "s3", events.ConversationSnoozed), want: "💤 [bob] " + base, renames: 5, toggles: 2},
		{name: "unassigned", ev: assigned(t, "a3", ""), want: "💤 " + base, renames: 6, toggles: 2},
		{name: "open again", ev: status(t, "s4", events.ConversationOpen), again: true, want: base, renames: 7, toggles: 2},
		{name: "read shows nothing", ev: teamEvent(t, events.TypeTeamRead, "r1", events.ReadData{TeamBase: teamBase("ana"), ReadUpTo: msgKey}),
			want: base, renames: 7, toggles: 2},
	} {
		deliver(t, s, step.ev)
		if step.again {
			deliver(t, s, step.ev)
			deliver(t, e.sink(forumChat, nil), step.ev)
		}
		tp := topic()
		if tp.Name != step.want || tp.Closed != step.closed {
			t.Errorf("%s: topic %q closed %v, want %q closed %v", step.name, tp.Name, tp.Closed, step.want, step.closed)
		}
		renames := e.fake.CallCount("editForumTopic")
		toggles := e.fake.CallCount("closeForumTopic") + e.fake.CallCount("reopenForumTopic")
		if renames != step.renames || toggles != step.toggles {
			t.Errorf("%s: %d renames, %d closes and reopens; want %d and %d", step.name, renames, toggles, step.renames, step.toggles)
		}
	}
	if n := len(e.fake.Sent(forumChat)); n != 1 {
		t.Errorf("%d messages posted; team state is shown on the topic only", n)
	}
}

// A done conversation's topic is closed; the next incoming message
// reopens it (and is posted), and the bridge's team.status open event
// that follows drops the done mark.
func TestDoneTopicReopensOnIncomingMessage(t *testing.T) {
	e := newEnv(t)
	s := e.sink(forumChat, nil)
	threadOf(t, e, s)
	deliver(t, s, assigned(t, "a1", "ana"))
	deliver(t, s, status(t, "s1", events.ConversationDone))
	if tp := e.fake.Topics(forumChat)[0]; !tp.Closed {
		t.Fatalf("topic = %+v, want closed", tp)
	}
	deliver(t, s, textEvent(t, 2, "are you there?"))
	tp := e.fake.Topics(forumChat)[0]
	if sent := e.fake.Sent(forumChat); tp.Closed || !strings.Contains(sent[len(sent)-1].Text, "are you there?") {
		t.Fatalf("after the message: topic %+v, last posted %+v", tp, sent[len(sent)-1])
	}
	deliver(t, s, status(t, "s2", events.ConversationOpen))
	if tp := e.fake.Topics(forumChat)[0]; tp.Closed || tp.Name != "[ana] 社会易姐QwQ · 293793435" {
		t.Errorf("after status open: %+v", tp)
	}
	if n := len(e.fake.Topics(forumChat)); n != 1 {
		t.Errorf("%d topics", n)
	}
}

// A team event on a conversation without a topic is kept: the topic,
// when its first message comes, is named for it.
func TestTeamStateBeforeTheTopic(t *testing.T) {
	e := newEnv(t)
	s := e.sink(forumChat, nil)
	deliver(t, s, assigned(t, "a1", "ana"))
	if n := e.fake.CallCount("createForumTopic") + e.fake.CallCount("editForumTopic"); n != 0 {
		t.Fatalf("%d topic calls for a conversation without a topic", n)
	}
	deliver(t, s, textEvent(t, 1, "first"))
	if tp := e.fake.Topics(forumChat); len(tp) != 1 || tp[0].Name != "[ana] 社会易姐QwQ · 293793435" {
		t.Errorf("topics = %+v", tp)
	}
}

// The name fits Telegram's 128 characters and keeps the talker's id,
// whatever the lengths of the talker's and the assignee's names.
func TestTopicNameWithTeamStateFits(t *testing.T) {
	e := newEnv(t)
	s := e.sink(forumChat, func(c *telegram.Config) { c.MultiAccount = true })
	long := textEvent(t, 1, "hi")
	long.Data = []byte(strings.Replace(string(long.Data), userConv.Name, strings.Repeat("名", 140), 1))
	deliver(t, s, long)
	deliver(t, s, assigned(t, "a1", strings.Repeat("ana", 30)))
	deliver(t, s, status(t, "s1", events.ConversationSnoozed))
	tp := e.fake.Topics(forumChat)[0]
	if n := len([]rune(tp.Name)); n > 128 || !strings.HasPrefix(tp.Name, "💤 [anaana") || !strings.HasSuffix(tp.Name, "… · 293793435 → 425503913") {
		t.Errorf("topic name %q (%d characters)", tp.Name, n)
	}
}

func TestNotesFromElsewhereArePostedOnce(t *testing.T) {
	e := newEnv(t)
	out, tm := &countingOutbox{}, newTeam()
	s := e.teamSink(forumChat, tm, out)
	thread := threadOf(t, e, s)
	notes := func() []telegramtest.Message {
		var n []telegramtest.Message
		for _, m := range e.fake.Sent(forumChat) {
			if strings.Contains(m.Text, "📝") {
				n = append(n, m)
			}
		}
		return n
	}

	// A note made in the browser: posted, marked internal, once.
	ev := note(t, "n1", "bob", "called them <back>")
	deliver(t, s, ev)
	deliver(t, s, ev)
	deliver(t, e.teamSink(forumChat, tm, out), ev)
	if n := notes(); len(n) != 1 || n[0].ThreadID != thread || !strings.Contains(n[0].Text, "<b>bob</b>") ||
		!strings.Contains(n[0].Text, "internal note") || !strings.Contains(n[0].Text, "called them &lt;back&gt;") {
		t.Fatalf("notes = %+v", n)
	}

	// A note typed here: its event is not posted, the command shows it.
	runSink(t, s)
	e.fake.UserMessage(forumChat, thread, ana, "/note  asked for the invoice ")
	handled(t, e, forumChat, thread, out, "marker")
	if calls := tm.all(); len(calls) != 1 || calls[0].Action.Note != "asked for the invoice" {
		t.Fatalf("calls = %+v", calls)
	}
	echo := note(t, "n2", "ana", "asked for the invoice")
	deliver(t, s, echo)
	deliver(t, s, echo)
	if n := notes(); len(n) != 1 {
		t.Fatalf("the note typed here was posted again: %+v", n[1:])
	}
	// The same words by ana later, from the browser, are a note of their own.
	deliver(t, s, note(t, "n3", "ana", "asked for the invoice"))
	if n := notes(); len(n) != 2 || !strings.Contains(n[1].Text, "asked for the invoice") {
		t.Errorf("notes = %+v", n)
	}
	for _, r := range out.all() {
		if r.Command.Text != "marker" {
			t.Errorf("sent to Bilibili: %q", r.Command.Text)
		}
	}
}

// A failed /note is not remembered: the same note made elsewhere
// afterwards is posted.
func TestFailedNoteIsNotSkippedLater(t *testing.T) {
	e := newEnv(t)
	out, tm := &countingOutbox{}, newTeam()
	tm.failWith(errors.New("no KV"))
	s := e.teamSink(forumChat, tm, out)
	thread := threadOf(t, e, s)
	runSink(t, s)
	e.fake.UserMessage(forumChat, thread, ana, "/note try again")
	handled(t, e, forumChat, thread, out, "marker")
	before := len(e.fake.Sent(forumChat))
	deliver(t, s, note(t, "n1", "ana", "try again"))
	if sent := e.fake.Sent(forumChat)[before:]; len(sent) != 1 || !strings.Contains(sent[0].Text, "try again") {
		t.Errorf("posted = %+v", sent)
	}
}

// A note on a done conversation is posted in its closed topic, which
// stays closed.
func TestNoteInDoneTopicKeepsItClosed(t *testing.T) {
	e := newEnv(t)
	s := e.sink(forumChat, nil)
	threadOf(t, e, s)
	deliver(t, s, status(t, "s1", events.ConversationDone))
	deliver(t, s, note(t, "n1", "bob", "refund sent"))
	sent := e.fake.Sent(forumChat)
	if tp := e.fake.Topics(forumChat)[0]; !tp.Closed || !strings.Contains(sent[len(sent)-1].Text, "refund sent") {
		t.Errorf("topic %+v, last posted %+v", tp, sent[len(sent)-1])
	}
}

// The answer to a command typed in a closed topic (a done conversation)
// is posted; the topic stays closed, unless the command reopens it.
func TestAnswerInClosedTopic(t *testing.T) {
	e := newEnv(t)
	out, tm := &countingOutbox{}, newTeam()
	s := e.teamSink(forumChat, tm, out)
	thread := threadOf(t, e, s)
	deliver(t, s, status(t, "s1", events.ConversationDone))
	runSink(t, s)
	claim := e.fake.UserMessage(forumChat, thread, ana, "/claim")
	bustest.Eventually(t, "the answer", func() bool { return len(answersTo(e, forumChat, claim)) == 1 })
	waitConfirmed(t, e)
	if tp := e.fake.Topics(forumChat)[0]; !tp.Closed {
		t.Errorf("after /claim the topic is open")
	}
	reopen := e.fake.UserMessage(forumChat, thread, ana, "/reopen")
	bustest.Eventually(t, "the answer", func() bool { return len(answersTo(e, forumChat, reopen)) == 1 })
	waitConfirmed(t, e)
	if tp := e.fake.Topics(forumChat)[0]; tp.Closed {
		t.Errorf("after /reopen the topic is closed")
	}
}

package discord_test

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
	"github.com/bilibridge/bilibridge/sinks"
	"github.com/bilibridge/bilibridge/sinks/discord"
	"github.com/bilibridge/bilibridge/sinks/discord/discordtest"
	"github.com/bilibridge/bilibridge/team"
)

// linkedUser is linked to the member "ana", and neither an allowed user
// nor in an allowed role; allowedUser is linked to no member.
const linkedUser = "700000000000000004"

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
	members map[string]string
	calls   []teamCall
	reply   string
	err     error
}

var _ discord.Team = (*recordingTeam)(nil)

func newTeam() *recordingTeam {
	return &recordingTeam{members: map[string]string{linkedUser: "ana"}, reply: "👍 done by the team"}
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

func (r *recordingTeam) MemberByDiscord(_ context.Context, id string) (string, bool) {
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

// withTeam sets the team inbox and the clock.
func withTeam(tm discord.Team) func(*discord.Config) {
	return func(c *discord.Config) {
		c.Team = tm
		c.Now = func() time.Time { return teamNow }
		c.Location = time.UTC
	}
}

// answersTo returns the bot's replies to message id in thread.
func answersTo(e *env, thread, id string) []discordtest.Message {
	var out []discordtest.Message
	for _, m := range e.fake.Messages(thread) {
		if m.ReplyTo == id && m.AuthorID == e.fake.BotUserID {
			out = append(out, m)
		}
	}
	return out
}

// handled waits until the messages dispatched so far are handled: a
// marker from an allowed user behind them reaches the outbox (gateway
// events are handled in order).
func handled(t *testing.T, e *env, thread, marker string) {
	t.Helper()
	e.fake.Dispatch(discordtest.UserMessage{ChannelID: thread, AuthorID: allowedUser, Content: marker})
	bustest.Eventually(t, "the marker", func() bool {
		reqs := e.outbox.requests()
		return len(reqs) > 0 && reqs[len(reqs)-1].Command.Text == marker
	})
}

func TestTeamCommandsInThread(t *testing.T) {
	e := newEnv(t, discordtest.TypeText)
	e.fake.AddMember(guildID, roleMember, teamRole)
	e.fake.AddMember(guildID, stranger)
	tm := newTeam()
	running(t, e, withTeam(tm))
	deliver(t, e.sink(t), message(t, 1, "hi team"))
	thread := e.onlyThread(t).ID
	key := events.ConversationKey{AccountUID: uid, SessionType: 1, TalkerID: talker}
	for i, tc := range []struct {
		name    string
		from    string
		text    string
		teamErr error
		// want is the action Do gets; nil: Do is not called.
		want *team.Action
		// answer is in the bot's answer to the command; "": no answer.
		answer string
		// notIn must not be in the answer.
		notIn string
	}{
		{name: "claim by a linked member", from: linkedUser, text: "/claim", want: &team.Action{Kind: team.ActClaim}, answer: "👍 done by the team"},
		{name: "assign", from: linkedUser, text: "/assign bob", want: &team.Action{Kind: team.ActAssign, Assignee: "bob"}, answer: "👍"},
		{name: "unassign", from: linkedUser, text: "/unassign", want: &team.Action{Kind: team.ActAssign}, answer: "👍"},
		{name: "done", from: linkedUser, text: "/done", want: &team.Action{Kind: team.ActStatus, Status: events.ConversationDone}, answer: "👍"},
		{name: "reopen", from: linkedUser, text: "/REOPEN", want: &team.Action{Kind: team.ActStatus, Status: events.ConversationOpen}, answer: "👍"},
		{name: "snooze 2h passes until", from: linkedUser, text: "/snooze 2h",
			want: &team.Action{Kind: team.ActStatus, Status: events.ConversationSnoozed, Until: teamNow.Add(2 * time.Hour)}, answer: "👍"},
		{name: "snooze 30m", from: linkedUser, text: "/snooze 30m",
			want: &team.Action{Kind: team.ActStatus, Status: events.ConversationSnoozed, Until: teamNow.Add(30 * time.Minute)}, answer: "👍"},
		{name: "snooze soon is answered, nothing done", from: linkedUser, text: "/snooze soon", answer: `"soon" is no snooze length`},
		{name: "note", from: linkedUser, text: "/note asked for the invoice", want: &team.Action{Kind: team.ActNote, Note: "asked for the invoice"}, answer: "👍"},
		{name: "note without text", from: linkedUser, text: "/note", answer: "/note needs a text"},
		{name: "no such member", from: linkedUser, text: "/assign ghost", teamErr: fmt.Errorf("team: assigning: %w", team.ErrNoMember),
			want: &team.Action{Kind: team.ActAssign, Assignee: "ghost"}, answer: "no member called ghost"},
		{name: "team failure stays generic", from: linkedUser, text: "/claim", teamErr: errors.New("nats: timeout writing kv bili_team"),
			want: &team.Action{Kind: team.ActClaim}, answer: "did not work", notIn: "nats"},
		{name: "allowed user not linked gets link instructions", from: allowedUser, text: "/claim",
			answer: "bilibridge member add NAME --discord " + allowedUser},
		{name: "role member not linked gets link instructions", from: roleMember, text: "/done", answer: "--discord " + roleMember},
		{name: "stranger gets nothing", from: stranger, text: "/claim"},
		{name: "stranger's note gets nothing", from: stranger, text: "/note psst"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tm.failWith(tc.teamErr)
			before := len(tm.all())
			id := e.fake.Dispatch(discordtest.UserMessage{ChannelID: thread, AuthorID: tc.from, Content: tc.text})
			handled(t, e, thread, fmt.Sprintf("marker %d", i))

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
			answers := answersTo(e, thread, id)
			if tc.answer == "" {
				if len(answers) != 0 {
					t.Errorf("answered %+v", answers)
				}
			} else if len(answers) != 1 || !strings.Contains(answers[0].Content, tc.answer) || !noPings(answers[0].AllowedMentions) ||
				(tc.notIn != "" && strings.Contains(answers[0].Content, tc.notIn)) {
				t.Errorf("answers = %+v, want one with %q", answers, tc.answer)
			}
			for _, r := range e.outbox.requests() {
				if !strings.HasPrefix(r.Command.Text, "marker") {
					t.Errorf("sent to Bilibili: %q", r.Command.Text)
				}
			}
		})
	}
}

func TestTeamCommandsWhenTheTeamInboxIsOff(t *testing.T) {
	e := newEnv(t, discordtest.TypeText)
	running(t, e)
	deliver(t, e.sink(t), message(t, 1, "hi team"))
	thread := e.onlyThread(t).ID
	claim := e.fake.Dispatch(discordtest.UserMessage{ChannelID: thread, AuthorID: allowedUser, Content: "/claim"})
	note := e.fake.Dispatch(discordtest.UserMessage{ChannelID: thread, AuthorID: allowedUser, Content: "/note not for Bilibili"})
	other := e.fake.Dispatch(discordtest.UserMessage{ChannelID: thread, AuthorID: stranger, Content: "/claim"})
	help := e.fake.Dispatch(discordtest.UserMessage{ChannelID: thread, AuthorID: allowedUser, Content: "/help"})
	handled(t, e, thread, "marker")
	for _, id := range []string{claim, note} {
		if a := answersTo(e, thread, id); len(a) != 1 || !strings.Contains(a[0].Content, "team inbox is off on this bridge") {
			t.Errorf("answers to %s = %+v", id, a)
		}
	}
	if a := answersTo(e, thread, other); len(a) != 0 {
		t.Errorf("a stranger was answered: %+v", a)
	}
	if a := answersTo(e, thread, help); len(a) != 1 || !strings.Contains(a[0].Content, "team inbox is off") {
		t.Errorf("help = %+v", a)
	}
	if reqs := e.outbox.requests(); len(reqs) != 1 {
		t.Errorf("sent to Bilibili: %+v", reqs)
	}
}

func TestHelpListsTeamCommands(t *testing.T) {
	e := newEnv(t, discordtest.TypeText)
	running(t, e, withTeam(newTeam()))
	deliver(t, e.sink(t), message(t, 1, "hi team"))
	thread := e.onlyThread(t).ID
	id := e.fake.Dispatch(discordtest.UserMessage{ChannelID: thread, AuthorID: linkedUser, Content: "/help"})
	handled(t, e, thread, "marker")
	if a := answersTo(e, thread, id); len(a) != 1 || !strings.Contains(a[0].Content, team.Commands) {
		t.Errorf("help = %+v, want the team commands", a)
	}
}

// A member linked to a Discord account replies to Bilibili without being
// an allowed user or in an allowed role, even when both are empty; a
// stranger still cannot.
func TestLinkedMemberMayReply(t *testing.T) {
	for _, open := range []bool{false, true} {
		t.Run(fmt.Sprintf("empty allowlists %v", open), func(t *testing.T) {
			e := newEnv(t, discordtest.TypeText)
			e.fake.AddMember(guildID, stranger)
			mods := []func(*discord.Config){withTeam(newTeam())}
			if open {
				mods = append(mods, func(c *discord.Config) { c.AllowedUsers, c.AllowedRoles = nil, nil })
			}
			running(t, e, mods...)
			deliver(t, e.sink(t), message(t, 1, "hi team"))
			thread := e.onlyThread(t).ID
			e.fake.Dispatch(discordtest.UserMessage{ChannelID: thread, AuthorID: stranger, Content: "from a stranger"})
			e.fake.Dispatch(discordtest.UserMessage{ChannelID: thread, AuthorID: linkedUser, Content: "from ana"})
			e.fake.Dispatch(discordtest.UserMessage{ChannelID: thread, AuthorID: linkedUser, Content: "marker"})
			bustest.Eventually(t, "the marker", func() bool { return len(e.outbox.requests()) >= 2 })
			reqs := e.outbox.requests()
			if len(reqs) != 2 || reqs[0].Command.Text != "from ana" || reqs[0].TalkerID != talker ||
				reqs[0].Command.Origin == nil || reqs[0].Command.Origin.User != linkedUser {
				t.Errorf("sent to Bilibili: %+v", reqs)
			}
		})
	}
}

func teamBase(by string) events.TeamBase {
	// The conversation's name is left out, as a team event may lack it.
	return events.TeamBase{AccountUID: uid, By: events.Actor{Member: by},
		Conversation: events.Conversation{SessionType: 1, TalkerID: talker, Kind: events.ConversationUser}}
}

func teamEvent(t *testing.T, typ, id string, data any) events.Event {
	t.Helper()
	ev, err := events.New(uid, typ, id, conversation().Subject(), teamNow, data)
	if err != nil {
		t.Fatal(err)
	}
	return ev
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

// renames counts the PATCHes of thread that set its name.
func renames(e *env, thread string) int {
	n := 0
	for _, p := range e.fake.Patches(thread) {
		if p.Name != nil {
			n++
		}
	}
	return n
}

func TestTeamStateShowsOnThread(t *testing.T) {
	e := newEnv(t, discordtest.TypeText)
	s := e.sink(t) // team events show without Config.Team too
	deliver(t, s, message(t, 1, "hi team"))
	thread := e.onlyThread(t).ID
	const base = "Alice · 293793435"
	for _, step := range []struct {
		name     string
		ev       events.Event
		again    bool // delivered once more, and after a restart
		want     string
		archived bool
		renames  int // PATCHes with a name so far
		patches  int // PATCHes so far
	}{
		{name: "assigned", ev: assigned(t, "a1", "ana"), again: true, want: "[ana] " + base, renames: 1, patches: 1},
		{name: "done: renamed and archived at once", ev: status(t, "s1", events.ConversationDone), again: true,
			want: "✅ [ana] " + base, archived: true, renames: 2, patches: 2},
		// An archived thread is unarchived to be renamed (one PATCH; the
		// plain rename Discord refuses is not counted), and archived again.
		{name: "reassigned while done", ev: assigned(t, "a2", "bob"), want: "✅ [bob] " + base, archived: true, renames: 3, patches: 4},
		{name: "open unarchives", ev: status(t, "s2", events.ConversationOpen), again: true, want: "[bob] " + base, renames: 4, patches: 5},
		{name: "snoozed", ev: status(t, "s3", events.ConversationSnoozed), want: "💤 [bob] " + base, renames: 5, patches: 6},
		{name: "unassigned", ev: assigned(t, "a3", ""), want: "💤 " + base, renames: 6, patches: 7},
		{name: "open again", ev: status(t, "s4", events.ConversationOpen), again: true, want: base, renames: 7, patches: 8},
		{name: "read shows nothing", ev: teamEvent(t, events.TypeTeamRead, "r1", events.ReadData{TeamBase: teamBase("ana"), ReadUpTo: 1}),
			want: base, renames: 7, patches: 8},
	} {
		deliver(t, s, step.ev)
		if step.again {
			deliver(t, s, step.ev)
			deliver(t, e.sink(t), step.ev)
		}
		th, _ := e.fake.Channel(thread)
		if th.Name != step.want || th.Archived != step.archived {
			t.Errorf("%s: thread %q archived %v, want %q archived %v", step.name, th.Name, th.Archived, step.want, step.archived)
		}
		if r, p := renames(e, thread), len(e.fake.Patches(thread)); r != step.renames || p != step.patches {
			t.Errorf("%s: %d renames in %d PATCHes, want %d in %d", step.name, r, p, step.renames, step.patches)
		}
	}
	if n := len(e.fake.Messages(thread)); n != 1 {
		t.Errorf("%d messages in the thread; team state is shown on its name only", n)
	}
}

// Discord allows two renames of a thread in ten minutes: a third comes
// back to the runtime as a 429 with its wait, and an event that changes
// nothing asks nothing of Discord.
func TestThreadRenameRateLimit(t *testing.T) {
	e := newEnv(t, discordtest.TypeText)
	e.fake.LimitRenames(2)
	s := e.sink(t)
	deliver(t, s, message(t, 1, "hi team"))
	thread := e.onlyThread(t).ID
	deliver(t, s, assigned(t, "a1", "ana"))
	deliver(t, s, status(t, "s1", events.ConversationSnoozed))
	deliver(t, s, assigned(t, "a1", "ana"))                    // redelivered: nothing to rename
	deliver(t, s, status(t, "s2", events.ConversationSnoozed)) // the same status again
	err := tryDeliver(s, assigned(t, "a2", "bob"))
	retry, after, disable := sinks.Verdict(err)
	if err == nil || !retry || disable || after < 9*time.Minute || after > discordtest.RenameWindow {
		t.Fatalf("third rename: %v (retry %v after %s)", err, retry, after)
	}
	if th, _ := e.fake.Channel(thread); th.Name != "💤 [ana] Alice · 293793435" {
		t.Errorf("thread %q", th.Name)
	}
	if n := len(e.fake.Patches(thread)); n != 2 {
		t.Errorf("%d PATCHes applied, want 2", n)
	}
}

// A done conversation's thread is archived; the next incoming message
// unarchives it (and is posted), and the bridge's team.status open event
// that follows drops the done mark.
func TestDoneThreadReopensOnIncomingMessage(t *testing.T) {
	e := newEnv(t, discordtest.TypeText)
	s := e.sink(t)
	deliver(t, s, message(t, 1, "hi team"))
	thread := e.onlyThread(t).ID
	deliver(t, s, assigned(t, "a1", "ana"))
	deliver(t, s, status(t, "s1", events.ConversationDone))
	if th, _ := e.fake.Channel(thread); !th.Archived {
		t.Fatalf("thread %+v, want archived", th)
	}
	deliver(t, s, message(t, 2, "are you there?"))
	msgs := e.webhookMessages(thread)
	if th, _ := e.fake.Channel(thread); th.Archived || !strings.Contains(msgs[len(msgs)-1].Content, "are you there?") {
		t.Fatalf("after the message: thread %+v, last posted %+v", th, msgs[len(msgs)-1])
	}
	deliver(t, s, status(t, "s2", events.ConversationOpen))
	if th, _ := e.fake.Channel(thread); th.Archived || th.Name != "[ana] Alice · 293793435" {
		t.Errorf("after status open: %+v", th)
	}
	if n := len(e.fake.Threads(e.channel)); n != 1 {
		t.Errorf("%d threads", n)
	}
}

// A team event on a conversation without a thread is kept: the thread,
// when its first message comes, is named for it; a deleted thread's
// successor too.
func TestTeamStateBeforeTheThread(t *testing.T) {
	e := newEnv(t, discordtest.TypeText)
	s := e.sink(t)
	deliver(t, s, assigned(t, "a1", "ana"))
	if n := len(e.fake.Requests()); n != 0 {
		t.Fatalf("%d requests for a conversation without a thread", n)
	}
	deliver(t, s, message(t, 1, "first"))
	th := e.onlyThread(t)
	if th.Name != "[ana] Alice · 293793435" {
		t.Errorf("thread %q", th.Name)
	}
	e.fake.Delete(th.ID)
	deliver(t, s, message(t, 2, "second"))
	if th := e.onlyThread(t); th.Name != "[ana] Alice · 293793435" {
		t.Errorf("the new thread is %q", th.Name)
	}
}

// The name fits Discord's 100 characters and keeps the talker's id.
func TestThreadNameWithTeamStateFits(t *testing.T) {
	e := newEnv(t, discordtest.TypeText)
	s := e.sink(t, func(c *discord.Config) { c.MultiAccount = true })
	deliver(t, s, message(t, 1, "hi", func(d *events.MessageData) { d.Conversation.Name = strings.Repeat("名", 120) }))
	deliver(t, s, assigned(t, "a1", strings.Repeat("ana", 30)))
	deliver(t, s, status(t, "s1", events.ConversationSnoozed))
	th := e.onlyThread(t)
	if n := len([]rune(th.Name)); n > 100 || !strings.HasPrefix(th.Name, "💤 [anaana") || !strings.HasSuffix(th.Name, "… · 293793435 → 425503913") {
		t.Errorf("thread name %q (%d characters)", th.Name, n)
	}
}

func TestNotesFromElsewhereArePostedOnce(t *testing.T) {
	e := newEnv(t, discordtest.TypeText)
	tm := newTeam()
	s := e.sink(t, withTeam(tm))
	deliver(t, s, message(t, 1, "hi team"))
	thread := e.onlyThread(t).ID
	notes := func() []discordtest.Message {
		var n []discordtest.Message
		for _, m := range e.fake.Messages(thread) {
			if m.AuthorID == e.fake.BotUserID && strings.Contains(m.Content, "📝") {
				n = append(n, m)
			}
		}
		return n
	}

	// A note made in the browser: posted, marked internal, once.
	ev := note(t, "n1", "bob", "called them @everyone")
	deliver(t, s, ev)
	deliver(t, s, ev)
	deliver(t, e.sink(t, withTeam(tm)), ev)
	if n := notes(); len(n) != 1 || !strings.Contains(n[0].Content, "**bob**") || !strings.Contains(n[0].Content, "internal note") ||
		!strings.Contains(n[0].Content, "called them") || !noPings(n[0].AllowedMentions) {
		t.Fatalf("notes = %+v", n)
	}

	// A note typed here: its event is not posted, the command shows it.
	running(t, e, withTeam(tm))
	e.fake.Dispatch(discordtest.UserMessage{ChannelID: thread, AuthorID: linkedUser, Content: "/note asked for the invoice"})
	handled(t, e, thread, "marker")
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
	if n := notes(); len(n) != 2 || !strings.Contains(n[1].Content, "asked for the invoice") {
		t.Errorf("notes = %+v", n)
	}
	for _, r := range e.outbox.requests() {
		if r.Command.Text != "marker" {
			t.Errorf("sent to Bilibili: %q", r.Command.Text)
		}
	}
}

// A failed /note is not remembered: the same note made elsewhere
// afterwards is posted.
func TestFailedNoteIsNotSkippedLater(t *testing.T) {
	e := newEnv(t, discordtest.TypeText)
	tm := newTeam()
	tm.failWith(errors.New("no KV"))
	running(t, e, withTeam(tm))
	s := e.sink(t)
	deliver(t, s, message(t, 1, "hi team"))
	thread := e.onlyThread(t).ID
	e.fake.Dispatch(discordtest.UserMessage{ChannelID: thread, AuthorID: linkedUser, Content: "/note try again"})
	handled(t, e, thread, "marker")
	before := len(e.fake.Messages(thread))
	deliver(t, s, note(t, "n1", "ana", "try again"))
	if msgs := e.fake.Messages(thread)[before:]; len(msgs) != 1 || !strings.Contains(msgs[0].Content, "try again") {
		t.Errorf("posted = %+v", msgs)
	}
}

// A note on a done conversation is posted in its archived thread, which
// stays archived.
func TestNoteInDoneThreadKeepsItArchived(t *testing.T) {
	e := newEnv(t, discordtest.TypeText)
	s := e.sink(t)
	deliver(t, s, message(t, 1, "hi team"))
	thread := e.onlyThread(t).ID
	deliver(t, s, status(t, "s1", events.ConversationDone))
	deliver(t, s, note(t, "n1", "bob", "refund sent"))
	msgs := e.fake.Messages(thread)
	if th, _ := e.fake.Channel(thread); !th.Archived || !strings.Contains(msgs[len(msgs)-1].Content, "refund sent") {
		t.Errorf("thread %+v, last posted %+v", th, msgs[len(msgs)-1])
	}
}

// The answer to a command typed in an archived thread (a done
// conversation) is posted; the thread stays archived, unless the command
// reopens the conversation.
func TestAnswerInArchivedThread(t *testing.T) {
	e := newEnv(t, discordtest.TypeText)
	tm := newTeam()
	running(t, e, withTeam(tm))
	s := e.sink(t)
	deliver(t, s, message(t, 1, "hi team"))
	thread := e.onlyThread(t).ID
	deliver(t, s, status(t, "s1", events.ConversationDone))
	claim := e.fake.Dispatch(discordtest.UserMessage{ChannelID: thread, AuthorID: linkedUser, Content: "/claim"})
	bustest.Eventually(t, "the answer", func() bool { return len(answersTo(e, thread, claim)) == 1 })
	bustest.Eventually(t, "archived again", func() bool { th, _ := e.fake.Channel(thread); return th.Archived })
	reopen := e.fake.Dispatch(discordtest.UserMessage{ChannelID: thread, AuthorID: linkedUser, Content: "/reopen"})
	bustest.Eventually(t, "the answer", func() bool { return len(answersTo(e, thread, reopen)) == 1 })
	handled(t, e, thread, "marker")
	if th, _ := e.fake.Channel(thread); th.Archived {
		t.Errorf("after /reopen the thread is archived")
	}
}

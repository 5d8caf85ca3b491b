package discord_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/bilibridge/bilibridge/bus/bustest"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/send"
	"github.com/bilibridge/bilibridge/sinks/discord"
	"github.com/bilibridge/bilibridge/sinks/discord/discordtest"
	"github.com/bilibridge/bilibridge/testlog"
)

const (
	allowedUser = "700000000000000001"
	roleMember  = "700000000000000002"
	stranger    = "700000000000000003"
	teamRole    = "600000000000000001"
)

// running starts Run on a sink and waits until the gateway is connected;
// Run must return when the test ends.
func running(t *testing.T, e *env, mod ...func(*discord.Config)) *discord.Sink {
	t.Helper()
	e.fake.HeartbeatInterval = 50 * time.Millisecond
	mod = append([]func(*discord.Config){func(c *discord.Config) {
		c.AllowedUsers = []string{allowedUser}
		c.AllowedRoles = []string{teamRole}
	}}, mod...)
	s := e.sink(t, mod...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
	bustest.Eventually(t, "gateway connected", func() bool { return e.fake.Connected() == 1 })
	return s
}

func TestGatewayHandshake(t *testing.T) {
	e := newEnv(t, discordtest.TypeText)
	running(t, e)
	ids := e.fake.Identifies()
	if len(ids) != 1 {
		t.Fatalf("identifies = %+v", ids)
	}
	if want := int(discordgo.IntentGuildMessages | discordgo.IntentMessageContent); ids[0].Intents != want {
		t.Errorf("intents = %d, want %d (guild messages | message content)", ids[0].Intents, want)
	}
	if ids[0].Token != "Bot "+botToken {
		t.Error("identify did not carry the Bot token")
	}
	bustest.Eventually(t, "heartbeats acked", func() bool { return e.fake.Heartbeats() >= 2 })
	// Still one connection: acked heartbeats keep it.
	if n := len(e.fake.Identifies()); n != 1 {
		t.Errorf("%d identifies: the client reconnected", n)
	}
	// The gateway address came from the fake, through the session's client.
	var gw bool
	for _, r := range e.fake.Requests() {
		gw = gw || r.Path == "/api/v9/gateway"
	}
	if !gw {
		t.Error("GET /api/v9/gateway was not asked")
	}
}

func TestRunReturnsWhenDiscordIsUnreachable(t *testing.T) {
	e := newEnv(t, discordtest.TypeText)
	e.fake.Close()
	s := e.sink(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
}

func TestReplyRoutingAndPermissions(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  discordtest.UserMessage
		// want is the texts/images submitted; nil means nothing.
		want []string
		// in another channel than the conversation thread
		elsewhere bool
	}{
		{name: "allowed user", msg: discordtest.UserMessage{AuthorID: allowedUser, Content: "hello from the team"}, want: []string{"text:hello from the team"}},
		{name: "member with role in event", msg: discordtest.UserMessage{AuthorID: roleMember, Content: "hi", Roles: []string{teamRole}}, want: []string{"text:hi"}},
		{name: "member with role asked for", msg: discordtest.UserMessage{AuthorID: roleMember, Content: "hi"}, want: []string{"text:hi"}},
		{name: "member without the role", msg: discordtest.UserMessage{AuthorID: stranger, Content: "hi", Roles: []string{"1"}}},
		{name: "stranger", msg: discordtest.UserMessage{AuthorID: stranger, Content: "hi"}},
		{name: "bot", msg: discordtest.UserMessage{AuthorID: allowedUser, Bot: true, Content: "hi"}},
		{name: "own webhook", msg: discordtest.UserMessage{AuthorID: allowedUser, WebhookID: "1", Content: "hi"}},
		{name: "internal note", msg: discordtest.UserMessage{AuthorID: allowedUser, Content: "// just for the team"}},
		{name: "not a conversation thread", msg: discordtest.UserMessage{AuthorID: allowedUser, Content: "hi"}, elsewhere: true},
		{name: "image attachment", msg: discordtest.UserMessage{AuthorID: allowedUser, Content: "look", Attachments: []discordtest.Attachment{
			{URL: "https://cdn.discordapp.com/attachments/1/2/cat.png", Filename: "cat.png", ContentType: "image/png"},
		}}, want: []string{"text:look", "image:https://cdn.discordapp.com/attachments/1/2/cat.png"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, discordtest.TypeText)
			e.fake.AddMember(guildID, roleMember, teamRole)
			e.fake.AddMember(guildID, stranger)
			running(t, e)
			deliver(t, e.sink(t), message(t, 1, "hi team"))
			thread := e.onlyThread(t).ID
			m := tc.msg
			m.ChannelID = thread
			if tc.elsewhere {
				m.ChannelID = e.channel
			}
			id := e.fake.Dispatch(m)
			// A marker from an allowed user shows the handler ran.
			e.fake.Dispatch(discordtest.UserMessage{ChannelID: thread, AuthorID: allowedUser, Content: "marker"})
			bustest.Eventually(t, "marker submitted", func() bool {
				for _, r := range e.outbox.requests() {
					if r.Command.Text == "marker" {
						return true
					}
				}
				return false
			})
			var got []string
			for _, r := range e.outbox.requests() {
				if r.Command.Text == "marker" {
					continue
				}
				if r.SessionType != 1 || r.TalkerID != talker {
					t.Errorf("sent to %d/%d", r.SessionType, r.TalkerID)
				}
				o := r.Command.Origin
				if o == nil || o.Platform != "discord" || o.User != m.AuthorID || o.Ref != thread+":"+id {
					t.Errorf("origin = %+v", o)
				}
				if r.Command.Text != "" {
					got = append(got, "text:"+r.Command.Text)
				} else {
					got = append(got, "image:"+r.Command.ImageURL)
				}
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("submitted %q, want %q", got, tc.want)
			}
		})
	}
}

func TestReplyOutcome(t *testing.T) {
	e := newEnv(t, discordtest.TypeText)
	s := e.sink(t)
	deliver(t, s, message(t, 1, "hi team"))
	thread := e.onlyThread(t).ID
	ok := e.fake.Dispatch(discordtest.UserMessage{ChannelID: thread, AuthorID: allowedUser, Content: "reply 1"})
	bad := e.fake.Dispatch(discordtest.UserMessage{ChannelID: thread, AuthorID: allowedUser, Content: "reply 2"})

	deliver(t, s, result(t, true, events.SendResultData{CommandID: "discord-" + ok, MsgKey: 5001,
		Origin: &events.Origin{Platform: "discord", User: allowedUser, Ref: thread + ":" + ok}}))
	if r := e.fake.Reactions(); len(r) != 1 || r[0].MessageID != ok || r[0].ChannelID != thread || r[0].Emoji != "✅" {
		t.Fatalf("reactions = %+v", r)
	}
	deliver(t, s, result(t, false, events.SendResultData{CommandID: "discord-" + bad, ErrorCode: 21046,
		Error: "Bilibili refused the message: you are sending too often.", Origin: &events.Origin{Platform: "discord", User: allowedUser, Ref: thread + ":" + bad}}))
	var reply *discordtest.Message
	for _, m := range e.fake.Messages(thread) {
		if m.ReplyTo == bad {
			reply = &m
		}
	}
	if reply == nil || !strings.Contains(reply.Content, "sending too often") || !noPings(reply.AllowedMentions) {
		t.Fatalf("failure reply = %+v", reply)
	}
	// Results of other platforms' commands are not shown here.
	deliver(t, s, result(t, true, events.SendResultData{CommandID: "tg-1", MsgKey: 5002, Origin: &events.Origin{Platform: "telegram", Ref: "1:2"}}))
	if r := e.fake.Reactions(); len(r) != 1 {
		t.Fatalf("reactions = %+v", r)
	}

	// Echo: the sent message comes back from the poller as outgoing; the
	// thread shows it already (typed in Discord). One sent elsewhere is posted.
	before := len(e.webhookMessages(thread))
	deliver(t, s, message(t, 5001, "reply 1", func(d *events.MessageData) { d.Message.Direction = events.DirectionOut; d.Message.SenderUID = uid }))
	deliver(t, s, message(t, 5002, "from telegram", func(d *events.MessageData) { d.Message.Direction = events.DirectionOut; d.Message.SenderUID = uid }))
	msgs := e.webhookMessages(thread)
	if len(msgs) != before+1 || !strings.Contains(msgs[len(msgs)-1].Content, "from telegram") {
		t.Fatalf("after echoes: %+v", msgs[before:])
	}
}

func TestTextCommands(t *testing.T) {
	e := newEnv(t, discordtest.TypeText)
	var marked []uint64
	running(t, e, func(c *discord.Config) {
		c.Status = func() string { return "Polling every 6s; login valid." }
		c.MarkRead = func(_ context.Context, acct int64, st int, tk, seqno uint64) error {
			if acct != uid || st != 1 || tk != talker {
				return errors.New("wrong conversation")
			}
			marked = append(marked, seqno)
			return nil
		}
	})
	s := e.sink(t, func(c *discord.Config) {
		c.MarkRead = func(context.Context, int64, int, uint64, uint64) error { return nil }
	})
	deliver(t, s, message(t, 42, "hi"))
	thread := e.onlyThread(t).ID
	st := e.fake.Dispatch(discordtest.UserMessage{ChannelID: thread, AuthorID: allowedUser, Content: "/status"})
	bustest.Eventually(t, "status reply", func() bool {
		for _, m := range e.fake.Messages(thread) {
			if m.ReplyTo == st && strings.Contains(m.Content, "Polling every 6s") {
				return true
			}
		}
		return false
	})
	rd := e.fake.Dispatch(discordtest.UserMessage{ChannelID: thread, AuthorID: allowedUser, Content: "/read"})
	bustest.Eventually(t, "read reaction", func() bool {
		for _, r := range e.fake.Reactions() {
			if r.MessageID == rd {
				return true
			}
		}
		return false
	})
	if len(marked) != 1 || marked[0] != 42 {
		t.Errorf("marked read up to %v, want [42]", marked)
	}
	// A stranger's commands do nothing.
	e.fake.Dispatch(discordtest.UserMessage{ChannelID: thread, AuthorID: stranger, Content: "/read"})
	if len(e.outbox.requests()) != 0 {
		t.Errorf("commands were sent to Bilibili: %+v", e.outbox.requests())
	}
}

func TestSecretsStayOutOfRequestsURLsInLogs(t *testing.T) {
	e := newEnv(t, discordtest.TypeText)
	s := e.sink(t)
	deliver(t, s, message(t, 1, "hi"))
	e.fake.Delete(e.onlyThread(t).ID)
	e.fake.Fail("POST /api/v9/channels/{id}/threads", 1, 500, 0)
	err := tryDeliver(s, message(t, 2, "x"))
	if err == nil {
		t.Fatal("want an error")
	}
	hook := e.fake.Webhooks(e.channel)[0]
	for _, secret := range []string{botToken, hook.Token, url.PathEscape(hook.Token)} {
		if strings.Contains(err.Error(), secret) || strings.Contains(e.logs.String(), secret) {
			t.Errorf("secret in error or logs: %v\n%s", err, e.logs.String())
		}
	}
}

func TestRunStopsOnRefusedToken(t *testing.T) {
	e := newEnv(t, discordtest.TypeText)
	s := e.sink(t, func(c *discord.Config) { c.Token = "wrong" })
	done := make(chan error, 1)
	go func() { done <- s.Run(t.Context()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run kept retrying a refused token")
	}
	if strings.Contains(e.logs.String(), "wrong") && strings.Contains(e.logs.String(), "Bot wrong") {
		t.Error("token in logs")
	}
}

func TestFailureReplyNotRepeated(t *testing.T) {
	e := newEnv(t, discordtest.TypeText)
	s := e.sink(t)
	deliver(t, s, message(t, 1, "hi team"))
	thread := e.onlyThread(t).ID
	id := e.fake.Dispatch(discordtest.UserMessage{ChannelID: thread, AuthorID: allowedUser, Content: "reply"})
	ev := result(t, false, events.SendResultData{CommandID: "discord-" + id, Error: "Bilibili says no.",
		Origin: &events.Origin{Platform: "discord", User: allowedUser, Ref: thread + ":" + id}})
	deliver(t, s, ev)
	deliver(t, e.sink(t), ev)
	n := 0
	for _, m := range e.fake.Messages(thread) {
		if m.ReplyTo == id {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d failure replies, want 1", n)
	}
}

// With the real outbox: an allowed reply lands on BILI_OUTBOX, a
// stranger's does not.
func TestRepliesThroughRealOutbox(t *testing.T) {
	ns := bustest.StartServer(t)
	conn := ns.Connect(t)
	st := bustest.Provision(t, conn, 0)
	fake := discordtest.NewT(t, botToken)
	fake.HeartbeatInterval = 50 * time.Millisecond
	e := &env{fake: fake, kv: st.State, records: st.Records, channel: fake.AddChannel(guildID, discordtest.TypeText, "inbox"), logs: &testlog.Buffer{}}
	outbox := &send.Outbox{NC: conn.NC, JS: conn.JS, Records: st.Records, Accounts: []int64{uid}}
	s := e.sink(t, func(c *discord.Config) {
		c.Outbox = outbox
		c.AllowedUsers = []string{allowedUser}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	bustest.Eventually(t, "gateway connected", func() bool { return fake.Connected() == 1 })
	deliver(t, s, message(t, 1, "hi team"))
	thread := e.onlyThread(t).ID

	fake.Dispatch(discordtest.UserMessage{ChannelID: thread, AuthorID: stranger, Content: "not me"})
	id := fake.Dispatch(discordtest.UserMessage{ChannelID: thread, AuthorID: allowedUser, Content: "from the team"})
	bustest.Eventually(t, "command queued", func() bool {
		info, err := st.Outbox.Info(context.Background())
		return err == nil && info.State.Msgs >= 1
	})
	// Events parse only CloudEvents; read the raw command instead.
	raw, err := st.Outbox.GetLastMsgForSubject(context.Background(), events.Subjects{}.Send(uid, 1, talker))
	if err != nil {
		t.Fatal(err)
	}
	var cmd events.SendCommand
	if err := json.Unmarshal(raw.Data, &cmd); err != nil {
		t.Fatal(err)
	}
	if cmd.Text != "from the team" || cmd.CommandID != "discord-"+id || cmd.Origin == nil || cmd.Origin.Ref != thread+":"+id {
		t.Fatalf("command = %+v", cmd)
	}
	if info, _ := st.Outbox.Info(context.Background()); info.State.Msgs != 1 {
		t.Fatalf("%d commands on BILI_OUTBOX, want 1 (the stranger's must not be there)", info.State.Msgs)
	}
}

func TestGatewayReconnectsAndResumes(t *testing.T) {
	e := newEnv(t, discordtest.TypeText)
	running(t, e)
	deliver(t, e.sink(t), message(t, 1, "hi team"))
	thread := e.onlyThread(t).ID
	e.fake.Drop()
	bustest.Eventually(t, "resumed", func() bool { return e.fake.Resumes() >= 1 && e.fake.Connected() == 1 })
	e.fake.Dispatch(discordtest.UserMessage{ChannelID: thread, AuthorID: allowedUser, Content: "after the reconnect"})
	bustest.Eventually(t, "reply after reconnect", func() bool {
		for _, r := range e.outbox.requests() {
			if r.Command.Text == "after the reconnect" {
				return true
			}
		}
		return false
	})
}

// TestServiceMessagesIgnored: what Discord posts in a conversation thread
// for an allowed user's action (the thread renamed, a pin, someone added
// to the thread…) is neither sent to Bilibili nor answered; only ordinary
// messages and replies are.
func TestServiceMessagesIgnored(t *testing.T) {
	e := newEnv(t, discordtest.TypeText)
	running(t, e)
	deliver(t, e.sink(t), message(t, 1, "hi team"))
	thread := e.onlyThread(t).ID
	posted := e.webhookMessages(thread)[0].ID
	// writes counts what the sink did in Discord: every request but reads.
	writes := func() int {
		n := 0
		for _, r := range e.fake.Requests() {
			if r.Method != "GET" {
				n++
			}
		}
		return n
	}
	for i, tc := range []struct {
		name      string
		dispatch  func() // sends the message
		submitted string // the text sent to Bilibili; "" for none
	}{
		{name: "thread renamed", dispatch: func() { e.fake.RenameThread(thread, allowedUser, "Alice · VIP") }},
		{name: "message pinned", dispatch: func() {
			e.fake.Dispatch(discordtest.UserMessage{ChannelID: thread, AuthorID: allowedUser, Type: discordtest.MessageChannelPinned, ReplyTo: posted})
		}},
		{name: "member added to the thread", dispatch: func() {
			e.fake.Dispatch(discordtest.UserMessage{ChannelID: thread, AuthorID: allowedUser, Type: discordtest.MessageRecipientAdd})
		}},
		{name: "member joined", dispatch: func() {
			e.fake.Dispatch(discordtest.UserMessage{ChannelID: thread, AuthorID: allowedUser, Type: discordtest.MessageMemberJoin})
		}},
		{name: "thread created", dispatch: func() {
			e.fake.Dispatch(discordtest.UserMessage{ChannelID: thread, AuthorID: allowedUser, Type: discordtest.MessageThreadCreated, Content: "side thread"})
		}},
		{name: "thread starter message", dispatch: func() {
			e.fake.Dispatch(discordtest.UserMessage{ChannelID: thread, AuthorID: allowedUser, Type: discordtest.MessageThreadStarter})
		}},
		{name: "server boost", dispatch: func() {
			e.fake.Dispatch(discordtest.UserMessage{ChannelID: thread, AuthorID: allowedUser, Type: discordtest.MessageBoost})
		}},
		{name: "poll result", dispatch: func() {
			e.fake.Dispatch(discordtest.UserMessage{ChannelID: thread, AuthorID: allowedUser, Type: discordtest.MessagePollResult})
		}},
		{name: "ordinary message", submitted: "hello", dispatch: func() {
			e.fake.Dispatch(discordtest.UserMessage{ChannelID: thread, AuthorID: allowedUser, Content: "hello"})
		}},
		{name: "reply", submitted: "answering that", dispatch: func() {
			e.fake.Dispatch(discordtest.UserMessage{ChannelID: thread, AuthorID: allowedUser, Type: discordtest.MessageReply, ReplyTo: posted, Content: "answering that"})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, queued, reactions := writes(), len(e.outbox.requests()), len(e.fake.Reactions())
			tc.dispatch()
			// A marker behind it shows it was handled: events are handled in order.
			marker := fmt.Sprintf("marker %d", i)
			e.fake.Dispatch(discordtest.UserMessage{ChannelID: thread, AuthorID: allowedUser, Content: marker})
			bustest.Eventually(t, "the marker", func() bool {
				reqs := e.outbox.requests()
				return len(reqs) > 0 && reqs[len(reqs)-1].Command.Text == marker
			})
			var got []string
			for _, r := range e.outbox.requests()[queued:] {
				if r.Command.Text != marker {
					got = append(got, r.Command.Text)
				}
			}
			if strings.Join(got, "|") != tc.submitted {
				t.Errorf("sent to Bilibili: %q, want %q", got, tc.submitted)
			}
			if n := writes() - before; n != 0 {
				t.Errorf("the sink wrote %d times to Discord (a reply or a reaction)", n)
			}
			if n := len(e.fake.Reactions()) - reactions; n != 0 {
				t.Errorf("%d reactions", n)
			}
		})
	}
}

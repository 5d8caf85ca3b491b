package telegram_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-telegram/bot/models"

	"github.com/bilibridge/bilibridge/bilibili"
	"github.com/bilibridge/bilibridge/bus/bustest"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/poller"
	"github.com/bilibridge/bilibridge/send"
	"github.com/bilibridge/bilibridge/sinks/telegram"
	"github.com/bilibridge/bilibridge/sinks/telegram/telegramtest"
)

// threadOf delivers a message so that the conversation's topic exists,
// and returns the topic.
func threadOf(t *testing.T, e *env, s *telegram.Sink) int {
	t.Helper()
	deliver(t, s, textEvent(t, 1, "hello from Bilibili"))
	return e.fake.Topics(forumChat)[0].ThreadID
}

func waitConfirmed(t *testing.T, e *env) {
	t.Helper()
	bustest.Eventually(t, "updates handled", func() bool { return e.fake.PendingUpdates() == 0 })
}

func TestReplyRoutingForumAndAllowlist(t *testing.T) {
	e := newEnv(t)
	out := &countingOutbox{}
	s := e.sink(forumChat, func(c *telegram.Config) { c.AllowedUsers = []int64{alice.ID}; c.Outbox = out })
	thread := threadOf(t, e, s)
	runSink(t, s)

	id := e.fake.UserMessage(forumChat, thread, alice, "谢谢 <3")
	e.fake.UserMessage(forumChat, thread, mallory, "not allowed")                         // ignored
	e.fake.UserMessage(forumChat, thread, telegramtest.User{ID: 9, IsBot: true}, "a bot") // ignored
	e.fake.UserMessage(forumChat, 0, alice, "in General: no conversation")                // ignored
	e.fake.UserMessage(forumChat, 999, alice, "an unknown topic")                         // ignored
	bustest.Eventually(t, "the reply", func() bool { return len(out.all()) >= 1 })
	waitConfirmed(t, e)
	reqs := out.all()
	if len(reqs) != 1 {
		t.Fatalf("%d commands, want 1: %+v", len(reqs), reqs)
	}
	r := reqs[0]
	wantRef := strconv.FormatInt(forumChat, 10) + ":" + strconv.Itoa(id)
	if r.SessionType != bilibili.SessionUser || r.TalkerID != talkerID || r.Command.Text != "谢谢 <3" ||
		r.Command.Origin == nil || *r.Command.Origin != (events.Origin{Platform: "telegram", User: "1111", Ref: wantRef}) {
		t.Errorf("command = %+v origin %+v", r, r.Command.Origin)
	}
	if r.Command.CommandID == "" || !send.ValidCommandID(r.Command.CommandID) {
		t.Errorf("command_id %q", r.Command.CommandID)
	}
}

func TestReplyRoutingFlat(t *testing.T) {
	e := newEnv(t)
	out := &countingOutbox{}
	s := e.sink(flatChat, func(c *telegram.Config) { c.AllowedUsers = []int64{alice.ID}; c.Outbox = out })
	deliver(t, s, textEvent(t, 1, "hello"))
	posted := e.fake.Sent(flatChat)[0].ID
	runSink(t, s)
	e.fake.UserMessage(flatChat, 0, alice, "not a reply: ignored")
	e.fake.UserReply(flatChat, posted, alice, "a reply")
	bustest.Eventually(t, "the reply", func() bool { return len(out.all()) >= 1 })
	waitConfirmed(t, e)
	if reqs := out.all(); len(reqs) != 1 || reqs[0].Command.Text != "a reply" || reqs[0].TalkerID != talkerID {
		t.Errorf("commands = %+v", reqs)
	}
}

// A user outside the allowlist reaches nothing: the real outbox stream
// stays empty.
func TestNotAllowedUserQueuesNothing(t *testing.T) {
	e := newEnv(t)
	ob := &send.Outbox{NC: e.conn.NC, JS: e.conn.JS, Records: e.store.Records, Subjects: events.Subjects{}, Accounts: []int64{accountUID}}
	s := e.sink(forumChat, func(c *telegram.Config) { c.AllowedUsers = []int64{alice.ID}; c.Outbox = ob })
	thread := threadOf(t, e, s)
	runSink(t, s)
	e.fake.UserMessage(forumChat, thread, mallory, "let me in")
	e.fake.UserMessage(forumChat, thread, alice, "allowed")
	queued := func() uint64 {
		info, err := e.store.Outbox.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}
	bustest.Eventually(t, "the allowed reply on BILI_OUTBOX", func() bool { return queued() >= 1 })
	waitConfirmed(t, e)
	if n := queued(); n != 1 {
		t.Errorf("BILI_OUTBOX holds %d commands, want 1 (only the allowed user's)", n)
	}
	raw, err := e.store.Outbox.GetMsg(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw.Data), `"text":"allowed"`) || !strings.Contains(string(raw.Data), `"platform":"telegram"`) {
		t.Errorf("queued command = %s", raw.Data)
	}
}

func TestEmptyAllowlistSaysSoOnce(t *testing.T) {
	e := newEnv(t)
	out := &countingOutbox{}
	s := e.sink(forumChat, func(c *telegram.Config) { c.Outbox = out })
	thread := threadOf(t, e, s)
	runSink(t, s)
	e.fake.UserMessage(forumChat, thread, alice, "one")
	e.fake.UserMessage(forumChat, thread, alice, "two")
	waitConfirmed(t, e)
	if n := len(out.all()); n != 0 {
		t.Errorf("%d commands with replies off", n)
	}
	notes := 0
	for _, m := range e.fake.Sent(forumChat) {
		if strings.Contains(m.Text, "Replies to Bilibili are off") {
			notes++
			if m.ThreadID != thread {
				t.Errorf("the note went to thread %d", m.ThreadID)
			}
		}
	}
	if notes != 1 {
		t.Errorf("%d notes, want 1", notes)
	}
}

func TestPhotoReplyThroughFileProxy(t *testing.T) {
	e := newEnv(t)
	out := &countingOutbox{}
	var s *telegram.Sink
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.FileHandler().ServeHTTP(w, r) }))
	defer proxy.Close()
	s = e.sink(forumChat, func(c *telegram.Config) {
		c.AllowedUsers = []int64{alice.ID}
		c.Outbox = out
		c.FileProxyURL = proxy.URL + "/telegram/files"
	})
	thread := threadOf(t, e, s)
	runSink(t, s)
	jpeg := append([]byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00"), make([]byte, 64)...)
	e.fake.UserPhoto(forumChat, thread, 0, alice, jpeg, "看这个")
	bustest.Eventually(t, "two commands", func() bool { return len(out.all()) >= 2 })
	reqs := out.all()
	img, txt := reqs[0].Command, reqs[1].Command
	if img.ImageURL == "" || txt.Text != "看这个" || img.CommandID == txt.CommandID {
		t.Fatalf("commands = %+v, %+v", img, txt)
	}
	if strings.Contains(img.ImageURL, e.fake.Token) || !strings.HasPrefix(img.ImageURL, proxy.URL+"/telegram/files/") {
		t.Fatalf("image_url %q", img.ImageURL)
	}
	// The sender downloads it from the proxy, the way send.ImageFetcher does.
	f := &send.ImageFetcher{AllowPrivateNetworks: true}
	got, err := f.Fetch(context.Background(), img.ImageURL)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Data) != string(jpeg) || got.Type != "jpeg" {
		t.Errorf("fetched %d bytes of %s", len(got.Data), got.Type)
	}
	// Unknown ids are 404.
	resp, err := http.Get(proxy.URL + "/telegram/files/AAAAAAAAAAAAAAAAAAAAAAAA")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown id: %d", resp.StatusCode)
	}
}

func TestPhotoReplyWithoutProxyIsRefused(t *testing.T) {
	e := newEnv(t)
	out := &countingOutbox{}
	s := e.sink(forumChat, func(c *telegram.Config) { c.AllowedUsers = []int64{alice.ID}; c.Outbox = out })
	thread := threadOf(t, e, s)
	runSink(t, s)
	e.fake.UserPhoto(forumChat, thread, 0, alice, []byte("\xff\xd8\xff"), "")
	waitConfirmed(t, e)
	bustest.Eventually(t, "the note", func() bool {
		sent := e.fake.Sent(forumChat)
		return strings.Contains(sent[len(sent)-1].Text, "Photo replies are not set up")
	})
	if n := len(out.all()); n != 0 {
		t.Errorf("%d commands", n)
	}
}

func sendResult(t *testing.T, typ string, d events.SendResultData) events.Event {
	t.Helper()
	ev, err := events.New(accountUID, typ, events.SendResultID(accountUID, d.CommandID), userConv.Subject(), time.Now(), d)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestOutcomeReactionFailureReplyAndEcho(t *testing.T) {
	e := newEnv(t)
	s := e.sink(forumChat, nil)
	thread := threadOf(t, e, s)
	okID := e.fake.UserMessage(forumChat, thread, alice, "thanks!")
	badID := e.fake.UserMessage(forumChat, thread, alice, "second")
	ref := func(id int) string { return strconv.FormatInt(forumChat, 10) + ":" + strconv.Itoa(id) }

	echoKey := uint64(7400000000000000001)
	deliver(t, s, sendResult(t, events.TypeSendSucceeded, events.SendResultData{AccountUID: accountUID, CommandID: "c1", Conversation: userConv,
		MsgKey: echoKey, MsgKeys: []string{strconv.FormatUint(echoKey, 10)},
		Origin: &events.Origin{Platform: "telegram", User: "1111", Ref: ref(okID)}}))
	if m, _ := e.fake.Message(forumChat, okID); len(m.Reactions) != 1 || m.Reactions[0] != telegram.ReactionSent {
		t.Errorf("reactions = %v", m.Reactions)
	}
	fail := sendResult(t, events.TypeSendFailed, events.SendResultData{AccountUID: accountUID, CommandID: "c2", Conversation: userConv,
		ErrorCode: 21047, Error: "Bilibili allows only one message until they reply or follow <you>.",
		Origin: &events.Origin{Platform: "telegram", User: "1111", Ref: ref(badID)}})
	deliver(t, s, fail)
	deliver(t, s, fail) // redelivered: one reply
	var replies []telegramtest.Message
	for _, m := range e.fake.Sent(forumChat) {
		if m.ReplyTo == badID {
			replies = append(replies, m)
		}
	}
	if len(replies) != 1 || replies[0].ThreadID != thread || !strings.Contains(replies[0].Text, "only one message until they reply or follow &lt;you&gt;") {
		t.Errorf("failure replies = %+v", replies)
	}
	// Results of other platforms or chats are not ours.
	deliver(t, s, sendResult(t, events.TypeSendFailed, events.SendResultData{AccountUID: accountUID, CommandID: "c3", Conversation: userConv,
		Error: "x", Origin: &events.Origin{Platform: "api"}}))
	deliver(t, s, sendResult(t, events.TypeSendFailed, events.SendResultData{AccountUID: accountUID, CommandID: "c4", Conversation: userConv,
		Error: "x", Origin: &events.Origin{Platform: "telegram", Ref: "-100555:1"}}))

	// The poller's echo of the successful reply is not posted again; other
	// outgoing messages are.
	before := len(e.fake.Sent(forumChat))
	outSrc := poller.Source{AccountUID: accountUID, Conversation: userConv}
	echo := func(key uint64, text string) events.Event {
		return event(t, outSrc, with(incoming(1, `{"content":"`+text+`"}`), func(m *bilibili.Message) {
			m.SenderUID, m.ReceiverID, m.MsgKey = accountUID, talkerID, key
		}))
	}
	deliver(t, s, echo(echoKey, "thanks!"))
	deliver(t, s, echo(echoKey+1, "typed on the phone"))
	sent := e.fake.Sent(forumChat)[before:]
	if len(sent) != 1 || !strings.Contains(sent[0].Text, "typed on the phone") {
		t.Errorf("after the echo: %+v", sent)
	}
}

func TestCommandsAndOffsetDurability(t *testing.T) {
	e := newEnv(t)
	out := &countingOutbox{}
	var marked []string
	cfg := func(c *telegram.Config) {
		c.AllowedUsers = []int64{alice.ID}
		c.Outbox = out
		c.Status = func() string { return "login: ok; last poll: 3s ago; queue: 0" }
		c.MarkRead = func(_ context.Context, _ int64, st int, talker uint64) error {
			marked = append(marked, strconv.Itoa(st)+"/"+strconv.FormatUint(talker, 10))
			return nil
		}
	}
	s := e.sink(forumChat, cfg)
	thread := threadOf(t, e, s)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	e.fake.UserMessage(forumChat, 0, mallory, "/help")
	e.fake.UserMessage(forumChat, 0, mallory, "/status") // not allowed: ignored
	e.fake.UserMessage(forumChat, 0, alice, "/status@bilibridge_bot")
	e.fake.UserMessage(forumChat, thread, alice, "/read")
	e.fake.UserMessage(forumChat, thread, alice, "reply one")
	waitConfirmed(t, e)
	bustest.Eventually(t, "the command answers", func() bool { return len(e.fake.Sent(forumChat)) >= 4 })
	cancel()
	<-done
	var texts []string
	for _, m := range e.fake.Sent(forumChat)[1:] {
		texts = append(texts, m.Text)
	}
	all := strings.Join(texts, "\n---\n")
	if !strings.Contains(all, "/status") || !strings.Contains(all, "login: ok; last poll: 3s ago") || !strings.Contains(all, "Marked read") {
		t.Errorf("answers:\n%s", all)
	}
	if strings.Count(all, "login: ok") != 1 {
		t.Errorf("/status answered %d times", strings.Count(all, "login: ok"))
	}
	if len(marked) != 1 || marked[0] != "1/293793435" {
		t.Errorf("marked = %v", marked)
	}
	if n := len(out.all()); n != 1 {
		t.Fatalf("%d commands", n)
	}
	// A restart resumes after the last handled update: nothing twice.
	s2 := e.sink(forumChat, cfg)
	runSink(t, s2)
	e.fake.UserMessage(forumChat, thread, alice, "reply two")
	bustest.Eventually(t, "reply two", func() bool { return len(out.all()) == 2 })
	waitConfirmed(t, e)
	time.Sleep(200 * time.Millisecond)
	if reqs := out.all(); len(reqs) != 2 || reqs[1].Command.Text != "reply two" {
		t.Errorf("commands after restart = %+v", reqs)
	}
}

// TestPollingLowerUpdateIDAfterAQuietWeek: when Telegram numbers updates
// from a lower id after a quiet week, the Bot API answers getUpdates with
// an offset past them from the oldest pending update; Run handles them
// (once) and confirms them, instead of skipping them forever.
func TestPollingLowerUpdateIDAfterAQuietWeek(t *testing.T) {
	e := newEnv(t)
	out := &countingOutbox{}
	cfg := func(c *telegram.Config) { c.AllowedUsers, c.Outbox = []int64{alice.ID}, out }
	s := e.sink(forumChat, cfg)
	thread := threadOf(t, e, s)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	e.fake.UserMessage(forumChat, thread, alice, "before the quiet week")
	waitConfirmed(t, e)

	e.fake.RestartUpdateIDs(5)
	e.fake.UserMessage(forumChat, thread, alice, "after the quiet week")
	bustest.Eventually(t, "the update with the lower id handled", func() bool { return len(out.all()) >= 2 })
	waitConfirmed(t, e)
	e.fake.UserMessage(forumChat, thread, alice, "and the next one")
	bustest.Eventually(t, "the next update handled", func() bool { return len(out.all()) >= 3 })
	waitConfirmed(t, e)
	// A restart goes on from the new numbering.
	cancel()
	<-done
	runSink(t, e.sink(forumChat, cfg))
	e.fake.UserMessage(forumChat, thread, alice, "after a restart")
	bustest.Eventually(t, "the update after a restart handled", func() bool { return len(out.all()) >= 4 })
	waitConfirmed(t, e)

	var texts []string
	for _, r := range out.all() {
		texts = append(texts, r.Command.Text)
	}
	if got := strings.Join(texts, "|"); got != "before the quiet week|after the quiet week|and the next one|after a restart" {
		t.Errorf("commands = %q, want each update once, in order", got)
	}
	if c := e.fake.Confirmed(); c != 7 {
		t.Errorf("confirmed %d, want 7", c)
	}
}

// TestServiceMessagesAndOtherBotsCommandsIgnored: what Telegram posts for
// an allowed member's action (a topic renamed, closed or reopened, a pin,
// members joining…) and commands addressed to another bot are neither
// sent to Bilibili nor answered; commands to this bot still are.
func TestServiceMessagesAndOtherBotsCommandsIgnored(t *testing.T) {
	e := newEnv(t)
	out := &countingOutbox{}
	s := e.sink(forumChat, func(c *telegram.Config) {
		c.AllowedUsers, c.Outbox = []int64{alice.ID}, out
		c.Status = func() string { return "login: ok" }
	})
	thread := threadOf(t, e, s)
	posted := e.fake.Sent(forumChat)[0]
	runSink(t, s)
	answers := func() int { return e.fake.CallCount("sendMessage") + e.fake.CallCount("sendPhoto") }
	for i, tc := range []struct {
		name      string
		general   bool // in the General topic rather than the conversation's
		fill      func(m *models.Message)
		answered  bool   // the bot answers in the chat
		submitted string // the text sent to Bilibili
	}{
		{name: "topic renamed", fill: func(m *models.Message) { m.ForumTopicEdited = &models.ForumTopicEdited{Name: "renamed by Alice"} }},
		{name: "topic closed", fill: func(m *models.Message) { m.ForumTopicClosed = &models.ForumTopicClosed{} }},
		{name: "topic reopened", fill: func(m *models.Message) { m.ForumTopicReopened = &models.ForumTopicReopened{} }},
		{name: "message pinned", fill: func(m *models.Message) {
			m.PinnedMessage = &models.MaybeInaccessibleMessage{Type: models.MaybeInaccessibleMessageTypeMessage, Message: &models.Message{
				ID: posted.ID, Date: int(msgTime), Text: "hello from Bilibili", Chat: m.Chat, MessageThreadID: thread, IsTopicMessage: true,
				From: &models.User{ID: telegramtest.BotID, IsBot: true, FirstName: "bilibridge"}}}
		}},
		{name: "members joined", fill: func(m *models.Message) { m.NewChatMembers = []models.User{{ID: 4242, FirstName: "Bob"}} }},
		{name: "member left", fill: func(m *models.Message) { m.LeftChatMember = &models.User{ID: 4242, FirstName: "Bob"} }},
		{name: "chat renamed", general: true, fill: func(m *models.Message) { m.NewChatTitle = "Inbox" }},
		{name: "auto-delete timer changed", fill: func(m *models.Message) {
			m.MessageAutoDeleteTimerChanged = &models.MessageAutoDeleteTimerChanged{MessageAutoDeleteTime: 86400}
		}},
		{name: "a service message the library does not know", fill: func(*models.Message) {}},
		{name: "command to another bot", fill: func(m *models.Message) { m.Text = "/status@other_bot" }},
		{name: "command to another bot in General", general: true, fill: func(m *models.Message) { m.Text = "/help@other_bot" }},
		{name: "command to this bot", fill: func(m *models.Message) { m.Text = "/status@bilibridge_bot" }, answered: true},
		{name: "command to this bot, other case", fill: func(m *models.Message) { m.Text = "/status@BiliBridge_Bot" }, answered: true},
		{name: "command without a bot", fill: func(m *models.Message) { m.Text = "/status" }, answered: true},
		{name: "text", fill: func(m *models.Message) { m.Text = "a reply" }, submitted: "a reply"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, cmds, reactions := answers(), len(out.all()), e.fake.CallCount("setMessageReaction")
			th := thread
			if tc.general {
				th = 0
			}
			e.fake.UserMessageWith(forumChat, th, alice, tc.fill)
			// A marker behind it shows it was handled: updates are handled in order.
			marker := fmt.Sprintf("marker %d", i)
			e.fake.UserMessage(forumChat, thread, alice, marker)
			bustest.Eventually(t, "the marker", func() bool {
				reqs := out.all()
				return len(reqs) > 0 && reqs[len(reqs)-1].Command.Text == marker
			})
			var got []string
			for _, r := range out.all()[cmds:] {
				if r.Command.Text != marker {
					got = append(got, r.Command.Text)
				}
			}
			if want := tc.submitted; strings.Join(got, "|") != want {
				t.Errorf("sent to Bilibili: %q, want %q", got, want)
			}
			if n := answers() - before; (n > 0) != tc.answered || n > 1 {
				t.Errorf("%d answers in the chat, want answered %v", n, tc.answered)
			}
			if n := e.fake.CallCount("setMessageReaction") - reactions; n != 0 {
				t.Errorf("%d reactions", n)
			}
		})
	}
}

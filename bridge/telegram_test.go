package bridge_test

import (
	"strings"
	"testing"

	"github.com/bilibridge/bilibridge/bilibili/bilitest"
	"github.com/bilibridge/bilibridge/bridge"
	"github.com/bilibridge/bilibridge/bus/bustest"
	"github.com/bilibridge/bilibridge/config"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/sinks/telegram"
	"github.com/bilibridge/bilibridge/sinks/telegram/telegramtest"
)

// TestTelegramInbox runs the whole loop: a DM arrives in its own forum
// topic; an allowed team member answers in the topic; the answer reaches
// Bilibili; the member's message gets the success reaction; a stranger in
// the chat is ignored.
func TestTelegramInbox(t *testing.T) {
	const chat int64 = -1001234567890
	fake := bilitest.NewServer()
	t.Cleanup(fake.Close)
	fake.AddAccount(bilitest.Account{UID: uid, Name: "me", SESSDATA: "sess", BiliJct: "jct"})
	fake.AddUser(bilitest.User{UID: friend, Name: "friend", FollowsAccount: true})
	tg := telegramtest.NewServer(t)
	tg.AddChat(telegramtest.Chat{ID: chat, Title: "inbox", IsForum: true})

	cfg := testConfig(t, fake, t.TempDir())
	cfg.TelegramToken, cfg.TelegramChatID, cfg.TelegramAPIURL = tg.Token, -1001234567890, tg.URL
	cfg.TelegramAllowedUsers = config.IDList{777}
	r := startApp(t, bridge.Options{Config: cfg, HTTPClient: fake.Client(), Accounts: []config.Login{defaultLogin}})

	fake.Deliver(uid, bilitest.Message{SessionType: 1, TalkerID: uint64(friend), MsgType: 1, Content: bilitest.TextContent("hello <team>")})
	var thread int
	bustest.Eventually(t, "the topic and the message", func() bool {
		for _, tp := range tg.Topics(chat) {
			if tp.Name == "friend · 293793435" {
				thread = tp.ThreadID
			}
		}
		for _, m := range tg.Sent(chat) {
			if m.FromBot && m.ThreadID == thread && thread != 0 && strings.Contains(m.Text, "hello &lt;team&gt;") {
				return true
			}
		}
		return false
	})
	if want := telegram.TopicName(eventsConversation("friend")); want != "friend · 293793435" {
		t.Fatalf("topic name %q", want)
	}

	tg.UserMessage(chat, thread, telegramtest.User{ID: 999, FirstName: "stranger"}, "not allowed")
	id := tg.UserMessage(chat, thread, telegramtest.User{ID: 777, FirstName: "teammate"}, "thanks, we will look")
	bustest.Eventually(t, "the reply on Bilibili and the reaction", func() bool {
		m, ok := tg.Message(chat, id)
		return len(fake.Sent(uid)) == 1 && ok && len(m.Reactions) > 0
	})
	sent := fake.Sent(uid)
	if !strings.Contains(sent[0].Content, "thanks, we will look") || sent[0].ReceiverID != uint64(friend) {
		t.Errorf("Bilibili got %+v", sent[0])
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if n := len(fake.Sent(uid)); n != 1 {
		t.Errorf("%d messages sent to Bilibili; the stranger's must not be", n)
	}
}

func eventsConversation(name string) events.Conversation {
	return events.Conversation{SessionType: 1, TalkerID: uint64(friend), Kind: events.ConversationUser, Name: name}
}

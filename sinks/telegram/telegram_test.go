package telegram_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bilibridge/bilibridge/bilibili"
	"github.com/bilibridge/bilibridge/bus/bustest"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/poller"
	"github.com/bilibridge/bilibridge/sinks"
	"github.com/bilibridge/bilibridge/sinks/telegram"
	"github.com/bilibridge/bilibridge/sinks/telegram/telegramtest"
)

func TestNameAndSubjects(t *testing.T) {
	e := newEnv(t)
	s := e.sink(forumChat, nil)
	if s.Name() != "telegram-_1001234567890" {
		t.Errorf("Name = %q", s.Name())
	}
	got := strings.Join(s.Subjects(events.Subjects{}), " ")
	if got != "bili.*.msg.> bili.*.recall.> bili.*.sent.> bili.*.account bili.*.team.>" {
		t.Errorf("Subjects = %s", got)
	}
	if _, err := telegram.New(telegram.Config{ChatID: 1, State: e.kv}); err == nil {
		t.Error("New without a token succeeded")
	}
}

func TestTopicCreatedOnceAndReusedAcrossRestart(t *testing.T) {
	e := newEnv(t)
	s := e.sink(forumChat, nil)
	deliver(t, s, textEvent(t, 1, "first"))
	deliver(t, s, textEvent(t, 2, "second"))
	// A restart: a new sink on the same KV bucket.
	s2 := e.sink(forumChat, nil)
	deliver(t, s2, textEvent(t, 3, "third"))

	topics := e.fake.Topics(forumChat)
	if len(topics) != 1 || topics[0].Name != "社会易姐QwQ · 293793435" {
		t.Fatalf("topics = %+v", topics)
	}
	if n := e.fake.CallCount("createForumTopic"); n != 1 {
		t.Errorf("createForumTopic called %d times", n)
	}
	for _, m := range e.fake.Sent(forumChat) {
		if m.ThreadID != topics[0].ThreadID {
			t.Errorf("message %q in thread %d, want %d", m.Text, m.ThreadID, topics[0].ThreadID)
		}
	}
	// Another conversation gets its own topic; a group by its name.
	gsrc := poller.Source{AccountUID: accountUID, Conversation: groupConv}
	deliver(t, s2, event(t, gsrc, with(incoming(1, `{"content":"hi"}`), func(m *bilibili.Message) {
		m.SenderUID, m.ReceiverType, m.ReceiverID, m.MsgKey = 0, bilibili.SessionGroup, groupID, 4
	})))
	if topics := e.fake.Topics(forumChat); len(topics) != 2 || topics[1].Name != groupConv.Name {
		t.Errorf("topics = %+v", topics)
	}
}

func TestTopicName(t *testing.T) {
	long := strings.Repeat("名", 200)
	for _, tc := range []struct {
		c    events.Conversation
		want string
	}{
		{userConv, "社会易姐QwQ · 293793435"},
		{events.Conversation{Kind: events.ConversationUser, TalkerID: 5}, "5"},
		{groupConv, "社会易姐QwQ的应援团"},
		{systemConv, "UP主小助手"},
		{events.Conversation{Kind: events.ConversationUser, TalkerID: 7, Name: "a\n b"}, "a b · 7"},
		{events.Conversation{Kind: events.ConversationUser, TalkerID: 7, Name: long}, strings.Repeat("名", 123) + "… · 7"},
	} {
		got := telegram.TopicName(tc.c)
		if got != tc.want {
			t.Errorf("TopicName(%q) = %q, want %q", tc.c.Name, got, tc.want)
		}
		if n := len([]rune(got)); n > 128 {
			t.Errorf("TopicName is %d characters", n)
		}
	}
}

func TestNoDuplicatePostAfterRedelivery(t *testing.T) {
	e := newEnv(t)
	s := e.sink(forumChat, nil)
	ev := textEvent(t, 1, "once")
	deliver(t, s, ev)
	deliver(t, s, ev)
	deliver(t, e.sink(forumChat, nil), ev) // after a restart too
	if n := e.fake.CallCount("sendMessage"); n != 1 {
		t.Errorf("sendMessage called %d times, want 1", n)
	}
}

func TestLongTextSplitAndPartialPostResumes(t *testing.T) {
	e := newEnv(t)
	s := e.sink(forumChat, nil)
	ev := textEvent(t, 1, strings.Repeat("长文本 <&> ", 1000)) // 8000 characters: two messages
	// The second part fails with a 429 after the first was sent.
	e.fake.FailAfter("sendMessage", 1, telegramtest.TooManyRequests(1))
	err := s.Deliver(context.Background(), ev)
	if retry, after, _ := sinks.Verdict(err); !retry || after != time.Second {
		t.Fatalf("Deliver: %v", err)
	}
	deliver(t, s, ev)
	deliver(t, s, ev)
	sent := e.fake.Sent(forumChat)
	if len(sent) != 2 {
		t.Fatalf("%d messages sent, want 2 (no part twice)", len(sent))
	}
	var joined strings.Builder
	for _, m := range sent {
		plain := strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&").Replace(m.Text)
		if n := len([]rune(plain)); n > 4096 {
			t.Errorf("a message of %d visible characters", n)
		}
		joined.WriteString(plain)
	}
	if joined.String() != strings.Repeat("长文本 <&> ", 1000) {
		t.Error("the parts do not add up to the text")
	}
}

// TestMultiPartPostResumes: an event posted as several messages is
// recorded after each one, so that its redelivery posts only the parts
// not posted yet: after a failed part, and after a crash in the middle
// (the first delivery is stuck in a part while another process, on the
// same KV bucket, takes the redelivery).
func TestMultiPartPostResumes(t *testing.T) {
	var b strings.Builder
	for i := range 1300 {
		fmt.Fprintf(&b, "%04d长<&> ", i) // 11700 characters, no two parts alike: three messages
	}
	text := b.String()
	for _, tc := range []struct {
		name  string
		skip  int // sendMessage calls served before the fault
		fault telegramtest.Fault
		crash bool
	}{
		{name: "HTTP 500 on the 2nd part", skip: 1, fault: telegramtest.ServerError()},
		{name: "connection dropped on the 3rd part", skip: 2, fault: telegramtest.Dropped()},
		{name: "crash while posting the 2nd part", skip: 1, fault: telegramtest.ServerError(), crash: true},
		{name: "crash while posting the 3rd part", skip: 2, fault: telegramtest.Dropped(), crash: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			ev := textEvent(t, 1, text)
			s := e.sink(forumChat, nil)
			if !tc.crash {
				e.fake.FailAfter("sendMessage", tc.skip, tc.fault)
				err := s.Deliver(context.Background(), ev)
				if retry, _, _ := sinks.Verdict(err); err == nil || !retry {
					t.Fatalf("first delivery: %v, want a retryable error", err)
				}
				deliver(t, s, ev)
			} else {
				hold := make(chan struct{})
				released := false
				release := func() {
					if !released {
						released = true
						close(hold)
					}
				}
				t.Cleanup(release)
				f := tc.fault
				f.Hold = hold
				e.fake.FailAfter("sendMessage", tc.skip, f)
				first := make(chan error, 1)
				go func() { first <- s.Deliver(context.Background(), ev) }()
				bustest.Eventually(t, "the first delivery stuck in a part", func() bool {
					return e.fake.CallCount("sendMessage") == tc.skip+1
				})
				deliver(t, e.sink(forumChat, nil), ev) // the redelivery, in another process
				release()
				if err := <-first; err == nil {
					t.Error("the stuck delivery reported success")
				}
			}
			deliver(t, e.sink(forumChat, nil), ev) // and once more after a restart: nothing new

			sent := e.fake.Sent(forumChat)
			var joined strings.Builder
			seen := map[string]bool{}
			for _, m := range sent {
				if seen[m.Text] {
					t.Errorf("a part was posted twice: %.40q…", m.Text)
				}
				seen[m.Text] = true
				joined.WriteString(strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&").Replace(m.Text))
			}
			if len(sent) != 3 {
				t.Fatalf("%d messages in the chat, want 3 (each part once)", len(sent))
			}
			if joined.String() != text {
				t.Error("the messages do not add up to the text, in order")
			}
		})
	}
}

func TestRetryAfterExact(t *testing.T) {
	e := newEnv(t)
	s := e.sink(forumChat, nil)
	e.fake.FailNext("createForumTopic", 1, telegramtest.TooManyRequests(37))
	err := s.Deliver(context.Background(), textEvent(t, 1, "hi"))
	retry, after, disable := sinks.Verdict(err)
	if !retry || after != 37*time.Second || disable {
		t.Fatalf("verdict of %v = %v %v %v, want retry after exactly 37s", err, retry, after, disable)
	}
	e.fake.FailNext("sendMessage", 1, telegramtest.TooManyRequests(3))
	err = s.Deliver(context.Background(), textEvent(t, 1, "hi"))
	if retry, after, _ := sinks.Verdict(err); !retry || after != 3*time.Second {
		t.Fatalf("sendMessage 429: %v", err)
	}
	deliver(t, s, textEvent(t, 1, "hi"))
	if n := len(e.fake.Sent(forumChat)); n != 1 {
		t.Errorf("%d messages sent", n)
	}
}

func TestDeletedAndClosedTopicRecovery(t *testing.T) {
	e := newEnv(t)
	s := e.sink(forumChat, nil)
	deliver(t, s, textEvent(t, 1, "one"))
	old := e.fake.Topics(forumChat)[0].ThreadID

	e.fake.DeleteTopic(forumChat, old)
	deliver(t, s, textEvent(t, 2, "two"))
	topics := e.fake.Topics(forumChat)
	if len(topics) != 2 || !topics[0].Deleted || topics[1].Deleted {
		t.Fatalf("topics = %+v", topics)
	}
	fresh := topics[1].ThreadID
	sent := e.fake.Sent(forumChat)
	if last := sent[len(sent)-1]; last.Text != "two" || last.ThreadID != fresh {
		t.Errorf("last message = %+v", last)
	}
	// TOPIC_DELETED as Telegram sometimes words it.
	e.fake.FailNext("sendMessage", 1, telegramtest.BadRequest("TOPIC_DELETED"))
	deliver(t, s, textEvent(t, 3, "three"))
	if n := len(e.fake.Topics(forumChat)); n != 3 {
		t.Errorf("%d topics after TOPIC_DELETED, want 3", n)
	}
	// A closed topic is reopened, not replaced.
	cur := e.fake.Topics(forumChat)[2].ThreadID
	e.fake.CloseTopic(forumChat, cur)
	deliver(t, e.sink(forumChat, nil), textEvent(t, 4, "four"))
	topics = e.fake.Topics(forumChat)
	if len(topics) != 3 || topics[2].Closed {
		t.Errorf("after a closed topic: %+v", topics)
	}
	sent = e.fake.Sent(forumChat)
	if last := sent[len(sent)-1]; last.Text != "four" || last.ThreadID != cur {
		t.Errorf("last message = %+v", last)
	}
}

func TestRecallEditsThePostedMessage(t *testing.T) {
	e := newEnv(t)
	s := e.sink(forumChat, nil)
	deliver(t, s, textEvent(t, 7345551441311046575, "oops <wrong> chat"))
	recall := event(t, userSrc(), with(incoming(5, "7345551441311046575"), func(m *bilibili.Message) { m.MsgKey = 99 }))
	if recall.Type != events.TypeRecall {
		t.Fatalf("not a recall: %s", recall.Type)
	}
	deliver(t, s, recall)
	deliver(t, s, recall) // redelivered: "message is not modified" is fine
	sent := e.fake.Sent(forumChat)
	if len(sent) != 1 {
		t.Fatalf("%d messages", len(sent))
	}
	want := "🚫 <i>Recalled by the sender</i>\n<s>oops &lt;wrong&gt; chat</s>"
	if sent[0].Text != want || sent[0].Edits != 1 {
		t.Errorf("after recall: %q (%d edits), want %q", sent[0].Text, sent[0].Edits, want)
	}
	// A photo's caption is edited.
	img := event(t, userSrc(), with(incoming(2, fixtureContent(t, 1, 2)), func(m *bilibili.Message) { m.MsgKey = 555 }))
	deliver(t, s, img)
	deliver(t, s, event(t, userSrc(), with(incoming(5, "555"), func(m *bilibili.Message) { m.MsgKey = 556; m.SysCancel = true })))
	sent = e.fake.Sent(forumChat)
	if last := sent[len(sent)-1]; last.Photo == "" || !strings.Contains(last.Caption, "Removed by Bilibili") {
		t.Errorf("photo after recall: %+v", last)
	}
	// A recall of something never posted here is ignored.
	deliver(t, s, event(t, userSrc(), with(incoming(5, "12345"), func(m *bilibili.Message) { m.MsgKey = 557 })))
}

func TestImageFallbackUpload(t *testing.T) {
	e := newEnv(t)
	png := []byte("\x89PNG\r\n\x1a\n-fake-image-bytes")
	cdn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(png) }))
	defer cdn.Close()
	s := e.sink(forumChat, func(c *telegram.Config) { c.AllowPrivateImages = true }) // the CDN is on 127.0.0.1
	u := cdn.URL + "/bfs/im_new/pic.png"
	e.fake.FailURL(u)
	content := `{"url":"` + u + `","height":300,"width":300,"imageType":"png"}`
	deliver(t, s, event(t, userSrc(), incoming(2, content)))
	sent := e.fake.Sent(forumChat)
	if len(sent) != 1 || sent[0].Photo != "upload:pic.png" || string(sent[0].PhotoUpload) != string(png) {
		t.Fatalf("sent = %+v", sent)
	}
	// Neither fetchable by Telegram nor downloadable: the link is posted.
	bad := cdn.URL + "/gone.png"
	e.fake.FailURL(bad)
	cdn.Close()
	deliver(t, s, event(t, userSrc(), with(incoming(2, `{"url":"`+bad+`","height":3,"width":3}`), func(m *bilibili.Message) { m.MsgKey = 2 })))
	sent = e.fake.Sent(forumChat)
	if last := sent[len(sent)-1]; last.Method != "sendMessage" || !strings.Contains(last.Text, bad) {
		t.Errorf("fallback = %+v", last)
	}
}

// TestBilibiliImagesGoThroughTheGuard: a picture Telegram could not
// fetch is downloaded by the bridge only from a public address (its URL
// comes from outside); otherwise the message is still posted, with the
// link.
func TestBilibiliImagesGoThroughTheGuard(t *testing.T) {
	var hits atomic.Int32
	png := []byte("\x89PNG\r\n\x1a\n-fake-image-bytes")
	inside := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = w.Write(png)
	}))
	defer inside.Close()
	for i, tc := range []struct{ name, url string }{
		{"loopback", inside.URL + "/bfs/im_new/pic.png"},
		{"link-local (cloud metadata)", "http://169.254.169.254/latest/meta-data/pic.png"},
		{"private", "http://10.0.0.1/bfs/pic.png"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			s := e.sink(forumChat, nil)
			e.fake.FailURL(tc.url)
			content := `{"url":"` + tc.url + `","height":300,"width":300,"imageType":"png"}`
			deliver(t, s, event(t, userSrc(), with(incoming(2, content), func(m *bilibili.Message) { m.MsgKey = uint64(100 + i) })))
			if n := hits.Load(); n != 0 {
				t.Fatalf("the image server inside got %d requests", n)
			}
			sent := e.fake.Sent(forumChat)
			if len(sent) != 1 || sent[0].Method != "sendMessage" || !strings.Contains(sent[0].Text, tc.url) {
				t.Errorf("sent = %+v, want the message with its link", sent)
			}
		})
	}
}

func TestAccountStatusInGeneral(t *testing.T) {
	e := newEnv(t)
	s := e.sink(forumChat, nil)
	ev, err := events.NewAccountStatus(accountUID, events.StateLoginExpired, "The Bilibili login expired: run bilibridge login <again> & restart.", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	deliver(t, s, ev)
	deliver(t, s, ev)
	sent := e.fake.Sent(forumChat)
	if len(sent) != 1 || sent[0].ThreadID != 0 || !strings.Contains(sent[0].Text, "<b>Bilibili login expired</b>") ||
		!strings.Contains(sent[0].Text, "&lt;again&gt; &amp; restart") {
		t.Errorf("sent = %+v", sent)
	}
}

func TestTopicNameCarriesTheAccountWhenSeveral(t *testing.T) {
	e := newEnv(t)
	deliver(t, e.sink(forumChat, func(c *telegram.Config) { c.MultiAccount = true }), textEvent(t, 1, "first"))
	topics := e.fake.Topics(forumChat)
	if len(topics) != 1 || !strings.HasSuffix(topics[0].Name, "· 293793435 → 425503913") {
		t.Fatalf("topics = %+v", topics)
	}
}

package telegram_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/bilibridge/bilibridge/bilibili"
	"github.com/bilibridge/bilibridge/bus/bustest"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/poller"
	"github.com/bilibridge/bilibridge/send"
	"github.com/bilibridge/bilibridge/sinks/telegram"
)

// TestPerEventRecordsInRecordsBucket: what the sink writes about one event
// or one posted message (tg.msg, tg.merged, tg.conv, tg.echo, tg.file)
// goes to the records bucket, which expires with the events; bili_state
// keeps only what must last (topics, offsets), so it does not grow with
// every DM. Everything that reads the records still works: replies to a
// posted message in a flat chat, the photo proxy, recalls of a merged
// part, redelivery and echo suppression.
func TestPerEventRecordsInRecordsBucket(t *testing.T) {
	e := newEnv(t)
	if _, err := telegram.New(telegram.Config{Token: e.fake.Token, ChatID: flatChat, State: e.kv}); err == nil ||
		!strings.Contains(err.Error(), "records") {
		t.Errorf("New without Records: %v, want an error about the records bucket", err)
	}
	out := &countingOutbox{}
	var flat *telegram.Sink
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { flat.FileHandler().ServeHTTP(w, r) }))
	defer proxy.Close()
	flat = e.sink(flatChat, func(c *telegram.Config) {
		inCST(c)
		c.AllowedUsers, c.Outbox = []int64{alice.ID}, out
		c.FileProxyURL = proxy.URL + "/telegram/files"
	})

	// Flat chat: a message (tg.msg, tg.conv), redelivered; a merged
	// backlog (tg.merged).
	hello := textEvent(t, 1, "hello")
	deliver(t, flat, hello)
	deliver(t, flat, hello)
	posted := e.fake.Sent(flatChat)[0].ID
	deliverBatch(t, flat, timedText(t, 10, 0, "one"), timedText(t, 11, 1, "two"))
	if n := len(e.fake.Sent(flatChat)); n != 2 {
		t.Fatalf("%d messages, want 2 (hello once, one+two merged)", n)
	}

	// Replies to the posted message, routed through tg.conv: a text and a
	// photo (tg.file); offsets go to State.
	runSink(t, flat)
	replyID := e.fake.UserReply(flatChat, posted, alice, "a reply")
	jpeg := append([]byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00"), make([]byte, 64)...)
	e.fake.UserPhoto(flatChat, 0, posted, alice, jpeg, "")
	bustest.Eventually(t, "the text and photo replies", func() bool { return len(out.all()) >= 2 })
	waitConfirmed(t, e)
	reqs := out.all()
	if len(reqs) != 2 || reqs[0].Command.Text != "a reply" || reqs[0].TalkerID != talkerID ||
		reqs[1].Command.ImageURL == "" || reqs[1].TalkerID != talkerID {
		t.Fatalf("commands = %+v", reqs)
	}
	got, err := (&send.ImageFetcher{AllowPrivateNetworks: true}).Fetch(context.Background(), reqs[1].Command.ImageURL)
	if err != nil || string(got.Data) != string(jpeg) {
		t.Fatalf("the photo through the proxy: %v", err)
	}

	// Outcomes: the echo record (tg.echo) and a failure reply (tg.msg of
	// the result event).
	ref := strconv.FormatInt(flatChat, 10) + ":" + strconv.Itoa(replyID)
	echoKey := uint64(7400000000000000009)
	deliver(t, flat, sendResult(t, events.TypeSendSucceeded, events.SendResultData{AccountUID: accountUID, CommandID: "c1",
		Conversation: userConv, MsgKey: echoKey, Origin: &events.Origin{Platform: "telegram", User: "1111", Ref: ref}}))
	deliver(t, flat, sendResult(t, events.TypeSendFailed, events.SendResultData{AccountUID: accountUID, CommandID: "c2",
		Conversation: userConv, Error: "no", Origin: &events.Origin{Platform: "telegram", User: "1111", Ref: ref}}))

	// Forum chat: the topic mappings (tg.topic, tg.thread) last.
	deliver(t, e.sink(forumChat, nil), textEvent(t, 2, "in a topic"))

	const (
		msgPrefix    = "tg.msg."
		mergedPrefix = "tg.merged."
		convPrefix   = "tg.conv."
		echoPrefix   = "tg.echo."
		filePrefix   = "tg.file."
	)
	lasting := []string{"tg.topic.", "tg.thread.", "tg.offset.", "tg.updates.", "tg.repliesoff."}
	state, records := bustest.Keys(t, e.kv), bustest.Keys(t, e.records)
	for _, k := range state {
		if !slices.ContainsFunc(lasting, func(p string) bool { return strings.HasPrefix(k, p) }) {
			t.Errorf("bili_state holds %s: a per-event record, not a lasting mapping", k)
		}
	}
	for _, p := range []string{"tg.topic.", "tg.thread.", "tg.offset."} {
		if !bustest.HasPrefix(state, p) {
			t.Errorf("bili_state has no %s key: %q", p, state)
		}
	}
	for _, p := range []string{msgPrefix, mergedPrefix, convPrefix, echoPrefix, filePrefix} {
		if !bustest.HasPrefix(records, p) {
			t.Errorf("bili_records has no %s key: %q", p, records)
		}
	}
	for _, p := range lasting {
		if bustest.HasPrefix(records, p) {
			t.Errorf("bili_records holds a lasting %s key: %q", p, records)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// What reads the records still works: the echo is not posted (and its
	// record is used up), a part of the merged message is recalled, the
	// message is not posted again after a restart.
	before := len(e.fake.Sent(flatChat))
	deliver(t, flat, event(t, poller.Source{AccountUID: accountUID, Conversation: userConv},
		with(incoming(1, `{"content":"a reply"}`), func(m *bilibili.Message) { m.SenderUID, m.ReceiverID, m.MsgKey = accountUID, talkerID, echoKey })))
	if n := len(e.fake.Sent(flatChat)); n != before {
		t.Errorf("the echo of a reply sent from Telegram was posted (%d messages, want %d)", n, before)
	}
	if bustest.HasPrefix(bustest.Keys(t, e.records), echoPrefix) {
		t.Error("the echo record is still there after the echo")
	}
	deliver(t, flat, event(t, userSrc(), with(incoming(5, "11"), func(m *bilibili.Message) { m.MsgKey = 911 })))
	if m := e.fake.Sent(flatChat)[1]; m.Edits != 1 || !strings.Contains(m.Text, "<s>two</s>") || strings.Contains(m.Text, "<s>one</s>") {
		t.Errorf("after recalling a part: %q (%d edits)", m.Text, m.Edits)
	}
	deliver(t, e.sink(flatChat, nil), hello)
	if n := len(e.fake.Sent(flatChat)); n != before {
		t.Errorf("a redelivery after a restart posted again (%d messages, want %d)", n, before)
	}
}

package discord_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/bilibridge/bilibridge/bus/bustest"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/sinks/discord"
	"github.com/bilibridge/bilibridge/sinks/discord/discordtest"
)

// TestPerEventRecordsInRecordsBucket: what the sink writes about one event
// (dc.msg, dc.echo) goes to the records bucket, which expires with the
// events; bili_state keeps only what must last (threads, the webhook, the
// status post), so it does not grow with every DM. Everything that reads
// the records still works: redelivery, recall edits, echo suppression,
// the failure reply given once.
func TestPerEventRecordsInRecordsBucket(t *testing.T) {
	e := newEnv(t, discordtest.TypeForum)
	s := e.sink(t, func(c *discord.Config) {
		c.MarkRead = func(context.Context, int64, int, uint64, uint64) error { return nil } // seqno kept on dc.conv
	})

	hi := message(t, 1001, "hi team")
	deliver(t, s, hi)
	deliver(t, s, message(t, 1002, "oops"))
	thread := e.onlyThread(t).ID
	ok := e.fake.Dispatch(discordtest.UserMessage{ChannelID: thread, AuthorID: allowedUser, Content: "reply 1"})
	bad := e.fake.Dispatch(discordtest.UserMessage{ChannelID: thread, AuthorID: allowedUser, Content: "reply 2"})
	deliver(t, s, result(t, true, events.SendResultData{CommandID: "discord-" + ok, MsgKey: 5001,
		Origin: &events.Origin{Platform: "discord", User: allowedUser, Ref: thread + ":" + ok}}))
	failed := result(t, false, events.SendResultData{CommandID: "discord-" + bad, Error: "Bilibili says no.",
		Origin: &events.Origin{Platform: "discord", User: allowedUser, Ref: thread + ":" + bad}})
	deliver(t, s, failed)
	status, err := events.NewAccountStatus(uid, events.StateLoginExpired, "The Bilibili login expired.", t0)
	if err != nil {
		t.Fatal(err)
	}
	deliver(t, s, status)

	lasting := []string{"dc.thread.", "dc.conv.", "dc.webhook.", "dc.status."}
	state, records := bustest.Keys(t, e.kv), bustest.Keys(t, e.records)
	for _, k := range state {
		if !slices.ContainsFunc(lasting, func(p string) bool { return strings.HasPrefix(k, p) }) {
			t.Errorf("bili_state holds %s: a per-event record, not a lasting mapping", k)
		}
	}
	for _, p := range lasting {
		if !bustest.HasPrefix(state, p) {
			t.Errorf("bili_state has no %s key: %q", p, state)
		}
		if bustest.HasPrefix(records, p) {
			t.Errorf("bili_records holds a lasting %s key: %q", p, records)
		}
	}
	for _, p := range []string{"dc.msg.", "dc.echo."} {
		if !bustest.HasPrefix(records, p) {
			t.Errorf("bili_records has no %s key: %q", p, records)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// What reads the records still works, after a restart too.
	s2 := e.sink(t)
	deliver(t, s2, hi)
	deliver(t, s2, message(t, 5001, "reply 1", func(d *events.MessageData) { d.Message.Direction = events.DirectionOut; d.Message.SenderUID = uid }))
	if msgs := e.webhookMessages(thread); len(msgs) != 2 {
		t.Errorf("%d webhook messages after a redelivery and an echo, want 2", len(msgs))
	}
	deliver(t, s2, recall(t, "r-1", 1002))
	if msgs := e.webhookMessages(thread); len(msgs) != 2 || msgs[1].Edits != 1 || !strings.HasPrefix(msgs[1].Content, "🚫") {
		t.Errorf("after the recall: %+v", msgs)
	}
	deliver(t, s2, failed)
	n := 0
	for _, m := range e.fake.Messages(thread) {
		if m.ReplyTo == bad {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d failure replies, want 1", n)
	}
}

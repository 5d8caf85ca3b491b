package telegram_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bilibridge/bilibridge/bilibili"
	"github.com/bilibridge/bilibridge/bus/bustest"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/poller"
	"github.com/bilibridge/bilibridge/sinks"
	"github.com/bilibridge/bilibridge/sinks/telegram"
	"github.com/bilibridge/bilibridge/sinks/telegram/telegramtest"
)

var cst = time.FixedZone("CST", 8*3600)

func inCST(c *telegram.Config) { c.Location = cst }

// timedText is a text message of the user conversation at msgTime+minute.
func timedText(t *testing.T, key uint64, minute int, text string) events.Event {
	t.Helper()
	c, _ := json.Marshal(map[string]string{"content": text})
	return event(t, userSrc(), with(incoming(1, string(c)), func(m *bilibili.Message) {
		m.MsgKey, m.Timestamp = key, msgTime+int64(minute)*60
	}))
}

func deliverBatch(t *testing.T, s *telegram.Sink, evs ...events.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.DeliverBatch(ctx, evs); err != nil {
		t.Fatalf("DeliverBatch: %v", err)
	}
}

// backlog is a conversation's backlog of every kind that merges or not:
// texts (one with HTML to escape), a photo, the account's own message, an
// auto-reply and a tip, a share card, then texts again.
func backlog(t *testing.T) []events.Event {
	out := poller.Source{AccountUID: accountUID, Conversation: userConv, SenderName: "bilibridge-bot"}
	return []events.Event{
		timedText(t, 1, 0, "在吗？"),
		timedText(t, 2, 1, "<b>not bold</b> & 1 < 2"),
		event(t, out, with(incoming(1, `{"content":"在的"}`), func(m *bilibili.Message) {
			m.SenderUID, m.ReceiverID, m.MsgSource, m.MsgKey, m.Timestamp = accountUID, talkerID, 7, 3, msgTime+120
		})),
		event(t, userSrc(), with(incoming(1, `{"content":"感谢关注！"}`), func(m *bilibili.Message) { m.MsgSource, m.MsgKey, m.Timestamp = 8, 4, msgTime+150 })),
		event(t, userSrc(), with(incoming(2, fixtureContent(t, 1, 2)), func(m *bilibili.Message) { m.MsgKey = 5 })),
		timedText(t, 6, 3, "看看这个"),
		event(t, userSrc(), with(incoming(7, fixtureContent(t, 3, 7)), func(m *bilibili.Message) { m.MsgKey = 7 })),
		timedText(t, 8, 4, "第一行\n第二行"),
		event(t, userSrc(), with(incoming(18, fixtureContent(t, 11, 18)), func(m *bilibili.Message) { m.MsgSource, m.MsgKey, m.Timestamp = 18, 9, msgTime+300 })),
	}
}

// TestGoldenBatch: a backlog becomes merged messages where texts follow
// each other, each part with its time and header; photos and cards go on
// their own, in order. In a flat chat the talker is named once on top.
func TestGoldenBatch(t *testing.T) {
	for _, tc := range []struct {
		name string
		chat int64
	}{{"batch_merged", forumChat}, {"batch_merged_flat", flatChat}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			s := e.sink(tc.chat, inCST)
			deliverBatch(t, s, backlog(t)...)
			var b strings.Builder
			for _, m := range e.fake.Sent(tc.chat) {
				writeMessage(&b, m)
			}
			compareGolden(t, tc.name, b.String())
			// 9 events, 5 Telegram messages: [1-4] photo [6] card [8-9].
			if n := len(e.fake.Sent(tc.chat)); n != 5 {
				t.Errorf("%d messages, want 5", n)
			}
		})
	}
}

func TestBatchRedeliveryPostsNothingTwice(t *testing.T) {
	e := newEnv(t)
	s := e.sink(forumChat, inCST)
	evs := backlog(t)
	// The second text message (the lone [6], after the merged [1-4] and
	// the photo) fails with a 429.
	e.fake.FailAfter("sendMessage", 1, telegramtest.TooManyRequests(3))
	err := s.DeliverBatch(context.Background(), evs)
	if retry, after, _ := sinks.Verdict(err); !retry || after != 3*time.Second {
		t.Fatalf("DeliverBatch: %v", err)
	}
	before := len(e.fake.Sent(forumChat))
	deliverBatch(t, s, evs...)
	deliverBatch(t, s, evs...)
	deliverBatch(t, e.sink(forumChat, inCST), evs...) // after a restart
	for _, ev := range evs {
		deliver(t, s, ev) // one at a time, too
	}
	sent := e.fake.Sent(forumChat)
	if len(sent) != 5 || before >= 5 {
		t.Fatalf("%d messages (%d before the retry), want 5", len(sent), before)
	}
	if !strings.Contains(sent[0].Text, "在吗？") || !strings.Contains(sent[4].Text, "第二行") {
		t.Errorf("out of order: %q … %q", sent[0].Text, sent[4].Text)
	}
}

func TestBatchSplitsAtTheLimitInOrder(t *testing.T) {
	e := newEnv(t)
	s := e.sink(flatChat, inCST)
	var evs []events.Event
	for i := range 30 {
		evs = append(evs, timedText(t, uint64(100+i), i, fmt.Sprintf("#%02d %s", i, strings.Repeat("长<&>", 100))))
	}
	deliverBatch(t, s, evs...)
	sent := e.fake.Sent(flatChat)
	// 30 parts of ~420 characters: 9 fit in 4096 with the recall room.
	if len(sent) != 4 {
		t.Errorf("%d messages, want 4", len(sent))
	}
	next := 0
	for _, m := range sent {
		if !strings.HasPrefix(m.Text, "💬 <b>社会易姐QwQ</b> · 293793435\n\n") {
			t.Errorf("message without the talker on top: %.60q", m.Text)
		}
		for _, p := range strings.Split(m.Text, "\n\n")[1:] {
			if want := fmt.Sprintf("#%02d ", next); !strings.Contains(p, want) {
				t.Fatalf("part %q, want %s next", p[:min(len(p), 60)], want)
			}
			next++
		}
	}
	if next != 30 {
		t.Errorf("%d parts, want 30", next)
	}
	// A reply to a merged message answers the talker (flat chat).
	out := &countingOutbox{}
	s2 := e.sink(flatChat, func(c *telegram.Config) { c.Outbox, c.AllowedUsers = out, []int64{alice.ID} })
	runSink(t, s2)
	e.fake.UserReply(flatChat, sent[2].ID, alice, "收到")
	waitFor(t, "the reply", func() bool { return len(out.all()) == 1 })
	if r := out.all()[0]; r.TalkerID != talkerID || r.Command.Text != "收到" {
		t.Errorf("reply = %+v", r)
	}
}

func TestBatchRecallEditsOnlyItsPart(t *testing.T) {
	e := newEnv(t)
	s := e.sink(forumChat, inCST)
	deliverBatch(t, s, timedText(t, 1, 0, "one"), timedText(t, 2, 1, "two <oops>"), timedText(t, 3, 2, "three"))
	recall := func(key uint64, system bool) events.Event {
		return event(t, userSrc(), with(incoming(5, fmt.Sprint(key)), func(m *bilibili.Message) { m.MsgKey, m.SysCancel = 900+key, system }))
	}
	deliver(t, s, recall(2, false))
	deliver(t, s, recall(2, false)) // redelivered: not modified is fine
	deliver(t, s, recall(3, true))
	sent := e.fake.Sent(forumChat)
	if len(sent) != 1 {
		t.Fatalf("%d messages", len(sent))
	}
	want := "<i>Mar 2, 21:20</i>\none\n\n" +
		"<i>Mar 2, 21:21</i>\n🚫 <i>Recalled by the sender</i>\n<s>two &lt;oops&gt;</s>\n\n" +
		"<i>Mar 2, 21:22</i>\n🚫 <i>Removed by Bilibili</i>\n<s>three</s>"
	if sent[0].Text != want || sent[0].Edits != 2 {
		t.Errorf("after the recalls (%d edits):\n%s\nwant:\n%s", sent[0].Edits, sent[0].Text, want)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stuckKV is the sink's real KV bucket in a process that hangs right
// after one write (stuckAfter says which): the write is done, the
// process is not heard of again until release is closed, and then the
// write fails. It stands for a crash between two KV writes.
type stuckKV struct {
	jetstream.KeyValue
	stuckAfter func(key string) bool
	stuck      chan struct{} // closed once the process hangs
	release    chan struct{}
	once       sync.Once
}

func newStuckKV(kv jetstream.KeyValue, stuckAfter func(key string) bool) *stuckKV {
	return &stuckKV{KeyValue: kv, stuckAfter: stuckAfter, stuck: make(chan struct{}), release: make(chan struct{})}
}

func (k *stuckKV) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	rev, err := k.KeyValue.Put(ctx, key, value)
	if err != nil || !k.stuckAfter(key) {
		return rev, err
	}
	hang := false
	k.once.Do(func() { hang = true })
	if !hang {
		return rev, err
	}
	close(k.stuck)
	<-k.release
	return 0, errors.New("the process crashed")
}

// TestBatchResumesAfterACrash: a batch redelivered in another process
// while the first one is stuck (a crash) posts nothing twice: not the
// merged message when the first process hung right after the message's
// first KV write, and not the parts of a long text it had posted.
func TestBatchResumesAfterACrash(t *testing.T) {
	var b strings.Builder
	for i := range 1300 {
		fmt.Fprintf(&b, "%04d长<&> ", i) // three messages
	}
	long := timedText(t, 13, 3, b.String())
	short := []events.Event{timedText(t, 10, 0, "one"), timedText(t, 11, 1, "two"), timedText(t, 12, 2, "three")}
	for _, tc := range []struct {
		name string
		evs  []events.Event
		// crash makes the first delivery hang: it returns the stuck KV, or
		// nil when the fake Telegram holds a call.
		crash func(e *env) (*stuckKV, chan struct{})
		want  int // messages in the chat
		// recall: the merged message's parts were recorded (the crash came
		// later), so a recall strikes its part through.
		recall bool
	}{
		{
			name: "right after the first record of a merged message",
			evs:  short,
			crash: func(e *env) (*stuckKV, chan struct{}) {
				return newStuckKV(e.records, func(key string) bool {
					return strings.HasPrefix(key, "tg.msg.") && e.fake.CallCount("sendMessage") > 0
				}), nil
			},
			want: 1,
		},
		{
			name: "while posting the 3rd part of a long text",
			evs:  append(append([]events.Event(nil), short[:2]...), long),
			crash: func(e *env) (*stuckKV, chan struct{}) {
				hold := make(chan struct{})
				// The merged [one, two], the long text's 1st and 2nd parts, then its 3rd.
				e.fake.FailAfter("sendMessage", 3, telegramtest.Fault{Hold: hold, Drop: true})
				return nil, hold
			},
			want:   4,
			recall: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			kv, hold := tc.crash(e)
			stuckCond := func() bool { return e.fake.CallCount("sendMessage") == 4 }
			release := func() { close(hold) }
			mod := inCST
			if kv != nil {
				stuckCond = func() bool {
					select {
					case <-kv.stuck:
						return true
					default:
						return false
					}
				}
				release = func() { close(kv.release) }
				mod = func(c *telegram.Config) { inCST(c); c.Records = kv }
			}
			released := false
			t.Cleanup(func() {
				if !released {
					release()
				}
			})
			s := e.sink(forumChat, mod)
			first := make(chan error, 1)
			go func() { first <- s.DeliverBatch(context.Background(), tc.evs) }()
			bustest.Eventually(t, "the first delivery stuck", stuckCond)
			deliverBatch(t, e.sink(forumChat, inCST), tc.evs...) // the redelivery, in another process
			released = true
			release()
			if err := <-first; err == nil {
				t.Error("the stuck delivery reported success")
			}
			deliverBatch(t, e.sink(forumChat, inCST), tc.evs...) // after a restart: nothing new
			for _, ev := range tc.evs {
				deliver(t, e.sink(forumChat, inCST), ev) // one at a time, too
			}

			sent := e.fake.Sent(forumChat)
			seen := map[string]bool{}
			for _, m := range sent {
				if seen[m.Text] {
					t.Errorf("posted twice: %.50q", m.Text)
				}
				seen[m.Text] = true
			}
			if len(sent) != tc.want {
				t.Fatalf("%d messages, want %d", len(sent), tc.want)
			}
			if tc.recall {
				deliver(t, e.sink(forumChat, inCST), event(t, userSrc(), with(incoming(5, "11"), func(m *bilibili.Message) { m.MsgKey = 911 })))
				if m := e.fake.Sent(forumChat)[0]; m.Edits != 1 || !strings.Contains(m.Text, "<s>two</s>") {
					t.Errorf("after recalling a part: %q (%d edits)", m.Text, m.Edits)
				}
			}
		})
	}
}

// TestBatchFailedMergeIsNotTakenAsPosted: the parts of a merged message
// whose sending failed are posted later, whichever way they come again.
func TestBatchFailedMergeIsNotTakenAsPosted(t *testing.T) {
	e := newEnv(t)
	s := e.sink(forumChat, inCST)
	evs := []events.Event{timedText(t, 10, 0, "one"), timedText(t, 11, 1, "two"), timedText(t, 12, 2, "three")}
	e.fake.FailNext("sendMessage", 1, telegramtest.ServerError())
	if err := s.DeliverBatch(context.Background(), evs); err == nil {
		t.Fatal("DeliverBatch succeeded although the merged message failed")
	}
	deliver(t, s, evs[0])          // the first alone,
	deliverBatch(t, s, evs[1:]...) // the others merged without it
	deliverBatch(t, s, evs...)     // and all again: nothing new
	sent := e.fake.Sent(forumChat)
	if len(sent) != 2 || !strings.Contains(sent[0].Text, "one") || strings.Contains(sent[0].Text, "two") ||
		!strings.Contains(sent[1].Text, "two") || !strings.Contains(sent[1].Text, "three") {
		var texts []string
		for _, m := range sent {
			texts = append(texts, m.Text)
		}
		t.Fatalf("messages = %q, want [one] and [two, three]", texts)
	}
}

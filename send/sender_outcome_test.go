package send_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/bilibridge/bilibridge/api"
	"github.com/bilibridge/bilibridge/bilibili/bilitest"
	"github.com/bilibridge/bilibridge/bus/bustest"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/send"
)

// mine counts the account's messages in the conversation with talker.
func (r *sendRig) mine(sessionType int, talker uint64) int {
	n := 0
	for _, m := range r.fake.Messages(sndUID, sessionType, talker) {
		if m.SenderUID == uint64(sndUID) {
			n++
		}
	}
	return n
}

// A send_msg that answers a server error, or a code nobody has seen, may
// have gone out (Bilibili's busy backend answers -500 after doing the
// work): the conversation is looked at before anything is sent again.
func TestSenderUnknownOutcomeIsLookedForFirst(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fault   bilitest.Fault
		applied bool
	}{
		{"-500 after sending", bilitest.Fault{Code: -500, Apply: true}, true},
		{"-503 after sending", bilitest.Fault{Code: -503, Apply: true}, true},
		{"-504 after sending", bilitest.Fault{Code: -504, Apply: true}, true},
		{"unknown code after sending", bilitest.Fault{Code: -12345, Apply: true}, true},
		{"-500 without sending", bilitest.Fault{Code: -500}, false},
		{"unknown code without sending", bilitest.Fault{Code: 4242}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newSendRig(t, rigOptions{})
			r.fake.Fail("send_msg", 1, tc.fault)
			r.start(r.senderConfig())
			r.command(1, uint64(sndFriend), events.SendCommand{CommandID: "busy-1", Text: "did it go out?"})
			res := r.result("busy-1")
			if n := r.mine(1, uint64(sndFriend)); n != 1 {
				t.Fatalf("%d messages from the account in the conversation, want exactly 1", n)
			}
			wantSucceeded(t, res, r.fake.Sent(sndUID))
			wantCalls := 2
			if tc.applied {
				wantCalls = 1
			}
			if n := r.fake.Calls("send_msg"); n != wantCalls {
				t.Errorf("send_msg called %d times, want %d", n, wantCalls)
			}
			if r.fake.Calls("fetch_session_msgs") == 0 {
				t.Error("the conversation was not looked at before deciding")
			}
		})
	}
}

// In a busy fan group the sent message is soon far from the newest page:
// the look-up pages back to when the send began.
func TestSenderLookBackReachesTheSendTime(t *testing.T) {
	r := newSendRig(t, rigOptions{clientTimeout: 500 * time.Millisecond})
	// The send happens at once; its answer comes after the client gave up.
	r.fake.Fail("send_msg", 1, bilitest.Fault{Delay: 2 * time.Second, Apply: true})
	r.start(r.senderConfig())
	r.command(2, sndGroup, events.SendCommand{CommandID: "group-1", Text: "welcome, everyone"})
	bustest.Eventually(t, "the send stored", func() bool { return len(r.fake.Sent(sndUID)) == 1 })
	// Meanwhile the group talks: 120 messages from members.
	for i := range 120 {
		r.fake.Deliver(sndUID, bilitest.Message{SessionType: 2, TalkerID: sndGroup, SenderUID: sndFriend, MsgType: 1,
			Content: bilitest.TextContent(fmt.Sprint("chatter ", i))})
	}
	res := r.result("group-1")
	if n := r.mine(2, sndGroup); n != 1 {
		t.Fatalf("%d messages from the account in the group, want exactly 1", n)
	}
	wantSucceeded(t, res, r.fake.Sent(sndUID))
}

// Which message belongs to which command is kept in KV, not in memory:
// after a restart an identical message sent a moment earlier for another
// command is still not taken for this one.
func TestSenderLookupSurvivesARestart(t *testing.T) {
	r := newSendRig(t, rigOptions{clientTimeout: 500 * time.Millisecond})
	stop := r.start(r.senderConfig())
	r.command(1, uint64(sndFriend), events.SendCommand{CommandID: "first", Text: "ok"})
	r.result("first")
	stop()
	// A new process. The next send of the same text times out without
	// happening.
	r.fake.Fail("send_msg", 1, bilitest.Fault{Delay: 2 * time.Second})
	r.start(r.senderConfig())
	r.command(1, uint64(sndFriend), events.SendCommand{CommandID: "second", Text: "ok"})
	res := r.result("second")
	sent := r.fake.Sent(sndUID)
	if len(sent) != 2 {
		t.Fatalf("%d messages sent, want 2 (one per command): the earlier one was taken for the second", len(sent))
	}
	wantSucceeded(t, res, sent[1:])
}

// An idempotency key is scoped by account: the outbox is shared, and the
// same key used for two accounts is two commands, each sent.
func TestIdempotencyKeysAreScopedByAccount(t *testing.T) {
	r := newSendRig(t, rigOptions{})
	const second int64 = 3546
	r.fake.AddAccount(bilitest.Account{UID: second, Name: "second", SESSDATA: "sess2", BiliJct: "jct2"})
	outbox := &send.Outbox{NC: r.conn.NC, JS: r.conn.JS, Records: r.store.Records, Subjects: r.subjects, Accounts: []int64{sndUID, second}}
	srv := httptest.NewServer(api.New(api.Config{Token: apiToken, Outbox: outbox}))
	t.Cleanup(srv.Close)
	send := func(account int64, text string) int {
		body := fmt.Sprintf(`{"session_type":1,"talker_id":"%d","text":%q,"idempotency_key":"order-42","account_uid":"%d"}`, sndFriend, text, account)
		return post(t, srv, "", "Bearer "+apiToken, body).status
	}
	if code := send(sndUID, "thanks"); code != http.StatusAccepted {
		t.Fatalf("first account: %d", code)
	}
	if code := send(second, "thanks"); code != http.StatusAccepted {
		t.Fatalf("second account, same key: %d, want 202", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, uid := range []int64{sndUID, second} {
		if _, err := r.store.Outbox.GetLastMsgForSubject(ctx, r.subjects.Send(uid, 1, uint64(sndFriend))); err != nil {
			t.Errorf("account %d: the command was not queued (%v): the key collided", uid, err)
		}
	}
	// The same key again for the same account and message is the same
	// command; for another message it is refused.
	if code := send(sndUID, "thanks"); code != http.StatusAccepted {
		t.Errorf("repeat: %d, want 202", code)
	}
	if code := send(sndUID, "something else"); code != http.StatusConflict {
		t.Errorf("the key reused for another message: %d, want 409", code)
	}
	info, err := r.store.Outbox.Info(ctx)
	if err != nil || info.State.Msgs != 2 {
		t.Errorf("outbox holds %d commands (%v), want 2", info.State.Msgs, err)
	}
}

// A command queued straight onto NATS under a key, without a record, is
// not the request an API caller makes with the same key: a conflict, not
// a silent 202 for a message that is not theirs.
func TestDuplicateWithoutARecordIsAConflict(t *testing.T) {
	r := newSendRig(t, rigOptions{})
	r.raw(r.subjects.Send(sndUID, 1, uint64(sndFriend)), send.OutboxMsgID(sndUID, "k-1"), []byte(`{"command_id":"k-1","text":"from elsewhere"}`))
	ob := &send.Outbox{NC: r.conn.NC, JS: r.conn.JS, Records: r.store.Records, Subjects: r.subjects, Accounts: []int64{sndUID}}
	_, err := ob.Submit(context.Background(), send.Request{SessionType: 1, TalkerID: uint64(sndFriend),
		Command: events.SendCommand{CommandID: "k-1", Text: "mine"}}, 0)
	var ce *send.ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("Submit: %v, want a conflict", err)
	}
}

// A publish whose ack was lost is retried, and the retry is a duplicate
// of the first attempt, which did land: that is this command, accepted,
// not a conflict (the API answered 409 while the DM went out).
func TestDuplicateOfTheSameCommandIsNoConflict(t *testing.T) {
	r := newSendRig(t, rigOptions{})
	cmd := events.SendCommand{CommandID: "k-2", Text: "mine"}
	data, err := json.Marshal(cmd)
	if err != nil {
		t.Fatal(err)
	}
	// The first attempt, as it landed before its ack was lost.
	r.raw(r.subjects.Send(sndUID, 1, uint64(sndFriend)), send.OutboxMsgID(sndUID, "k-2"), data)
	ob := &send.Outbox{NC: r.conn.NC, JS: r.conn.JS, Records: r.store.Records, Subjects: r.subjects, Accounts: []int64{sndUID}}
	out, err := ob.Submit(context.Background(), send.Request{SessionType: 1, TalkerID: uint64(sndFriend), Command: cmd}, 0)
	if err != nil || out.CommandID != "k-2" {
		t.Fatalf("Submit of a command already queued as it is: %+v %v, want it accepted", out, err)
	}
}

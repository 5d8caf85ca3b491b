package poller_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/bilibridge/bilibridge/bilibili"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/poller"
)

// messageEvent converts a text message of the standard test conversation.
func messageEvent(t *testing.T, m bilibili.Message) events.Event {
	t.Helper()
	ev, err := poller.MessageEvent(userSrc(), &m)
	if err != nil {
		t.Fatalf("FromMessage: %v", err)
	}
	return ev
}

// TestIDsAbove2p53 checks on the wire form that every id is a decimal
// string holding the exact value, which a float64 could not.
func TestIDsAbove2p53(t *testing.T) {
	if uint64(float64(msgKey)) == msgKey {
		t.Fatal("test msg_key is exactly representable as a float64; pick one that is not")
	}
	m := incoming(1, `{"content":"hi"}`)
	m.MsgSeqno = 1236306587877408 // ~1.2e15
	raw, err := messageEvent(t, m).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	obj := decodeNumbers(t, raw)
	if got := obj["id"]; got != "425503913-"+msgKeyStr {
		t.Errorf("id = %#v", got)
	}
	data := obj["data"].(map[string]any)
	msg := data["message"].(map[string]any)
	conv := data["conversation"].(map[string]any)
	for _, c := range []struct {
		obj  map[string]any
		key  string
		want string
	}{
		{msg, "msg_key", msgKeyStr},
		{msg, "seqno", "1236306587877408"},
		{msg, "sender_uid", "293793435"},
		{data, "account_uid", "425503913"},
		{conv, "talker_id", "293793435"},
	} {
		if got, ok := c.obj[c.key].(string); !ok || got != c.want {
			t.Errorf("%s = %#v (%T), want the string %q", c.key, c.obj[c.key], c.obj[c.key], c.want)
		}
	}
	// The raw bytes hold the quoted form, so even a consumer that parses
	// numbers as floats gets the exact key.
	if !bytes.Contains(raw, []byte(`"msg_key":"`+msgKeyStr+`"`)) {
		t.Errorf("wire form lacks the quoted msg_key: %s", raw)
	}

	// The same for a recall, whose interesting id is the recalled key.
	rec := incoming(5, "18446744073709551615")
	ev, err := poller.MessageEvent(userSrc(), &rec)
	if err != nil {
		t.Fatal(err)
	}
	raw, err = ev.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	rdata := decodeNumbers(t, raw)["data"].(map[string]any)
	if got := rdata["recalled_msg_key"]; got != "18446744073709551615" {
		t.Errorf("recalled_msg_key = %#v, want the string of 2^64-1", got)
	}
}

// TestDecodeDataKeepsIDs decodes the data back into the package's types and
// compares every id with the Bilibili message it came from.
func TestDecodeDataKeepsIDs(t *testing.T) {
	tests := []struct {
		name   string
		uid    int64
		talker uint64
		key    uint64
		seqno  uint64
		sender int64
	}{
		{"typical", accountUID, talkerID, msgKey, seqno, int64(talkerID)},
		{"max uint64", accountUID, 1<<64 - 1, 1<<64 - 1, 1<<64 - 1, 1<<63 - 1},
		{"2^53+1", 1<<53 + 1, 1<<53 + 1, 1<<53 + 1, 1<<53 + 1, 1<<53 + 1},
		{"zero sender (fan-group system)", accountUID, groupID, msgKey, 1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conv := userConv
			conv.TalkerID = tc.talker
			m := incoming(1, `{"content":"hi"}`)
			m.MsgKey, m.MsgSeqno, m.SenderUID = tc.key, tc.seqno, tc.sender
			ev, err := poller.MessageEvent(poller.Source{AccountUID: tc.uid, Conversation: conv}, &m)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := ev.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			parsed, err := events.Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			var d events.MessageData
			if err := parsed.DecodeData(&d); err != nil {
				t.Fatal(err)
			}
			if d.AccountUID != tc.uid || d.Conversation.TalkerID != tc.talker ||
				d.Message.MsgKey != tc.key || d.Message.Seqno != tc.seqno || d.Message.SenderUID != tc.sender {
				t.Errorf("decoded ids %d/%d/%d/%d/%d, want %d/%d/%d/%d/%d",
					d.AccountUID, d.Conversation.TalkerID, d.Message.MsgKey, d.Message.Seqno, d.Message.SenderUID,
					tc.uid, tc.talker, tc.key, tc.seqno, tc.sender)
			}
			if want := events.MessageID(tc.uid, tc.key); parsed.ID != want {
				t.Errorf("id = %q, want %q", parsed.ID, want)
			}
		})
	}
}

func TestDecodeDataErrors(t *testing.T) {
	ev := messageEvent(t, incoming(1, `{"content":"hi"}`))
	var rd events.RecallData
	// A message's data has no recalled_msg_key: decoding succeeds with zero.
	if err := ev.DecodeData(&rd); err != nil || rd.RecalledMsgKey != 0 {
		t.Errorf("DecodeData(message into RecallData) = %v, key %d", err, rd.RecalledMsgKey)
	}
	for _, data := range []string{`{"account_uid":425503913}`, `{"message":{"msg_key":"x"}}`, `[]`, `"str"`} {
		bad := ev
		bad.Data = json.RawMessage(data)
		var d events.MessageData
		err := bad.DecodeData(&d)
		if err == nil {
			t.Errorf("DecodeData(%s) = nil, want an error (ids must be strings)", data)
			continue
		}
		if !strings.Contains(err.Error(), events.TypeMessage) {
			t.Errorf("DecodeData error %q does not name the event type", err)
		}
	}
}

// TestParseRoundTrip: Parse(Marshal(e)) gives back e for every golden case.
func TestParseRoundTrip(t *testing.T) {
	for _, tc := range goldenCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.msg
			ev, _ := poller.MessageEvent(tc.src, &m)
			raw, err := ev.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			got, err := events.Parse(raw)
			if err != nil {
				t.Fatalf("Parse(Marshal(e)): %v", err)
			}
			if got.SpecVersion != ev.SpecVersion || got.ID != ev.ID || got.Source != ev.Source ||
				got.Type != ev.Type || got.Subject != ev.Subject || got.DataContentType != ev.DataContentType ||
				!got.Time.Equal(ev.Time) || !bytes.Equal(got.Data, ev.Data) {
				t.Errorf("round trip changed the event:\n got %+v\nwant %+v", got, ev)
			}
			again, err := got.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, raw) {
				t.Errorf("Marshal(Parse(b)) != b:\n%s\n%s", again, raw)
			}
		})
	}
}

func TestDeterministicIDs(t *testing.T) {
	if got := events.MessageID(accountUID, msgKey); got != "425503913-7354295169819585966" {
		t.Errorf("MessageID = %q", got)
	}
	if got := events.SendResultID(accountUID, "cmd-1"); got != "425503913-sent-cmd-1" {
		t.Errorf("SendResultID = %q", got)
	}
	if got := events.SourceURI(accountUID); got != "bilibili://425503913" {
		t.Errorf("SourceURI = %q", got)
	}
	if got := events.ConversationSubject(2, 1<<64-1); got != "2/18446744073709551615" {
		t.Errorf("ConversationSubject = %q", got)
	}
	// The same message converted twice gives byte-identical events, so the
	// JetStream Nats-Msg-Id and webhook-id de-duplicate redeliveries.
	m := incoming(7, fixtureContent(t, 3, 7))
	a, errA := poller.MessageEvent(userSrc(), &m)
	b, errB := poller.MessageEvent(userSrc(), &m)
	ra, _ := a.Marshal()
	rb, _ := b.Marshal()
	if errA != nil || errB != nil || !bytes.Equal(ra, rb) {
		t.Errorf("FromMessage is not deterministic:\n%s\n%s", ra, rb)
	}
}

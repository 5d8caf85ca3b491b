package poller_test

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bilibridge/bilibridge/bilibili"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/poller"
)

// linePrefix is the time of day Line starts with; its value depends on the
// local zone, so only its shape is checked.
var linePrefix = regexp.MustCompile(`^\d\d:\d\d:\d\d `)

func TestLine(t *testing.T) {
	at := time.Unix(msgTime, 0)
	newEvent := func(t *testing.T, typ, subject string, data any) events.Event {
		t.Helper()
		ev, err := events.New(accountUID, typ, "425503913-test", subject, at, data)
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	fromMessage := func(t *testing.T, src poller.Source, m bilibili.Message) events.Event {
		t.Helper()
		ev, err := poller.MessageEvent(src, &m)
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	out := incoming(1, `{"content":"收到，谢谢！"}`)
	out.SenderUID = accountUID
	noName := userConv
	noName.Name = ""
	long := incoming(1, `{"content":"`+strings.Repeat("长", 300)+`"}`)
	deadInner := fromMessage(t, userSrc(), incoming(1, `{"content":"hi"}`))

	tests := []struct {
		name  string
		ev    func(t *testing.T) events.Event
		want  []string
		avoid []string
	}{
		{
			name: "message in",
			ev:   func(t *testing.T) events.Event { return fromMessage(t, userSrc(), incoming(1, `{"content":"Hello"}`)) },
			want: []string{"← [社会易姐QwQ · 293793435] 社会易姐QwQ: Hello"},
		},
		{
			name: "message out",
			ev: func(t *testing.T) events.Event {
				return fromMessage(t, poller.Source{AccountUID: accountUID, Conversation: userConv, SenderName: accountName}, out)
			},
			want:  []string{"→ [社会易姐QwQ · 293793435] bilibridge-bot: 收到，谢谢！"},
			avoid: []string{"←"},
		},
		{
			name: "message without names",
			ev: func(t *testing.T) events.Event {
				return fromMessage(t, poller.Source{AccountUID: accountUID, Conversation: noName}, incoming(2, fixtureContent(t, 1, 2)))
			},
			want: []string{"← [1/293793435] 293793435: [image]"},
		},
		{
			name: "multi-line text folded",
			ev: func(t *testing.T) events.Event {
				return fromMessage(t, userSrc(), incoming(1, fixtureContent(t, 19, 1)))
			},
			want: []string{": up主你好， 催更[doge]"},
		},
		{
			name: "long text cut",
			ev:   func(t *testing.T) events.Event { return fromMessage(t, userSrc(), long) },
			want: []string{": " + strings.Repeat("长", 199) + "…"},
			// 200 runes at most, ellipsis included.
			avoid: []string{strings.Repeat("长", 200)},
		},
		{
			name: "recall",
			ev: func(t *testing.T) events.Event {
				return fromMessage(t, userSrc(), incoming(5, fixtureContent(t, 2, 5)))
			},
			want: []string{"⟲ [社会易姐QwQ · 293793435] recalled message 7345551441311046575"},
		},
		{
			name: "send succeeded",
			ev: func(t *testing.T) events.Event {
				return newEvent(t, events.TypeSendSucceeded, userConv.Subject(), events.SendResultData{
					AccountUID: accountUID, CommandID: "cmd-1", Conversation: userConv, MsgKey: msgKey,
					Origin: &events.Origin{Platform: "telegram", User: "alice"},
				})
			},
			want: []string{"✓ [社会易姐QwQ · 293793435] send cmd-1 delivered (msg_key 7354295169819585966)"},
		},
		{
			name: "send failed",
			ev: func(t *testing.T) events.Event {
				return newEvent(t, events.TypeSendFailed, userConv.Subject(), events.SendResultData{
					AccountUID: accountUID, CommandID: "cmd-2", Conversation: userConv,
					ErrorCode: 21046, Error: "发送消息过于频繁",
				})
			},
			want:  []string{"✗ [社会易姐QwQ · 293793435] send cmd-2 failed: 发送消息过于频繁"},
			avoid: []string{"delivered"},
		},
		{
			name: "account status",
			ev: func(t *testing.T) events.Event {
				return newEvent(t, events.TypeAccountStatus, "", events.AccountStatusData{
					AccountUID: accountUID, State: events.StateLoginExpired, Message: "run bilibridge login",
				})
			},
			want: []string{"! account 425503913 login_expired: run bilibridge login"},
		},
		{
			name: "dead letter",
			ev: func(t *testing.T) events.Event {
				return newEvent(t, events.TypeDeadLetter, "", events.DeadLetterData{
					Sink: "webhook", Reason: "HTTP 410 Gone", Attempts: 5, Event: deadInner,
				})
			},
			want: []string{"☠ webhook gave up on 425503913-7354295169819585966: HTTP 410 Gone"},
		},
		{
			name: "unknown type",
			ev: func(t *testing.T) events.Event {
				return newEvent(t, "com.example.other", "1/293793435", map[string]string{"x": "y"})
			},
			want: []string{"com.example.other 1/293793435 425503913-test"},
		},
		{
			name: "undecodable data falls back to the generic line",
			ev: func(t *testing.T) events.Event {
				ev := newEvent(t, events.TypeMessage, "1/293793435", nil)
				ev.Data = json.RawMessage(`{"message":{"msg_key":7354295169819585966}}`)
				return ev
			},
			want: []string{"com.bilibili.dm.message 1/293793435 425503913-test"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			line := events.Line(tc.ev(t))
			if !linePrefix.MatchString(line) {
				t.Errorf("line %q does not start with the time of day", line)
			}
			if strings.ContainsAny(line, "\r\n") {
				t.Errorf("line %q spans several lines", line)
			}
			for _, w := range tc.want {
				if !strings.Contains(line, w) {
					t.Errorf("line %q\nlacks     %q", line, w)
				}
			}
			for _, a := range tc.avoid {
				if strings.Contains(line, a) {
					t.Errorf("line %q contains %q", line, a)
				}
			}
		})
	}
}

// TestLineTimeIsLocal: the time of day is the event time in the local zone.
func TestLineTimeIsLocal(t *testing.T) {
	ev := messageEvent(t, incoming(1, `{"content":"hi"}`))
	want := time.Unix(msgTime, 0).Local().Format("15:04:05") + " "
	if line := events.Line(ev); !strings.HasPrefix(line, want) {
		t.Errorf("line %q does not start with %q", line, want)
	}
}

// TestLineControlCharacters: DM text is written by strangers and Line goes
// to a terminal (bilibridge tail), so escape sequences must not pass through.
func TestLineControlCharacters(t *testing.T) {
	ev := messageEvent(t, incoming(1, `{"content":"hi\u001b[2J\u001b]0;pwned\u0007 there\u0000"}`))
	line := events.Line(ev)
	if strings.ContainsAny(line, "\x1b\x07\x00") {
		t.Errorf("Line passes control characters of the message text to the terminal: %q", line)
	}
}

package telegram_test

import (
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bilibridge/bilibridge/bilibili"
	"github.com/bilibridge/bilibridge/golden"
	"github.com/bilibridge/bilibridge/poller"
	"github.com/bilibridge/bilibridge/sinks/telegram/telegramtest"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*.txt from the current output")

type goldenCase struct {
	name string
	src  poller.Source
	msg  bilibili.Message
	flat bool
}

func goldenCases(t *testing.T) []goldenCase {
	group := func(msgType int, content string) bilibili.Message {
		return with(incoming(msgType, content), func(m *bilibili.Message) {
			m.SenderUID, m.ReceiverType, m.ReceiverID, m.MsgSource = 0, bilibili.SessionGroup, groupID, 13
		})
	}
	groupSrc := poller.Source{AccountUID: accountUID, Conversation: groupConv, SenderName: groupConv.Name}
	memberSrc := poller.Source{AccountUID: accountUID, Conversation: groupConv, SenderName: "罗板栗 <fan> & co"}
	systemSrc := poller.Source{AccountUID: accountUID, Conversation: systemConv, SenderName: systemConv.Name}
	outSrc := poller.Source{AccountUID: accountUID, Conversation: userConv, SenderName: "bilibridge-bot"}
	return []goldenCase{
		{name: "text", src: userSrc(), msg: incoming(1, fixtureContent(t, 0, 1))},
		{name: "text_flat", src: userSrc(), msg: incoming(1, fixtureContent(t, 0, 1)), flat: true},
		{name: "text_html_escaping", src: userSrc(), msg: incoming(1, `{"content":"<b>not bold</b> & <a href=\"x\">1 < 2 > 0</a> &amp;"}`)},
		{name: "text_multiline_emote", src: userSrc(), msg: incoming(1, fixtureContent(t, 19, 1))},
		{name: "image", src: userSrc(), msg: incoming(2, fixtureContent(t, 1, 2))},
		{name: "image_flat", src: userSrc(), msg: incoming(2, fixtureContent(t, 1, 2)), flat: true},
		{name: "sticker", src: userSrc(), msg: incoming(6, `{"url":"https://i0.hdslb.com/bfs/garb/item/sticker.gif","height":160,"width":160,"imageType":"gif","size":33.2}`)},
		{name: "share", src: userSrc(), msg: incoming(7, fixtureContent(t, 3, 7))},
		{name: "mini_program", src: userSrc(), msg: incoming(9, fixtureContent(t, 4, 9))},
		{name: "notice", src: userSrc(), msg: incoming(10, fixtureContent(t, 5, 10))},
		{name: "video", src: userSrc(), msg: with(incoming(11, fixtureContent(t, 15, 11)), func(m *bilibili.Message) { m.MsgSource = 6 })},
		{name: "video_degraded", src: userSrc(), msg: with(incoming(11, `{"rid":740817783,"type":11,"attach_msg":{"id":7345551441311046575,"content":"UP主赠言：新视频，快来看[doge]"}}`), func(m *bilibili.Message) { m.MsgSource = 6 })},
		{name: "article", src: userSrc(), msg: with(incoming(12, fixtureContent(t, 7, 12)), func(m *bilibili.Message) { m.MsgSource = 6 })},
		{name: "picture", src: userSrc(), msg: incoming(13, fixtureContent(t, 8, 13))},
		{name: "other_share", src: userSrc(), msg: incoming(14, fixtureContent(t, 9, 14))},
		{name: "works_auto_reply", src: userSrc(), msg: with(incoming(16, fixtureContent(t, 10, 16)), func(m *bilibili.Message) { m.MsgSource = 8 })},
		{name: "tip", src: userSrc(), msg: with(incoming(18, fixtureContent(t, 11, 18)), func(m *bilibili.Message) { m.MsgSource = 18 })},
		{name: "group_system_305", src: groupSrc, msg: group(305, fixtureContent(t, 12, 305))},
		{name: "group_system_306", src: groupSrc, msg: group(306, fixtureContent(t, 16, 306))},
		{name: "group_member_text", src: memberSrc, msg: with(group(1, `{"content":"大家好"}`), func(m *bilibili.Message) { m.SenderUID = 12345 })},
		{name: "group_member_text_flat", src: memberSrc, msg: with(group(1, `{"content":"大家好"}`), func(m *bilibili.Message) { m.SenderUID = 12345 }), flat: true},
		{name: "unknown_type", src: userSrc(), msg: incoming(42, `{"foo":"bar","n":12345678901234567890}`)},
		{name: "malformed_text", src: userSrc(), msg: incoming(1, `{"content":`)},
		{name: "recalled_status", src: userSrc(), msg: with(incoming(1, `{"content":"oops, wrong chat"}`), func(m *bilibili.Message) { m.MsgStatus = bilibili.StatusRecalled })},
		{name: "image_expired", src: userSrc(), msg: with(incoming(2, `{"url":"https://message.biliimg.com/bfs/im_new/expired.png","height":300,"width":300,"imageType":"png"}`), func(m *bilibili.Message) { m.MsgStatus = bilibili.StatusImageExpired })},
		{name: "outgoing", src: outSrc, msg: with(incoming(1, `{"content":"收到，谢谢！"}`), func(m *bilibili.Message) { m.SenderUID, m.ReceiverID, m.MsgSource = accountUID, talkerID, 7 })},
		{name: "outgoing_flat", src: outSrc, msg: with(incoming(1, `{"content":"收到，谢谢！"}`), func(m *bilibili.Message) { m.SenderUID, m.ReceiverID, m.MsgSource = accountUID, talkerID, 7 }), flat: true},
		{name: "auto_reply", src: userSrc(), msg: with(incoming(1, `{"content":"感谢关注！"}`), func(m *bilibili.Message) { m.MsgSource = 8 })},
		{name: "system_notice", src: systemSrc, msg: with(incoming(10, fixtureContent(t, 14, 10)), func(m *bilibili.Message) { m.SenderUID, m.MsgSource, m.NotifyCode = int64(systemTalker), 6, "2091_253" })},
	}
}

// TestGoldenHTML delivers one message of every kind through the fake Bot
// API (which refuses HTML Telegram would refuse) and compares what
// reached the chat with testdata/golden/<name>.txt. Run with -update to
// rewrite the files.
func TestGoldenHTML(t *testing.T) {
	e := newEnv(t)
	forum, flat := e.sink(forumChat, nil), e.sink(flatChat, nil)
	for i, tc := range goldenCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			tc.msg.MsgKey = msgKey + uint64(i) // one event id per case
			ev := event(t, tc.src, tc.msg)
			chat, s := forumChat, forum
			if tc.flat {
				chat, s = flatChat, flat
			}
			before := len(e.fake.Sent(chat))
			deliver(t, s, ev)
			sent := e.fake.Sent(chat)[before:]
			if len(sent) == 0 {
				t.Fatal("nothing sent")
			}
			var b strings.Builder
			for _, m := range sent {
				writeMessage(&b, m)
			}
			compareGolden(t, tc.name, b.String())
		})
	}
}

func writeMessage(b *strings.Builder, m telegramtest.Message) {
	fmt.Fprintf(b, "== %s parse_mode=%s", m.Method, m.ParseMode)
	if m.ThreadID != 0 {
		b.WriteString(" topic")
	}
	if m.ReplyTo != 0 {
		b.WriteString(" reply")
	}
	b.WriteString("\n")
	if m.Photo != "" {
		fmt.Fprintf(b, "photo: %s\ncaption:\n%s\n", m.Photo, m.Caption)
	} else {
		fmt.Fprintf(b, "%s\n", m.Text)
	}
	if m.ReplyMarkup != "" {
		fmt.Fprintf(b, "markup: %s\n", m.ReplyMarkup)
	}
}

func compareGolden(t *testing.T, name, got string) {
	t.Helper()
	golden.Compare(t, filepath.Join("testdata", "golden", name+".txt"), []byte(got), *update)
}

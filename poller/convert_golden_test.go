package poller_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bilibridge/bilibridge/bilibili"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/golden"
	"github.com/bilibridge/bilibridge/poller"
)

var update = flag.Bool("update", false, "rewrite poller/testdata/golden/*.json from the current output")

// The account and conversations every test talks about. The ids are those of
// design.md and of the Bilibili fixtures.
const (
	accountUID   int64  = 425503913
	talkerID     uint64 = 293793435
	systemTalker uint64 = 844424930131966

	// msgKey is above 2^53: a float64 cannot hold it.
	msgKey      uint64 = 7354295169819585966
	msgKeyStr          = "7354295169819585966"
	seqno       uint64 = 1236306587877408
	recalledKey uint64 = 7345551441311046575
	// msgTime is 2024-03-02T13:20:15Z.
	msgTime     int64 = 1709385615
	msgTimeRFC        = "2024-03-02T13:20:15Z"
	accountName       = "bilibridge-bot"
)

var (
	userConv = events.Conversation{
		SessionType: bilibili.SessionUser, TalkerID: talkerID, Kind: events.ConversationUser,
		Name: "社会易姐QwQ", Avatar: "https://i0.hdslb.com/bfs/face/member/noface.jpg",
	}
	groupConv = events.Conversation{
		SessionType: bilibili.SessionGroup, TalkerID: groupID, Kind: events.ConversationGroup,
		Name: "社会易姐QwQ的应援团", Avatar: "https://i0.hdslb.com/bfs/face/group.jpg",
	}
	systemConv = events.Conversation{
		SessionType: bilibili.SessionUser, TalkerID: systemTalker, Kind: events.ConversationSystem,
		Name: "UP主小助手", Avatar: "https://i0.hdslb.com/bfs/face/assistant.png",
	}
)

// fixtureContent returns the content of entry i of
// ../testdata/bilibili/content_examples.json, a verbatim copy of
// shared/fixtures/bilibili/content_examples.json, checking its msg_type so a
// reordered fixture cannot silently feed the wrong content.
func fixtureContent(t *testing.T, i, msgType int) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "bilibili", "content_examples.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fx []struct {
		MsgType int    `json:"msg_type"`
		Content string `json:"content"`
	}
	if err := json.Unmarshal(b, &fx); err != nil {
		t.Fatalf("content_examples.json: %v", err)
	}
	if i >= len(fx) || fx[i].MsgType != msgType {
		t.Fatalf("content_examples.json entry %d is not msg_type %d", i, msgType)
	}
	return fx[i].Content
}

// incoming is a message from the user talker to the account.
func incoming(msgType int, content string) bilibili.Message {
	return bilibili.Message{
		SenderUID:    int64(talkerID),
		ReceiverType: bilibili.SessionUser,
		ReceiverID:   uint64(accountUID),
		MsgType:      msgType,
		Content:      content,
		MsgSeqno:     seqno,
		Timestamp:    msgTime,
		MsgKey:       msgKey,
		MsgSource:    2, // Android
	}
}

func userSrc() poller.Source {
	return poller.Source{AccountUID: accountUID, Conversation: userConv, SenderName: userConv.Name}
}

// goldenCase is one message and what its event must say beyond the golden.
type goldenCase struct {
	name string
	src  poller.Source
	msg  bilibili.Message

	wantType   string
	wantKind   events.Kind // message events only
	wantText   string      // substring of message.text; "" = only "not empty"
	wantDir    string      // default in
	wantStatus string      // default normal
	wantAuto   bool
	wantImages int
	wantCard   bool
	// wantContent is "object" when content must be a JSON object, "string"
	// when it must be a JSON string.
	wantContent string
	wantErr     bool
	// recall events
	wantRecalled uint64
	wantBySystem bool
}

func goldenCases(t *testing.T) []goldenCase {
	t.Helper()
	with := func(m bilibili.Message, f func(*bilibili.Message)) bilibili.Message { f(&m); return m }
	group := func(msgType int, content string) bilibili.Message {
		return with(incoming(msgType, content), func(m *bilibili.Message) {
			m.SenderUID, m.ReceiverType, m.ReceiverID, m.MsgSource = 0, bilibili.SessionGroup, groupID, 13
		})
	}
	groupSrc := poller.Source{AccountUID: accountUID, Conversation: groupConv, SenderName: groupConv.Name}
	systemSrc := poller.Source{AccountUID: accountUID, Conversation: systemConv, SenderName: systemConv.Name}

	return []goldenCase{
		{name: "text", src: userSrc(), msg: incoming(1, fixtureContent(t, 0, 1)),
			wantType: events.TypeMessage, wantKind: events.KindText, wantText: "Hello", wantContent: "object"},
		{name: "text_multiline_emote", src: userSrc(), msg: incoming(1, fixtureContent(t, 19, 1)),
			wantType: events.TypeMessage, wantKind: events.KindText, wantText: "up主你好，\n催更[doge]", wantContent: "object"},
		{name: "image", src: userSrc(), msg: incoming(2, fixtureContent(t, 1, 2)),
			wantType: events.TypeMessage, wantKind: events.KindImage, wantText: "[image]", wantImages: 1, wantContent: "object"},
		{name: "sticker", src: userSrc(),
			msg:      incoming(6, `{"url":"https://i0.hdslb.com/bfs/garb/item/sticker.gif","height":160,"width":160,"imageType":"gif","size":33.2}`),
			wantType: events.TypeMessage, wantKind: events.KindSticker, wantText: "[sticker]", wantImages: 1, wantContent: "object"},
		{name: "share", src: userSrc(), msg: incoming(7, fixtureContent(t, 3, 7)),
			wantType: events.TypeMessage, wantKind: events.KindShare, wantText: "合 成 大 東 瓜", wantCard: true, wantContent: "object"},
		{name: "mini_program", src: userSrc(), msg: incoming(9, fixtureContent(t, 4, 9)),
			wantType: events.TypeMessage, wantKind: events.KindShare, wantText: "主站测试专用小程序", wantCard: true, wantContent: "object"},
		{name: "notice", src: userSrc(), msg: incoming(10, fixtureContent(t, 5, 10)),
			wantType: events.TypeMessage, wantKind: events.KindNotice, wantText: "直播开始提醒", wantCard: true, wantContent: "object"},
		{name: "video", src: userSrc(),
			msg:      with(incoming(11, fixtureContent(t, 15, 11)), func(m *bilibili.Message) { m.MsgSource = 6 }),
			wantType: events.TypeMessage, wantKind: events.KindVideo, wantText: "OHHHHHH家人们", wantCard: true, wantContent: "object"},
		{name: "video_degraded", src: userSrc(),
			msg: with(incoming(11, `{"rid":740817783,"type":11,"attach_msg":{"id":7345551441311046575,"content":"UP主赠言：新视频，快来看[doge]"}}`),
				func(m *bilibili.Message) { m.MsgSource = 6 }),
			wantType: events.TypeMessage, wantKind: events.KindVideo, wantText: "av740817783", wantCard: true, wantContent: "object"},
		{name: "article", src: userSrc(),
			msg:      with(incoming(12, fixtureContent(t, 7, 12)), func(m *bilibili.Message) { m.MsgSource = 6 }),
			wantType: events.TypeMessage, wantKind: events.KindArticle, wantText: "【单片机】遛弯捕捉到野生U盾，点亮它！", wantCard: true, wantContent: "object"},
		{name: "picture", src: userSrc(), msg: incoming(13, fixtureContent(t, 8, 13)),
			wantType: events.TypeMessage, wantKind: events.KindPicture, wantText: "原神，启动！", wantCard: true, wantContent: "object"},
		{name: "other_share", src: userSrc(), msg: incoming(14, fixtureContent(t, 9, 14)),
			wantType: events.TypeMessage, wantKind: events.KindShare, wantText: "2023最美的夜 bilibili晚会", wantCard: true, wantContent: "object"},
		{name: "works", src: userSrc(),
			msg:      with(incoming(16, fixtureContent(t, 10, 16)), func(m *bilibili.Message) { m.MsgSource = 8 }),
			wantType: events.TypeMessage, wantKind: events.KindWorks, wantText: "更多宝藏内容", wantAuto: true, wantCard: true, wantContent: "object"},
		{name: "tip", src: userSrc(),
			msg:      with(incoming(18, fixtureContent(t, 11, 18)), func(m *bilibili.Message) { m.MsgSource = 18 }),
			wantType: events.TypeMessage, wantKind: events.KindTip, wantText: "对方主动回复或关注你前，最多发送1条消息", wantContent: "object"},
		{name: "ai", src: userSrc(),
			msg: with(incoming(19, `{"content":{"paragraphs":[{"para_type":1,"text":{"nodes":[{"type":"TEXT_NODE_TYPE_WORD","word":{"words":"你好，","font_size":17}},{"type":"TEXT_NODE_TYPE_WORD","word":{"words":"我是AI助手"}}]}}]},"show_like":true,"gpt_session_id":123456789012,"gpt_bind_query":"你好"}`),
				func(m *bilibili.Message) { m.MsgSource = 19 }),
			wantType: events.TypeMessage, wantKind: events.KindText, wantText: "你好，我是AI助手", wantAuto: true, wantContent: "object"},
		{name: "group_system_305", src: groupSrc, msg: group(305, fixtureContent(t, 12, 305)),
			wantType: events.TypeMessage, wantKind: events.KindGroupSystem, wantText: "社会易姐QwQ的应援团开通啦", wantContent: "object"},
		{name: "group_system_306", src: groupSrc, msg: group(306, fixtureContent(t, 16, 306)),
			wantType: events.TypeMessage, wantKind: events.KindGroupSystem, wantText: "欢迎罗板栗入群", wantContent: "object"},
		{name: "group_system_301_empty", src: groupSrc, msg: group(301, `{"group_id":221082140,"content":""}`),
			wantType: events.TypeMessage, wantKind: events.KindGroupSystem, wantText: "[fan group: member joined]", wantContent: "object"},
		{name: "unknown_type", src: userSrc(), msg: incoming(42, `{"foo":"bar","n":12345678901234567890}`),
			wantType: events.TypeMessage, wantKind: events.KindUnknown, wantText: "[unsupported message type 42]", wantContent: "object"},
		{name: "unknown_type_not_json", src: userSrc(), msg: incoming(3, "not json at all"),
			wantType: events.TypeMessage, wantKind: events.KindUnknown, wantText: "not json at all", wantContent: "string"},
		{name: "malformed_text", src: userSrc(), msg: incoming(1, `{"content":`),
			wantType: events.TypeMessage, wantKind: events.KindUnknown, wantText: "[malformed message type 1]", wantContent: "string", wantErr: true},
		{name: "malformed_video", src: userSrc(), msg: incoming(11, `{"rid":"740817783","type":11}`),
			wantType: events.TypeMessage, wantKind: events.KindUnknown, wantText: "[malformed message type 11]", wantContent: "object", wantErr: true},
		// A recall whose content is not a msg_key must not become a recall
		// of some other message: it is an unknown message plus an error.
		{name: "malformed_recall", src: userSrc(), msg: incoming(5, "7.345551441311047e18"),
			wantType: events.TypeMessage, wantKind: events.KindUnknown, wantText: "[malformed message type 5]", wantContent: "string", wantErr: true},
		{name: "recalled_status", src: userSrc(),
			msg:      with(incoming(1, `{"content":"oops, wrong chat"}`), func(m *bilibili.Message) { m.MsgStatus = bilibili.StatusRecalled }),
			wantType: events.TypeMessage, wantKind: events.KindText, wantText: "oops, wrong chat", wantStatus: events.StatusRecalled, wantContent: "object"},
		{name: "image_expired", src: userSrc(),
			msg:      with(incoming(2, `{"url":"https://message.biliimg.com/bfs/im_new/expired.png","height":300,"width":300,"imageType":"png"}`), func(m *bilibili.Message) { m.MsgStatus = bilibili.StatusImageExpired }),
			wantType: events.TypeMessage, wantKind: events.KindImage, wantText: "[image]", wantStatus: events.StatusImageExpired, wantImages: 1, wantContent: "object"},
		{name: "outgoing",
			src: poller.Source{AccountUID: accountUID, Conversation: userConv, SenderName: accountName},
			msg: with(incoming(1, `{"content":"收到，谢谢！"}`), func(m *bilibili.Message) {
				m.SenderUID, m.ReceiverID, m.MsgSource = accountUID, talkerID, 7
			}),
			wantType: events.TypeMessage, wantKind: events.KindText, wantText: "收到，谢谢！", wantDir: events.DirectionOut, wantContent: "object"},
		{name: "auto_reply",
			src:      userSrc(),
			msg:      with(incoming(1, `{"content":"感谢关注！"}`), func(m *bilibili.Message) { m.MsgSource = 8 }),
			wantType: events.TypeMessage, wantKind: events.KindText, wantText: "感谢关注！", wantAuto: true, wantContent: "object"},
		{name: "system_conversation", src: systemSrc,
			msg: with(incoming(10, fixtureContent(t, 14, 10)), func(m *bilibili.Message) {
				m.SenderUID, m.MsgSource, m.NotifyCode = int64(systemTalker), 6, "2091_253"
			}),
			wantType: events.TypeMessage, wantKind: events.KindNotice, wantText: "流量奖励到账通知", wantCard: true, wantContent: "object"},
		{name: "recall", src: userSrc(), msg: incoming(5, fixtureContent(t, 2, 5)),
			wantType: events.TypeRecall, wantRecalled: recalledKey},
		{name: "recall_object_form", src: userSrc(), msg: incoming(5, `{"content":"7345551441311046575"}`),
			wantType: events.TypeRecall, wantRecalled: recalledKey},
		{name: "recall_by_system", src: userSrc(),
			msg:      with(incoming(5, fixtureContent(t, 2, 5)), func(m *bilibili.Message) { m.SysCancel = true }),
			wantType: events.TypeRecall, wantRecalled: recalledKey, wantBySystem: true},
	}
}

// TestFromMessageGolden converts one message of every kind and compares the
// whole CloudEvent with testdata/golden/<name>.json. Run with -update after a
// deliberate change and review the diff: the goldens are the public contract.
func TestFromMessageGolden(t *testing.T) {
	for _, tc := range goldenCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			msg := tc.msg
			ev, err := poller.MessageEvent(tc.src, &msg)
			if tc.wantErr {
				if err == nil {
					t.Fatal("FromMessage: want a decode error beside the event, got nil")
				}
				if !errors.Is(err, bilibili.ErrBadContent) {
					t.Errorf("FromMessage error %v does not wrap bilibili.ErrBadContent", err)
				}
				if !strings.Contains(err.Error(), strconv.FormatUint(msg.MsgKey, 10)) {
					t.Errorf("FromMessage error %q does not name the msg_key", err)
				}
			} else if err != nil {
				t.Fatalf("FromMessage: %v", err)
			}
			if ev.ID == "" {
				t.Fatal("FromMessage returned no event (the poller treats an empty id as a hard failure)")
			}
			raw, err := ev.Marshal()
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			checkEnvelope(t, raw, tc.src, &msg, tc.wantType)
			checkData(t, ev, tc)
			compareGolden(t, tc.name, raw)
		})
	}
}

// compareGolden compares the indented event with its golden file, or writes
// it with -update.
func compareGolden(t *testing.T, name string, raw []byte) {
	t.Helper()
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, raw, "", "  "); err != nil {
		t.Fatalf("indent: %v", err)
	}
	pretty.WriteByte('\n')
	golden.Compare(t, filepath.Join("testdata", "golden", name+".json"), pretty.Bytes(), *update)
}

// checkEnvelope checks the CloudEvents attributes of design.md on the wire
// form, decoded with UseNumber so that no id passes through a float.
func checkEnvelope(t *testing.T, raw []byte, src poller.Source, m *bilibili.Message, wantType string) {
	t.Helper()
	obj := decodeNumbers(t, raw)
	want := map[string]string{
		"specversion":     "1.0",
		"id":              fmt.Sprintf("%d-%d", src.AccountUID, m.MsgKey),
		"source":          fmt.Sprintf("bilibili://%d", src.AccountUID),
		"type":            wantType,
		"subject":         fmt.Sprintf("%d/%d", src.Conversation.SessionType, src.Conversation.TalkerID),
		"datacontenttype": "application/json",
		"time":            time.Unix(m.Timestamp, 0).UTC().Format(time.RFC3339),
	}
	for k, v := range want {
		if got, ok := obj[k].(string); !ok || got != v {
			t.Errorf("envelope %s = %#v, want %q", k, obj[k], v)
		}
	}
	if _, err := time.Parse(time.RFC3339, fmt.Sprint(obj["time"])); err != nil {
		t.Errorf("time is not RFC 3339: %v", err)
	}
	if len(obj) != len(want)+1 {
		t.Errorf("envelope has attributes %v, want exactly %d (those above and data)", keys(obj), len(want)+1)
	}
	data, ok := obj["data"].(map[string]any)
	if !ok {
		t.Fatalf("data is %T, want an object", obj["data"])
	}
	wantString(t, data, "account_uid", strconv.FormatInt(src.AccountUID, 10))
	conv, ok := data["conversation"].(map[string]any)
	if !ok {
		t.Fatalf("data.conversation is %T, want an object", data["conversation"])
	}
	wantString(t, conv, "talker_id", strconv.FormatUint(src.Conversation.TalkerID, 10))
	wantString(t, conv, "kind", src.Conversation.Kind)
	wantNumber(t, conv, "session_type", int64(src.Conversation.SessionType))

	switch wantType {
	case events.TypeRecall:
		if _, ok := data["recalled_msg_key"].(string); !ok {
			t.Errorf("recalled_msg_key is %#v, want a decimal string", data["recalled_msg_key"])
		}
		if _, ok := data["by_system"].(bool); !ok {
			t.Errorf("by_system is %#v, want a bool", data["by_system"])
		}
	case events.TypeMessage:
		msg, ok := data["message"].(map[string]any)
		if !ok {
			t.Fatalf("data.message is %T, want an object", data["message"])
		}
		wantString(t, msg, "msg_key", strconv.FormatUint(m.MsgKey, 10))
		wantString(t, msg, "seqno", strconv.FormatUint(m.MsgSeqno, 10))
		wantString(t, msg, "sender_uid", strconv.FormatInt(m.SenderUID, 10))
		wantString(t, msg, "timestamp", time.Unix(m.Timestamp, 0).UTC().Format(time.RFC3339))
		wantNumber(t, msg, "msg_type", int64(m.MsgType))
		wantNumber(t, msg, "msg_source", int64(m.MsgSource))
		if text, _ := msg["text"].(string); strings.TrimSpace(text) == "" {
			t.Errorf("message.text = %#v, want a non-empty string", msg["text"])
		}
		designKinds := "text image sticker share notice video article picture works tip group_system unknown"
		if k, _ := msg["kind"].(string); !containsWord(designKinds, k) {
			t.Errorf("message.kind = %#v, not one of design.md's kinds", msg["kind"])
		}
		if d, _ := msg["direction"].(string); !containsWord("in out", d) {
			t.Errorf("message.direction = %#v", msg["direction"])
		}
		if s, _ := msg["status"].(string); !containsWord("normal recalled image_expired", s) {
			t.Errorf("message.status = %#v", msg["status"])
		}
		if _, ok := msg["auto_reply"].(bool); !ok {
			t.Errorf("message.auto_reply = %#v, want a bool", msg["auto_reply"])
		}
		if _, ok := msg["content"]; !ok {
			t.Error("message.content is missing")
		}
	}
}

// checkData decodes the event's data with the package's own types and
// checks what the case says.
func checkData(t *testing.T, ev events.Event, tc goldenCase) {
	t.Helper()
	if ev.Type != tc.wantType {
		t.Fatalf("type = %q, want %q", ev.Type, tc.wantType)
	}
	if ev.Type == events.TypeRecall {
		var d events.RecallData
		if err := ev.DecodeData(&d); err != nil {
			t.Fatal(err)
		}
		if d.RecalledMsgKey != tc.wantRecalled || d.BySystem != tc.wantBySystem {
			t.Errorf("recall of %d by_system %v, want %d by_system %v", d.RecalledMsgKey, d.BySystem, tc.wantRecalled, tc.wantBySystem)
		}
		if d.AccountUID != tc.src.AccountUID || d.Conversation != tc.src.Conversation {
			t.Errorf("recall account/conversation = %d %+v", d.AccountUID, d.Conversation)
		}
		return
	}
	var d events.MessageData
	if err := ev.DecodeData(&d); err != nil {
		t.Fatal(err)
	}
	m := d.Message
	if m.Kind != tc.wantKind {
		t.Errorf("kind = %q, want %q", m.Kind, tc.wantKind)
	}
	if !strings.Contains(m.Text, tc.wantText) {
		t.Errorf("text = %q, want it to contain %q", m.Text, tc.wantText)
	}
	wantDir := events.DirectionIn
	if tc.wantDir != "" {
		wantDir = tc.wantDir
	}
	if m.Direction != wantDir {
		t.Errorf("direction = %q, want %q", m.Direction, wantDir)
	}
	wantStatus := events.StatusNormal
	if tc.wantStatus != "" {
		wantStatus = tc.wantStatus
	}
	if m.Status != wantStatus {
		t.Errorf("status = %q, want %q", m.Status, wantStatus)
	}
	if m.AutoReply != tc.wantAuto {
		t.Errorf("auto_reply = %v, want %v", m.AutoReply, tc.wantAuto)
	}
	if len(m.Images) != tc.wantImages {
		t.Errorf("images = %+v, want %d", m.Images, tc.wantImages)
	}
	if (m.Card != nil) != tc.wantCard {
		t.Errorf("card = %+v, want present=%v", m.Card, tc.wantCard)
	}
	if m.SenderName != tc.src.SenderName {
		t.Errorf("sender_name = %q, want %q", m.SenderName, tc.src.SenderName)
	}
	switch c := bytes.TrimSpace(m.Content); tc.wantContent {
	case "object":
		if len(c) == 0 || c[0] != '{' {
			t.Errorf("content = %s, want the JSON object Bilibili sent", c)
		} else if !jsonEqual(t, c, []byte(tc.msg.Content)) {
			t.Errorf("content = %s, want the same JSON as Bilibili's %s", c, tc.msg.Content)
		}
	case "string":
		var s string
		if err := json.Unmarshal(c, &s); err != nil || s != tc.msg.Content {
			t.Errorf("content = %s, want the raw content %q as a JSON string", c, tc.msg.Content)
		}
	}
}

// decodeNumbers decodes a JSON object keeping numbers as json.Number.
func decodeNumbers(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		t.Fatalf("decoding %s: %v", raw, err)
	}
	return obj
}

// jsonEqual compares two JSON documents token by token, numbers as text.
func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	norm := func(x []byte) string {
		dec := json.NewDecoder(bytes.NewReader(x))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("decoding %s: %v", x, err)
		}
		out, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	return norm(a) == norm(b)
}

func wantString(t *testing.T, obj map[string]any, key, want string) {
	t.Helper()
	if got, ok := obj[key].(string); !ok || got != want {
		t.Errorf("%s = %#v, want the decimal string %q", key, obj[key], want)
	}
}

func wantNumber(t *testing.T, obj map[string]any, key string, want int64) {
	t.Helper()
	n, ok := obj[key].(json.Number)
	if !ok {
		t.Errorf("%s = %#v, want a JSON number", key, obj[key])
		return
	}
	if got, err := n.Int64(); err != nil || got != want {
		t.Errorf("%s = %s, want %d", key, n, want)
	}
}

func containsWord(list, w string) bool {
	for _, f := range strings.Fields(list) {
		if f == w {
			return true
		}
	}
	return false
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

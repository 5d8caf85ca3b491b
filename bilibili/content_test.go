package bilibili

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/bilibridge/bilibridge/golden"
)

// The flag is looked up rather than owned: other test files of this package
// may register -update too, and registering it twice panics.
func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite golden files")
	}
}

func contentUpdateGolden() bool {
	f := flag.Lookup("update")
	if f == nil {
		return false
	}
	b, _ := strconv.ParseBool(f.Value.String())
	return b
}

// Content fixtures are the shared Bilibili responses at the top level;
// their decoded goldens are this package's own.
const (
	contentFixtures = "../testdata/bilibili"
	contentGoldens  = "testdata/golden"
)

// contentCase is one content taken from a fixture.
type contentCase struct {
	Where   string // position in the fixture, for messages and goldens
	MsgType int
	Content string
	Note    string
}

// contentSources lists the fixtures whose contents are decoded and
// compared with goldens. The first two hold bare content examples, the
// others whole API responses whose messages are picked out.
var contentSources = []struct {
	file     string
	examples bool
}{
	{"content_examples.json", true},
	{"synthetic_examples.json", true},
	{"fetch_session_msgs.json", false},
	{"fetch_session_msgs_legacy_2023.json", false},
	{"new_sessions.json", false},
	{"get_sessions.json", false},
	{"session_detail.json", false},
}

func contentLoadCases(tb testing.TB, file string, examples bool) []contentCase {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join(contentFixtures, file))
	if err != nil {
		tb.Fatal(err)
	}
	if examples {
		var list []struct {
			MsgType int    `json:"msg_type"`
			Content string `json:"content"`
			Note    string `json:"note"`
		}
		if err := json.Unmarshal(data, &list); err != nil {
			tb.Fatalf("%s: %v", file, err)
		}
		cases := make([]contentCase, len(list))
		for i, e := range list {
			cases[i] = contentCase{Where: fmt.Sprintf("[%d]", i), MsgType: e.MsgType, Content: e.Content, Note: e.Note}
		}
		return cases
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		tb.Fatalf("%s: %v", file, err)
	}
	var cases []contentCase
	contentWalkMessages(tb, doc, "", &cases)
	if len(cases) == 0 {
		tb.Fatalf("%s: no messages found", file)
	}
	return cases
}

// contentWalkMessages finds every object with msg_type and content, i.e.
// the messages and last_msg of any response shape.
func contentWalkMessages(tb testing.TB, v any, path string, out *[]contentCase) {
	tb.Helper()
	switch v := v.(type) {
	case map[string]any:
		if mt, ok := v["msg_type"].(json.Number); ok {
			if content, ok := v["content"].(string); ok {
				n, err := strconv.Atoi(mt.String())
				if err != nil {
					tb.Fatalf("%s: msg_type %v: %v", path, mt, err)
				}
				*out = append(*out, contentCase{Where: path, MsgType: n, Content: content})
				return
			}
		}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			contentWalkMessages(tb, v[k], path+"."+k, out)
		}
	case []any:
		for i, e := range v {
			contentWalkMessages(tb, e, fmt.Sprintf("%s[%d]", path, i), out)
		}
	}
}

// contentAllCases is every fixture content, for the properties that must
// hold everywhere.
func contentAllCases(tb testing.TB) []contentCase {
	tb.Helper()
	var all []contentCase
	for _, src := range contentSources {
		for _, c := range contentLoadCases(tb, src.file, src.examples) {
			c.Where = src.file + c.Where
			all = append(all, c)
		}
	}
	return all
}

// contentGolden is what a golden file records for one content.
type contentGolden struct {
	Where   string          `json:"where"`
	MsgType int             `json:"msg_type"`
	Note    string          `json:"note,omitempty"`
	GoType  string          `json:"go_type"`
	Kind    Kind            `json:"kind"`
	Text    string          `json:"text"`
	Images  []Image         `json:"images"`
	Card    *Card           `json:"card"`
	Value   json.RawMessage `json:"value"`
	Error   string          `json:"error,omitempty"`
}

func contentMakeGolden(tb testing.TB, c contentCase) contentGolden {
	tb.Helper()
	got, err := DecodeContent(c.MsgType, c.Content)
	if got == nil {
		tb.Fatalf("%s: DecodeContent returned nil Content", c.Where)
	}
	value, merr := json.Marshal(got)
	if merr != nil {
		tb.Fatalf("%s: re-encoding %T: %v", c.Where, got, merr)
	}
	g := contentGolden{
		Where: c.Where, MsgType: c.MsgType, Note: c.Note, GoType: fmt.Sprintf("%T", got),
		Kind: got.Kind(), Text: got.Text(), Images: got.Images(), Card: got.Card(), Value: value,
	}
	if err != nil {
		g.Error = err.Error()
	}
	return g
}

func TestContentGolden(t *testing.T) {
	for _, src := range contentSources {
		t.Run(src.file, func(t *testing.T) {
			var goldens []contentGolden
			for _, c := range contentLoadCases(t, src.file, src.examples) {
				goldens = append(goldens, contentMakeGolden(t, c))
			}
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			if err := enc.Encode(goldens); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(contentGoldens, strings.TrimSuffix(src.file, ".json")+".golden.json")
			golden.Compare(t, path, buf.Bytes(), contentUpdateGolden())
		})
	}
}

// contentMustDecode decodes a content that has to be valid.
func contentMustDecode[T Content](t *testing.T, msgType int, raw string) T {
	t.Helper()
	c, err := DecodeContent(msgType, raw)
	if err != nil {
		t.Fatalf("DecodeContent(%d, %q): %v", msgType, raw, err)
	}
	v, ok := c.(T)
	if !ok {
		t.Fatalf("DecodeContent(%d, %q) = %T, want %T", msgType, raw, c, v)
	}
	return v
}

func contentMarshal(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestContentRecall(t *testing.T) {
	tests := []struct {
		name, raw string
		want      uint64
		reencode  string
	}{
		{"bare number above 2^53", "7345551441311046575", 7345551441311046575, "7345551441311046575"},
		{"object form from the fetch_session_msgs sample", `{"content":"1"}`, 1, `{"content":"1"}`},
		{"object form with a number", `{"content":7104186240789226795}`, 7104186240789226795, `{"content":"7104186240789226795"}`},
		{"JSON string", `"7345551441311046575"`, 7345551441311046575, "7345551441311046575"},
		{"uint64 max with whitespace", " 18446744073709551615\n", 18446744073709551615, "18446744073709551615"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := contentMustDecode[*RecallContent](t, 5, tt.raw)
			if c.MsgKey != tt.want {
				t.Errorf("MsgKey = %d, want %d", c.MsgKey, tt.want)
			}
			if got := contentMarshal(t, c); got != tt.reencode {
				t.Errorf("re-encoded = %s, want %s", got, tt.reencode)
			}
			if c.Kind() != KindRecall {
				t.Errorf("Kind = %q", c.Kind())
			}
			if want := "[recalled message " + strconv.FormatUint(tt.want, 10) + "]"; c.Text() != want {
				t.Errorf("Text = %q, want %q", c.Text(), want)
			}
		})
	}
	// The exact digits matter: through a float64 this key would become
	// 7345551441311046656 and recall a message that does not exist.
	c := contentMustDecode[*RecallContent](t, 5, "7345551441311046575")
	if got := strconv.FormatUint(c.MsgKey, 10); got != "7345551441311046575" {
		t.Errorf("msg_key digits = %s", got)
	}
}

func TestContentDegradedVideo(t *testing.T) {
	c := contentMustDecode[*VideoContent](t, 11,
		`{"rid":740817783,"type":11,"attach_msg":{"id":7345551441311046575,"content":"UP主赠言：新视频"}}`)
	if !c.Degraded() || c.Rid != 740817783 || c.Type != 11 || c.TypeUnderscore != 0 {
		t.Errorf("decoded %+v, Degraded %v", c, c.Degraded())
	}
	if c.AttachMsg == nil || c.AttachMsg.ID != 7345551441311046575 {
		t.Errorf("attach_msg = %+v", c.AttachMsg)
	}
	wantText := "[video av740817783]\nUP主赠言：新视频\nhttps://www.bilibili.com/video/av740817783"
	if c.Text() != wantText {
		t.Errorf("Text = %q, want %q", c.Text(), wantText)
	}
	card := c.Card()
	if card == nil || card.URL != "https://www.bilibili.com/video/av740817783" || card.Title != "av740817783" {
		t.Errorf("Card = %+v", card)
	}
	if got, want := contentMarshal(t, c), `{"rid":740817783,"type":11,"attach_msg":{"id":7345551441311046575,"content":"UP主赠言：新视频"}}`; got != want {
		t.Errorf("re-encoded = %s, want %s", got, want)
	}

	null := contentMustDecode[*VideoContent](t, 11, `{"rid":740817783,"type":8,"attach_msg":null}`)
	if null.AttachMsg != nil || null.Text() != "[video av740817783]\nhttps://www.bilibili.com/video/av740817783" {
		t.Errorf("attach_msg null: %+v, Text %q", null, null.Text())
	}

	full := contentMustDecode[*VideoContent](t, 11,
		`{"title":"T","times":14,"cover":"http://c","rid":1951316064,"type_":8,"desc":"D","bvid":"BV1zC411p7JN","view":452,"danmaku":0,"pub_date":1709385603,"attach_msg":null}`)
	if full.Degraded() || full.TypeUnderscore != 8 || full.Link() != "https://www.bilibili.com/video/BV1zC411p7JN" {
		t.Errorf("full form: %+v", full)
	}
	if full.Text() != "[video] T\nhttps://www.bilibili.com/video/BV1zC411p7JN" {
		t.Errorf("full Text = %q", full.Text())
	}
}

func TestContentDegradedArticle(t *testing.T) {
	c := contentMustDecode[*ArticleContent](t, 12, `{"rid":18275013,"type":12,"attach_msg":{"id":42,"content":"UP主赠言：新专栏"}}`)
	if !c.Degraded() || c.Rid != 18275013 || c.Type != 12 || c.ImageURLs != nil {
		t.Errorf("decoded %+v", c)
	}
	if want := "[article cv18275013]\nUP主赠言：新专栏\nhttps://www.bilibili.com/read/cv18275013"; c.Text() != want {
		t.Errorf("Text = %q, want %q", c.Text(), want)
	}
	if card := c.Card(); card.URL != "https://www.bilibili.com/read/cv18275013" || card.Cover != "" {
		t.Errorf("Card = %+v", card)
	}

	gone := contentMustDecode[*ArticleContent](t, 12, `{"rid":5,"title":"内容已失效","image_urls":null,"attach_msg":null}`)
	if gone.ImageURLs != nil || gone.Text() != "[article] 内容已失效\nhttps://www.bilibili.com/read/cv5" {
		t.Errorf("gone article: %+v, Text %q", gone, gone.Text())
	}
}

func TestContentTipTripleEncoded(t *testing.T) {
	raw := `{"content":"[{\"text\":\"对方主动回复或关注你前，\",\"color_day\":\"#9499A0\",\"color_nig\":\"#9499A0\"},{\"text\":\"最多发送1条消息\",\"color_day\":\"#00AEEC\",\"color_nig\":\"#00AEEC\",\"jump_url\":\"https://www.bilibili.com/blackboard/x\"}]"}`
	c := contentMustDecode[*TipContent](t, 18, raw)
	if len(c.Parts) != 2 || c.Parts[1].JumpURL != "https://www.bilibili.com/blackboard/x" || c.Parts[0].ColorDay != "#9499A0" {
		t.Fatalf("Parts = %+v", c.Parts)
	}
	if want := "对方主动回复或关注你前，最多发送1条消息"; c.Text() != want {
		t.Errorf("Text = %q, want %q", c.Text(), want)
	}
	if c.Kind() != KindTip {
		t.Errorf("Kind = %q", c.Kind())
	}
	wantCard := &Card{Buttons: []Button{{Text: "最多发送1条消息", URL: "https://www.bilibili.com/blackboard/x"}}}
	if !reflect.DeepEqual(c.Card(), wantCard) {
		t.Errorf("Card = %+v, want %+v", c.Card(), wantCard)
	}
	// Re-encoding keeps the inner array as the string it came as.
	if got := contentMarshal(t, c); got != raw {
		t.Errorf("re-encoded:\n got %s\nwant %s", got, raw)
	}
}

func TestContentNoticeButtons(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want []Button
	}{
		{
			name: "config web_uri beats all_uri and root; label from config",
			raw:  `{"jump_text":"root","jump_uri":"https://root/1","jump_uri_config":{"all_uri":"https://all/1","web_uri":"https://web/1","text":"cfg"}}`,
			want: []Button{{"cfg", "https://web/1"}},
		},
		{
			name: "config all_uri beats root; label falls back to root jump_text",
			raw:  `{"jump_text":"root","jump_uri":"https://root/1","jump_uri_config":{"all_uri":"https://all/1","text":""}}`,
			want: []Button{{"root", "https://all/1"}},
		},
		{
			name: "root uri when the config has none; default label",
			raw:  `{"jump_text":"","jump_uri":"https://root/1","jump_uri_config":{"text":""}}`,
			want: []Button{{"查看详情", "https://root/1"}},
		},
		{
			name: "no link anywhere hides the button even with a label",
			raw:  `{"jump_text":"x","jump_uri":"","jump_uri_config":{"android_uri":"bilibili://a","text":"y"}}`,
			want: nil,
		},
		{
			name: "order 1,2,3 kept and hidden ones skipped",
			raw:  `{"jump_uri":"https://r/1","jump_text_2":"two","jump_uri_2":"","jump_uri_3":"https://r/3","jump_text_3":"three","jump_uri_3_config":{"web_uri":"https://w/3","text":""}}`,
			want: []Button{{"查看详情", "https://r/1"}, {"three", "https://w/3"}},
		},
		{
			name: "flow-reward fixture: only config all_uri, everything else empty",
			raw:  `{"title":"流量奖励到账通知","text":"恭喜","jump_text":"","jump_uri":"","modules":null,"jump_text_2":"","jump_uri_2":"","jump_text_3":"","jump_uri_3":"","notifier":null,"jump_uri_config":{"all_uri":"https://member.bilibili.com/york/flow-reward?navhide=1\u0026from=msgrecall","text":""},"jump_uri_2_config":{"text":""},"jump_uri_3_config":{"text":""},"biz_content":null}`,
			want: []Button{{"查看详情", "https://member.bilibili.com/york/flow-reward?navhide=1&from=msgrecall"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := contentMustDecode[*NoticeContent](t, 10, tt.raw)
			if got := c.Buttons(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Buttons = %+v, want %+v", got, tt.want)
			}
			card := c.Card()
			if !reflect.DeepEqual(card.Buttons, tt.want) {
				t.Errorf("Card.Buttons = %+v, want %+v", card.Buttons, tt.want)
			}
			if len(tt.want) > 0 && card.URL != tt.want[0].URL {
				t.Errorf("Card.URL = %q, want the first button's %q", card.URL, tt.want[0].URL)
			}
		})
	}
}

func TestContentNoticeModules(t *testing.T) {
	c := contentMustDecode[*NoticeContent](t, 10,
		`{"title":"直播开始提醒","text":"快来","modules":[{"title":"预约主题","detail":"拜年纪"},{"title":"UP主","detail":"哔哩哔哩"}],"notifier":null,"biz_content":{"cover":"","backup_cover":"http://b.jpg","refresh_type":1,"biz_type":2,"biz_id1":"1868902080","biz_id2":"473923647994271663","biz_status":0}}`)
	card := c.Card()
	wantFields := []CardField{{"预约主题", "拜年纪"}, {"UP主", "哔哩哔哩"}}
	if !reflect.DeepEqual(card.Fields, wantFields) || card.Cover != "http://b.jpg" {
		t.Errorf("Card = %+v", card)
	}
	if c.BizContent.BizID2 != "473923647994271663" {
		t.Errorf("biz_id2 = %q", c.BizContent.BizID2)
	}
	if want := "[notice] 直播开始提醒\n快来\n预约主题: 拜年纪\nUP主: 哔哩哔哩"; c.Text() != want {
		t.Errorf("Text = %q, want %q", c.Text(), want)
	}
}

func TestContentUnknownType(t *testing.T) {
	raw := `{"foo":"bar","n":12345678901234567890}`
	c, err := DecodeContent(42, raw)
	if err != nil {
		t.Fatalf("unknown type is not an error: %v", err)
	}
	u, ok := c.(*UnknownContent)
	if !ok || u.MsgType != 42 || u.Raw != raw || u.Malformed {
		t.Fatalf("got %#v", c)
	}
	if want := "[unsupported message type 42] " + raw; u.Text() != want {
		t.Errorf("Text = %q, want %q", u.Text(), want)
	}
	if u.Kind() != KindUnknown || u.Images() != nil || u.Card() != nil {
		t.Errorf("unknown content: kind %q images %v card %v", u.Kind(), u.Images(), u.Card())
	}
	if got := contentMarshal(t, u); got != raw {
		t.Errorf("re-encoded = %s, want the raw JSON", got)
	}

	long := &UnknownContent{MsgType: 3, Raw: strings.Repeat("语", 500)}
	if txt := long.Text(); len(txt) > maxRawInText+64 || !strings.HasSuffix(txt, "…") || !utf8.ValidString(txt) {
		t.Errorf("long raw not truncated cleanly: %d bytes", len(txt))
	}
	notJSON := &UnknownContent{MsgType: 3, Raw: "not json"}
	if got := contentMarshal(t, notJSON); got != `"not json"` {
		t.Errorf("non-JSON raw re-encoded as %s", got)
	}
	empty := &UnknownContent{MsgType: 3}
	if empty.Text() != "[unsupported message type 3]" {
		t.Errorf("empty raw Text = %q", empty.Text())
	}
}

// contentMalformed has, for every decoded msg_type, contents that must be
// refused: broken JSON, the wrong top-level shape, and wrong field types.
var contentMalformed = map[int][]string{
	1:   {`{"content":`, `null`, `"text"`, `{"content":5}`, ``},
	2:   {`{"url":`, `[]`, `{"url":"u","width":"300"}`, `{"size":"1KB"}`},
	5:   {`abc`, `-1`, `1.5`, `7.345551441311047e18`, `18446744073709551616`, `{"content":""}`, `{"content":null}`, `{}`, `{"content":"x"}`, `[1]`, ``},
	6:   {`{"url":1}`, `true`},
	7:   {`{"id":"246551172"}`, `{"source":"5"}`, `{"id":1.5}`},
	8:   {`x`},
	9:   {`{"id":12}`, `"x"`},
	10:  {`[]`, `{"modules":{}}`, `{"jump_uri_config":"x"}`, `{"biz_content":{"biz_id1":1}}`},
	11:  {`{"rid":"740817783"}`, `{"rid":7.40817783e8}`, `{"attach_msg":{"id":"1"}}`, `{"attach_msg":[]}`},
	12:  {`{"rid":1,"image_urls":"x"}`, `{"rid":"1"}`, `{"image_urls":[1]}`},
	13:  {`{"pic_url":1}`, `null`},
	14:  {`{"source":5}`, `{`},
	16:  {`{"sub_cards":[{"card_id":"1"}]}`, `{"sub_cards":{}}`},
	18:  {`{"content":"对方主动回复"}`, `{"content":"{\"text\":\"x\"}"}`, `{"content":["x"]}`, `{"content":"[{\"text\":1}]"}`},
	19:  {`{"gpt_session_id":"abc"}`, `{"content":"x"`, `{"show_like":"yes"}`, `[]`},
	301: {`{"group_id":"1","content":"x"}`},
	302: {`{"content":1}`},
	303: {`[]`},
	304: {`nul`},
	305: {`{"group_id":1.5}`},
	306: {``, `   `},
}

func TestContentMalformed(t *testing.T) {
	for msgType, raws := range contentMalformed {
		for _, raw := range raws {
			t.Run(fmt.Sprintf("%d/%s", msgType, raw), func(t *testing.T) {
				c, err := DecodeContent(msgType, raw)
				if err == nil {
					t.Fatalf("no error; got %#v", c)
				}
				if !errors.Is(err, ErrBadContent) {
					t.Errorf("error %v does not wrap ErrBadContent", err)
				}
				if !strings.Contains(err.Error(), fmt.Sprintf("msg_type %d", msgType)) {
					t.Errorf("error %q does not name the msg_type", err)
				}
				u, ok := c.(*UnknownContent)
				if !ok {
					t.Fatalf("got %T, want *UnknownContent", c)
				}
				if u.MsgType != msgType || u.Raw != raw || !u.Malformed {
					t.Errorf("got %#v", u)
				}
				if !strings.HasPrefix(u.Text(), fmt.Sprintf("[malformed message type %d]", msgType)) {
					t.Errorf("Text = %q", u.Text())
				}
			})
		}
	}
}

func TestContentEmpty(t *testing.T) {
	tests := []struct {
		msgType int
		raw     string
		want    string
	}{
		{1, `{"content":""}`, "[empty message]"},
		{1, `{"content":"  \n"}`, "[empty message]"},
		{1, `{}`, "[empty message]"},
		{2, `{}`, "[image]"},
		{6, `{}`, "[sticker]"},
		{7, `{}`, "[share]"},
		{9, `{}`, "[mini-program]"},
		{10, `{}`, "[notice]"},
		{11, `{}`, "[video]"},
		{12, `{}`, "[article]"},
		{13, `{}`, "[picture]"},
		{14, `{}`, "[share]"},
		{16, `{}`, "[works]"},
		{18, `{}`, "[system tip]"},
		{18, `{"content":"[]"}`, "[system tip]"},
		{18, `{"content":"null"}`, "[system tip]"},
		{19, `{}`, "[AI message]"},
		{19, `{"content":""}`, "[empty message]"},
		{301, `{}`, "[fan group: member joined]"},
		{305, `{}`, "[fan group: opened]"},
	}
	for _, tt := range tests {
		c, err := DecodeContent(tt.msgType, tt.raw)
		if err != nil {
			t.Errorf("DecodeContent(%d, %s): %v", tt.msgType, tt.raw, err)
			continue
		}
		if c.Text() != tt.want {
			t.Errorf("DecodeContent(%d, %s).Text() = %q, want %q", tt.msgType, tt.raw, c.Text(), tt.want)
		}
	}
}

func TestContentKinds(t *testing.T) {
	want := map[int]Kind{
		1: KindText, 2: KindImage, 5: KindRecall, 6: KindSticker, 7: KindShare, 9: KindShare,
		10: KindNotice, 11: KindVideo, 12: KindArticle, 13: KindPicture, 14: KindShare,
		16: KindWorks, 18: KindTip, 19: KindText, 301: KindGroupSystem, 306: KindGroupSystem,
		3: KindUnknown, 4: KindUnknown, 42: KindUnknown, -1: KindUnknown,
	}
	for msgType, kind := range want {
		raw := "{}"
		if msgType == 5 {
			raw = "1"
		}
		c, err := DecodeContent(msgType, raw)
		if err != nil {
			t.Errorf("DecodeContent(%d, %s): %v", msgType, raw, err)
			continue
		}
		if c.Kind() != kind {
			t.Errorf("msg_type %d: Kind = %q, want %q", msgType, c.Kind(), kind)
		}
	}
}

func TestContentImages(t *testing.T) {
	img := contentMustDecode[*ImageContent](t, 2,
		`{"url":"https://message.biliimg.com/bfs/im_new/c.jpg","height":300,"width":200,"imageType":"jpeg","original":1,"size":55.443}`)
	want := []Image{{URL: "https://message.biliimg.com/bfs/im_new/c.jpg", Width: 200, Height: 300, Type: "jpeg", SizeKB: 55.443}}
	if !reflect.DeepEqual(img.Images(), want) || img.Card() != nil || img.Text() != "[image]" {
		t.Errorf("image: %+v %+v %q", img.Images(), img.Card(), img.Text())
	}
	st := contentMustDecode[*StickerContent](t, 6, `{"url":"https://i0.hdslb.com/s.gif","imageType":"gif"}`)
	if st.Kind() != KindSticker || len(st.Images()) != 1 || st.Images()[0].Type != "gif" {
		t.Errorf("sticker: %q %+v", st.Kind(), st.Images())
	}
	if got := contentMarshal(t, st); got != `{"url":"https://i0.hdslb.com/s.gif","imageType":"gif"}` {
		t.Errorf("sticker re-encoded as %s", got)
	}
	// Card kinds never report their covers as images.
	for _, c := range contentAllCases(t) {
		got, err := DecodeContent(c.MsgType, c.Content)
		if err != nil {
			continue
		}
		switch got.Kind() {
		case KindImage, KindSticker:
		default:
			if got.Images() != nil {
				t.Errorf("%s: %s has images %+v", c.Where, got.Kind(), got.Images())
			}
		}
	}
}

func TestContentShareLinks(t *testing.T) {
	tests := []struct {
		raw, want string
	}{
		{`{"id":246551172,"source":5,"bvid":"BV16v411e7CW"}`, "https://www.bilibili.com/video/BV16v411e7CW"},
		{`{"id":246551172,"source":5}`, "https://www.bilibili.com/video/av246551172"},
		{`{"id":18275013,"source":6}`, "https://www.bilibili.com/read/cv18275013"},
		{`{"id":1231523,"source":16}`, "https://www.bilibili.com/bangumi/play/ep1231523"},
		{`{"id":28220,"source":7}`, "https://www.bilibili.com/bangumi/play/ss28220"},
		{`{"id":912345678901234567,"source":11}`, "https://t.bilibili.com/912345678901234567"},
		{`{"id":1,"source":3}`, ""},
		{`{"id":1,"source":5,"url":"https://b23.tv/x"}`, "https://b23.tv/x"},
	}
	for _, tt := range tests {
		c := contentMustDecode[*ShareContent](t, 7, tt.raw)
		if c.Link() != tt.want || c.Card().URL != tt.want {
			t.Errorf("%s: Link = %q, want %q", tt.raw, c.Link(), tt.want)
		}
	}
}

func TestContentAI(t *testing.T) {
	c := contentMustDecode[*AIContent](t, 19,
		`{"content":{"paragraphs":[{"text":{"nodes":[{"word":{"words":"你好，"}},{"word":{"words":"世界"}}]}},{"text":{"nodes":[{"word":{"words":"第二段"}}]}}]},"gpt_session_id":123456789012345678,"sub_type":"x"}`)
	if c.Text() != "你好，世界\n第二段" || c.Kind() != KindText || c.GptSessionID != 123456789012345678 {
		t.Errorf("AI: Text %q, %+v", c.Text(), c)
	}
	flat := contentMustDecode[*AIContent](t, 19, `{"content":{"answer":{"text":"a"},"items":[{"content":"b"}]}}`)
	if flat.Text() != "a\nb" {
		t.Errorf("AI without paragraphs: Text %q", flat.Text())
	}
	str := contentMustDecode[*TextContent](t, 19, `{"content":"plain","show_like":true}`)
	if str.Text() != "plain" {
		t.Errorf("AI string content: %q", str.Text())
	}
}

// TestContentTextNeverEmpty covers every fixture and malformed content.
func TestContentTextNeverEmpty(t *testing.T) {
	check := func(where string, msgType int, raw string) {
		t.Helper()
		c, err := DecodeContent(msgType, raw)
		if c == nil {
			t.Fatalf("%s: nil Content", where)
		}
		if err != nil && !errors.Is(err, ErrBadContent) {
			t.Errorf("%s: error %v does not wrap ErrBadContent", where, err)
		}
		if strings.TrimSpace(c.Text()) == "" {
			t.Errorf("%s: empty Text for %T", where, c)
		}
		if !utf8.ValidString(c.Text()) {
			t.Errorf("%s: Text is not valid UTF-8", where)
		}
	}
	for _, c := range contentAllCases(t) {
		check(c.Where, c.MsgType, c.Content)
	}
	for msgType, raws := range contentMalformed {
		for _, raw := range raws {
			check(fmt.Sprintf("malformed %d %q", msgType, raw), msgType, raw)
		}
	}
	for _, msgType := range []int{0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 50, 51, 101, 201, 301, 306, 307} {
		for _, raw := range []string{"", "{}", "null", "0", "\xff\xfe", `{"content":"\ud800"}`} {
			check(fmt.Sprintf("type %d %q", msgType, raw), msgType, raw)
		}
	}
}

// TestContentRoundTrip checks that re-encoded values decode to the same
// thing: the event's content field is meant to be fed back into this code.
func TestContentRoundTrip(t *testing.T) {
	for _, c := range contentAllCases(t) {
		contentCheckRoundTrip(t, c.Where, c.MsgType, c.Content)
	}
}

func contentCheckRoundTrip(t *testing.T, where string, msgType int, raw string) {
	t.Helper()
	first, err := DecodeContent(msgType, raw)
	if err != nil {
		return
	}
	if _, unknown := first.(*UnknownContent); unknown {
		return
	}
	b, err := json.Marshal(first)
	if err != nil {
		t.Fatalf("%s: marshal %T: %v", where, first, err)
	}
	second, err := DecodeContent(msgType, string(b))
	if err != nil {
		t.Fatalf("%s: re-encoded %s does not decode: %v", where, b, err)
	}
	if !reflect.DeepEqual(first, second) {
		t.Errorf("%s: round trip changed the value:\n first  %#v\n second %#v", where, first, second)
	}
}

// TestContentReencodesAsSent checks that every real fixture re-encodes to
// the same JSON document Bilibili sent (key order aside), which is what the
// event's content field promises.
func TestContentReencodesAsSent(t *testing.T) {
	for _, src := range contentSources {
		if src.file == "synthetic_examples.json" {
			continue
		}
		for _, c := range contentLoadCases(t, src.file, src.examples) {
			got, err := DecodeContent(c.MsgType, c.Content)
			if err != nil {
				t.Errorf("%s%s: %v", src.file, c.Where, err)
				continue
			}
			b, err := json.Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			if want, have := contentGeneric(t, c.Content), contentGeneric(t, string(b)); !reflect.DeepEqual(want, have) {
				t.Errorf("%s%s: re-encoded differently:\n sent %s\n got  %s", src.file, c.Where, c.Content, b)
			}
		}
	}
}

func contentGeneric(t *testing.T, s string) any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return v
}

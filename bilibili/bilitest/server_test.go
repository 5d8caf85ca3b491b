package bilitest

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testUA   = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
	me       = int64(425503913)
	friend   = int64(293793435)
	stranger = int64(3493118494116797)
	sess     = "sess%2C1893456000%2Cab12*b1"
	jct      = "0123456789abcdef0123456789abcdef"
	pathNav  = "/x/web-interface/nav"
	pathNew  = "/session_svr/v1/session_svr/new_sessions"
	pathGet  = "/session_svr/v1/session_svr/get_sessions"
	pathDet  = "/session_svr/v1/session_svr/session_detail"
	pathUnr  = "/session_svr/v1/session_svr/single_unread"
	pathAck  = "/session_svr/v1/session_svr/update_ack"
	pathMsgs = "/svr_sync/v1/svr_sync/fetch_session_msgs"
	pathSend = "/web_im/v1/web_im/send_msg"
	pathCard = "/account/v1/user/cards"
	pathUp   = "/x/dynamic/feed/draw/upload_bfs"
)

func newTestServer(t *testing.T) *Server {
	t.Helper()
	s := NewServer()
	t.Cleanup(s.Close)
	s.AddAccount(Account{UID: me, Name: "me", SESSDATA: sess, BiliJct: jct})
	s.AddUser(User{UID: friend, Name: "friend", FollowsAccount: true, Followed: true})
	s.AddUser(User{UID: stranger, Name: "stranger"})
	return s
}

type reply struct {
	HTTP int
	Raw  string
	Code int
	Msg  *string
	Data json.RawMessage
}

type req struct {
	method  string
	path    string
	query   url.Values
	form    url.Values
	cookie  string // SESSDATA; "" = sess, "-" = none
	ua      string // "" = testUA
	ctype   string
	body    []byte
	timeout time.Duration
}

func call(t *testing.T, s *Server, rq req) reply {
	t.Helper()
	u := s.URL() + rq.path
	if rq.query != nil {
		u += "?" + rq.query.Encode()
	}
	var body io.Reader
	if rq.body != nil {
		body = bytes.NewReader(rq.body)
	} else if rq.form != nil {
		body = strings.NewReader(rq.form.Encode())
		rq.ctype = "application/x-www-form-urlencoded"
	}
	method := rq.method
	if method == "" {
		method = http.MethodGet
		if body != nil {
			method = http.MethodPost
		}
	}
	ctx := context.Background()
	if rq.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, rq.timeout)
		defer cancel()
	}
	hr, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if rq.ctype != "" {
		hr.Header.Set("Content-Type", rq.ctype)
	}
	ua := rq.ua
	if ua == "" {
		ua = testUA
	}
	hr.Header.Set("User-Agent", ua)
	hr.Header.Set("Referer", "https://message.bilibili.com/")
	switch rq.cookie {
	case "":
		hr.AddCookie(&http.Cookie{Name: "SESSDATA", Value: sess})
		hr.AddCookie(&http.Cookie{Name: "bili_jct", Value: jct})
	case "-":
	default:
		hr.AddCookie(&http.Cookie{Name: "SESSDATA", Value: rq.cookie})
	}
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		return reply{HTTP: -1, Raw: err.Error()}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{HTTP: resp.StatusCode, Raw: string(raw)}
	var env struct {
		Code int             `json:"code"`
		Msg  *string         `json:"msg"`
		Data json.RawMessage `json:"data"`
	}
	if json.Unmarshal(raw, &env) == nil {
		r.Code, r.Msg, r.Data = env.Code, env.Msg, env.Data
	}
	return r
}

// --- an independent WBI signer, straight from the reference §9 ---

var testMixinTable = []int{46, 47, 18, 2, 53, 8, 23, 32, 15, 50, 10, 31, 58, 3, 45, 35, 27, 43, 5, 49, 33, 9, 42, 19, 29, 28, 14, 39, 12, 38, 41, 13, 37, 48, 7, 16, 24, 55, 40, 61, 26, 17, 0, 1, 60, 51, 30, 4, 22, 25, 54, 21, 56, 59, 6, 63, 57, 62, 11, 36, 20, 34, 44, 52}

func testSign(params url.Values, img, sub string) url.Values {
	raw := img + sub
	mixin := ""
	for _, i := range testMixinTable {
		mixin += string(raw[i])
	}
	mixin = mixin[:32]
	out := url.Values{}
	for k, v := range params {
		out[k] = v
	}
	out.Set("wts", strconv.FormatInt(time.Now().Unix(), 10))
	keys := make([]string, 0, len(out))
	for k := range out {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		v := strings.NewReplacer("!", "", "'", "", "(", "", ")", "", "*", "").Replace(out.Get(k))
		parts = append(parts, url.QueryEscape(k)+"="+strings.ReplaceAll(url.QueryEscape(v), "+", "%20"))
	}
	sum := md5.Sum([]byte(strings.Join(parts, "&") + mixin))
	out.Set("w_rid", hex.EncodeToString(sum[:]))
	return out
}

func signed(s *Server, q url.Values) url.Values {
	img, sub := s.WBIKeys()
	return testSign(q, img, sub)
}

func fetchQuery(talker uint64, st int, begin, end uint64, size int) url.Values {
	q := url.Values{"talker_id": {fmt.Sprint(talker)}, "session_type": {fmt.Sprint(st)}, "size": {fmt.Sprint(size)},
		"build": {"0"}, "mobi_app": {"web"}}
	if begin > 0 {
		q.Set("begin_seqno", fmt.Sprint(begin))
	}
	if end > 0 {
		q.Set("end_seqno", fmt.Sprint(end))
	}
	return q
}

type fetchResp struct {
	Messages []struct {
		SenderUID uint64 `json:"sender_uid"`
		MsgType   int    `json:"msg_type"`
		Content   string `json:"content"`
		MsgSeqno  uint64 `json:"msg_seqno"`
		MsgKey    uint64 `json:"msg_key"`
		MsgStatus int    `json:"msg_status"`
		MsgSource int    `json:"msg_source"`
	} `json:"messages"`
	HasMore  int    `json:"has_more"`
	MinSeqno uint64 `json:"min_seqno"`
	MaxSeqno uint64 `json:"max_seqno"`
}

func fetch(t *testing.T, s *Server, q url.Values) (reply, fetchResp) {
	t.Helper()
	r := call(t, s, req{path: pathMsgs, query: signed(s, q)})
	var f fetchResp
	if r.Code == 0 {
		if err := json.Unmarshal(r.Data, &f); err != nil {
			t.Fatalf("decode fetch: %v\n%s", err, r.Raw)
		}
	}
	return r, f
}

type sendArgs struct {
	receiver uint64
	rtype    int
	msgType  int
	content  string
}

func sendForm(a sendArgs) (url.Values, url.Values) {
	if a.rtype == 0 {
		a.rtype = 1
	}
	if a.msgType == 0 {
		a.msgType = 1
	}
	dev := "B0A6C1D2-3E4F-4A5B-8C6D-7E8F9A0B1C2D"
	q := url.Values{"w_sender_uid": {fmt.Sprint(me)}, "w_receiver_id": {fmt.Sprint(a.receiver)}, "w_dev_id": {dev}}
	f := url.Values{
		"msg[sender_uid]": {fmt.Sprint(me)}, "msg[receiver_id]": {fmt.Sprint(a.receiver)},
		"msg[receiver_type]": {fmt.Sprint(a.rtype)}, "msg[msg_type]": {fmt.Sprint(a.msgType)},
		"msg[msg_status]": {"0"}, "msg[dev_id]": {dev}, "msg[timestamp]": {fmt.Sprint(time.Now().Unix())},
		"msg[new_face_version]": {"0"}, "msg[content]": {a.content},
		"csrf": {jct}, "csrf_token": {jct}, "build": {"0"}, "mobi_app": {"web"},
	}
	return q, f
}

func send(t *testing.T, s *Server, a sendArgs) reply {
	t.Helper()
	q, f := sendForm(a)
	return call(t, s, req{path: pathSend, query: signed(s, q), form: f})
}

func sendText(t *testing.T, s *Server, to int64, text string) reply {
	t.Helper()
	return send(t, s, sendArgs{receiver: uint64(to), content: TextContent(text)})
}

func msgKeyOf(t *testing.T, r reply) uint64 {
	t.Helper()
	var d struct {
		MsgKey uint64 `json:"msg_key"`
	}
	if err := json.Unmarshal(r.Data, &d); err != nil || d.MsgKey == 0 {
		t.Fatalf("no msg_key in %s", r.Raw)
	}
	return d.MsgKey
}

// --- tests ---

func TestMixinKeyVector(t *testing.T) {
	got := MixinKey("7cd084941338484aae1ad9425b84077c", "4932caff0ff746eab6f01bf08b70ac45")
	if got != "ea1db124af3c7062474693fa704f4ff8" {
		t.Fatalf("mixin key = %s", got)
	}
	// The exported signer and the test's independent one agree.
	q := url.Values{"foo": {"one two"}, "bar": {"五一四"}, "zab": {"(x)!*'"}}
	now := time.Now()
	a := SignWBI(q, "7cd084941338484aae1ad9425b84077c", "4932caff0ff746eab6f01bf08b70ac45", now)
	b := testSign(q, "7cd084941338484aae1ad9425b84077c", "4932caff0ff746eab6f01bf08b70ac45")
	if a.Get("wts") == b.Get("wts") && a.Get("w_rid") != b.Get("w_rid") {
		t.Fatalf("signers disagree: %s vs %s", a.Get("w_rid"), b.Get("w_rid"))
	}
}

func TestMsgKeyIsExactRawInteger(t *testing.T) {
	s := newTestServer(t)
	d := s.Deliver(me, Message{SessionType: 1, TalkerID: uint64(friend), MsgType: 1, Content: TextContent("hi & <b>"), MsgSource: 2})
	if d.MsgKey <= 1<<53 {
		t.Fatalf("msg_key %d not above 2^53", d.MsgKey)
	}
	r, f := fetch(t, s, fetchQuery(uint64(friend), 1, 0, 0, 20))
	if r.Code != 0 || len(f.Messages) != 1 {
		t.Fatalf("fetch: %s", r.Raw)
	}
	if !strings.Contains(r.Raw, `"msg_key":`+strconv.FormatUint(d.MsgKey, 10)+",") {
		t.Fatalf("raw body lacks exact msg_key %d: %s", d.MsgKey, r.Raw)
	}
	if f.Messages[0].MsgKey != d.MsgKey || f.Messages[0].MsgSeqno != d.Seqno {
		t.Fatalf("typed decode: %+v vs %+v", f.Messages[0], d)
	}
	if f.Messages[0].Content != `{"content":"hi \u0026 \u003cb\u003e"}` {
		t.Fatalf("content %q", f.Messages[0].Content)
	}
	// UseNumber decode keeps it exact too; float64 would not.
	dec := json.NewDecoder(strings.NewReader(r.Raw))
	dec.UseNumber()
	var generic map[string]any
	if err := dec.Decode(&generic); err != nil {
		t.Fatal(err)
	}
	n := generic["data"].(map[string]any)["messages"].([]any)[0].(map[string]any)["msg_key"].(json.Number)
	if n.String() != strconv.FormatUint(d.MsgKey, 10) {
		t.Fatalf("UseNumber msg_key %s", n)
	}
	if *r.Msg != "0" {
		t.Fatalf("api.vc envelope should carry msg: %s", r.Raw)
	}
}

func TestFetchEmpty(t *testing.T) {
	s := newTestServer(t)
	d := s.Deliver(me, Message{SessionType: 1, TalkerID: uint64(friend), MsgType: 1, Content: TextContent("x")})
	for name, q := range map[string]url.Values{
		"never chatted": fetchQuery(uint64(stranger), 1, 0, 0, 20),
		"nothing newer": fetchQuery(uint64(friend), 1, d.Seqno, 0, 20),
	} {
		t.Run(name, func(t *testing.T) {
			r, _ := fetch(t, s, q)
			for _, want := range []string{`"messages":null`, `"min_seqno":18446744073709551615`, `"max_seqno":0`, `"has_more":0`} {
				if !strings.Contains(r.Raw, want) {
					t.Errorf("body lacks %s: %s", want, r.Raw)
				}
			}
		})
	}
}

func TestFetchNewestFirstPaging(t *testing.T) {
	s := newTestServer(t)
	var ds []Delivered
	for i := range 5 {
		ds = append(ds, s.Deliver(me, Message{SessionType: 1, TalkerID: uint64(friend), MsgType: 1, Content: TextContent(fmt.Sprint("m", i)), MsgSource: 2}))
	}
	for i := 1; i < len(ds); i++ {
		if ds[i].Seqno <= ds[i-1].Seqno || ds[i].MsgKey <= ds[i-1].MsgKey {
			t.Fatalf("seqno/msg_key not increasing: %+v", ds)
		}
	}
	tests := []struct {
		name       string
		begin, end uint64
		size       int
		want       []int // indexes into ds, newest first
		hasMore    int
	}{
		{"newest two", 0, 0, 2, []int{4, 3}, 1},
		{"page back by end_seqno", 0, ds[3].Seqno, 2, []int{2, 1}, 1},
		{"last page", 0, ds[1].Seqno, 2, []int{0}, 0},
		{"begin bound exclusive", ds[1].Seqno, 0, 10, []int{4, 3, 2}, 0},
		{"begin and end", ds[0].Seqno, ds[4].Seqno, 10, []int{3, 2, 1}, 0},
		{"truncated keeps newest above begin", ds[0].Seqno, 0, 2, []int{4, 3}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, f := fetch(t, s, fetchQuery(uint64(friend), 1, tt.begin, tt.end, tt.size))
			if r.Code != 0 {
				t.Fatalf("code %d: %s", r.Code, r.Raw)
			}
			var got []uint64
			for _, m := range f.Messages {
				got = append(got, m.MsgKey)
			}
			var want []uint64
			for _, i := range tt.want {
				want = append(want, ds[i].MsgKey)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) || f.HasMore != tt.hasMore {
				t.Fatalf("got %v has_more %d, want %v has_more %d", got, f.HasMore, want, tt.hasMore)
			}
			if f.MinSeqno != ds[tt.want[len(tt.want)-1]].Seqno || f.MaxSeqno != ds[tt.want[0]].Seqno {
				t.Fatalf("min/max seqno %d/%d", f.MinSeqno, f.MaxSeqno)
			}
		})
	}
}

func TestFetchSizeZeroOnlySystemTips(t *testing.T) {
	s := newTestServer(t)
	s.Deliver(me, Message{SessionType: 1, TalkerID: uint64(stranger), SenderUID: me, MsgType: 1, Content: TextContent("hello")})
	tip := s.Deliver(me, Message{SessionType: 1, TalkerID: uint64(stranger), SenderUID: me, MsgType: 18, MsgSource: 18, Content: TipContent("对方主动回复或关注你前，最多发送1条消息")})
	q := fetchQuery(uint64(stranger), 1, 0, 0, 0)
	q.Del("size")
	_, f := fetch(t, s, q)
	if len(f.Messages) != 1 || f.Messages[0].MsgKey != tip.MsgKey {
		t.Fatalf("size absent should return only the tip: %+v", f)
	}
}

func TestRemovedAndRecalledInFetch(t *testing.T) {
	s := newTestServer(t)
	a := s.Deliver(me, Message{SessionType: 1, TalkerID: uint64(friend), MsgType: 1, Content: TextContent("a")})
	b := s.Deliver(me, Message{SessionType: 1, TalkerID: uint64(friend), MsgType: 1, Content: TextContent("b")})
	if err := s.RemoveBySystem(me, uint64(friend), 1, a.MsgKey, false); err != nil {
		t.Fatal(err)
	}
	rc, err := s.Recall(me, uint64(friend), 1, b.MsgKey)
	if err != nil {
		t.Fatal(err)
	}
	_, f := fetch(t, s, fetchQuery(uint64(friend), 1, 0, 0, 20))
	if len(f.Messages) != 2 || f.Messages[0].MsgKey != rc.MsgKey || f.Messages[1].MsgKey != b.MsgKey {
		t.Fatalf("fetch = %+v", f.Messages)
	}
	if f.Messages[0].MsgType != 5 || f.Messages[0].Content != strconv.FormatUint(b.MsgKey, 10) || f.Messages[1].MsgStatus != 1 || f.Messages[1].Content == "" {
		t.Fatalf("recall shape: %+v", f.Messages)
	}
}

func TestNewSessions(t *testing.T) {
	s := newTestServer(t)
	s.AddSystem(System{TalkerID: 844424930131966, Name: "UP主小助手", PicURL: "https://message.biliimg.com/x.png", SystemMsgType: 7})
	s.AddGroup(Group{ID: 221082140, Name: "group", Cover: "http://i0.hdslb.com/c.jpg"})
	r := call(t, s, req{path: pathNew, query: url.Values{"begin_ts": {"0"}, "size": {"20"}}})
	if !strings.Contains(r.Raw, `"session_list":null`) {
		t.Fatalf("empty list should be null: %s", r.Raw)
	}
	s.Deliver(me, Message{SessionType: 1, TalkerID: uint64(friend), MsgType: 1, Content: TextContent("1")})
	s.Deliver(me, Message{SessionType: 2, TalkerID: 221082140, MsgType: 306, MsgSource: 13, Content: `{"group_id":221082140,"content":"欢迎x入群"}`})
	sys := s.Deliver(me, Message{SessionType: 1, TalkerID: 844424930131966, MsgType: 10, MsgSource: 6, Content: `{"title":"t"}`})

	type sess struct {
		TalkerID      uint64          `json:"talker_id"`
		SessionType   int             `json:"session_type"`
		SessionTs     int64           `json:"session_ts"`
		MaxSeqno      uint64          `json:"max_seqno"`
		UnreadCount   int             `json:"unread_count"`
		SystemMsgType int             `json:"system_msg_type"`
		AccountInfo   *accountInfo    `json:"account_info"`
		GroupName     string          `json:"group_name"`
		LastMsg       json.RawMessage `json:"last_msg"`
	}
	var d struct {
		SessionList []sess `json:"session_list"`
		HasMore     int    `json:"has_more"`
	}
	r = call(t, s, req{path: pathNew, query: url.Values{"begin_ts": {"0"}, "size": {"2"}}})
	if err := json.Unmarshal(r.Data, &d); err != nil {
		t.Fatal(err)
	}
	if len(d.SessionList) != 2 || d.HasMore != 1 || d.SessionList[0].TalkerID != 844424930131966 || d.SessionList[1].SessionType != 2 {
		t.Fatalf("newest first with has_more: %s", r.Raw)
	}
	top := d.SessionList[0]
	if top.SystemMsgType != 7 || top.AccountInfo == nil || top.AccountInfo.Name != "UP主小助手" || top.MaxSeqno != sys.Seqno || top.UnreadCount != 1 {
		t.Fatalf("system session: %+v", top)
	}
	if d.SessionList[1].GroupName != "group" || !strings.Contains(r.Raw, `"sender_uid":0`) || !strings.Contains(r.Raw, `"user_label":null`) {
		t.Fatalf("group session: %s", r.Raw)
	}
	// cursor: only sessions newer than begin_ts
	r = call(t, s, req{path: pathNew, query: url.Values{"begin_ts": {fmt.Sprint(d.SessionList[1].SessionTs)}}})
	var d2 struct {
		SessionList []sess `json:"session_list"`
	}
	_ = json.Unmarshal(r.Data, &d2)
	if len(d2.SessionList) != 1 || d2.SessionList[0].TalkerID != 844424930131966 {
		t.Fatalf("begin_ts filter: %s", r.Raw)
	}
	// get_sessions pages backwards with end_ts and lists system_msg
	r = call(t, s, req{path: pathGet, query: url.Values{"session_type": {"4"}, "size": {"1"}, "end_ts": {fmt.Sprint(top.SessionTs)}}})
	var g struct {
		SessionList []sess `json:"session_list"`
		HasMore     int    `json:"has_more"`
	}
	_ = json.Unmarshal(r.Data, &g)
	if len(g.SessionList) != 1 || g.SessionList[0].SessionType != 2 || g.HasMore != 1 {
		t.Fatalf("get_sessions end_ts: %s", r.Raw)
	}
	r = call(t, s, req{path: pathGet, query: url.Values{"session_type": {"4"}}})
	if !strings.Contains(r.Raw, `"system_msg":{"7":844424930131966}`) {
		t.Fatalf("system_msg map: %s", r.Raw)
	}
}

func TestSessionDetailAndAck(t *testing.T) {
	s := newTestServer(t)
	r := call(t, s, req{path: pathDet, query: url.Values{"talker_id": {fmt.Sprint(friend)}, "session_type": {"1"}}})
	if r.Code != 1000004 || string(r.Data) != "null" {
		t.Fatalf("never chatted: %s", r.Raw)
	}
	d1 := s.Deliver(me, Message{SessionType: 1, TalkerID: uint64(friend), MsgType: 1, Content: TextContent("1")})
	s.Deliver(me, Message{SessionType: 1, TalkerID: uint64(friend), MsgType: 1, Content: TextContent("2")})
	var u struct {
		FollowUnread int `json:"follow_unread"`
	}
	r = call(t, s, req{path: pathUnr})
	_ = json.Unmarshal(r.Data, &u)
	if u.FollowUnread != 2 {
		t.Fatalf("single_unread: %s", r.Raw)
	}
	form := url.Values{"talker_id": {fmt.Sprint(friend)}, "session_type": {"1"}, "ack_seqno": {fmt.Sprint(d1.Seqno)}, "csrf": {jct}, "csrf_token": {jct}}
	r = call(t, s, req{path: pathAck, form: form})
	if r.Code != 0 || string(r.Data) != "{}" {
		t.Fatalf("update_ack: %s", r.Raw)
	}
	if s.AckSeqno(me, 1, uint64(friend)) != d1.Seqno || s.UnreadCount(me, 1, uint64(friend)) != 1 || len(s.Acks(me)) != 1 {
		t.Fatalf("ack not recorded: %d", s.AckSeqno(me, 1, uint64(friend)))
	}
	r = call(t, s, req{path: pathDet, query: url.Values{"talker_id": {fmt.Sprint(friend)}, "session_type": {"1"}}})
	var det struct {
		UnreadCount int    `json:"unread_count"`
		AckSeqno    uint64 `json:"ack_seqno"`
	}
	_ = json.Unmarshal(r.Data, &det)
	if det.UnreadCount != 1 || det.AckSeqno != d1.Seqno {
		t.Fatalf("session_detail after ack: %s", r.Raw)
	}
}

func TestAuth(t *testing.T) {
	s := newTestServer(t)
	s.AddAccount(Account{UID: 42, Name: "expired", SESSDATA: "expired", BiliJct: "x"})
	s.SetLoginValid(42, false)
	tests := []struct {
		name   string
		cookie string
		path   string
		code   int
	}{
		{"no cookie new_sessions", "-", pathNew, -101},
		{"bad cookie fetch", "nope", pathMsgs, -101},
		{"expired send", "expired", pathSend, -101},
		{"expired nav", "expired", pathNav, -101},
		{"no cookie nav", "-", pathNav, -101},
		{"good nav", "", pathNav, 0},
		{"good unread", "", pathUnr, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rq := req{path: tt.path, cookie: tt.cookie}
			if tt.path == pathSend {
				rq.form = url.Values{"csrf": {"x"}, "csrf_token": {"x"}}
			}
			r := call(t, s, rq)
			if r.HTTP != 200 || r.Code != tt.code {
				t.Fatalf("http %d code %d: %s", r.HTTP, r.Code, r.Raw)
			}
			if tt.path == pathNav {
				var nav struct {
					IsLogin bool   `json:"isLogin"`
					Mid     int64  `json:"mid"`
					Uname   string `json:"uname"`
					WbiImg  struct {
						ImgURL string `json:"img_url"`
						SubURL string `json:"sub_url"`
					} `json:"wbi_img"`
				}
				if err := json.Unmarshal(r.Data, &nav); err != nil {
					t.Fatal(err)
				}
				if nav.IsLogin != (tt.code == 0) || nav.WbiImg.ImgURL != "https://i0.hdslb.com/bfs/wbi/7cd084941338484aae1ad9425b84077c.png" ||
					nav.WbiImg.SubURL != "https://i0.hdslb.com/bfs/wbi/4932caff0ff746eab6f01bf08b70ac45.png" {
					t.Fatalf("nav: %s", r.Raw)
				}
				if tt.code == 0 && (nav.Mid != me || nav.Uname != "me") {
					t.Fatalf("nav identity: %s", r.Raw)
				}
				if r.Msg != nil {
					t.Fatalf("api.bilibili.com envelope has no msg: %s", r.Raw)
				}
			}
		})
	}
	s.SetLoginValid(42, true)
	if r := call(t, s, req{path: pathNav, cookie: "expired"}); r.Code != 0 {
		t.Fatalf("revalidated: %s", r.Raw)
	}
}

func TestUserAgent(t *testing.T) {
	s := newTestServer(t)
	for _, ua := range []string{"Go-http-client/1.1", "python-requests/2.31", "curl/8.0"} {
		if r := call(t, s, req{path: pathNav, ua: ua}); r.HTTP != 200 || r.Code != -412 {
			t.Errorf("UA %q: %s", ua, r.Raw)
		}
	}
	if got := s.LastRequestHeader("nav").Get("Referer"); got != "https://message.bilibili.com/" {
		t.Errorf("Referer recorded = %q", got)
	}
	s.SetUserAgentCheck(false)
	if r := call(t, s, req{path: pathNav, ua: "curl/8.0"}); r.Code != 0 {
		t.Errorf("check off: %s", r.Raw)
	}
}

func TestCSRF(t *testing.T) {
	s := newTestServer(t)
	s.Deliver(me, Message{SessionType: 1, TalkerID: uint64(friend), MsgType: 1, Content: TextContent("1")})
	base := url.Values{"talker_id": {fmt.Sprint(friend)}, "session_type": {"1"}}
	with := func(kv ...string) url.Values {
		f := url.Values{}
		for k, v := range base {
			f[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			f.Set(kv[i], kv[i+1])
		}
		return f
	}
	tests := []struct {
		name string
		form url.Values
		code int
	}{
		{"both", with("csrf", jct, "csrf_token", jct), 0},
		{"csrf only", with("csrf", jct), -111},
		{"csrf_token only", with("csrf_token", jct), -111},
		{"wrong csrf_token", with("csrf", jct, "csrf_token", "bad"), -111},
		{"none", with(), -111},
	}
	for _, tt := range tests {
		t.Run("update_ack "+tt.name, func(t *testing.T) {
			if r := call(t, s, req{path: pathAck, form: tt.form}); r.Code != tt.code {
				t.Fatalf("code %d want %d: %s", r.Code, tt.code, r.Raw)
			}
		})
	}
	t.Run("send_msg without csrf_token", func(t *testing.T) {
		q, f := sendForm(sendArgs{receiver: uint64(friend), content: TextContent("x")})
		f.Del("csrf_token")
		if r := call(t, s, req{path: pathSend, query: signed(s, q), form: f}); r.Code != -111 {
			t.Fatalf("%s", r.Raw)
		}
	})
}

func TestWBI(t *testing.T) {
	s := newTestServer(t)
	q, f := sendForm(sendArgs{receiver: uint64(friend), content: TextContent("hello")})
	wrong := signed(s, q)
	wrong.Set("w_rid", strings.Repeat("0", 32))
	tampered := signed(s, q)
	tampered.Set("w_receiver_id", "1")
	tests := []struct {
		name  string
		query url.Values
		code  int
	}{
		{"unsigned", q, -400},
		{"wrong w_rid", wrong, -400},
		{"tampered param", tampered, -400},
		{"valid", signed(s, q), 0},
	}
	for _, tt := range tests {
		t.Run("send_msg "+tt.name, func(t *testing.T) {
			if r := call(t, s, req{path: pathSend, query: tt.query, form: f}); r.Code != tt.code {
				t.Fatalf("code %d want %d: %s", r.Code, tt.code, r.Raw)
			}
		})
	}
	t.Run("fetch unsigned -352 with v_voucher", func(t *testing.T) {
		r := call(t, s, req{path: pathMsgs, query: fetchQuery(uint64(friend), 1, 0, 0, 20)})
		var d struct {
			VVoucher string `json:"v_voucher"`
		}
		_ = json.Unmarshal(r.Data, &d)
		if r.Code != -352 || !strings.HasPrefix(d.VVoucher, "voucher_") {
			t.Fatalf("%s", r.Raw)
		}
	})
	t.Run("rotated keys", func(t *testing.T) {
		old := signed(s, q)
		oldFetch := signed(s, fetchQuery(uint64(friend), 1, 0, 0, 20))
		img, _ := s.RotateWBIKeys()
		if r := call(t, s, req{path: pathSend, query: old, form: f}); r.Code != -400 {
			t.Fatalf("old signature on send: %s", r.Raw)
		}
		if r := call(t, s, req{path: pathMsgs, query: oldFetch}); r.Code != -352 {
			t.Fatalf("old signature on fetch: %s", r.Raw)
		}
		if r := call(t, s, req{path: pathNav}); !strings.Contains(r.Raw, img) {
			t.Fatalf("nav does not serve new key: %s", r.Raw)
		}
		if r, _ := fetch(t, s, fetchQuery(uint64(friend), 1, 0, 0, 20)); r.Code != 0 {
			t.Fatalf("new signature: %s", r.Raw)
		}
	})
}

func TestSendRules(t *testing.T) {
	s := newTestServer(t)
	s.AddUser(User{UID: 777, Name: "stranger who wrote", FollowsAccount: false})
	s.Deliver(me, Message{SessionType: 1, TalkerID: 777, MsgType: 1, Content: TextContent("hi")})
	long := strings.Repeat("a", 2001-len(`{"content":""}`))
	tests := []struct {
		name string
		args sendArgs
		code int
	}{
		{"text ok", sendArgs{receiver: uint64(friend), content: TextContent("你好 [doge]")}, 0},
		{"2000 bytes but 1986 runes", sendArgs{receiver: uint64(friend), content: TextContent(long[1:])}, 21007},
		{"2001 bytes", sendArgs{receiver: uint64(friend), content: TextContent(long)}, 21007},
		{"500 runes", sendArgs{receiver: uint64(friend), content: TextContent(strings.Repeat("字", 500))}, 0},
		{"501 runes", sendArgs{receiver: uint64(friend), content: TextContent(strings.Repeat("字", 501))}, 21007},
		{"empty text", sendArgs{receiver: uint64(friend), content: TextContent("")}, -400},
		{"not json", sendArgs{receiver: uint64(friend), content: "hello"}, -400},
		{"to self", sendArgs{receiver: uint64(me), content: TextContent("me")}, 21026},
		{"bad msg_type", sendArgs{receiver: uint64(friend), msgType: 7, content: TextContent("x")}, 21035},
		{"image off host", sendArgs{receiver: uint64(friend), msgType: 2, content: ImageContent("https://example.com/a.png", 1, 1, "png", 1)}, 21037},
		{"image on host", sendArgs{receiver: uint64(friend), msgType: 2, content: ImageContent("http://i0.hdslb.com/bfs/im/abc.png", 1, 1, "png", 1)}, 0},
		{"stranger first", sendArgs{receiver: uint64(stranger), content: TextContent("1")}, 0},
		{"stranger second", sendArgs{receiver: uint64(stranger), content: TextContent("2")}, 21047},
		{"stranger who wrote first", sendArgs{receiver: 777, content: TextContent("a")}, 0},
		{"stranger who wrote second", sendArgs{receiver: 777, content: TextContent("b")}, 0},
		{"group not joined", sendArgs{receiver: 99, rtype: 2, content: TextContent("b")}, 700014},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r := send(t, s, tt.args); r.Code != tt.code {
				t.Fatalf("code %d want %d: %s", r.Code, tt.code, r.Raw)
			}
		})
	}
	if len(TextContent(long)) != 2001 {
		t.Fatal("test content is not 2001 bytes")
	}
	if n := len(s.Sent(me)); n != 6 {
		t.Fatalf("Sent = %d entries", n)
	}
	sent := s.Sent(me)[0]
	if sent.Form.Get("csrf") != "" || sent.Form.Get("msg[content]") != sent.Content || sent.DevID == "" {
		t.Fatalf("Sent record: %+v", sent)
	}
	// The sent message is in the conversation, sender = account, msg_source 7, session read.
	msgs := s.Messages(me, 1, uint64(friend))
	if len(msgs) != 3 || msgs[0].SenderUID != uint64(me) || msgs[0].MsgSource != 7 || msgs[0].ReceiverID != uint64(friend) {
		t.Fatalf("stored: %+v", msgs)
	}
	// stranger rule: the stranger replies, now the account may write again.
	s.Deliver(me, Message{SessionType: 1, TalkerID: uint64(stranger), MsgType: 1, Content: TextContent("reply")})
	if r := sendText(t, s, stranger, "3"); r.Code != 0 {
		t.Fatalf("after reply: %s", r.Raw)
	}
	// response shape like send_msg_text.json
	r := sendText(t, s, friend, "up主你好，\n催更[doge]")
	for _, want := range []string{`"msg_content":"{\"content\":\"up主你好，\\n催更[doge]\"}"`, `"key_hit_infos":{}`, `"e_infos":[{"text":"[doge]"`} {
		if !strings.Contains(r.Raw, want) {
			t.Errorf("send response lacks %s: %s", want, r.Raw)
		}
	}
}

func TestSendInterval(t *testing.T) {
	s := newTestServer(t)
	s.SetSendInterval(time.Hour)
	if r := sendText(t, s, friend, "1"); r.Code != 0 {
		t.Fatal(r.Raw)
	}
	if r := sendText(t, s, friend, "2"); r.Code != 21020 {
		t.Fatal(r.Raw)
	}
	s.SetSendInterval(0)
	if r := sendText(t, s, friend, "3"); r.Code != 0 {
		t.Fatal(r.Raw)
	}
}

func TestRecallRules(t *testing.T) {
	s := newTestServer(t)
	mine := msgKeyOf(t, sendText(t, s, friend, "oops"))
	old := s.Deliver(me, Message{SessionType: 1, TalkerID: uint64(friend), SenderUID: me, MsgType: 1, Content: TextContent("old"), Time: time.Now().Add(-3 * time.Minute)})
	theirs := s.Deliver(me, Message{SessionType: 1, TalkerID: uint64(friend), MsgType: 1, Content: TextContent("theirs")})
	otherSession := msgKeyOf(t, sendText(t, s, stranger, "elsewhere"))
	recall := func(key uint64) sendArgs {
		return sendArgs{receiver: uint64(friend), msgType: 5, content: strconv.FormatUint(key, 10)}
	}
	tests := []struct {
		name string
		args sendArgs
		code int
	}{
		{"own recent", recall(mine), 0},
		{"again", recall(mine), 21042},
		{"too old", recall(old.MsgKey), 21041},
		{"not mine", recall(theirs.MsgKey), 10005},
		{"other session", recall(otherSession), 10005},
		{"missing", recall(12345), 10005},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r := send(t, s, tt.args); r.Code != tt.code {
				t.Fatalf("code %d want %d: %s", r.Code, tt.code, r.Raw)
			}
		})
	}
	msgs := s.Messages(me, 1, uint64(friend))
	last := msgs[len(msgs)-1]
	if msgs[0].MsgStatus != 1 || last.MsgType != 5 || last.Content != strconv.FormatUint(mine, 10) {
		t.Fatalf("after recall: %+v", msgs)
	}
}

func TestFaults(t *testing.T) {
	s := newTestServer(t)
	s.Fail("new_sessions", 2, Fault{Code: -799})
	s.Fail("new_sessions", 1, Fault{Status: 502})
	s.Fail("new_sessions", 1, Fault{Body: "{not json"})
	s.Fail("new_sessions", 1, Fault{Code: -352})
	want := []struct {
		http int
		code int
		raw  string
	}{
		{200, -799, ""}, {200, -799, ""}, {502, 0, "<html>"}, {200, 0, "{not json"}, {200, -352, "v_voucher"}, {200, 0, `"session_list"`},
	}
	for i, w := range want {
		r := call(t, s, req{path: pathNew})
		if r.HTTP != w.http || r.Code != w.code || !strings.Contains(r.Raw, w.raw) {
			t.Fatalf("call %d: http %d code %d %s", i, r.HTTP, r.Code, r.Raw)
		}
	}
	if n := s.Calls("new_sessions"); n != len(want) {
		t.Fatalf("Calls = %d", n)
	}
	s.ResetCalls()
	if n := s.Calls("new_sessions"); n != 0 {
		t.Fatalf("after reset Calls = %d", n)
	}

	t.Run("delay respects the client's deadline, no action", func(t *testing.T) {
		s.Fail("send_msg", 1, Fault{Delay: 2 * time.Second})
		before := len(s.Sent(me))
		r := sendArgsTimeout(t, s, "late", 100*time.Millisecond)
		if r.HTTP != -1 {
			t.Fatalf("expected client timeout: %+v", r)
		}
		if len(s.Sent(me)) != before {
			t.Fatal("send performed without Apply")
		}
	})
	t.Run("delay with Apply performs the send", func(t *testing.T) {
		s.Fail("send_msg", 1, Fault{Delay: 2 * time.Second, Apply: true})
		before := len(s.Sent(me))
		r := sendArgsTimeout(t, s, "happened", 100*time.Millisecond)
		if r.HTTP != -1 {
			t.Fatalf("expected client timeout: %+v", r)
		}
		if got := s.Sent(me); len(got) != before+1 || got[len(got)-1].Content != TextContent("happened") {
			t.Fatalf("send not performed: %+v", got)
		}
	})
	t.Run("delay only answers normally", func(t *testing.T) {
		s.Fail("nav", 1, Fault{Delay: 50 * time.Millisecond, Header: http.Header{"X-Test": {"1"}}})
		if r := call(t, s, req{path: pathNav}); r.Code != 0 {
			t.Fatal(r.Raw)
		}
	})
	t.Run("forever until cleared", func(t *testing.T) {
		s.Fail("cards", -1, Fault{Code: -412})
		for range 3 {
			if r := call(t, s, req{path: pathCard, query: url.Values{"uids": {"1"}}}); r.Code != -412 {
				t.Fatal(r.Raw)
			}
		}
		s.ClearFaults()
		if r := call(t, s, req{path: pathCard, query: url.Values{"uids": {"1"}}}); r.Code != 0 {
			t.Fatal(r.Raw)
		}
	})
}

func sendArgsTimeout(t *testing.T, s *Server, text string, d time.Duration) reply {
	q, f := sendForm(sendArgs{receiver: uint64(friend), content: TextContent(text)})
	return call(t, s, req{path: pathSend, query: signed(s, q), form: f, timeout: d})
}

func TestCards(t *testing.T) {
	s := newTestServer(t)
	r := call(t, s, req{path: pathCard, query: url.Values{"uids": {fmt.Sprintf("%d,%d,%d,5", friend, stranger, me)}}})
	var cards []struct {
		Mid  int64  `json:"mid"`
		Name string `json:"name"`
	}
	if err := json.Unmarshal(r.Data, &cards); err != nil {
		t.Fatal(err, r.Raw)
	}
	got := map[int64]string{}
	for _, c := range cards {
		got[c.Mid] = c.Name
	}
	if len(cards) != 3 || got[friend] != "friend" || got[stranger] != "stranger" || got[me] != "me" {
		t.Fatalf("cards: %s", r.Raw)
	}
	var many []string
	for i := range 51 {
		many = append(many, fmt.Sprint(i+1))
	}
	r = call(t, s, req{path: pathCard, query: url.Values{"uids": {strings.Join(many, ",")}}})
	if r.Code != 0 || string(r.Data) != "[]" {
		t.Fatalf("51 uids: %s", r.Raw)
	}
}

func TestUpload(t *testing.T) {
	s := newTestServer(t)
	var img bytes.Buffer
	_ = png.Encode(&img, image.NewRGBA(image.Rect(0, 0, 73, 71)))
	build := func(file []byte, csrf string) ([]byte, string) {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		fw, _ := mw.CreateFormFile("file_up", "a.png")
		_, _ = fw.Write(file)
		_ = mw.WriteField("biz", "im")
		_ = mw.WriteField("category", "daily")
		_ = mw.WriteField("csrf", csrf)
		_ = mw.Close()
		return b.Bytes(), mw.FormDataContentType()
	}
	tests := []struct {
		name string
		file []byte
		csrf string
		code int
	}{
		{"png", img.Bytes(), jct, 0},
		{"not an image", []byte("hello"), jct, 4100001},
		{"bad csrf", img.Bytes(), "nope", -111},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, ct := build(tt.file, tt.csrf)
			r := call(t, s, req{method: http.MethodPost, path: pathUp, body: body, ctype: ct})
			if r.Code != tt.code {
				t.Fatalf("code %d: %s", r.Code, r.Raw)
			}
			if tt.code == 0 {
				var d struct {
					ImageURL    string  `json:"image_url"`
					ImageWidth  int     `json:"image_width"`
					ImageHeight int     `json:"image_height"`
					ImgSize     float64 `json:"img_size"`
				}
				_ = json.Unmarshal(r.Data, &d)
				if !strings.HasPrefix(d.ImageURL, "http://i0.hdslb.com/bfs/im/") || !strings.HasSuffix(d.ImageURL, ".png") ||
					d.ImageWidth != 73 || d.ImageHeight != 71 || d.ImgSize <= 0 {
					t.Fatalf("upload: %s", r.Raw)
				}
				// The uploaded URL is accepted by send_msg.
				if r := send(t, s, sendArgs{receiver: uint64(friend), msgType: 2, content: ImageContent(d.ImageURL, 73, 71, "png", d.ImgSize)}); r.Code != 0 {
					t.Fatalf("send uploaded: %s", r.Raw)
				}
			}
		})
	}
	if len(s.Uploads(me)) != 1 {
		t.Fatalf("uploads: %d", len(s.Uploads(me)))
	}
}

func TestConcurrentUse(t *testing.T) {
	s := newTestServer(t)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for j := range 10 {
				s.Deliver(me, Message{SessionType: 1, TalkerID: uint64(friend), MsgType: 1, Content: TextContent(fmt.Sprint(i, j))})
			}
		}()
		go func() {
			defer wg.Done()
			for range 5 {
				fetch(t, s, fetchQuery(uint64(friend), 1, 0, 0, 100))
				call(t, s, req{path: pathNew})
			}
		}()
	}
	wg.Wait()
	_, f := fetch(t, s, fetchQuery(uint64(friend), 1, 0, 0, 100))
	if len(f.Messages) != 40 {
		t.Fatalf("messages: %d", len(f.Messages))
	}
}

func TestSeedDemo(t *testing.T) {
	s := NewServer()
	defer s.Close()
	acc := s.SeedDemo()
	if acc.UID != DemoUID {
		t.Fatal(acc)
	}
	r := call(t, s, req{path: pathNew, cookie: DemoSESSDATA})
	if r.Code != 0 || strings.Count(r.Raw, `"talker_id"`) != 4 {
		t.Fatalf("demo sessions: %s", r.Raw)
	}
}

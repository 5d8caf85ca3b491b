package bilibili_test

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bilibridge/bilibridge/bilibili"
)

// fixtureServer answers each path with a recorded Bilibili response from
// ../testdata/bilibili (the shared fixtures), keyed by the path's last element.
func fixtureServer(t *testing.T, files map[string]string) *bilibili.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := filepath.Base(r.URL.Path)
		file, ok := files[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		b, err := os.ReadFile(filepath.Join("..", "testdata", "bilibili", file))
		if err != nil {
			t.Errorf("fixture %s: %v", file, err)
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	ep := bilibili.Endpoints{API: srv.URL, MainAPI: srv.URL, Passport: srv.URL, WWW: srv.URL}
	return bilibili.New(bilibili.Config{
		Credentials: bilibili.Credentials{SESSDATA: "s", BiliJct: "j", DedeUserID: "425503913"},
		Endpoints:   ep, HTTPClient: srv.Client(),
	})
}

func TestFixturesDecode(t *testing.T) {
	c := fixtureServer(t, map[string]string{
		"fetch_session_msgs": "fetch_session_msgs.json",
		"new_sessions":       "new_sessions.json",
		"get_sessions":       "get_sessions.json",
		"session_detail":     "session_detail.json",
		"single_unread":      "single_unread.json",
		"cards":              "user_cards.json",
		"upload_bfs":         "upload_bfs.json",
		"send_msg":           "send_msg_text.json",
		"nav":                "nav_logged_in.json",
		"update_ack":         "update_ack.json",
	})
	ctx := context.Background()

	page, err := c.FetchSessionMsgs(ctx, bilibili.FetchParams{SessionType: 1, TalkerID: 2239814, Size: 20})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != 2 || page.Messages[0].MsgKey != 7104537732714964358 || page.Messages[1].MsgType != 5 {
		t.Fatalf("fetch_session_msgs decoded wrong: %+v", page.Messages)
	}
	if page.MinSeqno != 308188515844097 || page.MaxSeqno != 309675413389322 || page.HasMore {
		t.Errorf("page bounds: min %d max %d more %v", page.MinSeqno, page.MaxSeqno, page.HasMore)
	}
	if len(page.Emotes) != 1 || page.Emotes[0].Text != "[口罩]" {
		t.Errorf("e_infos: %+v", page.Emotes)
	}

	ns, err := c.NewSessions(ctx, 0, 20)
	if err != nil {
		t.Fatal(err)
	}
	sys := ns.Sessions[0]
	if sys.TalkerID != 844424930131966 || !sys.IsSystem() || sys.AccountInfo.Name != "UP主小助手" || sys.SessionTS != 1712305278098351 {
		t.Errorf("system session: %+v", sys)
	}
	if sys.LastMsg == nil || sys.LastMsg.MsgKey != 7354295169819585966 || sys.LastMsg.AtUIDs != nil {
		t.Errorf("last_msg: %+v", sys.LastMsg)
	}

	if _, err := c.GetSessions(ctx, bilibili.GetSessionsParams{}); err != nil {
		t.Errorf("get_sessions: %v", err)
	}
	if _, err := c.SessionDetail(ctx, 1, 293793435); err != nil {
		t.Errorf("session_detail: %v", err)
	}
	u, err := c.SingleUnread(ctx)
	if err != nil || u.FollowUnread != 6 || u.Total() != 7 {
		t.Errorf("single_unread: %+v %v", u, err)
	}
	cards, err := c.UserCards(ctx, []int64{1, 2, 3})
	if err != nil || len(cards) != 3 || cards[0].Name != "囧囧倉" {
		t.Errorf("cards: %+v %v", cards, err)
	}
	img, err := c.UploadImage(ctx, "a.png", []byte("\x89PNG\r\n\x1a\n"))
	if err != nil || img.Width != 73 || img.SizeKB != 6.261 {
		t.Errorf("upload: %+v %v", img, err)
	}
	res, err := c.SendText(ctx, 1, 2, "hi")
	if err != nil || res.MsgKey != 6984393491767669026 {
		t.Errorf("send: %+v %v", res, err)
	}
	if err := c.UpdateAck(ctx, 1, 2, 3); err != nil {
		t.Errorf("update_ack: %v", err)
	}
}

func TestNullArraysAndEmptyPage(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch filepath.Base(r.URL.Path) {
		case "fetch_session_msgs":
			w.Write([]byte(`{"code":0,"msg":"0","message":"0","ttl":1,"data":{"messages":null,"has_more":0,"min_seqno":18446744073709551615,"max_seqno":0}}`))
		case "new_sessions":
			w.Write([]byte(`{"code":0,"msg":"0","message":"0","ttl":1,"data":{"session_list":null,"has_more":0}}`))
		case "nav":
			w.Write([]byte(`{"code":0,"message":"0","data":{"isLogin":true,"mid":1,"wbi_img":{"img_url":"https://x/7cd084941338484aae1ad9425b84077c.png","sub_url":"https://x/4932caff0ff746eab6f01bf08b70ac45.png"}}}`))
		}
	}))
	defer srv.Close()
	c := bilibili.New(bilibili.Config{Credentials: bilibili.Credentials{SESSDATA: "s", BiliJct: "j"},
		Endpoints: bilibili.Endpoints{API: srv.URL, MainAPI: srv.URL}, HTTPClient: srv.Client()})
	page, err := c.FetchSessionMsgs(context.Background(), bilibili.FetchParams{SessionType: 1, TalkerID: 1})
	if err != nil {
		t.Fatal(err)
	}
	if page.MinSeqno != math.MaxUint64 || len(page.Messages) != 0 {
		t.Errorf("min_seqno %d, messages %v", page.MinSeqno, page.Messages)
	}
	ns, err := c.NewSessions(context.Background(), 1, 20)
	if err != nil || len(ns.Sessions) != 0 {
		t.Errorf("null session_list: %v %v", ns, err)
	}
}

func TestMsgKeyAbove2p53SurvivesRoundTrip(t *testing.T) {
	const key = uint64(7354295169819585966) // > 2^53: a float64 would round it
	in := `{"sender_uid":1,"msg_type":1,"content":"{\"content\":\"x\"}","msg_seqno":18446744073709551614,"msg_key":7354295169819585966}`
	var m bilibili.Message
	if err := json.Unmarshal([]byte(in), &m); err != nil {
		t.Fatal(err)
	}
	if m.MsgKey != key || m.MsgSeqno != math.MaxUint64-1 {
		t.Fatalf("decoded msg_key %d seqno %d", m.MsgKey, m.MsgSeqno)
	}
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `"msg_key":7354295169819585966`) {
		t.Errorf("re-encoded: %s", out)
	}
	if float64(key) == float64(key+1) && uint64(float64(key)) == key {
		t.Fatal("test value does not exercise float rounding")
	}
}

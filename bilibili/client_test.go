package bilibili_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bilibridge/bilibridge/bilibili"
	"github.com/bilibridge/bilibridge/bilibili/bilitest"
)

const (
	testUID      int64 = 425503913
	testSESSDATA       = "sess%2C1893456000%2Csecret*31"
	testJct            = "0123456789abcdef0123456789abcdef"
	friend       int64 = 293793435
	stranger     int64 = 3493118494116797
)

// newFake starts a fake Bilibili with one account, a friend and a stranger,
// and a client logged in as the account.
func newFake(t *testing.T) (*bilitest.Server, *bilibili.Client) {
	t.Helper()
	fake := bilitest.NewServer()
	t.Cleanup(fake.Close)
	fake.AddAccount(bilitest.Account{UID: testUID, Name: "me", SESSDATA: testSESSDATA, BiliJct: testJct})
	fake.AddUser(bilitest.User{UID: friend, Name: "friend", FollowsAccount: true})
	fake.AddUser(bilitest.User{UID: stranger, Name: "stranger"})
	return fake, newClient(t, fake, bilibili.Credentials{SESSDATA: testSESSDATA, BiliJct: testJct, DedeUserID: fmt.Sprint(testUID)})
}

func newClient(t *testing.T, fake *bilitest.Server, cr bilibili.Credentials) *bilibili.Client {
	t.Helper()
	u := fake.URL()
	return bilibili.New(bilibili.Config{
		Credentials: cr,
		Endpoints:   bilibili.Endpoints{API: u, MainAPI: u, Passport: u, WWW: u},
		HTTPClient:  fake.Client(),
		Timeout:     2 * time.Second,
	})
}

func TestMixinKeyVector(t *testing.T) {
	// Test vector of the reference (§9).
	got := bilibili.MixinKey("7cd084941338484aae1ad9425b84077c", "4932caff0ff746eab6f01bf08b70ac45")
	if want := "ea1db124af3c7062474693fa704f4ff8"; got != want {
		t.Fatalf("MixinKey = %s, want %s", got, want)
	}
}

func TestSignWBI(t *testing.T) {
	mixin := bilibili.MixinKey("7cd084941338484aae1ad9425b84077c", "4932caff0ff746eab6f01bf08b70ac45")
	wts := time.Unix(1702204169, 0)
	tests := []struct {
		name   string
		params url.Values
		want   string
	}{
		// The reference's worked example.
		{"reference", url.Values{"foo": {"114"}, "bar": {"514"}, "zab": {"1919810"}},
			"bar=514&foo=114&wts=1702204169&zab=1919810&w_rid=8f6f2b5b3d485fe1886cec6a0be8c5d4"},
		// Space as %20, upper-case hex, !'()* removed: computed with
		// Python's urllib.parse.quote(safe="") and hashlib.md5.
		{"encoding", url.Values{"foo": {"one two!"}, "bar": {"五一(4)*"}},
			"bar=%E4%BA%94%E4%B8%804&foo=one%20two&wts=1702204169&w_rid=8b17fa63ee8c2afa1c00451f081c25d6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := bilibili.SignWBI(tt.params, mixin, wts); got != tt.want {
				t.Errorf("SignWBI = %s\nwant        %s", got, tt.want)
			}
		})
	}
}

func TestSendTextRoundTrip(t *testing.T) {
	fake, c := newFake(t)
	res, err := c.SendText(context.Background(), bilibili.SessionUser, uint64(friend), "up主你好，\n催更[doge] <b>&")
	if err != nil {
		t.Fatal(err)
	}
	sent := fake.Sent(testUID)
	if len(sent) != 1 {
		t.Fatalf("fake recorded %d sends", len(sent))
	}
	s := sent[0]
	if s.MsgKey != res.MsgKey || res.MsgKey < 1<<53 {
		t.Errorf("msg_key %d, fake stored %d", res.MsgKey, s.MsgKey)
	}
	var content struct{ Content string }
	if err := json.Unmarshal([]byte(s.Content), &content); err != nil || content.Content != "up主你好，\n催更[doge] <b>&" {
		t.Errorf("content %q (%v)", s.Content, err)
	}
	if !regexp.MustCompile(`^[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$`).MatchString(s.DevID) {
		t.Errorf("dev_id %q is not an upper-case UUID v4", s.DevID)
	}
	for _, field := range []string{"msg[sender_uid]", "msg[receiver_id]", "msg[receiver_type]", "msg[msg_type]", "msg[msg_status]",
		"msg[dev_id]", "msg[timestamp]", "msg[new_face_version]", "msg[content]", "build", "mobi_app"} {
		if s.Form.Get(field) == "" {
			t.Errorf("form field %s missing", field)
		}
	}
	q := fake.LastRequestQuery("send_msg")
	for _, k := range []string{"w_sender_uid", "w_receiver_id", "w_dev_id", "wts", "w_rid"} {
		if q.Get(k) == "" {
			t.Errorf("query %s missing", k)
		}
	}
	h := fake.LastRequestHeader("send_msg")
	if h.Get("Origin") != "https://message.bilibili.com" || !strings.HasPrefix(h.Get("Referer"), "https://message.bilibili.com") {
		t.Errorf("Origin %q Referer %q", h.Get("Origin"), h.Get("Referer"))
	}
	if !strings.Contains(h.Get("User-Agent"), "Mozilla/5.0") {
		t.Errorf("User-Agent %q", h.Get("User-Agent"))
	}
}

func TestWBIKeysRefreshedAfterRotation(t *testing.T) {
	fake, c := newFake(t)
	ctx := context.Background()
	if _, err := c.SendText(ctx, 1, uint64(friend), "one"); err != nil {
		t.Fatal(err)
	}
	fake.RotateWBIKeys()
	if _, err := c.SendText(ctx, 1, uint64(friend), "two"); err != nil {
		t.Fatalf("send after key rotation: %v", err)
	}
	if n := fake.Calls("nav"); n != 2 {
		t.Errorf("nav called %d times, want 2 (initial keys, then refresh after -400)", n)
	}
	if n := len(fake.Sent(testUID)); n != 2 {
		t.Errorf("%d messages sent, want 2", n)
	}
}

func TestImageSendThroughUpload(t *testing.T) {
	fake, c := newFake(t)
	ctx := context.Background()
	var buf bytes.Buffer
	img := image.NewRGBA(image.Rect(0, 0, 40, 30))
	img.Set(1, 1, color.RGBA{255, 0, 0, 255})
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	up, err := c.UploadImage(ctx, "photo.png", buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if up.Width != 40 || up.Height != 30 || up.URL == "" {
		t.Errorf("upload answer %+v", up)
	}
	uploads := fake.Uploads(testUID)
	if len(uploads) != 1 || uploads[0].Biz != "im" || !bytes.Equal(uploads[0].Bytes, buf.Bytes()) {
		t.Fatalf("fake uploads %+v", uploads)
	}
	if _, err := c.SendImage(ctx, 1, uint64(friend), *up, "png"); err != nil {
		t.Fatal(err)
	}
	sent := fake.Sent(testUID)
	if len(sent) != 1 || sent[0].MsgType != 2 || !strings.Contains(sent[0].Content, up.URL) {
		t.Fatalf("sent %+v", sent)
	}
}

func TestErrorClasses(t *testing.T) {
	tests := []struct {
		name      string
		fault     bilitest.Fault
		class     bilibili.Class
		code      int
		retryable bool
	}{
		{"not logged in", bilitest.Fault{Code: -101}, bilibili.ClassLoginExpired, -101, false},
		{"csrf", bilitest.Fault{Code: -111}, bilibili.ClassLoginExpired, -111, false},
		{"risk control", bilitest.Fault{Code: -352}, bilibili.ClassRiskControl, -352, true},
		{"intercepted", bilitest.Fault{Code: -412}, bilibili.ClassRiskControl, -412, true},
		{"too many", bilitest.Fault{Code: -799}, bilibili.ClassRiskControl, -799, true},
		{"too fast", bilitest.Fault{Code: 21020}, bilibili.ClassRateLimited, 21020, true},
		{"blocked a day", bilitest.Fault{Code: 21046}, bilibili.ClassBlocked, 21046, false},
		{"stranger", bilitest.Fault{Code: 21047}, bilibili.ClassRefusedByPeer, 21047, false},
		{"privacy", bilitest.Fault{Code: 25003}, bilibili.ClassRefusedByPeer, 25003, false},
		{"blacklisted", bilitest.Fault{Code: 25005}, bilibili.ClassRefusedByPeer, 25005, false},
		{"too long", bilitest.Fault{Code: 21007}, bilibili.ClassInvalidRequest, 21007, false},
		{"self", bilitest.Fault{Code: 21026}, bilibili.ClassInvalidRequest, 21026, false},
		{"bad request", bilitest.Fault{Code: -400}, bilibili.ClassInvalidRequest, -400, false},
		{"HTTP 502", bilitest.Fault{Status: 502}, bilibili.ClassTransient, 0, true},
		{"HTTP 412", bilitest.Fault{Status: 412}, bilibili.ClassRiskControl, 0, true},
		{"malformed body", bilitest.Fault{Body: "{not json"}, bilibili.ClassTransient, 0, true},
		{"HTML body", bilitest.Fault{Body: "<html>busy</html>"}, bilibili.ClassTransient, 0, true},
		{"timeout", bilitest.Fault{Delay: 5 * time.Second}, bilibili.ClassTransient, 0, true},
		// Bilibili's busy backend answers HTTP 200 with these: passing.
		{"server error", bilitest.Fault{Code: -500}, bilibili.ClassTransient, -500, true},
		{"service unavailable", bilitest.Fault{Code: -503}, bilibili.ClassTransient, -503, true},
		{"gateway timeout", bilitest.Fault{Code: -504}, bilibili.ClassTransient, -504, true},
		{"system error", bilitest.Fault{Code: -3}, bilibili.ClassTransient, -3, true},
		{"over limit", bilitest.Fault{Code: -509}, bilibili.ClassRateLimited, -509, true},
		// What is not known is passing, never final.
		{"unknown negative code", bilitest.Fault{Code: -12345}, bilibili.ClassUnknown, -12345, true},
		{"unknown positive code", bilitest.Fault{Code: 4242}, bilibili.ClassUnknown, 4242, true},
		{"HTTP 418", bilitest.Fault{Status: 418}, bilibili.ClassUnknown, 0, true},
		// Known to be final.
		{"group dissolved", bilitest.Fault{Code: 700013}, bilibili.ClassPermanent, 700013, false},
		{"not in group", bilitest.Fault{Code: 700014}, bilibili.ClassPermanent, 700014, false},
		{"phone binding", bilitest.Fault{Code: 21015}, bilibili.ClassPermanent, 21015, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake, c := newFake(t)
			fake.Fail("new_sessions", 1, tt.fault)
			_, err := c.NewSessions(context.Background(), 0, 20)
			if err == nil {
				t.Fatal("no error")
			}
			if got := bilibili.Classify(err); got != tt.class {
				t.Errorf("Classify(%v) = %s, want %s", err, got, tt.class)
			}
			if got := bilibili.Code(err); got != tt.code {
				t.Errorf("Code = %d, want %d", got, tt.code)
			}
			if got := bilibili.Classify(err).Retryable(); got != tt.retryable {
				t.Errorf("Retryable = %v for %s, want %v", got, tt.class, tt.retryable)
			}
			maybe := tt.class == bilibili.ClassTransient || tt.class == bilibili.ClassUnknown
			if got := bilibili.MaybeTookEffect(err); got != maybe {
				t.Errorf("MaybeTookEffect = %v, want %v", got, maybe)
			}
			// The fault was for one call only: the next one works.
			if _, err := c.NewSessions(context.Background(), 0, 20); err != nil {
				t.Errorf("call after the fault: %v", err)
			}
		})
	}
}

func TestRiskControlCarriesVoucher(t *testing.T) {
	fake, c := newFake(t)
	fake.Fail("new_sessions", 1, bilitest.Fault{Code: -352})
	_, err := c.NewSessions(context.Background(), 0, 20)
	var apiErr *bilibili.APIError
	if !errors.As(err, &apiErr) || !strings.HasPrefix(apiErr.VVoucher, "voucher_") {
		t.Fatalf("err %v", err)
	}
}

func TestRealRulesFromTheFake(t *testing.T) {
	fake, c := newFake(t)
	ctx := context.Background()
	if _, err := c.SendText(ctx, 1, uint64(stranger), "first message to a stranger"); err != nil {
		t.Fatal(err)
	}
	_, err := c.SendText(ctx, 1, uint64(stranger), "second")
	if !bilibili.IsRefusedByPeer(err) || bilibili.Code(err) != bilibili.CodeStrangerLimit {
		t.Errorf("second message to a stranger: %v", err)
	}
	if !strings.Contains(bilibili.Reason(err), "only one message") {
		t.Errorf("Reason(21047) = %q", bilibili.Reason(err))
	}
	_, err = c.SendText(ctx, 1, uint64(testUID), "me")
	if bilibili.Code(err) != bilibili.CodeMessageSelf {
		t.Errorf("message to self: %v", err)
	}
	_, err = c.SendMsg(ctx, bilibili.Outgoing{ReceiverType: 1, ReceiverID: uint64(friend), MsgType: 1, Content: bilibili.EncodeText(strings.Repeat("长", 700))})
	if bilibili.Code(err) != bilibili.CodeTooLong {
		t.Errorf("2100-byte content: %v", err)
	}
	bad := newClient(t, fake, bilibili.Credentials{SESSDATA: testSESSDATA, BiliJct: "wrong", DedeUserID: fmt.Sprint(testUID)})
	if _, err := bad.SendText(ctx, 1, uint64(friend), "x"); !bilibili.IsLoginExpired(err) || bilibili.Code(err) != -111 {
		t.Errorf("wrong csrf: %v", err)
	}
	fake.SetLoginValid(testUID, false)
	if _, err := c.NewSessions(ctx, 0, 20); !bilibili.IsLoginExpired(err) {
		t.Errorf("expired login: %v", err)
	}
	nav, err := c.Nav(ctx)
	if !bilibili.IsLoginExpired(err) || nav.IsLogin || nav.WbiImg.ImgURL == "" {
		t.Errorf("nav when logged out: %+v %v", nav, err)
	}
}

func TestFetchPagingAndEmpty(t *testing.T) {
	fake, c := newFake(t)
	ctx := context.Background()
	var want []uint64
	for i := range 5 {
		d := fake.Deliver(testUID, bilitest.Message{SessionType: 1, TalkerID: uint64(friend), MsgType: 1, Content: bilitest.TextContent(fmt.Sprint(i))})
		want = append(want, d.MsgKey)
	}
	page, err := c.FetchSessionMsgs(ctx, bilibili.FetchParams{SessionType: 1, TalkerID: uint64(friend), Size: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != 2 || !page.HasMore || page.Messages[0].MsgKey != want[4] {
		t.Fatalf("first page %+v more %v", page.Messages, page.HasMore)
	}
	empty, err := c.FetchSessionMsgs(ctx, bilibili.FetchParams{SessionType: 1, TalkerID: uint64(friend), BeginSeqno: page.MaxSeqno, Size: 20})
	if err != nil {
		t.Fatal(err)
	}
	if empty.MinSeqno != ^uint64(0) || len(empty.Messages) != 0 {
		t.Errorf("empty page min_seqno %d, %d messages", empty.MinSeqno, len(empty.Messages))
	}
}

func TestUserCardsBatchesOf50(t *testing.T) {
	fake, c := newFake(t)
	uids := make([]int64, 120)
	for i := range uids {
		uids[i] = int64(i + 1)
	}
	uids[7] = friend
	cards, err := c.UserCards(context.Background(), uids)
	if err != nil {
		t.Fatal(err)
	}
	if n := fake.Calls("cards"); n != 3 {
		t.Errorf("%d calls for 120 uids, want 3", n)
	}
	if len(cards) != 1 || cards[0].Name != "friend" {
		t.Errorf("cards %+v", cards)
	}
}

func TestSecretsNeverFormatted(t *testing.T) {
	fake, c := newFake(t)
	cr := c.Credentials()
	cr.RefreshToken = "refresh-secret-token"
	var logBuf bytes.Buffer
	slog.New(slog.NewTextHandler(&logBuf, nil)).Info("x", "creds", cr, "cfg", bilibili.Config{Credentials: cr})
	fake.Fail("new_sessions", 1, bilitest.Fault{Code: -101})
	_, err := c.NewSessions(context.Background(), 0, 20)
	out := fmt.Sprintf("%v %+v %#v %s %v %+v %#v %v %s", cr, cr, cr, c, c, bilibili.Config{Credentials: cr}, bilibili.Config{Credentials: cr}, err, logBuf.String())
	for _, secret := range []string{testSESSDATA, "secret", testJct, "refresh-secret-token"} {
		if strings.Contains(out, secret) {
			t.Errorf("secret %q appears in %s", secret, out)
		}
	}
}

func TestSplitText(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []string
	}{
		{"short", "hello", []string{"hello"}},
		{"empty", "", nil},
		{"prefers line breaks", strings.Repeat("a", 300) + "\n" + strings.Repeat("b", 300),
			[]string{strings.Repeat("a", 300), strings.Repeat("b", 300)}},
		{"runes not bytes", strings.Repeat("长", 600), []string{strings.Repeat("长", 500), strings.Repeat("长", 100)}},
		{"escaped bytes", strings.Repeat("<", 400), []string{strings.Repeat("<", 331), strings.Repeat("<", 69)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := bilibili.SplitText(tt.text)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("SplitText: got %d parts %q", len(got), got)
			}
			for _, p := range got {
				if n := len([]rune(p)); n > bilibili.MaxTextRunes {
					t.Errorf("part of %d runes", n)
				}
				if n := len(bilibili.EncodeText(p)); n > bilibili.MaxContentBytes {
					t.Errorf("part encodes to %d bytes", n)
				}
			}
		})
	}
}

func TestSplitTextAcceptedByFake(t *testing.T) {
	fake, c := newFake(t)
	text := strings.Repeat("一二三四五六七八九十<&>\n", 120) // 1,680 runes, heavy escaping
	parts := bilibili.SplitText(text)
	for _, p := range parts {
		if _, err := c.SendText(context.Background(), 1, uint64(friend), p); err != nil {
			t.Fatalf("part of %d runes refused: %v", len([]rune(p)), err)
		}
	}
	var joined strings.Builder
	for _, s := range fake.Sent(testUID) {
		var v struct{ Content string }
		json.Unmarshal([]byte(s.Content), &v)
		joined.WriteString(v.Content + "\n")
	}
	if joined.String() != text {
		t.Errorf("parts do not add up to the text")
	}
}

func TestRecallOwnMessage(t *testing.T) {
	fake, c := newFake(t)
	ctx := context.Background()
	res, err := c.SendText(ctx, 1, uint64(friend), "oops")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Recall(ctx, 1, uint64(friend), res.MsgKey); err != nil {
		t.Fatalf("recall: %v", err)
	}
	var status int
	for _, m := range fake.Messages(testUID, 1, uint64(friend)) {
		if m.MsgKey == res.MsgKey {
			status = m.MsgStatus
		}
	}
	if status != bilibili.StatusRecalled {
		t.Errorf("recalled message has status %d", status)
	}
	_, err = c.Recall(ctx, 1, uint64(friend), res.MsgKey)
	if bilibili.Code(err) != bilibili.CodeAlreadyRecalled {
		t.Errorf("second recall: %v", err)
	}
}

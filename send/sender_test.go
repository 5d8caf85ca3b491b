package send_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/bilibridge/bilibridge/bilibili"
	"github.com/bilibridge/bilibridge/bilibili/bilitest"
	"github.com/bilibridge/bilibridge/bus"
	"github.com/bilibridge/bilibridge/bus/bustest"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/send"
)

const (
	sndUID      int64  = 425503913
	sndFriend   int64  = 293793435
	sndStranger int64  = 2239814
	sndGroup    uint64 = 221082140
)

// sendRig is one account on a fake Bilibili with a real JetStream, for the
// sender and the API.
type sendRig struct {
	t        *testing.T
	fake     *bilitest.Server
	client   *bilibili.Client
	conn     *bus.Conn
	store    *bus.Store
	pub      *bus.Publisher
	subjects events.Subjects
}

type rigOptions struct {
	clientTimeout time.Duration
}

func newSendRig(t *testing.T, opts rigOptions) *sendRig {
	t.Helper()
	fake := bilitest.NewServer()
	t.Cleanup(fake.Close)
	fake.AddAccount(bilitest.Account{UID: sndUID, Name: "me", SESSDATA: "sess", BiliJct: "jct"})
	fake.AddUser(bilitest.User{UID: sndFriend, Name: "friend", FollowsAccount: true})
	fake.AddUser(bilitest.User{UID: sndStranger, Name: "stranger", FollowsAccount: false})
	fake.AddGroup(bilitest.Group{ID: sndGroup, Name: "fan group"})
	if opts.clientTimeout == 0 {
		opts.clientTimeout = 5 * time.Second
	}
	u := fake.URL()
	client := bilibili.New(bilibili.Config{
		Credentials: bilibili.Credentials{SESSDATA: "sess", BiliJct: "jct", DedeUserID: fmt.Sprint(sndUID)},
		Endpoints:   bilibili.Endpoints{API: u, MainAPI: u, Passport: u, WWW: u},
		HTTPClient:  fake.Client(),
		Timeout:     opts.clientTimeout,
		Limiter:     rate.NewLimiter(rate.Inf, 1),
		SendLimiter: rate.NewLimiter(rate.Inf, 1),
	})
	srv := bustest.StartServer(t)
	conn := srv.Connect(t)
	store := bustest.Provision(t, conn, time.Second)
	return &sendRig{t: t, fake: fake, client: client, conn: conn, store: store, pub: &bus.Publisher{JS: conn.JS}}
}

func (r *sendRig) senderConfig() send.SenderConfig {
	return send.SenderConfig{
		AccountUID: sndUID, API: r.client, Outbox: r.store.Outbox, Records: r.store.Records, State: r.store.State,
		Publisher: r.pub, Subjects: r.subjects,
		RetrySchedule: []time.Duration{20 * time.Millisecond, 20 * time.Millisecond, 20 * time.Millisecond, 20 * time.Millisecond},
		Images:        &send.ImageFetcher{AllowPrivateNetworks: true, Timeout: 5 * time.Second},
		AckWait:       2 * time.Second,
	}
}

// start runs a sender until the returned stop is called (or the test ends).
func (r *sendRig) start(cfg send.SenderConfig) (stop func()) {
	r.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	s := send.NewSender(cfg)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				r.t.Errorf("sender: %v", err)
			}
		})
	}
	r.t.Cleanup(stop)
	return stop
}

// command publishes a send command the way a sink or the API does.
func (r *sendRig) command(sessionType int, talker uint64, cmd events.SendCommand) {
	r.t.Helper()
	data, err := json.Marshal(cmd)
	if err != nil {
		r.t.Fatal(err)
	}
	r.raw(r.subjects.Send(sndUID, sessionType, talker), send.OutboxMsgID(sndUID, cmd.CommandID), data)
}

func (r *sendRig) raw(subject, msgID string, data []byte) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := r.pub.PublishRaw(ctx, subject, msgID, data, nil); err != nil {
		r.t.Fatal(err)
	}
}

type sendResult struct {
	subject string
	event   events.Event
	data    events.SendResultData
}

// results are the send results on stream BILI with the id of commandID.
func (r *sendRig) results(commandID string) []sendResult {
	r.t.Helper()
	var out []sendResult
	for _, m := range bustest.StreamEvents(r.t, r.store.Events) {
		if m.Event.ID != events.SendResultID(sndUID, commandID) {
			continue
		}
		var d events.SendResultData
		if err := m.Event.DecodeData(&d); err != nil {
			r.t.Fatal(err)
		}
		out = append(out, sendResult{m.Subject, m.Event, d})
	}
	return out
}

// result waits for the one result of commandID.
func (r *sendRig) result(commandID string) sendResult {
	r.t.Helper()
	bustest.Eventually(r.t, "the result of "+commandID, func() bool { return len(r.results(commandID)) > 0 })
	res := r.results(commandID)
	if len(res) != 1 {
		r.t.Fatalf("%d results for %s, want 1", len(res), commandID)
	}
	return res[0]
}

func (r *sendRig) outboxEmpty() {
	r.t.Helper()
	bustest.Eventually(r.t, "an empty outbox", func() bool {
		info, err := r.store.Outbox.Info(context.Background())
		return err == nil && info.State.Msgs == 0
	})
}

func (r *sendRig) sentTexts() []string {
	var out []string
	for _, s := range r.fake.Sent(sndUID) {
		var c struct{ Content string }
		_ = json.Unmarshal([]byte(s.Content), &c)
		out = append(out, c.Content)
	}
	return out
}

func wantSucceeded(t *testing.T, res sendResult, sent []bilitest.Sent) {
	t.Helper()
	if res.event.Type != events.TypeSendSucceeded {
		t.Fatalf("result %s: %+v, want succeeded", res.event.Type, res.data)
	}
	if len(res.data.MsgKeys) != len(sent) {
		t.Fatalf("msg_keys %v, want the %d messages sent", res.data.MsgKeys, len(sent))
	}
	for i, s := range sent {
		if res.data.MsgKeys[i] != fmt.Sprint(s.MsgKey) {
			t.Errorf("msg_keys[%d] = %s, want %d", i, res.data.MsgKeys[i], s.MsgKey)
		}
	}
	if last := sent[len(sent)-1].MsgKey; res.data.MsgKey != last {
		t.Errorf("msg_key = %d, want the last part's %d", res.data.MsgKey, last)
	}
}

func longText(runes int) string {
	var b strings.Builder
	n := 0
	for line := 1; n < runes; line++ {
		l := fmt.Sprintf("第%03d行：这是一条很长的回复，用来测试分段发送。", line)
		for _, r := range l {
			if n == runes-1 {
				break
			}
			b.WriteRune(r)
			n++
		}
		if n < runes {
			b.WriteByte('\n')
			n++
		}
	}
	return b.String()
}

func TestSenderSplitsLongTextInOrder(t *testing.T) {
	r := newSendRig(t, rigOptions{})
	r.start(r.senderConfig())
	text := longText(1200)
	origin := &events.Origin{Platform: "telegram", User: "alice", Ref: "chat/1"}
	r.command(1, uint64(sndFriend), events.SendCommand{CommandID: "long-1", Text: text, Origin: origin})
	res := r.result("long-1")

	parts := bilibili.SplitText(text)
	if len(parts) < 3 {
		t.Fatalf("the test text splits into %d parts; want at least 3", len(parts))
	}
	if got := r.sentTexts(); strings.Join(got, "\x00") != strings.Join(parts, "\x00") {
		t.Fatalf("sent %d parts, want the %d parts of SplitText in order", len(got), len(parts))
	}
	sent := r.fake.Sent(sndUID)
	wantSucceeded(t, res, sent)
	if res.subject != r.subjects.Sent(sndUID, 1, uint64(sndFriend)) {
		t.Errorf("subject %s", res.subject)
	}
	want := events.Conversation{SessionType: 1, TalkerID: uint64(sndFriend), Kind: "user"}
	if res.data.Conversation != want || res.data.CommandID != "long-1" || res.data.AccountUID != sndUID {
		t.Errorf("result data %+v", res.data)
	}
	if res.data.Origin == nil || *res.data.Origin != *origin {
		t.Errorf("origin %+v, want %+v", res.data.Origin, origin)
	}
	if res.event.Subject != "1/293793435" || res.event.Source != "bilibili://425503913" {
		t.Errorf("envelope %+v", res.event)
	}
	r.outboxEmpty()
}

func TestSenderGroupMessage(t *testing.T) {
	r := newSendRig(t, rigOptions{})
	r.start(r.senderConfig())
	r.command(2, sndGroup, events.SendCommand{CommandID: "g-1", Text: "hi all"})
	res := r.result("g-1")
	sent := r.fake.Sent(sndUID)
	if len(sent) != 1 || sent[0].ReceiverType != 2 || sent[0].ReceiverID != sndGroup {
		t.Fatalf("sent %+v", sent)
	}
	wantSucceeded(t, res, sent)
	if res.data.Conversation.Kind != "group" {
		t.Errorf("conversation kind %q, want group", res.data.Conversation.Kind)
	}
}

func pngBytes(t *testing.T) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 40, 30))
	for x := range 40 {
		img.Set(x, x%30, color.RGBA{R: 200, A: 255})
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func imageServer(t *testing.T) *httptest.Server {
	t.Helper()
	pic := pngBytes(t)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/reply.png":
			w.Header().Set("Content-Type", "application/octet-stream") // detected by content, not by this
			_, _ = w.Write(pic)
		case "/page.html":
			_, _ = w.Write([]byte("<html><body>not an image</body></html>"))
		case "/huge.png":
			_, _ = w.Write(pic)
			_, _ = w.Write(make([]byte, send.MaxImageBytes))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(ts.Close)
	return ts
}

func TestSenderImageReply(t *testing.T) {
	r := newSendRig(t, rigOptions{})
	ts := imageServer(t)
	r.start(r.senderConfig())
	r.command(1, uint64(sndFriend), events.SendCommand{CommandID: "img-1", ImageURL: ts.URL + "/reply.png?sig=abc"})
	res := r.result("img-1")

	ups := r.fake.Uploads(sndUID)
	if len(ups) != 1 || ups[0].Biz != "im" || !bytes.Equal(ups[0].Bytes, pngBytes(t)) {
		t.Fatalf("uploads %+v, want the PNG once with biz=im", ups)
	}
	sent := r.fake.Sent(sndUID)
	if len(sent) != 1 || sent[0].MsgType != 2 {
		t.Fatalf("sent %+v, want one type-2 message", sent)
	}
	var c bilibili.ImageContent
	if err := json.Unmarshal([]byte(sent[0].Content), &c); err != nil {
		t.Fatal(err)
	}
	if c.URL != ups[0].ImageURL || c.Width != 40 || c.Height != 30 || c.ImageType != "png" {
		t.Errorf("image content %+v, want the uploaded %s 40x30 png", c, ups[0].ImageURL)
	}
	wantSucceeded(t, res, sent)
}

func TestSenderImageRefused(t *testing.T) {
	r := newSendRig(t, rigOptions{})
	ts := imageServer(t)
	r.start(r.senderConfig())
	for _, tc := range []struct{ id, path, want string }{
		{"img-html", "/page.html", "not a JPEG, PNG or GIF"},
		{"img-404", "/missing.png", "HTTP 404"},
		{"img-huge", "/huge.png", "larger than 10 MiB"},
	} {
		r.command(1, uint64(sndFriend), events.SendCommand{CommandID: tc.id, ImageURL: ts.URL + tc.path})
		res := r.result(tc.id)
		if res.event.Type != events.TypeSendFailed || res.data.ErrorCode != 0 || !strings.Contains(res.data.Error, tc.want) {
			t.Errorf("%s: %s %+v, want failed with %q", tc.id, res.event.Type, res.data, tc.want)
		}
	}
	if n := len(r.fake.Uploads(sndUID)); n != 0 {
		t.Errorf("%d uploads", n)
	}
}

func TestImageFetcherRefusesPrivateAddresses(t *testing.T) {
	ts := imageServer(t)
	f := &send.ImageFetcher{}
	_, err := f.Fetch(context.Background(), ts.URL+"/reply.png")
	if err == nil || !strings.Contains(err.Error(), "private or local") {
		t.Fatalf("err = %v, want a refusal of the loopback address", err)
	}
	if _, err := f.Fetch(context.Background(), "file:///etc/passwd"); err == nil {
		t.Fatal("a file URL was fetched")
	}
}

func TestSenderTimedOutSendIsNotSentTwice(t *testing.T) {
	r := newSendRig(t, rigOptions{clientTimeout: 500 * time.Millisecond})
	// The send happens, but its answer comes after the client gave up.
	r.fake.Fail("send_msg", 1, bilitest.Fault{Delay: 2 * time.Second, Apply: true})
	r.start(r.senderConfig())
	r.command(1, uint64(sndFriend), events.SendCommand{CommandID: "slow-1", Text: "did this go out?"})
	res := r.result("slow-1")

	sent := r.fake.Sent(sndUID)
	if len(sent) != 1 {
		t.Fatalf("%d messages sent, want exactly 1", len(sent))
	}
	mine := 0
	for _, m := range r.fake.Messages(sndUID, 1, uint64(sndFriend)) {
		if m.SenderUID == uint64(sndUID) {
			mine++
		}
	}
	if mine != 1 {
		t.Fatalf("%d messages from the account in the conversation, want 1", mine)
	}
	wantSucceeded(t, res, sent)
	if n := r.fake.Calls("send_msg"); n != 1 {
		t.Errorf("send_msg called %d times, want 1", n)
	}
	if r.fake.Calls("fetch_session_msgs") == 0 {
		t.Error("the conversation was not checked before deciding")
	}
}

func TestSenderTimedOutSendThatDidNotHappenIsSentAgain(t *testing.T) {
	r := newSendRig(t, rigOptions{clientTimeout: 500 * time.Millisecond})
	r.fake.Fail("send_msg", 1, bilitest.Fault{Delay: 2 * time.Second}) // never performed
	// An identical earlier message from another command must not count.
	r.start(r.senderConfig())
	r.command(1, uint64(sndFriend), events.SendCommand{CommandID: "first", Text: "ok"})
	r.result("first")
	r.fake.Fail("send_msg", 1, bilitest.Fault{Delay: 2 * time.Second})
	r.command(1, uint64(sndFriend), events.SendCommand{CommandID: "second", Text: "ok"})
	res := r.result("second")
	sent := r.fake.Sent(sndUID)
	if len(sent) != 2 {
		t.Fatalf("%d messages sent, want 2 (one per command)", len(sent))
	}
	wantSucceeded(t, res, sent[1:])
}

func TestSenderRetriesRateLimit(t *testing.T) {
	r := newSendRig(t, rigOptions{})
	r.fake.Fail("send_msg", 1, bilitest.Fault{Code: bilibili.CodeSendTooFast})
	r.start(r.senderConfig())
	r.command(1, uint64(sndFriend), events.SendCommand{CommandID: "fast-1", Text: "hello"})
	res := r.result("fast-1")
	sent := r.fake.Sent(sndUID)
	wantSucceeded(t, res, sent)
	if len(sent) != 1 || r.fake.Calls("send_msg") != 2 {
		t.Errorf("sent %d, send_msg calls %d; want 1 message after 2 calls", len(sent), r.fake.Calls("send_msg"))
	}
}

func TestSenderGivesUpAfterRetries(t *testing.T) {
	r := newSendRig(t, rigOptions{})
	r.fake.Fail("send_msg", -1, bilitest.Fault{Code: bilibili.CodeSendTooFast})
	cfg := r.senderConfig()
	r.start(cfg)
	r.command(1, uint64(sndFriend), events.SendCommand{CommandID: "fast-2", Text: "hello"})
	res := r.result("fast-2")
	if res.event.Type != events.TypeSendFailed || res.data.ErrorCode != bilibili.CodeSendTooFast {
		t.Fatalf("%s %+v", res.event.Type, res.data)
	}
	if n, want := r.fake.Calls("send_msg"), len(cfg.RetrySchedule)+1; n != want {
		t.Errorf("send_msg called %d times, want %d", n, want)
	}
}

func TestSenderPermanentErrorsAreNotRetried(t *testing.T) {
	r := newSendRig(t, rigOptions{})
	r.start(r.senderConfig())
	// A stranger accepts one message until they reply.
	r.command(1, uint64(sndStranger), events.SendCommand{CommandID: "s-1", Text: "hi there"})
	if res := r.result("s-1"); res.event.Type != events.TypeSendSucceeded {
		t.Fatalf("first message to the stranger: %+v", res.data)
	}
	r.command(1, uint64(sndStranger), events.SendCommand{CommandID: "s-2", Text: "are you there?"})
	res := r.result("s-2")
	if res.event.Type != events.TypeSendFailed || res.data.ErrorCode != bilibili.CodeStrangerLimit {
		t.Fatalf("%s %+v, want failed with 21047", res.event.Type, res.data)
	}
	if want := bilibili.Reason(&bilibili.APIError{Code: bilibili.CodeStrangerLimit}); res.data.Error != want {
		t.Errorf("error %q, want %q", res.data.Error, want)
	}
	if n := r.fake.Calls("send_msg"); n != 2 {
		t.Errorf("send_msg called %d times, want 2 (no retry of 21047)", n)
	}

	for _, code := range []int{bilibili.CodePeerPrivacy, bilibili.CodePeerBlacklisted, bilibili.CodeTooLong, bilibili.CodeMessageSelf, bilibili.CodeNotLoggedIn} {
		before := r.fake.Calls("send_msg")
		r.fake.Fail("send_msg", 1, bilitest.Fault{Code: code})
		id := fmt.Sprintf("perm-%d", code)
		r.command(1, uint64(sndFriend), events.SendCommand{CommandID: id, Text: "x"})
		res := r.result(id)
		if res.event.Type != events.TypeSendFailed || res.data.ErrorCode != code || res.data.Error == "" {
			t.Errorf("code %d: %s %+v", code, res.event.Type, res.data)
		}
		if n := r.fake.Calls("send_msg") - before; n != 1 {
			t.Errorf("code %d: %d send_msg calls, want 1", code, n)
		}
	}
}

func TestSenderStopsAfterBlock(t *testing.T) {
	r := newSendRig(t, rigOptions{})
	r.fake.Fail("send_msg", 1, bilitest.Fault{Code: bilibili.CodeSendBlocked})
	stop := r.start(r.senderConfig())
	r.command(1, uint64(sndFriend), events.SendCommand{CommandID: "b-1", Text: "one"})
	if res := r.result("b-1"); res.data.ErrorCode != bilibili.CodeSendBlocked {
		t.Fatalf("%+v", res.data)
	}
	r.command(1, uint64(sndFriend), events.SendCommand{CommandID: "b-2", Text: "two"})
	if res := r.result("b-2"); res.event.Type != events.TypeSendFailed || res.data.ErrorCode != bilibili.CodeSendBlocked {
		t.Fatalf("%+v", res.data)
	}
	// The block outlives a restart.
	stop()
	r.start(r.senderConfig())
	r.command(1, uint64(sndFriend), events.SendCommand{CommandID: "b-3", Text: "three"})
	if res := r.result("b-3"); res.data.ErrorCode != bilibili.CodeSendBlocked {
		t.Fatalf("%+v", res.data)
	}
	if n := r.fake.Calls("send_msg"); n != 1 {
		t.Errorf("send_msg called %d times while blocked, want only the first", n)
	}
}

func TestSenderMalformedCommands(t *testing.T) {
	r := newSendRig(t, rigOptions{})
	r.start(r.senderConfig())
	talker := uint64(sndFriend)
	for _, tc := range []struct {
		name    string
		subject string
		msgID   string
		body    string
		want    string
	}{
		{"not json", r.subjects.Send(sndUID, 1, talker), "m-json", `{"command_id":`, "not valid JSON"},
		{"no command id", r.subjects.Send(sndUID, 1, talker), "m-noid", `{"text":"hi"}`, "no command_id"},
		{"both", r.subjects.Send(sndUID, 1, talker), "m-both", `{"command_id":"m-both","text":"hi","image_url":"https://x.test/a.png"}`, "not both"},
		{"neither", r.subjects.Send(sndUID, 1, talker), "m-neither", `{"command_id":"m-neither"}`, "text or image_url"},
		{"blank text", r.subjects.Send(sndUID, 1, talker), "m-blank", `{"command_id":"m-blank","text":" \n "}`, "empty"},
		{"ftp image", r.subjects.Send(sndUID, 1, talker), "m-ftp", `{"command_id":"m-ftp","image_url":"ftp://x.test/a.png"}`, "http or https"},
		{"session type 3", r.subjects.Send(sndUID, 3, talker), "m-st", `{"command_id":"m-st","text":"hi"}`, "session_type"},
		{"talker 0", r.subjects.Send(sndUID, 1, 0), "m-talker", `{"command_id":"m-talker","text":"hi"}`, "talker_id"},
		{"bad id", r.subjects.Send(sndUID, 1, talker), "m-badid", `{"command_id":"a b","text":"hi"}`, "command_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r.raw(tc.subject, tc.msgID, []byte(tc.body))
			res := r.result(tc.msgID)
			if res.event.Type != events.TypeSendFailed || res.data.ErrorCode != 0 || !strings.Contains(res.data.Error, tc.want) {
				t.Errorf("%s %+v, want failed mentioning %q", res.event.Type, res.data, tc.want)
			}
		})
	}
	r.outboxEmpty()
	if n := r.fake.Calls("send_msg"); n != 0 {
		t.Errorf("send_msg called %d times", n)
	}
}

func TestSenderRestartDoesNotResend(t *testing.T) {
	r := newSendRig(t, rigOptions{})
	stop := r.start(r.senderConfig())
	cmd := events.SendCommand{CommandID: "once-1", Text: "only once"}
	r.command(1, uint64(sndFriend), cmd)
	first := r.result("once-1")
	stop()

	// The same command again, past the outbox's de-duplication (another
	// Nats-Msg-Id, as after the duplicate window), to a new sender.
	data, _ := json.Marshal(cmd)
	r.raw(r.subjects.Send(sndUID, 1, uint64(sndFriend)), "once-1-again", data)
	r.start(r.senderConfig())
	r.outboxEmpty()
	if n := len(r.fake.Sent(sndUID)); n != 1 {
		t.Fatalf("%d messages sent, want 1", n)
	}
	if res := r.results("once-1"); len(res) != 1 || res[0].data.MsgKey != first.data.MsgKey {
		t.Fatalf("results %+v", res)
	}
}

func TestSenderResumesAfterCrashMidText(t *testing.T) {
	r := newSendRig(t, rigOptions{clientTimeout: time.Minute})
	text := longText(1800)
	parts := bilibili.SplitText(text)
	if len(parts) != 4 {
		t.Fatalf("the test text splits into %d parts, want 4", len(parts))
	}
	// Parts 1 and 2 go through; part 3 is stored but its answer never
	// comes before the process dies.
	r.fake.Fail("send_msg", 2, bilitest.Fault{})
	r.fake.Fail("send_msg", 1, bilitest.Fault{Delay: time.Hour, Apply: true})
	stop := r.start(r.senderConfig())
	r.command(1, uint64(sndFriend), events.SendCommand{CommandID: "crash-1", Text: text})
	bustest.Eventually(t, "part 3 stored", func() bool { return len(r.fake.Sent(sndUID)) == 3 })
	stop()
	if n := len(r.results("crash-1")); n != 0 {
		t.Fatalf("%d results before the restart", n)
	}

	r.start(r.senderConfig())
	res := r.result("crash-1")
	if got := r.sentTexts(); strings.Join(got, "\x00") != strings.Join(parts, "\x00") {
		t.Fatalf("sent %d parts, want the 4 parts once each, in order", len(got))
	}
	wantSucceeded(t, res, r.fake.Sent(sndUID))
	if n := r.fake.Calls("send_msg"); n != 4 {
		t.Errorf("send_msg called %d times, want 4", n)
	}
}

func TestSenderIgnoresOtherAccounts(t *testing.T) {
	r := newSendRig(t, rigOptions{})
	r.start(r.senderConfig())
	other := events.Subjects{}.Send(sndUID+1, 1, uint64(sndFriend))
	r.raw(other, "other-1", []byte(`{"command_id":"other-1","text":"not mine"}`))
	r.command(1, uint64(sndFriend), events.SendCommand{CommandID: "mine-1", Text: "mine"})
	r.result("mine-1")
	if n := len(r.fake.Sent(sndUID)); n != 1 {
		t.Fatalf("%d sent", n)
	}
	info, err := r.store.Outbox.Info(context.Background())
	if err != nil || info.State.Msgs != 1 {
		t.Fatalf("outbox holds %v messages (err %v), want the other account's 1", info.State.Msgs, err)
	}
}

// An image pasted in the inbox is read from the uploads store, by any
// bridge process: its URL names the process that received it, which may
// listen elsewhere (here: nowhere at all).
func TestImageFetcherReadsUploadsFromTheStore(t *testing.T) {
	st := bustest.Provision(t, bustest.StartServer(t).Connect(t), time.Second)
	ctx := context.Background()
	if _, err := st.Uploads.PutBytes(ctx, "aGVsbG8td29ybGQtMTIz", pngBytes(t)); err != nil {
		t.Fatal(err)
	}
	f := &send.ImageFetcher{Uploads: st.Uploads, Timeout: 5 * time.Second}
	img, err := f.Fetch(ctx, "http://127.0.0.1:1/api/v1/images/aGVsbG8td29ybGQtMTIz")
	if err != nil || img.Type != "png" || len(img.Data) == 0 {
		t.Fatalf("an uploaded image: %+v %v", img, err)
	}
	var ie *send.ImageError
	if _, err := f.Fetch(ctx, "http://127.0.0.1:1/api/v1/images/bm8tc3VjaC1pbWFnZQ"); !errors.As(err, &ie) {
		t.Fatalf("an unknown upload: %v, want an ImageError", err)
	}
	// Only the bridge's own (loopback) URLs are read from the store.
	if _, err := f.Fetch(ctx, "http://10.0.0.1/api/v1/images/aGVsbG8td29ybGQtMTIz"); err == nil || !strings.Contains(err.Error(), "private or local") {
		t.Fatalf("another host's URL: %v, want it fetched over HTTP (and refused)", err)
	}
}

// A sender stopped while it is still starting stops cleanly (a bridge
// stopped at once after its start reported an error).
func TestSenderStoppedWhileStarting(t *testing.T) {
	r := newSendRig(t, rigOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := send.NewSender(r.senderConfig()).Run(ctx); err != nil {
		t.Fatalf("a sender stopped before it could start: %v", err)
	}
}

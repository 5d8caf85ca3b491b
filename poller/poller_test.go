package poller_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/bilibridge/bilibridge/bilibili"
	"github.com/bilibridge/bilibridge/bilibili/bilitest"
	"github.com/bilibridge/bilibridge/bus"
	"github.com/bilibridge/bilibridge/bus/bustest"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/poller"
	"github.com/bilibridge/bilibridge/testlog"
)

const (
	uid      int64  = 425503913
	friend   int64  = 293793435
	other    int64  = 2239814
	systemID uint64 = 844424930131966
	groupID  uint64 = 221082140
)

// rig is one account on a fake Bilibili, polled into a real JetStream.
type rig struct {
	t      *testing.T
	fake   *bilitest.Server
	client *bilibili.Client
	conn   *bus.Conn
	store  *bus.Store
	pub    *bus.Publisher
}

func newRig(t *testing.T) *rig {
	t.Helper()
	fake := bilitest.NewServer()
	t.Cleanup(fake.Close)
	fake.AddAccount(bilitest.Account{UID: uid, Name: "me", SESSDATA: "sess", BiliJct: "jct"})
	fake.AddUser(bilitest.User{UID: friend, Name: "friend", Face: "https://i0.hdslb.com/f.jpg", FollowsAccount: true})
	fake.AddUser(bilitest.User{UID: other, Name: "other", FollowsAccount: true})
	fake.AddSystem(bilitest.System{TalkerID: systemID, Name: "UP主小助手", PicURL: "https://i0.hdslb.com/s.png", SystemMsgType: 7})
	fake.AddGroup(bilitest.Group{ID: groupID, Name: "fan group", Cover: "https://i0.hdslb.com/g.jpg"})
	u := fake.URL()
	client := bilibili.New(bilibili.Config{
		Credentials: bilibili.Credentials{SESSDATA: "sess", BiliJct: "jct", DedeUserID: fmt.Sprint(uid)},
		Endpoints:   bilibili.Endpoints{API: u, MainAPI: u, Passport: u, WWW: u},
		HTTPClient:  fake.Client(),
		Timeout:     2 * time.Second,
		// Pacing is the client's business; these tests count calls.
		Limiter: rate.NewLimiter(rate.Inf, 0),
	})
	srv := bustest.StartServer(t)
	conn := srv.Connect(t)
	store := bustest.Provision(t, conn, time.Second)
	return &rig{t: t, fake: fake, client: client, conn: conn, store: store, pub: &bus.Publisher{JS: conn.JS}}
}

func (r *rig) poller(mod func(*poller.Config)) *poller.Poller {
	cfg := poller.Config{
		AccountUID: uid, AccountName: "me", API: r.client, Publisher: r.pub, Cursors: r.store.Cursors,
		Interval: 10 * time.Millisecond, LoginRetry: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
	}
	if mod != nil {
		mod(&cfg)
	}
	return poller.New(cfg)
}

func (r *rig) deliver(talker int64, text string) bilitest.Delivered {
	return r.fake.Deliver(uid, bilitest.Message{SessionType: 1, TalkerID: uint64(talker), MsgType: 1, Content: bilitest.TextContent(text), MsgSource: 2})
}

func (r *rig) events() []bustest.Msg {
	r.t.Helper()
	return bustest.StreamEvents(r.t, r.store.Events)
}

func (r *rig) pollOnce(p *poller.Poller) {
	r.t.Helper()
	if err := p.PollOnce(context.Background()); err != nil {
		r.t.Fatalf("poll: %v", err)
	}
}

// totalCalls counts every request the fake saw.
func (r *rig) totalCalls() int {
	n := 0
	for _, ep := range []string{"nav", "new_sessions", "get_sessions", "session_detail", "single_unread", "my_group_unread",
		"fetch_session_msgs", "update_ack", "send_msg", "cards", "upload_bfs"} {
		n += r.fake.Calls(ep)
	}
	return n
}

func messageData(t *testing.T, m bustest.Msg) events.MessageData {
	t.Helper()
	var d events.MessageData
	if err := m.Event.DecodeData(&d); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestNewMessageBecomesOneEvent(t *testing.T) {
	r := newRig(t)
	p := r.poller(nil)
	r.pollOnce(p) // first start: nothing to publish yet
	if n := len(r.events()); n != 0 {
		t.Fatalf("%d events after the first poll of an empty account", n)
	}
	d := r.deliver(friend, "hello <b>")
	r.pollOnce(p)
	evs := r.events()
	if len(evs) != 1 {
		t.Fatalf("%d events, want 1", len(evs))
	}
	got := evs[0]
	wantID := fmt.Sprintf("%d-%d", uid, d.MsgKey)
	if got.Subject != fmt.Sprintf("bili.%d.msg.1.%d", uid, friend) || got.MsgID != wantID || got.Event.ID != wantID {
		t.Errorf("subject %s, Nats-Msg-Id %s, id %s; want id %s", got.Subject, got.MsgID, got.Event.ID, wantID)
	}
	data := messageData(t, got)
	m := data.Message
	if m.MsgKey != d.MsgKey || m.Seqno != d.Seqno || d.MsgKey < 1<<53 {
		t.Errorf("msg_key %d seqno %d, want %d %d", m.MsgKey, m.Seqno, d.MsgKey, d.Seqno)
	}
	if !strings.Contains(string(got.Event.Data), fmt.Sprintf(`"msg_key":"%d"`, d.MsgKey)) {
		t.Errorf("msg_key not an exact decimal string in %s", got.Event.Data)
	}
	if m.Direction != "in" || m.Text != "hello <b>" || m.Kind != events.KindText || m.SenderName != "friend" {
		t.Errorf("message %+v", m)
	}
	if c := data.Conversation; c.Kind != "user" || c.Name != "friend" || c.Avatar == "" || c.TalkerID != uint64(friend) {
		t.Errorf("conversation %+v", c)
	}
}

func TestIdlePollIsOneCall(t *testing.T) {
	r := newRig(t)
	p := r.poller(nil)
	r.pollOnce(p)
	r.fake.ResetCalls()
	r.pollOnce(p)
	if n, all := r.fake.Calls("new_sessions"), r.totalCalls(); n != 1 || all != 1 {
		t.Errorf("idle poll made %d new_sessions calls and %d calls in all; want 1 and 1", n, all)
	}
	// k changed conversations cost 1 + k calls, plus one name lookup for
	// all the talkers not seen before.
	r.deliver(friend, "a")
	r.deliver(other, "b")
	r.fake.ResetCalls()
	r.pollOnce(p)
	if n := r.fake.Calls("new_sessions") + r.fake.Calls("fetch_session_msgs"); n != 3 {
		t.Errorf("two changed conversations cost %d calls, want 3", n)
	}
	if n := r.fake.Calls("cards"); n != 1 {
		t.Errorf("%d user card calls for two new talkers, want 1", n)
	}
}

func TestRestartPublishesNothingTwiceAndMissesNothing(t *testing.T) {
	r := newRig(t)
	r.pollOnce(r.poller(nil))
	r.deliver(friend, "1")
	r.pollOnce(r.poller(nil))
	// A new poller over the same KV is a restarted process.
	r.pollOnce(r.poller(nil))
	if n := len(r.events()); n != 1 {
		t.Fatalf("%d events after a restart, want 1", n)
	}
	r.deliver(friend, "2")
	r.deliver(friend, "3")
	r.pollOnce(r.poller(nil))
	evs := r.events()
	if len(evs) != 3 {
		t.Fatalf("%d events, want 3", len(evs))
	}
	for i, want := range []string{"1", "2", "3"} {
		if got := messageData(t, evs[i]).Message.Text; got != want {
			t.Errorf("event %d text %q, want %q", i, got, want)
		}
	}
}

// crashAfterPublish publishes, then fails as a process killed before it
// saved its cursor would.
type crashAfterPublish struct {
	inner *bus.Publisher
	after int
	n     int
}

var errKilled = errors.New("killed")

func (c *crashAfterPublish) Publish(ctx context.Context, subject string, ev events.Event) error {
	if err := c.inner.Publish(ctx, subject, ev); err != nil {
		return err
	}
	c.n++
	if c.n >= c.after {
		return errKilled
	}
	return nil
}

func TestKillBetweenPublishAndCursorSave(t *testing.T) {
	r := newRig(t)
	r.pollOnce(r.poller(nil))
	for i := range 5 {
		r.deliver(friend, fmt.Sprint(i))
	}
	crashing := r.poller(func(c *poller.Config) { c.Publisher = &crashAfterPublish{inner: r.pub, after: 3} })
	if err := crashing.PollOnce(context.Background()); !errors.Is(err, errKilled) {
		t.Fatalf("poll: %v", err)
	}
	r.pollOnce(r.poller(nil))
	evs := r.events()
	if len(evs) != 5 {
		t.Fatalf("%d events in the stream, want 5 (no duplicates, none missing)", len(evs))
	}
	seen := map[string]bool{}
	for i, e := range evs {
		if seen[e.Event.ID] {
			t.Errorf("duplicate %s", e.Event.ID)
		}
		seen[e.Event.ID] = true
		if got := messageData(t, e).Message.Text; got != fmt.Sprint(i) {
			t.Errorf("event %d text %q: order broken", i, got)
		}
	}
}

func TestFirstStart(t *testing.T) {
	for _, tt := range []struct {
		startFrom string
		want      []string
	}{
		{poller.StartUnread, []string{"unread 1", "unread 2"}},
		{poller.StartNow, nil},
	} {
		t.Run(tt.startFrom, func(t *testing.T) {
			r := newRig(t)
			for i := range 30 {
				r.deliver(other, fmt.Sprint("old ", i))
			}
			r.deliver(friend, "read")
			// The account reads the conversation on its phone.
			if err := r.client.UpdateAck(context.Background(), 1, uint64(friend), 0); err != nil {
				t.Fatal(err)
			}
			if err := r.client.UpdateAck(context.Background(), 1, uint64(other), 0); err != nil {
				t.Fatal(err)
			}
			r.deliver(friend, "unread 1")
			r.deliver(friend, "unread 2")
			r.pollOnce(r.poller(func(c *poller.Config) { c.StartFrom = tt.startFrom }))
			var got []string
			for _, e := range r.events() {
				got = append(got, messageData(t, e).Message.Text)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("published %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNewConversationDoesNotReplayHistory(t *testing.T) {
	r := newRig(t)
	p := r.poller(nil)
	r.pollOnce(p)
	// A stranger writes for the first time after the bridge started.
	r.deliver(other, "hi, first time")
	r.deliver(other, "second")
	r.pollOnce(p)
	r.pollOnce(p)
	var got []string
	for _, e := range r.events() {
		got = append(got, messageData(t, e).Message.Text)
	}
	if fmt.Sprint(got) != fmt.Sprint([]string{"hi, first time", "second"}) {
		t.Errorf("published %q", got)
	}
}

func TestKindsDirectionsRecallsAndRemovals(t *testing.T) {
	r := newRig(t)
	p := r.poller(nil)
	r.pollOnce(p)
	in := r.deliver(friend, "from friend")
	out := r.fake.Deliver(uid, bilitest.Message{SessionType: 1, TalkerID: uint64(friend), SenderUID: uid, MsgType: 1, Content: bilitest.TextContent("from my phone"), MsgSource: 1})
	gone := r.deliver(friend, "removed by the system")
	if err := r.fake.RemoveBySystem(uid, uint64(friend), 1, gone.MsgKey, false); err != nil {
		t.Fatal(err)
	}
	if _, err := r.fake.Recall(uid, uint64(friend), 1, in.MsgKey); err != nil {
		t.Fatal(err)
	}
	r.fake.Deliver(uid, bilitest.Message{SessionType: 1, TalkerID: systemID, SenderUID: int64(systemID), MsgType: 10, MsgSource: 6,
		Content: `{"title":"通知","text":"正文","jump_text":"","jump_uri":"","modules":null,"notifier":null,"jump_uri_config":{"all_uri":"https://member.bilibili.com/x","text":""},"biz_content":null}`})
	r.fake.Deliver(uid, bilitest.Message{SessionType: 2, TalkerID: groupID, SenderUID: 0, MsgType: 306, MsgSource: 13, Content: `{"group_id":221082140,"content":"欢迎other入群"}`})
	r.fake.Deliver(uid, bilitest.Message{SessionType: 2, TalkerID: groupID, SenderUID: other, MsgType: 1, MsgSource: 2, Content: bilitest.TextContent("hi group")})
	r.pollOnce(p)

	type row struct{ subject, typ, dir, kind, conv, sender, text string }
	var got []row
	for _, e := range r.events() {
		rw := row{subject: e.Subject, typ: e.Event.Type}
		if e.Event.Type == events.TypeMessage {
			d := messageData(t, e)
			rw.dir, rw.kind, rw.conv, rw.sender, rw.text = d.Message.Direction, string(d.Message.Kind), d.Conversation.Kind+":"+d.Conversation.Name, d.Message.SenderName, d.Message.Text
		} else {
			var d events.RecallData
			if err := e.Event.DecodeData(&d); err != nil {
				t.Fatal(err)
			}
			rw.text = fmt.Sprint(d.RecalledMsgKey)
		}
		got = append(got, rw)
	}
	msgFriend := fmt.Sprintf("bili.%d.msg.1.%d", uid, friend)
	want := []row{
		{msgFriend, events.TypeMessage, "in", "text", "user:friend", "friend", "from friend"},
		{msgFriend, events.TypeMessage, "out", "text", "user:friend", "me", "from my phone"},
		{fmt.Sprintf("bili.%d.recall.1.%d", uid, friend), events.TypeRecall, "", "", "", "", fmt.Sprint(in.MsgKey)},
		{fmt.Sprintf("bili.%d.msg.1.%d", uid, systemID), events.TypeMessage, "in", "notice", "system:UP主小助手", "UP主小助手", ""},
		{fmt.Sprintf("bili.%d.msg.2.%d", uid, groupID), events.TypeMessage, "in", "group_system", "group:fan group", "fan group", "欢迎other入群"},
		{fmt.Sprintf("bili.%d.msg.2.%d", uid, groupID), events.TypeMessage, "in", "text", "group:fan group", "other", "hi group"},
	}
	_ = out
	if len(got) != len(want) {
		t.Fatalf("got %d events:\n%+v", len(got), got)
	}
	for i := range want {
		w := want[i]
		if w.text == "" {
			w.text = got[i].text // the notice's rendering is tested in package bilibili
		}
		if got[i] != w {
			t.Errorf("event %d:\n got %+v\nwant %+v", i, got[i], w)
		}
	}
}

func TestLongBacklogIsPagedInOrderLosingNothing(t *testing.T) {
	for _, tc := range []struct {
		name     string
		pageSize int
	}{
		{"one round", 40},
		// 125 pages: more than one round holds, so the oldest pages must
		// be published first and the rest in the next round.
		{"several rounds", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			p := r.poller(func(c *poller.Config) { c.PageSize = tc.pageSize })
			r.pollOnce(p)
			for i := range 250 {
				r.deliver(friend, fmt.Sprint(i))
			}
			r.pollOnce(p)
			evs := r.events()
			if len(evs) != 250 {
				t.Fatalf("%d events, want 250", len(evs))
			}
			for i, e := range evs {
				if got := messageData(t, e).Message.Text; got != fmt.Sprint(i) {
					t.Fatalf("event %d is %q: lost or out of order", i, got)
				}
			}
		})
	}
}

func TestLoginExpiredPausesAndRecovers(t *testing.T) {
	r := newRig(t)
	p := r.poller(nil)
	r.pollOnce(p)
	r.fake.SetLoginValid(uid, false)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	var runErr error
	go func() { defer wg.Done(); runErr = p.Run(ctx) }()

	states := func() []string {
		var s []string
		for _, e := range r.events() {
			if e.Event.Type == events.TypeAccountStatus {
				var d events.AccountStatusData
				e.Event.DecodeData(&d)
				s = append(s, d.State)
			}
		}
		return s
	}
	bustest.Eventually(t, "login_expired status", func() bool { return len(states()) == 1 })
	if p.Status().LoginValid {
		t.Error("status still says the login is valid")
	}
	// Retries keep going without more status events (one alert, not a flood).
	calls := r.fake.Calls("new_sessions")
	bustest.Eventually(t, "retries", func() bool { return r.fake.Calls("new_sessions") > calls+3 })
	r.fake.SetLoginValid(uid, true)
	r.deliver(friend, "after the new login")
	bustest.Eventually(t, "recovery", func() bool { return p.Status().LoginValid && len(r.events()) == 3 })
	cancel()
	wg.Wait()
	if runErr != nil {
		t.Errorf("Run returned %v", runErr)
	}
	if got := fmt.Sprint(states()); got != "[login_expired logged_in]" {
		t.Errorf("status events %s", got)
	}
	if p.Status().LastGoodPoll.IsZero() {
		t.Error("no last good poll recorded")
	}
}

func TestOnlyOnePollerPollsAndTheOtherTakesOver(t *testing.T) {
	r := newRig(t)
	r.pollOnce(r.poller(nil))
	mk := func() *poller.Poller {
		return r.poller(func(c *poller.Config) { c.Leases = r.store.Leases; c.LeaseTTL = time.Second })
	}
	a, b := mk(), mk()
	ctxA, stopA := context.WithCancel(context.Background())
	ctxB, stopB := context.WithCancel(context.Background())
	defer stopB()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a.Run(ctxA) }()
	go func() { defer wg.Done(); b.Run(ctxB) }()
	bustest.Eventually(t, "a leader", func() bool { return a.Status().Leader || b.Status().Leader })
	leader, follower, stopLeader := a, b, stopA
	if b.Status().Leader {
		leader, follower, stopLeader = b, a, stopB
	}
	r.deliver(friend, "x")
	bustest.Eventually(t, "the message", func() bool { return len(r.events()) == 1 })
	if leader.Status().LastGoodPoll.IsZero() || !follower.Status().LastGoodPoll.IsZero() {
		t.Errorf("the follower polled: leader %v follower %v", leader.Status(), follower.Status())
	}
	stopLeader()
	bustest.Eventually(t, "takeover", func() bool { return follower.Status().Leader })
	r.deliver(friend, "y")
	bustest.Eventually(t, "the message after takeover", func() bool { return len(r.events()) == 2 })
	stopA()
	stopB()
	wg.Wait()
}

func TestUnreadableConversationDoesNotHoldUpTheOthers(t *testing.T) {
	for _, firstStart := range []bool{false, true} {
		t.Run(fmt.Sprintf("first start %v", firstStart), func(t *testing.T) {
			r := newRig(t)
			p := r.poller(nil)
			if !firstStart {
				r.pollOnce(p)
			}
			// The fan group is read first, and Bilibili refuses it. A
			// regular poll reads the oldest change first; a first start
			// reads the newest session first.
			group := func() {
				r.fake.Deliver(uid, bilitest.Message{SessionType: 2, TalkerID: groupID, SenderUID: other, MsgType: 1, MsgSource: 2, Content: bilitest.TextContent("in the group")})
			}
			if firstStart {
				r.deliver(friend, "from friend")
				group()
			} else {
				group()
				r.deliver(friend, "from friend")
			}
			r.fake.Fail("fetch_session_msgs", 1, bilitest.Fault{Code: bilibili.CodeGroupDissolved})
			if err := p.PollOnce(context.Background()); err != nil {
				t.Fatalf("poll: %v", err)
			}
			var texts []string
			var skips []events.AccountStatusData
			for _, e := range r.events() {
				if e.Event.Type == events.TypeAccountStatus {
					var d events.AccountStatusData
					if err := e.Event.DecodeData(&d); err != nil {
						t.Fatal(err)
					}
					skips = append(skips, d)
					continue
				}
				texts = append(texts, messageData(t, e).Message.Text)
			}
			if fmt.Sprint(texts) != "[from friend]" {
				t.Errorf("published %q", texts)
			}
			// Never silently: one status event names the conversation.
			if len(skips) != 1 || skips[0].State != events.StateConversationSkipped || skips[0].Conversation == nil ||
				skips[0].Conversation.TalkerID != groupID || skips[0].ErrorCode != bilibili.CodeGroupDissolved {
				t.Fatalf("status events %+v, want one conversation_skipped for the group", skips)
			}
			if !strings.Contains(skips[0].Message, "fan group") {
				t.Errorf("the status message does not name the conversation: %q", skips[0].Message)
			}
			// Nothing is left pending: the next poll is idle.
			r.fake.ResetCalls()
			r.pollOnce(p)
			if n := r.totalCalls(); n != 1 {
				t.Errorf("the poll after costs %d calls, want 1", n)
			}
		})
	}
}

func TestInterruptedFirstStartCatchesUp(t *testing.T) {
	r := newRig(t)
	r.deliver(friend, "old")
	r.deliver(other, "old too")
	// The first start dies after the first conversation got its cursor.
	crashing := r.poller(func(c *poller.Config) {
		c.StartFrom = poller.StartNow
		c.Cursors = &failAfterPuts{KeyValue: r.store.Cursors, n: 1}
	})
	if err := crashing.PollOnce(context.Background()); err == nil {
		t.Fatal("the crashing first start succeeded")
	}
	r.deliver(friend, "while down")
	r.deliver(other, "while down too")
	p := r.poller(func(c *poller.Config) { c.StartFrom = poller.StartNow })
	r.pollOnce(p)
	r.pollOnce(p)
	var texts []string
	for _, e := range r.events() {
		texts = append(texts, messageData(t, e).Message.Text)
	}
	// The conversation the interrupted start had given a cursor catches
	// up; the other gets its first cursor now, and START_FROM=now
	// publishes nothing old for it.
	if fmt.Sprint(texts) != "[while down too]" {
		t.Errorf("published %q, want the message that arrived in the conversation with a cursor", texts)
	}
}

// failAfterPuts is a KV bucket whose Put fails after n writes: a process
// killed in the middle of its first start.
type failAfterPuts struct {
	jetstream.KeyValue
	n int
}

func (f *failAfterPuts) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	if err := f.take(); err != nil {
		return 0, err
	}
	return f.KeyValue.Put(ctx, key, value)
}

func (f *failAfterPuts) Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	if err := f.take(); err != nil {
		return 0, err
	}
	return f.KeyValue.Create(ctx, key, value, opts...)
}

func (f *failAfterPuts) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	if err := f.take(); err != nil {
		return 0, err
	}
	return f.KeyValue.Update(ctx, key, value, rev)
}

func (f *failAfterPuts) take() error {
	if f.n <= 0 {
		return errKilled
	}
	f.n--
	return nil
}

// A passing Bilibili error (its busy backend answers HTTP 200 with
// -500/-503/-504, or a code nobody has seen) on a conversation's fetch
// must never move its cursor past messages that were not published.
func TestPassingFetchErrorsLoseNothing(t *testing.T) {
	for _, code := range []int{-500, -503, -504, -509, -799, -3, -400, -12345, 4242} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			r := newRig(t)
			p := r.poller(nil)
			r.pollOnce(p) // first start: nothing to publish
			r.deliver(friend, "first")
			r.pollOnce(p) // the conversation is tracked now
			r.deliver(friend, "second")
			r.fake.Fail("fetch_session_msgs", 1, bilitest.Fault{Code: code})
			_ = p.PollOnce(context.Background()) // may fail: it is the only conversation
			// The next polls (once its retry is due) fetch it again.
			bustest.Eventually(t, "the second message", func() bool {
				_ = p.PollOnce(context.Background())
				return len(r.events()) == 2
			})
			var texts []string
			for _, e := range r.events() {
				texts = append(texts, messageData(t, e).Message.Text)
			}
			if fmt.Sprint(texts) != "[first second]" {
				t.Fatalf("published %q", texts)
			}
		})
	}
}

// One conversation that keeps failing waits on its own backoff; the
// others are synced at every poll, and it is synced once it recovers.
func TestFailingConversationWaitsAlone(t *testing.T) {
	r := newRig(t)
	p := r.poller(func(c *poller.Config) { c.Interval, c.MaxBackoff = time.Hour, time.Hour })
	r.pollOnce(p)
	r.deliver(friend, "f1")
	r.deliver(other, "o1")
	r.pollOnce(p)
	// friend's conversation now fails every time.
	r.fake.Fail("fetch_session_msgs", -1, bilitest.Fault{Code: -500, Talker: uint64(friend)})
	r.deliver(friend, "f2")
	r.deliver(other, "o2")
	r.pollOnce(p) // friend fails, other is synced: the poll succeeds
	r.deliver(other, "o3")
	r.fake.ResetCalls()
	r.pollOnce(p) // friend is not due for an hour: not fetched again
	if n := r.fake.Calls("fetch_session_msgs"); n != 1 {
		t.Errorf("%d fetches in the poll after the failure, want 1 (only the healthy conversation)", n)
	}
	var texts []string
	for _, e := range r.events() {
		texts = append(texts, messageData(t, e).Message.Text)
	}
	if fmt.Sprint(texts) != "[f1 o1 o2 o3]" {
		t.Fatalf("published %q", texts)
	}
	// Recovered, and due again (a new poller: the backoff is in memory):
	// f2 arrives, nothing is lost or repeated.
	r.fake.ClearFaults()
	p2 := r.poller(nil)
	r.pollOnce(p2)
	texts = nil
	for _, e := range r.events() {
		texts = append(texts, messageData(t, e).Message.Text)
	}
	if fmt.Sprint(texts) != "[f1 o1 o2 o3 f2]" {
		t.Fatalf("published %q after recovery", texts)
	}
}

// A poller that read a cursor before another poller moved it (one that
// lost its lease while paused) must fail to write it, not rewind it.
func TestStaleCursorWriteFails(t *testing.T) {
	r := newRig(t)
	setup := r.poller(nil)
	r.pollOnce(setup)
	r.deliver(friend, "one")
	r.pollOnce(setup)
	r.deliver(friend, "two")

	var once sync.Once
	fresh := r.poller(nil)
	stale := r.poller(func(c *poller.Config) {
		c.Cursors = &beforeWrite{KeyValue: r.store.Cursors, hook: func() {
			// Between the stale poller's read and its write, another
			// poller syncs everything and moves the cursors on.
			once.Do(func() {
				r.deliver(friend, "three")
				r.pollOnce(fresh)
			})
		}}
	})
	err := stale.PollOnce(context.Background())
	if err == nil {
		t.Fatal("the stale poller's write succeeded")
	}
	c, gerr := r.store.Cursors.Get(context.Background(), fmt.Sprintf("%d.1.%d", uid, friend))
	if gerr != nil {
		t.Fatal(gerr)
	}
	d := messageData(t, r.events()[len(r.events())-1])
	if string(c.Value()) != fmt.Sprint(d.Message.Seqno) {
		t.Fatalf("cursor %s after the stale write, want %d (the newest message)", c.Value(), d.Message.Seqno)
	}
}

// beforeWrite runs hook before each cursor write.
type beforeWrite struct {
	jetstream.KeyValue
	hook func()
}

func (b *beforeWrite) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	b.hook()
	return b.KeyValue.Update(ctx, key, value, rev)
}

func (b *beforeWrite) Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	b.hook()
	return b.KeyValue.Create(ctx, key, value, opts...)
}

// arrivesDuringFetch is the Bilibili client with a message arriving just
// before the first fetch_session_msgs: after the first start listed the
// conversations, before it read their unread messages.
type arrivesDuringFetch struct {
	poller.API
	once    sync.Once
	deliver func()
}

func (a *arrivesDuringFetch) FetchSessionMsgs(ctx context.Context, p bilibili.FetchParams) (*bilibili.MessagePage, error) {
	a.once.Do(a.deliver)
	return a.API.FetchSessionMsgs(ctx, p)
}

// A message that arrives while the first start reads the unread ones
// pushes none of them out: all unread and the new one are published, once.
func TestFirstStartUnreadWithANewArrival(t *testing.T) {
	r := newRig(t)
	r.deliver(friend, "read")
	if err := r.client.UpdateAck(context.Background(), 1, uint64(friend), 0); err != nil {
		t.Fatal(err)
	}
	r.deliver(friend, "unread 1")
	r.deliver(friend, "unread 2")
	api := &arrivesDuringFetch{API: r.client, deliver: func() { r.deliver(friend, "new") }}
	p := r.poller(func(c *poller.Config) { c.StartFrom = poller.StartUnread; c.API = api })
	r.pollOnce(p)
	r.pollOnce(p)
	var got []string
	for _, e := range r.events() {
		got = append(got, messageData(t, e).Message.Text)
	}
	if want := []string{"unread 1", "unread 2", "new"}; !slices.Equal(got, want) {
		t.Errorf("published %q, want %q", got, want)
	}
}

// A poll that found something says so in one info line; idle polls say
// nothing.
func TestPollSaysWhatItFound(t *testing.T) {
	r := newRig(t)
	logger, logged := testlog.New(t)
	p := r.poller(func(c *poller.Config) { c.Logger = logger })
	r.pollOnce(p)
	r.pollOnce(p)
	if n := len(logged.Grep("new messages")); n != 0 {
		t.Fatalf("idle polls logged %d lines", n)
	}
	r.deliver(friend, "one")
	r.deliver(friend, "two")
	r.deliver(other, "three")
	r.pollOnce(p)
	lines := logged.Grep(`msg="new messages"`)
	if len(lines) != 1 || !strings.Contains(lines[0], "messages=3 conversations=2") || !strings.Contains(lines[0], "level=INFO") {
		t.Fatalf("log lines %q, want one info line with messages=3 conversations=2", lines)
	}
}

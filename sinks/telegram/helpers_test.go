package telegram_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bilibridge/bilibridge/bilibili"
	"github.com/bilibridge/bilibridge/bus"
	"github.com/bilibridge/bilibridge/bus/bustest"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/poller"
	"github.com/bilibridge/bilibridge/send"
	"github.com/bilibridge/bilibridge/sinks/telegram"
	"github.com/bilibridge/bilibridge/sinks/telegram/telegramtest"
)

const (
	forumChat int64 = -1001234567890
	flatChat  int64 = -1009876543210

	accountUID   int64  = 425503913
	talkerID     uint64 = 293793435
	groupID      uint64 = 221082140
	systemTalker uint64 = 844424930131966
	msgKey       uint64 = 7354295169819585966
	seqno        uint64 = 1236306587877408
	msgTime      int64  = 1709385615
)

var (
	userConv = events.Conversation{SessionType: bilibili.SessionUser, TalkerID: talkerID, Kind: events.ConversationUser,
		Name: "社会易姐QwQ", Avatar: "https://i0.hdslb.com/bfs/face/member/noface.jpg"}
	groupConv = events.Conversation{SessionType: bilibili.SessionGroup, TalkerID: groupID, Kind: events.ConversationGroup,
		Name: "社会易姐QwQ的应援团", Avatar: "https://i0.hdslb.com/bfs/face/group.jpg"}
	systemConv = events.Conversation{SessionType: bilibili.SessionUser, TalkerID: systemTalker, Kind: events.ConversationSystem,
		Name: "UP主小助手", Avatar: "https://i0.hdslb.com/bfs/face/assistant.png"}
	alice   = telegramtest.User{ID: 1111, FirstName: "Alice"}
	mallory = telegramtest.User{ID: 6666, FirstName: "Mallory"}
)

// env is one test's NATS, KV and fake Bot API.
type env struct {
	t     *testing.T
	fake  *telegramtest.Server
	conn  *bus.Conn
	store *bus.Store
	kv    jetstream.KeyValue // Config.State
	// records is Config.Records.
	records jetstream.KeyValue
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ns := bustest.StartServer(t)
	conn := ns.Connect(t)
	store := bustest.Provision(t, conn, 0)
	fake := telegramtest.NewServer(t)
	fake.AddChat(telegramtest.Chat{ID: forumChat, Title: "Bilibili inbox", IsForum: true})
	fake.AddChat(telegramtest.Chat{ID: flatChat, Title: "Bilibili flat"})
	return &env{t: t, fake: fake, conn: conn, store: store, kv: store.State, records: store.Records}
}

// countingOutbox records submitted commands.
type countingOutbox struct {
	mu   sync.Mutex
	reqs []send.Request
	err  error
}

func (o *countingOutbox) Submit(_ context.Context, req send.Request, _ time.Duration) (*send.Outcome, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err != nil {
		return nil, o.err
	}
	o.reqs = append(o.reqs, req)
	return &send.Outcome{CommandID: req.Command.CommandID}, nil
}

func (o *countingOutbox) all() []send.Request {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]send.Request(nil), o.reqs...)
}

func (e *env) sink(chat int64, mod func(*telegram.Config)) *telegram.Sink {
	e.t.Helper()
	cfg := telegram.Config{
		Token: e.fake.Token, ChatID: chat, APIURL: e.fake.URL, State: e.kv, Records: e.records,
		HTTPClient: e.fake.Client(), RatePerMinute: 60000, Burst: 100, PollTimeout: time.Second,
		Logger: slog.New(slog.DiscardHandler),
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := telegram.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

func fixtureContent(t *testing.T, i, msgType int) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "bilibili", "content_examples.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fx []struct {
		MsgType int    `json:"msg_type"`
		Content string `json:"content"`
	}
	if err := json.Unmarshal(b, &fx); err != nil {
		t.Fatal(err)
	}
	if fx[i].MsgType != msgType {
		t.Fatalf("fixture %d is not msg_type %d", i, msgType)
	}
	return fx[i].Content
}

func incoming(msgType int, content string) bilibili.Message {
	return bilibili.Message{SenderUID: int64(talkerID), ReceiverType: bilibili.SessionUser, ReceiverID: uint64(accountUID),
		MsgType: msgType, Content: content, MsgSeqno: seqno, Timestamp: msgTime, MsgKey: msgKey, MsgSource: 2}
}

func with(m bilibili.Message, f func(*bilibili.Message)) bilibili.Message { f(&m); return m }

func event(t *testing.T, src poller.Source, m bilibili.Message) events.Event {
	t.Helper()
	ev, err := poller.MessageEvent(src, &m)
	if err != nil {
		t.Logf("FromMessage: %v (kept)", err)
	}
	return ev
}

func userSrc() poller.Source {
	return poller.Source{AccountUID: accountUID, Conversation: userConv, SenderName: userConv.Name}
}

func textEvent(t *testing.T, key uint64, text string) events.Event {
	t.Helper()
	c, _ := json.Marshal(map[string]string{"content": text})
	return event(t, userSrc(), with(incoming(1, string(c)), func(m *bilibili.Message) { m.MsgKey = key }))
}

func deliver(t *testing.T, s *telegram.Sink, ev events.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Deliver(ctx, ev); err != nil {
		t.Fatalf("Deliver %s: %v", ev.ID, err)
	}
}

func runSink(t *testing.T, s *telegram.Sink) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

package discord_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bilibridge/bilibridge/bus/bustest"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/send"
	"github.com/bilibridge/bilibridge/sinks/discord"
	"github.com/bilibridge/bilibridge/sinks/discord/discordtest"
	"github.com/bilibridge/bilibridge/testlog"
)

const (
	botToken = "MTIzNDU2Nzg5.bot-secret-token"
	guildID  = "800000000000000001"
	uid      = int64(425503913)
	talker   = uint64(293793435)
)

var t0 = time.Date(2024, 3, 2, 13, 20, 15, 0, time.UTC)

// The real outbox is what the bridge wires in.
var _ send.Submitter = (*send.Outbox)(nil)

// fakeOutbox counts what would be queued.
type fakeOutbox struct {
	mu   sync.Mutex
	reqs []send.Request
}

func (o *fakeOutbox) Submit(_ context.Context, req send.Request, _ time.Duration) (*send.Outcome, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.reqs = append(o.reqs, req)
	return &send.Outcome{CommandID: req.Command.CommandID}, nil
}

func (o *fakeOutbox) requests() []send.Request {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]send.Request(nil), o.reqs...)
}

type env struct {
	fake    *discordtest.Server
	kv      jetstream.KeyValue // Config.State
	records jetstream.KeyValue // Config.Records
	channel string
	outbox  *fakeOutbox
	logs    *testlog.Buffer
}

// newEnv starts NATS and a fake Discord with one channel of typ.
func newEnv(t *testing.T, typ int) *env {
	t.Helper()
	ns := bustest.StartServer(t)
	st := bustest.Provision(t, ns.Connect(t), 0)
	fake := discordtest.NewT(t, botToken)
	return &env{fake: fake, kv: st.State, records: st.Records, channel: fake.AddChannel(guildID, typ, "inbox"), outbox: &fakeOutbox{}, logs: &testlog.Buffer{}}
}

// sink is a new Sink on the env, like a process (re)start.
func (e *env) sink(t *testing.T, mod ...func(*discord.Config)) *discord.Sink {
	t.Helper()
	cfg := discord.Config{
		Token: botToken, ChannelID: e.channel, State: e.kv, Records: e.records, Outbox: e.outbox,
		HTTPClient: e.fake.Client(), APIURL: discord.DefaultAPIURL,
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, m := range mod {
		m(&cfg)
	}
	s, err := discord.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func conversation() events.Conversation {
	return events.Conversation{SessionType: 1, TalkerID: talker, Kind: events.ConversationUser, Name: "Alice", Avatar: "https://i0.hdslb.com/face/alice.jpg"}
}

// message builds a message event; mod edits its data.
func message(t *testing.T, msgKey uint64, text string, mod ...func(*events.MessageData)) events.Event {
	t.Helper()
	d := events.MessageData{
		AccountUID:   uid,
		Conversation: conversation(),
		Message: events.Message{
			MsgKey: msgKey, Seqno: msgKey % 100000, Direction: events.DirectionIn, SenderUID: int64(talker),
			Timestamp: t0, MsgType: 1, Kind: events.KindText, Text: text, Status: events.StatusNormal,
			Content: json.RawMessage(`{}`),
		},
	}
	for _, m := range mod {
		m(&d)
	}
	ev, err := events.New(uid, events.TypeMessage, events.MessageID(uid, msgKey), d.Conversation.Subject(), t0, d)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func recall(t *testing.T, id string, msgKey uint64) events.Event {
	t.Helper()
	ev, err := events.New(uid, events.TypeRecall, id, conversation().Subject(), t0, events.RecallData{
		AccountUID: uid, Conversation: conversation(), RecalledMsgKey: msgKey, SenderUID: int64(talker), Timestamp: t0,
	})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func result(t *testing.T, ok bool, d events.SendResultData) events.Event {
	t.Helper()
	typ := events.TypeSendFailed
	if ok {
		typ = events.TypeSendSucceeded
	}
	d.AccountUID, d.Conversation = uid, conversation()
	ev, err := events.New(uid, typ, events.SendResultID(uid, d.CommandID), conversation().Subject(), t0, d)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func deliver(t *testing.T, s *discord.Sink, ev events.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Deliver(ctx, ev); err != nil {
		t.Fatalf("Deliver %s: %v", ev.ID, err)
	}
}

func tryDeliver(s *discord.Sink, ev events.Event) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.Deliver(ctx, ev)
}

// onlyThread returns the channel's one thread.
func (e *env) onlyThread(t *testing.T) discordtest.Channel {
	t.Helper()
	th := e.fake.Threads(e.channel)
	if len(th) != 1 {
		t.Fatalf("threads = %+v, want one", th)
	}
	return th[0]
}

// webhookMessages returns the messages the webhook posted in a thread.
func (e *env) webhookMessages(thread string) []discordtest.Message {
	var out []discordtest.Message
	for _, m := range e.fake.Messages(thread) {
		if m.WebhookID != "" {
			out = append(out, m)
		}
	}
	return out
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

// noPings reports whether allowed_mentions lets nothing ping: "parse" is
// present and empty, and no users or roles are listed.
func noPings(raw json.RawMessage) bool {
	var am struct {
		Parse *[]string `json:"parse"`
		Users []string  `json:"users"`
		Roles []string  `json:"roles"`
	}
	if json.Unmarshal(raw, &am) != nil {
		return false
	}
	return am.Parse != nil && len(*am.Parse) == 0 && len(am.Users) == 0 && len(am.Roles) == 0
}

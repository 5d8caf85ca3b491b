package bridge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bilibridge/bilibridge/bilibili/bilitest"
	"github.com/bilibridge/bilibridge/bridge"
	"github.com/bilibridge/bilibridge/bus"
	"github.com/bilibridge/bilibridge/bus/bustest"
	"github.com/bilibridge/bilibridge/config"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/sinks/telegram/telegramtest"
	"github.com/bilibridge/bilibridge/team"
)

const teamToken = "svc-team-token-16"

// apiCall sends method path to the bridge's API with the service token
// and returns the status and the decoded JSON answer.
func apiCall(t *testing.T, r *running, method, path, body string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, "http://"+r.app.HTTPAddr+path, rd)
	req.Header.Set("Authorization", "Bearer "+teamToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: %d %q is not JSON", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

var friendConv = fmt.Sprintf("/api/v1/conversations/%d/1/%d", uid, friend)

// conversation is the friend's conversation as r's API shows it.
func conversation(t *testing.T, r *running) map[string]any {
	t.Helper()
	status, c := apiCall(t, r, "GET", friendConv, "")
	if status != 200 && status != 404 {
		t.Fatalf("GET conversation: %d %v", status, c)
	}
	return c
}

// TestTeamInbox runs the shared inbox end to end against the fake
// Bilibili and Telegram: a DM arrives and is listed open and unread; a
// /claim in Telegram and an assignment through the API agree, in both;
// a reply reads it; done closes the topic, and the next DM reopens both;
// a note never reaches Bilibili; a snooze runs out; the history pages
// into Bilibili's past; a second bridge process sees the same state; and
// a new process rebuilds it after its bucket is deleted.
func TestTeamInbox(t *testing.T) {
	const chat int64 = -1001234567890
	fake := bilitest.NewServer()
	t.Cleanup(fake.Close)
	fake.AddAccount(bilitest.Account{UID: uid, Name: "me", SESSDATA: "sess", BiliJct: "jct"})
	fake.AddUser(bilitest.User{UID: friend, Name: "friend", FollowsAccount: true})
	// Older than the bridge: the bridge does not publish these, the
	// history shows them.
	for i := range 3 {
		fake.Deliver(uid, bilitest.Message{SessionType: 1, TalkerID: uint64(friend), MsgType: 1,
			Content: bilitest.TextContent(fmt.Sprint("last year ", i)), Time: time.Now().AddDate(-1, 0, i)})
	}
	tg := telegramtest.NewServer(t)
	tg.AddChat(telegramtest.Chat{ID: chat, Title: "inbox", IsForum: true})

	// An automation that follows the team's actions.
	var hookMu sync.Mutex
	var hooked []events.Event
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		if ev, err := events.Parse(b); err == nil {
			hookMu.Lock()
			hooked = append(hooked, ev)
			hookMu.Unlock()
		}
	}))
	t.Cleanup(hook.Close)

	cfg := testConfig(t, fake, t.TempDir())
	cfg.TelegramToken, cfg.TelegramChatID, cfg.TelegramAPIURL = tg.Token, config.ChatID(chat), tg.URL
	cfg.WebhookURLs, cfg.WebhookEvents = config.URLList{hook.URL}, config.EventTypes{events.TypeTeamAssigned, events.TypeTeamStatus}
	// START_FROM=now: the old messages are history, not news.
	cfg.APIToken, cfg.StartFrom = teamToken, "now"
	r := startApp(t, bridge.Options{Config: cfg, HTTPClient: fake.Client(), Accounts: []config.Login{defaultLogin}})
	ctx := context.Background()
	// ana is linked to her Telegram account; no allow-list is needed.
	if err := r.app.Members.Add(ctx, team.Member{Name: "ana", TelegramID: 777}, team.GeneratePassword()); err != nil {
		t.Fatal(err)
	}
	if err := r.app.Members.Add(ctx, team.Member{Name: "bo"}, team.GeneratePassword()); err != nil {
		t.Fatal(err)
	}
	// The bridge has looked at the conversation once (the old messages
	// are behind it) before the new DM comes.
	bustest.Eventually(t, "a first poll", func() bool { return fake.Calls("new_sessions") >= 2 })

	fake.Deliver(uid, bilitest.Message{SessionType: 1, TalkerID: uint64(friend), MsgType: 1, Content: bilitest.TextContent("hello team")})
	bustest.Eventually(t, "the DM listed open and unread", func() bool {
		_, l := apiCall(t, r, "GET", "/api/v1/conversations?status=open", "")
		cs, _ := l["conversations"].([]any)
		return len(cs) == 1 && cs[0].(map[string]any)["unread"] == 1.0 && cs[0].(map[string]any)["name"] == "friend"
	})
	var thread int
	bustest.Eventually(t, "the topic", func() bool {
		for _, tp := range tg.Topics(chat) {
			thread = tp.ThreadID
		}
		return thread != 0
	})
	topic := func() telegramtest.Topic {
		for _, tp := range tg.Topics(chat) {
			if tp.ThreadID == thread {
				return tp
			}
		}
		t.Fatal("the topic is gone")
		return telegramtest.Topic{}
	}
	ana := telegramtest.User{ID: 777, FirstName: "Ana"}

	// /claim in Telegram shows in the API and the topic.
	tg.UserMessage(chat, thread, ana, "/claim")
	bustest.Eventually(t, "the claim in the API and the topic title", func() bool {
		return conversation(t, r)["assignee"] == "ana" && strings.Contains(topic().Name, "ana")
	})
	// An assignment through the API shows in Telegram.
	if status, c := apiCall(t, r, "POST", friendConv+"/assign", `{"assignee":"bo"}`); status != 200 || c["assignee"] != "bo" {
		t.Fatalf("assign: %d %v", status, c)
	}
	bustest.Eventually(t, "the API's assignment in the topic title", func() bool { return strings.Contains(topic().Name, "bo") })
	// The webhook heard both, with who did them.
	bustest.Eventually(t, "the assignments at the webhook", func() bool {
		hookMu.Lock()
		defer hookMu.Unlock()
		var by []string
		for _, ev := range hooked {
			var d events.AssignedData
			if ev.Type == events.TypeTeamAssigned && ev.DecodeData(&d) == nil && d.Assignee != nil {
				by = append(by, d.By.String()+">"+*d.Assignee)
			}
		}
		return slices.Equal(by, []string{"ana>ana", "an automation>bo"})
	})

	// A note is for the team only.
	tg.UserMessage(chat, thread, ana, "/note customer is VIP, refund approved")
	bustest.Eventually(t, "the note", func() bool {
		notes, _ := conversation(t, r)["notes"].([]any)
		return len(notes) == 1 && notes[0].(map[string]any)["text"] == "customer is VIP, refund approved"
	})

	// A reply from Telegram reads the conversation.
	tg.UserMessage(chat, thread, ana, "thanks, the refund is on its way")
	bustest.Eventually(t, "the reply sent and the conversation read", func() bool {
		return len(fake.Sent(uid)) == 1 && conversation(t, r)["unread"] == 0.0
	})

	// Done closes the topic; the next DM reopens both.
	if status, c := apiCall(t, r, "POST", friendConv+"/status", `{"status":"done"}`); status != 200 || c["status"] != "done" {
		t.Fatalf("done: %d %v", status, c)
	}
	bustest.Eventually(t, "the topic closed", func() bool { return topic().Closed })
	fake.Deliver(uid, bilitest.Message{SessionType: 1, TalkerID: uint64(friend), MsgType: 1, Content: bilitest.TextContent("one more question")})
	bustest.Eventually(t, "reopened by the DM, in the API and the topic", func() bool {
		c := conversation(t, r)
		return c["status"] == "open" && c["unread"] == 1.0 && !topic().Closed
	})

	// A snooze runs out.
	until := time.Now().Add(time.Second).UTC().Format(time.RFC3339Nano)
	if status, c := apiCall(t, r, "POST", friendConv+"/status", `{"status":"snoozed","snoozed_until":"`+until+`"}`); status != 200 || c["status"] != "snoozed" {
		t.Fatalf("snooze: %d %v", status, c)
	}
	bustest.Eventually(t, "the snooze to run out", func() bool { return conversation(t, r)["status"] == "open" })

	// The history: the bridge's messages, and before them Bilibili's.
	status, page := apiCall(t, r, "GET", friendConv+"/messages?limit=50", "")
	var texts []string
	for _, m := range page["messages"].([]any) {
		texts = append(texts, m.(map[string]any)["message"].(map[string]any)["text"].(string))
	}
	want := []string{"last year 0", "last year 1", "last year 2", "hello team", "thanks, the refund is on its way", "one more question"}
	if status != 200 || !slices.Equal(texts, want) {
		t.Errorf("history: %d %q, want %q", status, texts, want)
	}
	for _, s := range fake.Sent(uid) {
		if strings.Contains(s.Content, "VIP") || strings.Contains(s.Content, "/claim") {
			t.Errorf("a team command reached Bilibili: %q", s.Content)
		}
	}

	// A second process on the same NATS sees the same state.
	cfg2 := testConfig(t, fake, t.TempDir())
	cfg2.NATSURL, cfg2.NATSListen, cfg2.APIToken = r.app.Conn.ClientURL(), "", teamToken
	r2 := startApp(t, bridge.Options{Config: cfg2, HTTPClient: fake.Client(), Accounts: []config.Login{defaultLogin}})
	bustest.Eventually(t, "the second process's view", func() bool {
		c := conversation(t, r2)
		notes, _ := c["notes"].([]any)
		return c["assignee"] == "bo" && c["status"] == "open" && len(notes) == 1
	})
	if err := r2.stop(); err != nil {
		t.Fatal(err)
	}

	// The bucket is lost: a new process rebuilds the state from the stream.
	nc, err := nats.Connect(r.app.Conn.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if err := js.DeleteKeyValue(ctx, bus.BucketConversations); err != nil {
		t.Fatal(err)
	}
	cfg3 := testConfig(t, fake, t.TempDir())
	cfg3.NATSURL, cfg3.NATSListen, cfg3.APIToken = r.app.Conn.ClientURL(), "", teamToken
	r3 := startApp(t, bridge.Options{Config: cfg3, HTTPClient: fake.Client(), Accounts: []config.Login{defaultLogin}})
	bustest.Eventually(t, "the rebuilt view", func() bool {
		c := conversation(t, r3)
		notes, _ := c["notes"].([]any)
		return c["assignee"] == "bo" && c["status"] == "open" && c["unread"] == 1.0 && len(notes) == 1 && c["name"] == "friend"
	})
}

package bridge_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/bilibridge/bilibridge/bilibili"
	"github.com/bilibridge/bilibridge/bilibili/bilitest"
	"github.com/bilibridge/bilibridge/bridge"
	"github.com/bilibridge/bilibridge/bus/bustest"
	"github.com/bilibridge/bilibridge/config"
	"github.com/bilibridge/bilibridge/events"
)

func TestTwoAccountsInOneProcess(t *testing.T) {
	const (
		uidA, uidB int64 = 425503913, 3546
		fanA, fanB int64 = 293793435, 2239814
	)
	fake := bilitest.NewServer()
	t.Cleanup(fake.Close)
	fake.AddAccount(bilitest.Account{UID: uidA, Name: "A", SESSDATA: "sess-a", BiliJct: "jct-a"})
	fake.AddAccount(bilitest.Account{UID: uidB, Name: "B", SESSDATA: "sess-b", BiliJct: "jct-b"})
	fake.AddUser(bilitest.User{UID: fanA, Name: "fan of A", FollowsAccount: true})
	fake.AddUser(bilitest.User{UID: fanB, Name: "fan of B", FollowsAccount: true})
	cfg := testConfig(t, fake, t.TempDir())
	cfg.APIToken = "accounts-api-token"
	r := startApp(t, bridge.Options{Config: cfg, HTTPClient: fake.Client(), Accounts: []config.Login{
		{Credentials: bilibili.Credentials{SESSDATA: "sess-a", BiliJct: "jct-a"}},
		{Credentials: bilibili.Credentials{SESSDATA: "sess-b", BiliJct: "jct-b"}},
	}})
	a := r.app
	if len(a.Accounts) != 2 || a.Accounts[0].UID != uidA || a.Accounts[1].UID != uidB {
		t.Fatalf("accounts %+v", a.Accounts)
	}
	fake.Deliver(uidA, bilitest.Message{SessionType: 1, TalkerID: uint64(fanA), MsgType: 1, Content: bilitest.TextContent("to A")})
	fake.Deliver(uidB, bilitest.Message{SessionType: 1, TalkerID: uint64(fanB), MsgType: 1, Content: bilitest.TextContent("to B")})
	stream, _ := a.Conn.JS.Stream(context.Background(), "BILI")
	got := map[string]string{}
	bustest.Eventually(t, "both messages", func() bool {
		for _, m := range bustest.StreamEvents(t, stream) {
			if m.Event.Type == events.TypeMessage {
				var d events.MessageData
				m.Event.DecodeData(&d)
				got[m.Subject] = fmt.Sprintf("%d %s %s", d.AccountUID, d.Conversation.Name, d.Message.Text)
			}
		}
		return len(got) == 2
	})
	want := map[string]string{
		fmt.Sprintf("bili.%d.msg.1.%d", uidA, fanA): fmt.Sprintf("%d fan of A to A", uidA),
		fmt.Sprintf("bili.%d.msg.1.%d", uidB, fanB): fmt.Sprintf("%d fan of B to B", uidB),
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("events %v, want %v", got, want)
	}

	// A reply through the API goes out as the account it names.
	req, _ := http.NewRequest(http.MethodPost, "http://"+a.HTTPAddr+"/api/v1/messages?wait=true",
		strings.NewReader(fmt.Sprintf(`{"account_uid":"%d","session_type":1,"talker_id":"%d","text":"from B"}`, uidB, fanB)))
	req.Header.Set("Authorization", "Bearer accounts-api-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || len(fake.Sent(uidB)) != 1 || len(fake.Sent(uidA)) != 0 {
		t.Errorf("API send: %d; sent by A %d, by B %d", resp.StatusCode, len(fake.Sent(uidA)), len(fake.Sent(uidB)))
	}

	// A's login expires; B keeps flowing and /readyz names A.
	fake.SetLoginValid(uidA, false)
	bustest.Eventually(t, "A not ready", func() bool {
		code, body := get(t, "http://"+a.HTTPAddr+"/readyz")
		return code == 503 && strings.Contains(body, fmt.Sprint(uidA))
	})
	fake.Deliver(uidB, bilitest.Message{SessionType: 1, TalkerID: uint64(fanB), MsgType: 1, Content: bilitest.TextContent("B still flows")})
	bustest.Eventually(t, "B's message while A is expired", func() bool {
		for _, m := range bustest.StreamEvents(t, stream) {
			var d events.MessageData
			if m.Event.Type == events.TypeMessage && m.Event.DecodeData(&d) == nil && d.Message.Text == "B still flows" {
				return true
			}
		}
		return false
	})
	_, metrics := get(t, "http://"+a.HTTPAddr+"/metrics")
	for _, want := range []string{fmt.Sprintf(`bilibridge_login_valid{uid="%d"} 0`, uidA), fmt.Sprintf(`bilibridge_login_valid{uid="%d"} 1`, uidB)} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
}

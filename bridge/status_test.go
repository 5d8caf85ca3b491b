package bridge_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bilibridge/bilibridge/bilibili/bilitest"
	"github.com/bilibridge/bilibridge/bridge"
	"github.com/bilibridge/bilibridge/bus/bustest"
	"github.com/bilibridge/bilibridge/config"
	"github.com/bilibridge/bilibridge/testlog"
)

// The bridge says what it does: the status (API, the page before any
// member exists) names the sink by its URL with its state and backlog,
// and the log has the poll's line and the periodic summary.
func TestStatusAndSummary(t *testing.T) {
	fake := bilitest.NewServer()
	t.Cleanup(fake.Close)
	fake.AddAccount(bilitest.Account{UID: uid, Name: "me", SESSDATA: "sess", BiliJct: "jct"})
	fake.AddUser(bilitest.User{UID: friend, Name: "friend", FollowsAccount: true})
	var down atomic.Bool
	down.Store(true)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(hook.Close)
	cfg := testConfig(t, fake, t.TempDir())
	cfg.APIToken, cfg.StartFrom = teamToken, "now"
	cfg.WebhookURLs = config.URLList{hook.URL + "/bili?token=s3cr3t"}
	logger, logged := testlog.New(t)
	r := startApp(t, bridge.Options{Config: cfg, HTTPClient: fake.Client(), Accounts: []config.Login{defaultLogin},
		Logger: logger, SummaryEvery: 300 * time.Millisecond})
	bustest.Eventually(t, "a first poll", func() bool { return fake.Calls("new_sessions") >= 2 })
	fake.Deliver(uid, bilitest.Message{SessionType: 1, TalkerID: uint64(friend), MsgType: 1, Content: bilitest.TextContent("hi")})

	status := func() bridge.Status {
		req, _ := http.NewRequest("GET", "http://"+r.app.HTTPAddr+"/api/v1/status", nil)
		req.Header.Set("Authorization", "Bearer "+teamToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var st bridge.Status
		if err := json.NewDecoder(res.Body).Decode(&st); err != nil || res.StatusCode != 200 {
			t.Fatalf("status: %d %v", res.StatusCode, err)
		}
		return st
	}
	bustest.Eventually(t, "the sink down with the DM waiting", func() bool {
		st := status()
		return len(st.Sinks) == 1 && st.Sinks[0].State == "down" && st.Sinks[0].Backlog == 1
	})
	st := status()
	if len(st.Accounts) != 1 || !st.Accounts[0].LoginValid || !st.Accounts[0].Polling || st.Accounts[0].LastGoodPoll == nil {
		t.Errorf("accounts %+v", st.Accounts)
	}
	text := st.Text(time.Now())
	if !strings.Contains(text, "webhook "+hook.URL+"/bili") || strings.Contains(text, "s3cr3t") || !strings.Contains(text, "down since") {
		t.Errorf("status text:\n%s", text)
	}
	// Before any member exists, / shows it.
	res, err := http.Get("http://" + r.app.HTTPAddr + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(page), "account me (uid 425503913): login OK") || !strings.Contains(string(page), "bilibridge member add") {
		t.Errorf("the page before any member:\n%s", page)
	}

	down.Store(false)
	bustest.Eventually(t, "delivered", func() bool { s := status(); return s.Sinks[0].State == "delivering" && s.Sinks[0].Backlog == 0 })
	bustest.Eventually(t, "a summary with the delivery", func() bool {
		return len(logged.Grep("msg=summary")) > 0 && len(logged.Grep("delivered=1")) > 0
	})
	if lines := logged.Grep(`msg="new messages"`); len(lines) != 1 || !strings.Contains(lines[0], "messages=1") {
		t.Errorf("poll lines %q", lines)
	}
	if got := logged.Grep("msg=summary"); !strings.Contains(strings.Join(got, "\n"), "messages_in=1") {
		t.Errorf("no summary counted the DM: %q", got)
	}
	for _, state := range []string{`msg="sink down`, `msg="sink back`} {
		if lines := logged.Grep(state); len(lines) != 1 || !strings.Contains(lines[0], `sink="webhook http://`) {
			t.Errorf("%s: %q", state, lines)
		}
	}
}

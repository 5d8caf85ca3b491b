package bridge_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/bilibridge/bilibridge/bilibili"
	"github.com/bilibridge/bilibridge/bilibili/bilitest"
	"github.com/bilibridge/bilibridge/bridge"
	"github.com/bilibridge/bilibridge/bus/bustest"
	"github.com/bilibridge/bilibridge/config"
	"github.com/bilibridge/bilibridge/testlog"
)

// TestDebugLogsHoldNoSecrets runs the bridge at debug level through a
// login expiry, a failing webhook and an API send, and looks for every
// secret in what it logged.
func TestDebugLogsHoldNoSecrets(t *testing.T) {
	const (
		sessdata  = "SeSsDaTa%2C1893456000%2Cab12*31"
		jct       = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
		apiToken  = "api-token-sekret"
		whsecret  = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		hookToken = "hooktokensekret"
	)
	fake := bilitest.NewServer()
	t.Cleanup(fake.Close)
	fake.AddAccount(bilitest.Account{UID: uid, Name: "me", SESSDATA: sessdata, BiliJct: jct})
	fake.AddUser(bilitest.User{UID: friend, Name: "friend", FollowsAccount: true})
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(500) // fails: errors get logged
		fmt.Fprint(w, "echo "+r.URL.RawQuery)
	}))
	defer hook.Close()
	cfg := testConfig(t, fake, t.TempDir())
	cfg.APIToken, cfg.WebhookSecret, cfg.WebhookURLs = apiToken, whsecret, config.URLList{hook.URL + "/in?token=" + hookToken}
	var logs testlog.Buffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("bridge log:\n%s", logs.String())
		}
	})
	r := startApp(t, bridge.Options{Config: cfg, HTTPClient: fake.Client(),
		Logger:   slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Accounts: []config.Login{{Credentials: bilibili.Credentials{SESSDATA: sessdata, BiliJct: jct, RefreshToken: "refresh-sekret"}}}})
	a := r.app
	fake.Deliver(uid, bilitest.Message{SessionType: 1, TalkerID: uint64(friend), MsgType: 1, Content: bilitest.TextContent("hi")})
	req, _ := http.NewRequest(http.MethodPost, "http://"+a.HTTPAddr+"/api/v1/messages?wait=true",
		strings.NewReader(fmt.Sprintf(`{"session_type":1,"talker_id":"%d","text":"reply"}`, friend)))
	req.Header.Set("Authorization", "Bearer "+apiToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	bustest.Eventually(t, "a failed webhook attempt in the log", func() bool { return strings.Contains(logs.String(), "delivery failed") })
	fake.SetLoginValid(uid, false)
	bustest.Eventually(t, "the expiry in the log", func() bool { return strings.Contains(logs.String(), "login expired") })
	r.stop()
	out := logs.String()
	for _, secret := range []string{sessdata, "SeSsDaTa", jct, apiToken, whsecret, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", hookToken, "refresh-sekret"} {
		if strings.Contains(out, secret) {
			t.Errorf("the debug log contains the secret %q", secret)
		}
	}
	if !strings.Contains(out, "level=DEBUG") {
		t.Error("no debug lines were logged: the test proves nothing")
	}
}

package bridge_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/bilibridge/bilibridge/bilibili/bilitest"
	"github.com/bilibridge/bilibridge/bus/bustest"
	"github.com/bilibridge/bilibridge/config"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/sinks/webhook"
)

// TestDMReachesASignedWebhook runs the whole pipeline: a DM on the fake
// Bilibili → poller → JetStream → sink runtime → a signed POST.
func TestDMReachesASignedWebhook(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	secrets, err := webhook.ParseSecrets(secret)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []events.Event
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := webhook.Verify(secrets, r.Header, body, time.Minute, time.Now()); err != nil {
			t.Errorf("signature: %v", err)
			w.WriteHeader(400)
			return
		}
		ev, err := events.Parse(body)
		if err != nil || r.Header.Get("webhook-id") != ev.ID {
			t.Errorf("body %s, webhook-id %q: %v", body, r.Header.Get("webhook-id"), err)
		}
		mu.Lock()
		got = append(got, ev)
		mu.Unlock()
		w.WriteHeader(204)
	}))
	defer recv.Close()

	fake := bilitest.NewServer()
	t.Cleanup(fake.Close)
	fake.AddAccount(bilitest.Account{UID: uid, Name: "me", SESSDATA: "sess", BiliJct: "jct"})
	fake.AddUser(bilitest.User{UID: friend, Name: "friend", FollowsAccount: true})
	cfg := testConfig(t, fake, t.TempDir())
	cfg.WebhookURLs, cfg.WebhookSecret = config.URLList{recv.URL}, secret
	start(t, cfg, fake)

	d := fake.Deliver(uid, bilitest.Message{SessionType: 1, TalkerID: uint64(friend), MsgType: 1, Content: bilitest.TextContent("to the webhook")})
	bustest.Eventually(t, "the webhook", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 1 })
	mu.Lock()
	defer mu.Unlock()
	var data events.MessageData
	if err := got[0].DecodeData(&data); err != nil {
		t.Fatal(err)
	}
	if data.Message.MsgKey != d.MsgKey || data.Message.Text != "to the webhook" || got[0].Type != events.TypeMessage {
		t.Errorf("webhook got %+v", data)
	}
}

package bridge_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bilibridge/bilibridge/bilibili/bilitest"
	"github.com/bilibridge/bilibridge/bus/bustest"
)

// A SIGTERM while an API caller waits for a send's outcome (?wait=true,
// up to 30s) must not make the bridge exit with an error after the
// HTTP server's shutdown grace: the waiting request answers 202 (queued,
// the command stays in the outbox) and the bridge stops cleanly.
func TestShutdownAnswersWaitingRequests(t *testing.T) {
	fake := bilitest.NewServer()
	t.Cleanup(fake.Close)
	fake.AddAccount(bilitest.Account{UID: uid, Name: "me", SESSDATA: "sess", BiliJct: "jct"})
	fake.AddUser(bilitest.User{UID: friend, Name: "friend", FollowsAccount: true})
	// Bilibili holds the send's answer for a minute.
	fake.Fail("send_msg", -1, bilitest.Fault{Delay: time.Minute})
	cfg := testConfig(t, fake, t.TempDir())
	cfg.APIToken = "shutdown-api-token"
	r := start(t, cfg, fake)

	type answer struct {
		status int
		body   map[string]any
		err    error
	}
	got := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, "http://"+r.app.HTTPAddr+"/api/v1/messages?wait=true",
			strings.NewReader(fmt.Sprintf(`{"session_type":1,"talker_id":"%d","text":"slow"}`, friend)))
		req.Header.Set("Authorization", "Bearer shutdown-api-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			got <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		got <- answer{status: resp.StatusCode, body: body}
	}()
	bustest.Eventually(t, "the send under way", func() bool { return fake.Calls("send_msg") > 0 })

	stopped := make(chan error, 1)
	go func() { stopped <- r.stop() }()
	a := <-got
	if a.err != nil {
		t.Fatalf("the waiting request got no answer: %v", a.err)
	}
	if a.status != http.StatusAccepted || a.body["command_id"] == "" {
		t.Fatalf("answer %d %v, want 202 with the command_id", a.status, a.body)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("the bridge stopped with an error: %v", err)
	}
}

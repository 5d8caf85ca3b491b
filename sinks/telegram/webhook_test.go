package telegram_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-telegram/bot/models"

	"github.com/bilibridge/bilibridge/bus/bustest"
	"github.com/bilibridge/bilibridge/sinks/telegram"
	"github.com/bilibridge/bilibridge/sinks/telegram/telegramtest"
)

const (
	hookURL    = "https://bridge.example.com/telegram/webhook"
	hookSecret = "s3cret_Token-42"
)

// topicUpdate is an update with alice's message in thread, as Telegram
// would post it.
func topicUpdate(id int64, msgID, thread int, text string) models.Update {
	return models.Update{ID: id, Message: &models.Message{ID: msgID, Date: int(msgTime), Text: text,
		From:            &models.User{ID: alice.ID, FirstName: alice.FirstName},
		Chat:            models.Chat{ID: forumChat, Type: models.ChatTypeSupergroup, IsForum: true},
		MessageThreadID: thread, IsTopicMessage: true}}
}

func TestWebhookMode(t *testing.T) {
	e := newEnv(t)
	out := &countingOutbox{}
	s := e.sink(forumChat, func(c *telegram.Config) {
		c.AllowedUsers, c.Outbox, c.WebhookURL, c.WebhookSecret = []int64{alice.ID}, out, hookURL, hookSecret
	})
	thread := threadOf(t, e, s)
	runSink(t, s)
	bustest.Eventually(t, "the webhook set", func() bool { return e.fake.Webhook().URL == hookURL })
	if w := e.fake.Webhook(); w.SecretToken != hookSecret || w.AllowedUpdates != `["message"]` || w.MaxConnections != 1 {
		t.Errorf("webhook = %+v", w)
	}
	h := s.WebhookHandler()

	// Without the secret, or with a wrong one: 401, nothing submitted.
	u := topicUpdate(5000, 900, thread, "谢谢")
	for _, secret := range []string{"", "wrong", hookSecret + "x", strings.ToUpper(hookSecret)} {
		if code := telegramtest.PostUpdate(h, secret, u); code != http.StatusUnauthorized {
			t.Errorf("secret %q: %d, want 401", secret, code)
		}
	}
	if n := len(out.all()); n != 0 {
		t.Fatalf("%d commands from unauthenticated calls", n)
	}
	// The right one: the reply is submitted before the 200; the same
	// update again (Telegram retrying) is not handled twice.
	for range 2 {
		if code := telegramtest.PostUpdate(h, hookSecret, u); code != http.StatusOK {
			t.Fatalf("with the secret: %d", code)
		}
		if reqs := out.all(); len(reqs) != 1 || reqs[0].Command.Text != "谢谢" || reqs[0].TalkerID != talkerID {
			t.Fatalf("commands = %+v", reqs)
		}
	}
	// Handling fails (outbox down): not 200, so Telegram posts it again.
	out.mu.Lock()
	out.err = errors.New("outbox down")
	out.mu.Unlock()
	u2 := topicUpdate(5001, 901, thread, "second")
	if code := telegramtest.PostUpdate(h, hookSecret, u2); code == http.StatusOK {
		t.Fatal("a failed update answered 200")
	}
	out.mu.Lock()
	out.err = nil
	out.mu.Unlock()
	if code := telegramtest.PostUpdate(h, hookSecret, u2); code != http.StatusOK || len(out.all()) != 2 {
		t.Fatalf("retried update: %d, %d commands", code, len(out.all()))
	}
	// A lower update_id not handled yet is handled: Telegram numbers
	// updates from a lower id after a quiet week.
	if code := telegramtest.PostUpdate(h, hookSecret, topicUpdate(4999, 899, thread, "lower")); code != http.StatusOK || len(out.all()) != 3 {
		t.Errorf("lower update: %d, %d commands", code, len(out.all()))
	}
	// A user's message as the fake pushes it with the secret it was given.
	e.fake.UserMessage(forumChat, thread, alice, "pushed")
	if code := e.fake.PushUpdate(h); code != http.StatusOK || e.fake.PendingUpdates() != 0 {
		t.Fatalf("push: %d, %d pending", code, e.fake.PendingUpdates())
	}
	if reqs := out.all(); len(reqs) != 4 || reqs[3].Command.Text != "pushed" {
		t.Errorf("commands = %+v", reqs)
	}
	// Bad methods and bodies.
	if code := telegramtest.PostUpdate(h, hookSecret, json.RawMessage(`{"nope`)); code != http.StatusBadRequest {
		t.Errorf("garbage: %d", code)
	}
	if n := e.fake.CallCount("getUpdates"); n != 0 {
		t.Errorf("getUpdates called %d times in webhook mode", n)
	}

	// Back to polling: the webhook is deleted and updates are polled.
	s2 := e.sink(forumChat, func(c *telegram.Config) { c.AllowedUsers, c.Outbox = []int64{alice.ID}, out })
	runSink(t, s2)
	bustest.Eventually(t, "the webhook deleted", func() bool { return e.fake.Webhook().URL == "" })
	e.fake.UserMessage(forumChat, thread, alice, "polled")
	bustest.Eventually(t, "the polled reply", func() bool { return len(out.all()) == 5 })
}

func TestWebhookConfigChecks(t *testing.T) {
	e := newEnv(t)
	for _, c := range []telegram.Config{
		{WebhookURL: "http://bridge.example.com/hook", WebhookSecret: hookSecret},
		{WebhookURL: hookURL},
		{WebhookURL: hookURL, WebhookSecret: "has space"},
		{WebhookURL: hookURL, WebhookSecret: strings.Repeat("a", 257)},
	} {
		c.Token, c.ChatID, c.State, c.Records = e.fake.Token, forumChat, e.kv, e.records
		if _, err := telegram.New(c); err == nil {
			t.Errorf("New accepted webhook %q secret %q", c.WebhookURL, c.WebhookSecret)
		} else if c.WebhookSecret != "" && strings.Contains(err.Error(), c.WebhookSecret) {
			t.Errorf("the error shows the secret: %v", err)
		}
	}
	// Without webhook mode the handler refuses everything.
	s := e.sink(forumChat, nil)
	if code := telegramtest.PostUpdate(s.WebhookHandler(), "", topicUpdate(1, 1, 1, "x")); code != http.StatusUnauthorized {
		t.Errorf("handler without a secret: %d", code)
	}
}

// TestWebhookLowerUpdateIDAfterAQuietWeek: after a week without updates
// Telegram numbers them from a random, possibly lower, id. Webhook mode
// handles each update_id once (remembered in KV, so across restarts and
// processes), not "above the highest seen".
func TestWebhookLowerUpdateIDAfterAQuietWeek(t *testing.T) {
	e := newEnv(t)
	out := &countingOutbox{}
	cfg := func(c *telegram.Config) {
		c.AllowedUsers, c.Outbox, c.WebhookURL, c.WebhookSecret = []int64{alice.ID}, out, hookURL, hookSecret
	}
	first := e.sink(forumChat, cfg)
	thread := threadOf(t, e, first)
	procs := []*telegram.Sink{first, e.sink(forumChat, cfg)} // the second: another process, or a restart
	for i, st := range []struct {
		proc    int
		id      int64
		msg     int
		text    string
		handled bool
	}{
		{proc: 0, id: 1000, msg: 900, text: "before the quiet week", handled: true},
		{proc: 0, id: 5, msg: 901, text: "after the quiet week", handled: true},
		{proc: 0, id: 5, msg: 901, text: "after the quiet week"}, // Telegram posts it again
		{proc: 1, id: 5, msg: 901, text: "after the quiet week"}, // to another process
		{proc: 1, id: 6, msg: 902, text: "and the next one", handled: true},
		{proc: 1, id: 1000, msg: 900, text: "before the quiet week"}, // the old one: still known
	} {
		before := len(out.all())
		if code := telegramtest.PostUpdate(procs[st.proc].WebhookHandler(), hookSecret, topicUpdate(st.id, st.msg, thread, st.text)); code != http.StatusOK {
			t.Fatalf("step %d (update %d): HTTP %d", i, st.id, code)
		}
		reqs := out.all()
		switch {
		case st.handled && (len(reqs) != before+1 || reqs[len(reqs)-1].Command.Text != st.text):
			t.Fatalf("step %d: update %d was not handled (%d commands)", i, st.id, len(reqs))
		case !st.handled && len(reqs) != before:
			t.Fatalf("step %d: update %d was handled again", i, st.id)
		}
	}
}

// TestWebhookForgetsUpdatesAfterADay: the record of handled update_ids
// stays bounded; an id is dropped after a day, when Telegram, which keeps
// an undelivered update for 24 hours at most, can no longer post it.
func TestWebhookForgetsUpdatesAfterADay(t *testing.T) {
	e := newEnv(t)
	out := &countingOutbox{}
	now := time.Now()
	s := e.sink(forumChat, func(c *telegram.Config) {
		c.AllowedUsers, c.Outbox, c.WebhookURL, c.WebhookSecret = []int64{alice.ID}, out, hookURL, hookSecret
		c.Now = func() time.Time { return now }
	})
	thread := threadOf(t, e, s)
	h := s.WebhookHandler()
	post := func(id int64, msg int) {
		t.Helper()
		if code := telegramtest.PostUpdate(h, hookSecret, topicUpdate(id, msg, thread, "x")); code != http.StatusOK {
			t.Fatalf("update %d: HTTP %d", id, code)
		}
	}
	post(10, 900)
	post(10, 900)
	if n := len(out.all()); n != 1 {
		t.Fatalf("%d commands, want 1", n)
	}
	now = now.Add(26 * time.Hour)
	post(11, 901) // the next write drops what is older than a day
	post(10, 900)
	if n := len(out.all()); n != 3 {
		t.Errorf("%d commands, want 3: update 10 is still remembered after 26 hours", n)
	}
}

package telegram_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/go-telegram/bot/models"

	"github.com/bilibridge/bilibridge/bridge/bridgetest"
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
	bridgetest.Eventually(t, "the webhook set", func() bool { return e.fake.Webhook().URL == hookURL })
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
	// An older update (below the offset) is confirmed without handling.
	if code := telegramtest.PostUpdate(h, hookSecret, topicUpdate(4999, 899, thread, "old")); code != http.StatusOK || len(out.all()) != 2 {
		t.Errorf("old update: %d, %d commands", code, len(out.all()))
	}
	// A user's message as the fake pushes it with the secret it was given.
	e.fake.UserMessage(forumChat, thread, alice, "pushed")
	if code := e.fake.PushUpdate(h); code != http.StatusOK || e.fake.PendingUpdates() != 0 {
		t.Fatalf("push: %d, %d pending", code, e.fake.PendingUpdates())
	}
	if reqs := out.all(); len(reqs) != 3 || reqs[2].Command.Text != "pushed" {
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
	bridgetest.Eventually(t, "the webhook deleted", func() bool { return e.fake.Webhook().URL == "" })
	e.fake.UserMessage(forumChat, thread, alice, "polled")
	bridgetest.Eventually(t, "the polled reply", func() bool { return len(out.all()) == 4 })
}

func TestWebhookConfigChecks(t *testing.T) {
	e := newEnv(t)
	for _, c := range []telegram.Config{
		{WebhookURL: "http://bridge.example.com/hook", WebhookSecret: hookSecret},
		{WebhookURL: hookURL},
		{WebhookURL: hookURL, WebhookSecret: "has space"},
		{WebhookURL: hookURL, WebhookSecret: strings.Repeat("a", 257)},
	} {
		c.Token, c.ChatID, c.State = e.fake.Token, forumChat, e.kv
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

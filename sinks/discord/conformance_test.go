package discord_test

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/sinks/discord/discordtest"
	"github.com/bilibridge/bilibridge/sinks/sinktest"
)

// TestConformance runs the checks every sink passes: the verdict of each
// Discord answer, and neither the bot token nor the channel webhook's
// token in an error or the log.
func TestConformance(t *testing.T) {
	e := newEnv(t, discordtest.TypeText)
	s := e.sink(t)
	var key atomic.Uint64
	key.Store(100)
	deliver(t, s, message(t, key.Add(1), "warm up: the thread and the webhook exist"))
	fail := func(status, code int) func() { return func() { e.fake.Fail(webhookRoute, 1, status, code) } }
	secrets := []string{botToken}
	for _, h := range e.fake.Webhooks(e.channel) {
		secrets = append(secrets, h.Token)
	}
	if len(secrets) < 2 {
		t.Fatal("no channel webhook: the test would not check its token")
	}
	sinktest.Verdicts(t, sinktest.Subject{
		Sink:    s,
		Event:   func() events.Event { return message(t, key.Add(1), "conformance") },
		Secrets: secrets,
		Log:     e.logs.String,
	}, []sinktest.Case{
		{Name: "ok", Want: sinktest.Delivered},
		{Name: "429", Fail: func() { e.fake.RateLimit(webhookRoute, 1, 1.5) }, Want: sinktest.Retry, RetryAfter: 1500 * time.Millisecond},
		{Name: "503", Fail: fail(http.StatusServiceUnavailable, 0), Want: sinktest.Retry},
		{Name: "404 other", Fail: fail(http.StatusNotFound, 10004), Want: sinktest.Permanent},
		{Name: "403 missing access", Fail: fail(http.StatusForbidden, discordtest.CodeMissingAccess), Want: sinktest.Disable},
	})
}

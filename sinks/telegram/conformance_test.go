package telegram_test

import (
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/sinks/sinktest"
	"github.com/bilibridge/bilibridge/sinks/telegram"
	"github.com/bilibridge/bilibridge/sinks/telegram/telegramtest"
	"github.com/bilibridge/bilibridge/testlog"
)

// TestConformance runs the checks every sink passes: the verdict of each
// Bot API answer, no bot token in an error or the log, and a batch
// delivered again posting nothing twice.
func TestConformance(t *testing.T) {
	e := newEnv(t)
	var logs testlog.Buffer
	s := e.sink(forumChat, func(c *telegram.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	var key atomic.Uint64
	key.Store(100)
	deliver(t, s, textEvent(t, key.Add(1), "the topic exists"))
	fail := func(f telegramtest.Fault) func() { return func() { e.fake.FailNext("sendMessage", 1, f) } }
	sinktest.Verdicts(t, sinktest.Subject{
		Sink:    s,
		Event:   func() events.Event { return textEvent(t, key.Add(1), "conformance") },
		Secrets: []string{e.fake.Token},
		Log:     logs.String,
	}, []sinktest.Case{
		{Name: "ok", Want: sinktest.Delivered},
		{Name: "429 retry_after", Fail: fail(telegramtest.TooManyRequests(3)), Want: sinktest.Retry, RetryAfter: 3 * time.Second},
		{Name: "500", Fail: fail(telegramtest.ServerError()), Want: sinktest.Retry},
		{Name: "502 HTML page", Fail: fail(telegramtest.BadGateway()), Want: sinktest.Retry},
		{Name: "connection dropped", Fail: fail(telegramtest.Dropped()), Want: sinktest.Retry},
		{Name: "400 bad request", Fail: fail(telegramtest.BadRequest("can't parse entities: x")), Want: sinktest.Permanent},
		{Name: "400 chat not found", Fail: fail(telegramtest.BadRequest("chat not found")), Want: sinktest.Disable},
		{Name: "403 kicked", Fail: fail(telegramtest.Fault{Code: 403, Description: "Forbidden: bot was kicked from the supergroup chat"}), Want: sinktest.Disable},
	})

	// Texts too long to share a Telegram message: each event is a post
	// of its own, so a failure can land between two of them.
	var made []string
	sinktest.RedeliveredBatch(t, sinktest.Batch{
		Sink: s,
		Events: func(n int) []events.Event {
			var evs []events.Event
			for range n {
				k := key.Add(1)
				text := "batch-" + strings.Repeat("x", 2600) + "-" + string(rune('a'+k%26)) + time.Now().Format("150405.000000000")
				made = append(made, text)
				evs = append(evs, textEvent(t, k, text))
			}
			return evs
		},
		Posted: func() int {
			n := 0
			for _, m := range e.fake.Sent(forumChat) {
				for _, text := range made {
					n += strings.Count(m.Text, text)
				}
			}
			return n
		},
		FailAfter: func(k int) { e.fake.FailAfter("sendMessage", k, telegramtest.ServerError()) },
		Heal:      func() {},
	})
}

package webhook_test

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/sinks/sinktest"
	"github.com/bilibridge/bilibridge/sinks/webhook"
	"github.com/bilibridge/bilibridge/testlog"
)

// TestConformance runs the checks every sink passes.
func TestConformance(t *testing.T) {
	const token = "s3cr3t-t0ken"
	var mu sync.Mutex
	answer := func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }
	rcv := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		a := answer
		mu.Unlock()
		a(w, r)
	})
	// fail answers the next request with status (and Retry-After), its
	// body quoting the request the way careless endpoints do.
	fail := func(status int, retryAfter string) func() {
		return func() {
			mu.Lock()
			defer mu.Unlock()
			answer = func(w http.ResponseWriter, r *http.Request) {
				if retryAfter != "" {
					w.Header().Set("Retry-After", retryAfter)
				}
				w.WriteHeader(status)
				io.WriteString(w, "refused "+r.URL.String()+" signed "+r.Header.Get("webhook-signature"))
				mu.Lock()
				answer = func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }
				mu.Unlock()
			}
		}
	}
	var logs testlog.Buffer
	s := newSink(t, webhook.Config{
		URL: rcv.srv.URL + "/hook?token=" + token, Secrets: mustSecrets(t, vectorSecret),
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	sinktest.Verdicts(t, sinktest.Subject{
		Sink:    s,
		Event:   func() events.Event { return event(t, events.TypeMessage, 10) },
		Secrets: []string{token, strings.TrimPrefix(vectorSecret, "whsec_")},
		Log:     logs.String,
	}, []sinktest.Case{
		{Name: "2xx", Want: sinktest.Delivered},
		{Name: "400", Fail: fail(400, ""), Want: sinktest.Permanent},
		{Name: "404", Fail: fail(404, ""), Want: sinktest.Permanent},
		{Name: "410 Gone", Fail: fail(410, ""), Want: sinktest.Disable},
		{Name: "408", Fail: fail(408, ""), Want: sinktest.Retry},
		{Name: "429 with Retry-After", Fail: fail(429, "7"), Want: sinktest.Retry, RetryAfter: 7 * time.Second},
		{Name: "500", Fail: fail(500, ""), Want: sinktest.Retry},
		{Name: "503 with Retry-After", Fail: fail(503, "120"), Want: sinktest.Retry, RetryAfter: 2 * time.Minute},
	})
}

package webhook_test

import (
	"io"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/sinks/webhook"
)

// A receiver written in Go checks each request before trusting it, and
// uses webhook-id to drop the retries of an event it already handled.
func ExampleVerify() {
	secrets, err := webhook.ParseSecrets(os.Getenv("WEBHOOK_SECRET"))
	if err != nil {
		log.Fatal(err)
	}
	http.HandleFunc("/bilibridge", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "read error", http.StatusInternalServerError) // retried
			return
		}
		if err := webhook.Verify(secrets, r.Header, body, 5*time.Minute, time.Now()); err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized) // not retried
			return
		}
		ev, err := events.Parse(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		log.Printf("%s %s (webhook-id %s)", ev.Type, ev.ID, r.Header.Get("webhook-id"))
		w.WriteHeader(http.StatusNoContent)
	})
}

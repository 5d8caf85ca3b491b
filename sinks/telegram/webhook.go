package telegram

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/go-telegram/bot"
	"github.com/go-telegram/bot/models"
)

// SecretHeader carries the webhook's secret token in Telegram's calls.
const SecretHeader = "X-Telegram-Bot-Api-Secret-Token"

// maxUpdateBytes bounds a webhook call's body.
const maxUpdateBytes = 1 << 20

// validSecretToken: 1-256 characters A-Z, a-z, 0-9, _ and -, as Telegram
// requires of secret_token.
func validSecretToken(s string) bool {
	if len(s) == 0 || len(s) > 256 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// runWebhook registers the webhook, retrying until Telegram took it, and
// waits for ctx to end. The webhook stays set on exit: another process, or
// this one restarted, receives the updates Telegram keeps meanwhile.
func (s *Sink) runWebhook(ctx context.Context) error {
	backoff := time.Second
	for {
		_, err := s.bot.SetWebhook(ctx, &bot.SetWebhookParams{URL: s.cfg.WebhookURL, SecretToken: s.cfg.WebhookSecret,
			AllowedUpdates: []string{"message"}, MaxConnections: 1})
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		err = s.scrub(err)
		wait := backoff
		var tm *bot.TooManyRequestsError
		switch {
		case errors.As(err, &tm):
			wait = time.Duration(tm.RetryAfter) * time.Second
		case errors.Is(err, bot.ErrorUnauthorized), errors.Is(err, bot.ErrorNotFound):
			s.log.Error("Telegram refused the bot token; replies stop until restart", "err", err)
			<-ctx.Done()
			return nil
		case errors.Is(err, bot.ErrorBadRequest):
			s.log.Error("Telegram refused the webhook; check TELEGRAM_WEBHOOK_URL", "err", err)
		default:
			s.log.Warn("setWebhook failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		backoff = min(2*backoff, 5*time.Minute)
	}
	s.log.Info("receiving Telegram updates by webhook", "url", s.cfg.WebhookURL, "replies", s.repliesOn())
	<-ctx.Done()
	return nil
}

// WebhookHandler receives the updates Telegram posts in webhook mode
// (Config.WebhookURL): serve it, for POST, where that URL points. A call
// without the secret token (compared in constant time) is answered 401
// and ignored. An update is handled as Run handles a polled one (in
// order, once per update_id, through the offset in KV), and answered 200
// only once handled, so that Telegram posts it again when handling failed
// (the outbox unreachable); after maxUpdateAttempts failures it is
// skipped.
func (s *Sink) WebhookHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		got := r.Header.Get(SecretHeader)
		if s.cfg.WebhookSecret == "" || subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.WebhookSecret)) != 1 {
			s.log.Debug("webhook call without the right secret token", "remote", r.RemoteAddr)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxUpdateBytes+1))
		if err != nil || len(body) > maxUpdateBytes {
			http.Error(w, "bad update", http.StatusBadRequest)
			return
		}
		u := &models.Update{}
		if err := json.Unmarshal(body, u); err != nil {
			// As when polling: an update we cannot decode is confirmed.
			var id struct {
				ID int64 `json:"update_id"`
			}
			if json.Unmarshal(body, &id) != nil || id.ID == 0 {
				http.Error(w, "bad update", http.StatusBadRequest)
				return
			}
			s.log.Warn("undecodable Telegram update skipped", "update", id.ID, "err", err)
			u = &models.Update{ID: id.ID}
		}
		if _, err := s.process(r.Context(), u); err != nil {
			http.Error(w, "not handled; try again", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
}

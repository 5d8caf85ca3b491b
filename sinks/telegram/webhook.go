package telegram

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/go-telegram/bot"
	"github.com/go-telegram/bot/models"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bilibridge/bilibridge/redact"
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

// The update_ids webhook mode handled are kept for a day, longer than
// Telegram keeps an update it could not deliver (24 hours), and at most
// maxHandledUpdates of them: duplicates come from Telegram retrying a
// call whose answer it did not get, soon after.
const (
	maxHandledUpdates = 2000
	handledUpdatesFor = 25 * time.Hour
)

// handledUpdates is the set of update_ids handled in webhook mode
// (tg.updates.<chat>): [update_id, unix seconds handled] pairs, oldest
// first.
type handledUpdates struct {
	IDs [][2]int64 `json:"ids"`
}

func (s *Sink) handledKey() string { return "tg.updates." + s.chatTok }

// loadHandled reads the set and its revision (0: none yet).
func (s *Sink) loadHandled(ctx context.Context) (handledUpdates, uint64, error) {
	var h handledUpdates
	e, err := s.cfg.State.Get(ctx, s.handledKey())
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return h, 0, nil
	}
	if err != nil {
		return h, 0, fmt.Errorf("telegram: reading the handled updates: %w", err)
	}
	if err := json.Unmarshal(e.Value(), &h); err != nil {
		s.log.Warn("the record of handled Telegram updates is unreadable; starting a new one", "err", err)
		h = handledUpdates{}
	}
	return h, e.Revision(), nil
}

// handledUpdate reports whether update id was handled already.
func (s *Sink) handledUpdate(ctx context.Context, id int64) (bool, error) {
	h, _, err := s.loadHandled(ctx)
	if err != nil {
		return false, err
	}
	for _, p := range h.IDs {
		if p[0] == id {
			return true, nil
		}
	}
	return false, nil
}

// recordUpdate adds id to the set, dropping the ids too old or too many.
// Processes share the set: the write is a compare-and-set, retried on a
// conflict. A failure is logged: the update may then be handled again.
func (s *Sink) recordUpdate(ctx context.Context, id int64) {
	ctx = context.WithoutCancel(ctx)
	for range 10 {
		h, rev, err := s.loadHandled(ctx)
		if err != nil {
			s.log.Warn("could not record a handled Telegram update; it may be handled again", "update", id, "err", err)
			return
		}
		now := s.now()
		h.IDs = append(h.IDs, [2]int64{id, now.Unix()})
		cut := now.Add(-handledUpdatesFor).Unix()
		first := max(0, len(h.IDs)-maxHandledUpdates)
		for first < len(h.IDs) && h.IDs[first][1] < cut {
			first++
		}
		h.IDs = h.IDs[first:]
		b, err := json.Marshal(h)
		if err != nil {
			s.log.Warn("could not record a handled Telegram update", "update", id, "err", err)
			return
		}
		if rev == 0 {
			_, err = s.cfg.State.Create(ctx, s.handledKey(), b)
		} else {
			_, err = s.cfg.State.Update(ctx, s.handledKey(), b, rev)
		}
		switch {
		case err == nil:
			return
		case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch):
			continue // another process recorded an update meanwhile
		}
		s.log.Warn("could not record a handled Telegram update; it may be handled again", "update", id, "err", err)
		return
	}
	s.log.Warn("could not record a handled Telegram update: too many concurrent writes; it may be handled again", "update", id)
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
	s.log.Info("receiving Telegram updates by webhook", "url", redact.URLString(s.cfg.WebhookURL), "replies", s.repliesOn())
	<-ctx.Done()
	return nil
}

// WebhookHandler receives the updates Telegram posts in webhook mode
// (Config.WebhookURL): serve it, for POST, where that URL points. A call
// without the secret token (compared in constant time) is answered 401
// and ignored. An update is handled as Run handles a polled one (one at a
// time), once per update_id: the ids handled recently are kept in KV
// (tg.updates.<chat>), so that Telegram posting an update again, to this
// process, after a restart or to another one, does not handle it twice;
// a high-water mark would drop every update after Telegram restarts its
// numbering lower (after a week without updates). An update is answered
// 200 only once handled, so that Telegram posts it again when handling
// failed (the outbox unreachable); after maxUpdateAttempts failures it is
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
		if _, err := s.process(r.Context(), u, true); err != nil {
			http.Error(w, "not handled; try again", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
}

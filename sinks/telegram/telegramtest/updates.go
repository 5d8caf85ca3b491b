package telegramtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-telegram/bot/models"
)

// Webhook is the webhook set with setWebhook.
type Webhook struct {
	URL            string
	SecretToken    string
	AllowedUpdates string // the raw JSON array
	MaxConnections int
}

func (s *Server) setWebhook(p map[string]string) (any, error) {
	if p["url"] == "" {
		s.webhook = Webhook{}
		return true, nil
	}
	if !strings.HasPrefix(p["url"], "https://") {
		return nil, badRequest("bad webhook: An HTTPS URL must be provided for webhook")
	}
	if t := p["secret_token"]; len(t) > 256 || strings.Trim(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") != "" {
		return nil, badRequest("bad webhook: secret token contains unallowed characters")
	}
	n, _ := strconv.Atoi(p["max_connections"])
	s.webhook = Webhook{URL: p["url"], SecretToken: p["secret_token"], AllowedUpdates: p["allowed_updates"], MaxConnections: n}
	return true, nil
}

// PostUpdate posts update (a models.Update or raw JSON) to h as Telegram
// calls a webhook: POST, JSON body, the secret token in
// X-Telegram-Bot-Api-Secret-Token (none when secret is empty). It returns
// the answer's status code.
func PostUpdate(h http.Handler, secret string, update any) int {
	body, ok := update.(json.RawMessage)
	if !ok {
		var err error
		if body, err = json.Marshal(update); err != nil {
			panic(err)
		}
	}
	req := httptest.NewRequest(http.MethodPost, "https://bridge.example/telegram/webhook", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	if secret != "" {
		req.Header.Set("X-Telegram-Bot-Api-Secret-Token", secret)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code
}

// PushUpdate posts the oldest queued update to h with the webhook's
// secret token, as Telegram does once a webhook is set, and forgets it
// when h answered 200 (Telegram posts it again otherwise). It returns the
// status code, or 0 when no update is queued.
func (s *Server) PushUpdate(h http.Handler) int {
	s.mu.Lock()
	if len(s.updates) == 0 {
		s.mu.Unlock()
		return 0
	}
	raw, id, secret := s.updates[0], s.updateIDs[0], s.webhook.SecretToken
	s.mu.Unlock()
	code := PostUpdate(h, secret, raw)
	if code == http.StatusOK {
		s.mu.Lock()
		if len(s.updateIDs) > 0 && s.updateIDs[0] == id {
			s.updates, s.updateIDs = s.updates[1:], s.updateIDs[1:]
			s.confirmed = max(s.confirmed, id)
		}
		s.mu.Unlock()
	}
	return code
}

// getUpdates serves a long poll: it takes s.mu itself, and waits without
// it for an update to be injected.
func (s *Server) getUpdates(r *http.Request, p map[string]string) (any, error) {
	offset, _ := strconv.ParseInt(p["offset"], 10, 64)
	limit := 100
	if v, err := strconv.Atoi(p["limit"]); err == nil && v > 0 && v < 100 {
		limit = v
	}
	timeout, _ := strconv.Atoi(p["timeout"])
	wait := min(time.Duration(timeout)*time.Second, s.PollWait)
	deadline := time.Now().Add(wait)
	for {
		s.mu.Lock()
		if s.webhook.URL != "" {
			s.mu.Unlock()
			return nil, &apiError{409, "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"}
		}
		if offset > s.nextUpd+1+10 {
			// An offset "in the future" (past the next update_id, as
			// after update_ids restarted lower) is ignored: the Bot API
			// answers from the oldest pending update and forgets nothing.
			offset = 0
		}
		if offset > 0 {
			// Telegram forgets every update below the offset.
			for len(s.updateIDs) > 0 && s.updateIDs[0] < offset {
				s.confirmed = s.updateIDs[0]
				s.updateIDs, s.updates = s.updateIDs[1:], s.updates[1:]
			}
			s.confirmed = max(s.confirmed, offset-1)
		}
		if len(s.updates) > 0 {
			out := slices.Clone(s.updates[:min(limit, len(s.updates))])
			s.mu.Unlock()
			return out, nil
		}
		ch := s.notify
		s.mu.Unlock()
		left := time.Until(deadline)
		if left <= 0 {
			return []json.RawMessage{}, nil
		}
		select {
		case <-ch:
		case <-time.After(left):
		case <-r.Context().Done():
			return []json.RawMessage{}, nil
		}
	}
}

// RestartUpdateIDs makes next the update_id of the next update, as
// Telegram does after a week without updates ("the identifier of the next
// update will be chosen randomly instead of sequentially"), possibly
// below the ids used so far. Nothing is confirmed in the new numbering.
func (s *Server) RestartUpdateIDs(next int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextUpd = next - 1
	s.confirmed = 0
}

// InjectUpdate queues a raw update; its update_id is assigned.
func (s *Server) InjectUpdate(u models.Update) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextUpd++
	u.ID = s.nextUpd
	raw, _ := json.Marshal(u)
	s.updates = append(s.updates, raw)
	s.updateIDs = append(s.updateIDs, u.ID)
	// Wake the long polls waiting for an update.
	close(s.notify)
	s.notify = make(chan struct{})
	return u.ID
}

// User is a Telegram user who writes in a chat.
type User struct {
	ID        int64
	FirstName string
	Username  string
	IsBot     bool
}

func (u User) model() *models.User {
	return &models.User{ID: u.ID, FirstName: u.FirstName, Username: u.Username, IsBot: u.IsBot}
}

// UserMessage injects a message from user in chat: in topic thread of a
// forum (thread 0: the General topic), or in a flat chat. In a topic the
// message carries Telegram's quirk: reply_to_message is the topic's
// creation service message. It returns the message id.
func (s *Server) UserMessage(chat int64, thread int, from User, text string) int {
	return s.inject(chat, thread, from, 0, func(m *models.Message) { m.Text = text })
}

// UserMessageWith injects a message from user as UserMessage does, its
// content set by fill: a service message (forum_topic_edited,
// pinned_message, new_chat_members…) or any other kind. It returns the
// message id.
func (s *Server) UserMessageWith(chat int64, thread int, from User, fill func(*models.Message)) int {
	return s.inject(chat, thread, from, 0, fill)
}

// UserReply injects a message from user in a flat chat that replies to
// message replyTo. It returns the message id.
func (s *Server) UserReply(chat int64, replyTo int, from User, text string) int {
	return s.inject(chat, 0, from, replyTo, func(m *models.Message) { m.Text = text })
}

// UserPhoto injects a photo (data, a JPEG or PNG) with a caption from user,
// in thread (forum) or replying to replyTo (flat chat, 0 for none). The
// photo can then be fetched with getFile and the file download path.
func (s *Server) UserPhoto(chat int64, thread, replyTo int, from User, data []byte, caption string) int {
	s.mu.Lock()
	sizes := s.storePhoto(data)
	s.mu.Unlock()
	return s.inject(chat, thread, from, replyTo, func(m *models.Message) {
		m.Caption = caption
		m.Photo = sizes
	})
}

// inject stores a user's message, its content set by fill, and queues the
// update that brings it to the bot.
func (s *Server) inject(chat int64, thread int, from User, replyTo int, fill func(*models.Message)) int {
	s.mu.Lock()
	c := s.chats[chat]
	if c == nil {
		s.mu.Unlock()
		panic(fmt.Sprintf("telegramtest: unknown chat %d", chat))
	}
	id := s.newID(chat)
	typ := models.ChatTypeSupergroup
	m := &models.Message{ID: id, Date: int(time.Now().Unix()), From: from.model(),
		Chat: models.Chat{ID: chat, Type: typ, Title: c.Title, IsForum: c.IsForum}}
	fill(m)
	stored := &Message{ChatID: chat, ID: id, FromUser: from.ID, Text: m.Text, Caption: m.Caption, ReplyTo: replyTo}
	if c.IsForum && thread != 0 {
		m.MessageThreadID, m.IsTopicMessage = thread, true
		stored.ThreadID = thread
		if replyTo == 0 {
			// The quirk: a plain message in a topic "replies" to the
			// topic's creation service message.
			name := ""
			if tp := s.topics[chat][thread]; tp != nil {
				name = tp.Name
			}
			m.ReplyToMessage = &models.Message{ID: thread, MessageThreadID: thread, IsTopicMessage: true,
				Chat: m.Chat, ForumTopicCreated: &models.ForumTopicCreated{Name: name}}
		}
	}
	if replyTo != 0 {
		if r := s.find(chat, replyTo); r != nil {
			m.ReplyToMessage = r.model(c)
		} else {
			m.ReplyToMessage = &models.Message{ID: replyTo, Chat: m.Chat}
		}
		if !c.IsForum {
			// Outside forums a reply thread also sets message_thread_id.
			m.MessageThreadID = replyTo
		}
	}
	s.msgs[chat] = append(s.msgs[chat], stored)
	s.mu.Unlock()
	s.InjectUpdate(models.Update{Message: m})
	return id
}

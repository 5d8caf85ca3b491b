package discordtest

import (
	"encoding/json"
	"net/http"
)

// Webhook is a channel webhook.
type Webhook struct {
	ID        string
	Token     string
	ChannelID string
	Name      string
}

func webhookJSON(wh *Webhook) map[string]any {
	return map[string]any{"id": wh.ID, "type": 1, "channel_id": wh.ChannelID, "name": wh.Name, "token": wh.Token}
}

// webhook looks up the webhook of a webhook route, {id} and {token}; a
// missing one or a wrong token is answered 404 Unknown Webhook, and ok is
// false. s.mu is held.
func (s *Server) webhook(w http.ResponseWriter, r *http.Request) (*Webhook, bool) {
	wh, ok := s.webhooks[r.PathValue("id")]
	if !ok || wh.Token != r.PathValue("token") {
		apiError(w, 404, CodeUnknownWebhook, "Unknown Webhook")
		return nil, false
	}
	return wh, true
}

func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request, _ none, c *Channel) {
	out := []map[string]any{}
	for _, wh := range s.webhooks {
		if wh.ChannelID == c.ID {
			out = append(out, webhookJSON(wh))
		}
	}
	writeJSON(w, 200, out)
}

type webhookBody struct {
	Name string `json:"name"`
}

func (b *webhookBody) valid() bool { return b.Name != "" }

func (s *Server) createWebhook(w http.ResponseWriter, r *http.Request, body webhookBody, c *Channel) {
	if c.ParentID != "" {
		apiError(w, 400, CodeInvalidFormBody, "Invalid Form Body: webhooks belong to a channel, not a thread")
		return
	}
	wh := &Webhook{ID: s.id(), Token: "whtok-" + s.id(), ChannelID: c.ID, Name: body.Name}
	s.webhooks[wh.ID] = wh
	writeJSON(w, 200, webhookJSON(wh))
}

// executeWebhook posts in the webhook's channel, in one of its threads
// (thread_id), or, in a forum, in a new post (thread_name).
func (s *Server) executeWebhook(w http.ResponseWriter, r *http.Request, body wireMessage, wh *Webhook) {
	parent, ok := s.channel(w, wh.ChannelID)
	if !ok {
		return
	}
	target := parent
	if tid := r.URL.Query().Get("thread_id"); tid != "" {
		t, ok := s.channels[tid]
		if !ok || t.ParentID != wh.ChannelID {
			unknownChannel(w)
			return
		}
		if t.Archived {
			apiError(w, 400, CodeThreadArchived, "Thread is archived")
			return
		}
		target = t
	} else if parent.Type == TypeForum {
		if body.ThreadName == "" {
			apiError(w, 400, 220001, "Webhooks posted to forum channels must have a thread_name or thread_id")
			return
		}
		target = s.newThread(parent, body.ThreadName)
	}
	m := &Message{ID: s.id(), ChannelID: target.ID, WebhookID: wh.ID, Content: body.Content, Username: body.Username,
		AvatarURL: body.AvatarURL, AllowedMentions: body.AllowedMentions, Embeds: body.Embeds}
	s.messages = append(s.messages, m)
	if r.URL.Query().Get("wait") != "true" {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, 200, messageJSON(m, target.GuildID))
}

// editBody is a webhook message edit: the fields sent are replaced.
type editBody struct {
	Content         *string         `json:"content"`
	Embeds          *[]Embed        `json:"embeds"`
	AllowedMentions json.RawMessage `json:"allowed_mentions"`
}

func (s *Server) editWebhookMessage(w http.ResponseWriter, r *http.Request, body editBody, wh *Webhook) {
	var m *Message
	for _, x := range s.messages {
		if x.ID == r.PathValue("mid") && x.WebhookID == wh.ID {
			m = x
		}
	}
	// A message in one of the webhook's threads is found only with that
	// thread's thread_id.
	if m == nil || m.ChannelID != wh.ChannelID && r.URL.Query().Get("thread_id") != m.ChannelID {
		apiError(w, 404, CodeUnknownMessage, "Unknown Message")
		return
	}
	if _, ok := s.channel(w, m.ChannelID); !ok {
		return
	}
	if body.Content != nil {
		m.Content = *body.Content
	}
	if body.Embeds != nil {
		m.Embeds = *body.Embeds
	}
	if len(body.AllowedMentions) > 0 {
		m.AllowedMentions = body.AllowedMentions
	}
	m.Edits++
	writeJSON(w, 200, messageJSON(m, ""))
}

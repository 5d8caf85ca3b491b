package discordtest

import (
	"encoding/json"
	"net/http"
	"strings"
)

// Message is a posted message as the fake stored it.
type Message struct {
	ID        string
	ChannelID string // the thread for thread messages
	WebhookID string
	AuthorID  string
	Content   string
	Username  string
	AvatarURL string
	// AllowedMentions is the raw allowed_mentions object as sent.
	AllowedMentions json.RawMessage
	Embeds          []Embed
	// ReplyTo is message_reference.message_id.
	ReplyTo string
	Edits   int
}

// Embed is the part of an embed the fake keeps.
type Embed struct {
	Title       string       `json:"title,omitempty"`
	URL         string       `json:"url,omitempty"`
	Description string       `json:"description,omitempty"`
	Image       *EmbedMedia  `json:"image,omitempty"`
	Thumbnail   *EmbedMedia  `json:"thumbnail,omitempty"`
	Fields      []EmbedField `json:"fields,omitempty"`
}

// EmbedMedia is an embed image or thumbnail.
type EmbedMedia struct {
	URL string `json:"url"`
}

// EmbedField is a field of an embed.
type EmbedField struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Reaction is a reaction the bot added.
type Reaction struct {
	ChannelID, MessageID, Emoji string
}

// wireMessage is the JSON body of message create, webhook execute and edit.
type wireMessage struct {
	Content         string          `json:"content"`
	Username        string          `json:"username"`
	AvatarURL       string          `json:"avatar_url"`
	Embeds          []Embed         `json:"embeds"`
	AllowedMentions json.RawMessage `json:"allowed_mentions"`
	ThreadName      string          `json:"thread_name"`
	Reference       *struct {
		MessageID string `json:"message_id"`
	} `json:"message_reference"`
}

// valid applies Discord's limits: content or embeds, at most 2,000
// characters and 10 embeds, a webhook username Discord allows, http(s)
// embed URLs.
func (m *wireMessage) valid() bool {
	if len([]rune(m.Content)) > 2000 || len(m.Embeds) > 10 {
		return false
	}
	if m.Content == "" && len(m.Embeds) == 0 {
		return false
	}
	if m.Username != "" {
		u := strings.ToLower(m.Username)
		if len([]rune(m.Username)) > 80 || strings.Contains(u, "discord") || strings.Contains(u, "clyde") {
			return false
		}
	}
	for _, e := range m.Embeds {
		for _, u := range []string{e.URL, mediaURL(e.Image), mediaURL(e.Thumbnail)} {
			if u != "" && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
				return false
			}
		}
	}
	return true
}

func mediaURL(m *EmbedMedia) string {
	if m == nil {
		return ""
	}
	return m.URL
}

func messageJSON(m *Message, guildID string) map[string]any {
	out := map[string]any{"id": m.ID, "channel_id": m.ChannelID, "content": m.Content, "embeds": m.Embeds}
	if guildID != "" {
		out["guild_id"] = guildID
	}
	if m.WebhookID != "" {
		out["webhook_id"] = m.WebhookID
		out["author"] = map[string]any{"id": m.WebhookID, "username": m.Username, "bot": true}
	} else {
		out["author"] = map[string]any{"id": m.AuthorID, "username": "bot", "bot": true}
	}
	return out
}

func (s *Server) createMessage(w http.ResponseWriter, r *http.Request, body wireMessage, c *Channel) {
	if c.Type == TypeForum {
		apiError(w, 400, CodeInvalidFormBody, "Cannot send messages in a forum channel")
		return
	}
	if c.Archived {
		apiError(w, 400, CodeThreadArchived, "Thread is archived")
		return
	}
	m := &Message{ID: s.id(), ChannelID: c.ID, AuthorID: s.BotUserID, Content: body.Content,
		AllowedMentions: body.AllowedMentions, Embeds: body.Embeds}
	if body.Reference != nil {
		m.ReplyTo = body.Reference.MessageID
	}
	s.messages = append(s.messages, m)
	writeJSON(w, 200, messageJSON(m, c.GuildID))
}

func (s *Server) addReaction(w http.ResponseWriter, r *http.Request, _ none, c *Channel) {
	s.reactions = append(s.reactions, Reaction{ChannelID: c.ID, MessageID: r.PathValue("mid"), Emoji: r.PathValue("emoji")})
	w.WriteHeader(http.StatusNoContent)
}

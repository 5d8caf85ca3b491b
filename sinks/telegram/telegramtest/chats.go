package telegramtest

import (
	"strconv"

	"github.com/go-telegram/bot/models"
)

// Chat is a chat the bot is a member of.
type Chat struct {
	ID      int64
	Title   string
	IsForum bool
	// Kicked makes every call for the chat answer 403.
	Kicked bool
}

// AddChat registers a chat.
func (s *Server) AddChat(c Chat) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cc := c
	s.chats[c.ID] = &cc
	if s.topics[c.ID] == nil {
		s.topics[c.ID] = map[int]*Topic{}
	}
	if s.nextMsg[c.ID] == 0 {
		s.nextMsg[c.ID] = 1
	}
}

// SetKicked makes the bot kicked from (or back in) the chat.
func (s *Server) SetKicked(chat int64, kicked bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.chats[chat]; c != nil {
		c.Kicked = kicked
	}
}

// chat looks up p's chat_id, refusing a chat the bot was kicked from.
func (s *Server) chat(p map[string]string) (*Chat, error) {
	id, err := strconv.ParseInt(p["chat_id"], 10, 64)
	if err != nil {
		return nil, badRequest("chat not found")
	}
	c := s.chats[id]
	if c == nil {
		return nil, badRequest("chat not found")
	}
	if c.Kicked {
		return nil, &apiError{403, "Forbidden: bot was kicked from the supergroup chat"}
	}
	return c, nil
}

// getChat answers getChat, the chat's type guessed from its id as
// Telegram's numbering allows (users positive, supergroups -100…).
func getChat(c *Chat) models.ChatFullInfo {
	typ := models.ChatTypeGroup
	if c.IsForum || c.ID < -1000000000000 {
		typ = models.ChatTypeSupergroup
	}
	if c.ID > 0 {
		typ = models.ChatTypePrivate
	}
	return models.ChatFullInfo{ID: c.ID, Type: typ, Title: c.Title, IsForum: c.IsForum}
}

package telegramtest

import (
	"strconv"

	"github.com/go-telegram/bot/models"
)

// Topic is a forum topic.
type Topic struct {
	ThreadID int
	Name     string
	Closed   bool
	Deleted  bool
}

// DeleteTopic deletes a topic as a chat admin would.
func (s *Server) DeleteTopic(chat int64, thread int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if tp := s.topics[chat][thread]; tp != nil {
		tp.Deleted = true
	}
}

// CloseTopic closes a topic as a chat admin would.
func (s *Server) CloseTopic(chat int64, thread int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if tp := s.topics[chat][thread]; tp != nil {
		tp.Closed = true
	}
}

// errNotForum answers a topic method in a chat that is not a forum.
var errNotForum = badRequest("the chat is not a forum")

// topic looks up p's message_thread_id in c; a deleted topic, or any in a
// chat that is not a forum, is not found.
func (s *Server) topic(c *Chat, p map[string]string) (*Topic, error) {
	id, _ := strconv.Atoi(p["message_thread_id"])
	tp := s.topics[c.ID][id]
	if !c.IsForum || tp == nil || tp.Deleted {
		return nil, badRequest("message thread not found")
	}
	return tp, nil
}

func (s *Server) createTopic(c *Chat, p map[string]string) (any, error) {
	if !c.IsForum {
		return nil, errNotForum
	}
	name := p["name"]
	if n := utf8Len(name); n == 0 || n > MaxTopicName {
		return nil, badRequest("TOPIC_NAME_INVALID")
	}
	// The topic's id is that of the service message that opens it.
	id := s.newID(c.ID)
	s.topics[c.ID][id] = &Topic{ThreadID: id, Name: name}
	s.msgs[c.ID] = append(s.msgs[c.ID], &Message{ChatID: c.ID, ID: id, ThreadID: id, FromBot: true, Service: true, Text: name})
	return models.ForumTopic{MessageThreadID: id, Name: name, IconColor: 7322096}, nil
}

// changeTopic serves editForumTopic, closeForumTopic, reopenForumTopic and
// deleteForumTopic. Telegram refuses a change that changes nothing.
func (s *Server) changeTopic(method string, c *Chat, p map[string]string) (any, error) {
	if !c.IsForum {
		return nil, errNotForum
	}
	tp, err := s.topic(c, p)
	if err != nil {
		return nil, err
	}
	switch method {
	case "editForumTopic":
		if p["name"] != "" {
			if utf8Len(p["name"]) > MaxTopicName {
				return nil, badRequest("TOPIC_NAME_INVALID")
			}
			if p["name"] == tp.Name {
				return nil, badRequest("TOPIC_NOT_MODIFIED")
			}
			tp.Name = p["name"]
		}
	case "closeForumTopic":
		if tp.Closed {
			return nil, badRequest("TOPIC_NOT_MODIFIED")
		}
		tp.Closed = true
	case "reopenForumTopic":
		if !tp.Closed {
			return nil, badRequest("TOPIC_NOT_MODIFIED")
		}
		tp.Closed = false
	case "deleteForumTopic":
		tp.Deleted = true
	}
	return true, nil
}

// utf8Len counts characters, as Telegram does for a topic's name.
func utf8Len(s string) int { return len([]rune(s)) }

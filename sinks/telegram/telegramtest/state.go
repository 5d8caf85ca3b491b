package telegramtest

import "slices"

// Topics returns the chat's topics (deleted ones included), by thread id.
func (s *Server) Topics(chat int64) []Topic {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Topic
	for _, tp := range s.topics[chat] {
		out = append(out, *tp)
	}
	slices.SortFunc(out, func(a, b Topic) int { return a.ThreadID - b.ThreadID })
	return out
}

// Sent returns the messages the bot sent to chat, oldest first (copies).
func (s *Server) Sent(chat int64) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, m := range s.msgs[chat] {
		if m.FromBot && !m.Service {
			out = append(out, *m)
		}
	}
	return out
}

// Message returns a message of chat by id.
func (s *Server) Message(chat int64, id int) (Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.find(chat, id); m != nil {
		return *m, true
	}
	return Message{}, false
}

// Calls returns the calls served so far, oldest first.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// CallCount counts the calls of method.
func (s *Server) CallCount(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.calls {
		if c.Method == method {
			n++
		}
	}
	return n
}

// Confirmed is the highest update_id Telegram considers confirmed (the
// last offset asked minus one).
func (s *Server) Confirmed() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.confirmed
}

// PendingUpdates is the number of updates not yet confirmed.
func (s *Server) PendingUpdates() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.updates)
}

// Webhook returns the webhook set (zero when none).
func (s *Server) Webhook() Webhook {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.webhook
}

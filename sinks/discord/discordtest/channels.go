package discordtest

import (
	"net/http"
	"time"
)

// Channel types.
const (
	TypeText   = 0
	TypeForum  = 15
	TypeThread = 11 // public thread
)

// Channel is a channel or thread.
type Channel struct {
	ID       string
	GuildID  string
	Type     int
	Name     string
	ParentID string
	Archived bool
}

// AddChannel creates a guild channel of typ (TypeText or TypeForum) and
// returns its id.
func (s *Server) AddChannel(guildID string, typ int, name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.id()
	s.channels[id] = &Channel{ID: id, GuildID: guildID, Type: typ, Name: name}
	return id
}

// AddMember records a guild member's roles.
func (s *Server) AddMember(guildID, userID string, roles ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.members[guildID+"/"+userID] = roles
}

// Archive archives a thread.
func (s *Server) Archive(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.channels[id]; ok {
		c.Archived = true
	}
}

// Delete deletes a channel or thread.
func (s *Server) Delete(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.channels, id)
}

// channel looks up a channel or thread; a missing one is answered 404
// Unknown Channel, and ok is false. s.mu is held.
func (s *Server) channel(w http.ResponseWriter, id string) (c *Channel, ok bool) {
	if c, ok = s.channels[id]; !ok {
		unknownChannel(w)
	}
	return c, ok
}

func unknownChannel(w http.ResponseWriter) {
	apiError(w, http.StatusNotFound, CodeUnknownChannel, "Unknown Channel")
}

// newThread opens a thread named name in parent; s.mu is held.
func (s *Server) newThread(parent *Channel, name string) *Channel {
	c := &Channel{ID: s.id(), GuildID: parent.GuildID, Type: TypeThread, Name: name, ParentID: parent.ID}
	s.channels[c.ID] = c
	return c
}

func channelJSON(c *Channel) map[string]any {
	m := map[string]any{"id": c.ID, "type": c.Type, "name": c.Name}
	if c.GuildID != "" {
		m["guild_id"] = c.GuildID
	}
	if c.ParentID != "" {
		m["parent_id"] = c.ParentID
		m["thread_metadata"] = map[string]any{"archived": c.Archived, "auto_archive_duration": 10080, "locked": false}
	}
	return m
}

func (s *Server) getChannel(w http.ResponseWriter, r *http.Request, _ none, c *Channel) {
	writeJSON(w, 200, channelJSON(c))
}

// patchBody is a channel modification: the fake renames and (un)archives.
type patchBody struct {
	Archived *bool   `json:"archived"`
	Name     *string `json:"name"`
}

// A channel's name is 1-100 characters.
func (b *patchBody) valid() bool {
	return b.Name == nil || *b.Name != "" && len([]rune(*b.Name)) <= 100
}

// Patch is a channel modification the fake applied (PATCH
// /channels/{id}): a field not sent is nil.
type Patch struct {
	ChannelID string
	Name      *string
	Archived  *bool
}

// RenameWindow is the window of Discord's limit on renaming one channel
// or thread: two renames in ten minutes (see LimitRenames).
const RenameWindow = 10 * time.Minute

// LimitRenames makes the fake take at most n renames of one channel or
// thread in RenameWindow, as Discord (n = 2) does; more are answered 429
// with the retry_after until the oldest leaves the window. Zero (the
// default): no limit.
func (s *Server) LimitRenames(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.renameLimit = n
}

// patchChannel renames and (un)archives. As Discord does, it refuses any
// change to an archived thread but one that unarchives it, and, with
// LimitRenames set, renames past the limit.
func (s *Server) patchChannel(w http.ResponseWriter, r *http.Request, body patchBody, c *Channel) {
	if c.Archived && c.ParentID != "" && (body.Archived == nil || *body.Archived) && body.Name != nil {
		apiError(w, 400, CodeThreadArchived, "Thread is archived")
		return
	}
	rename := body.Name != nil && *body.Name != c.Name
	if rename && s.renameLimit > 0 {
		now := time.Now()
		var recent []time.Time
		for _, t := range s.renames[c.ID] {
			if now.Sub(t) < RenameWindow {
				recent = append(recent, t)
			}
		}
		s.renames[c.ID] = recent
		if len(recent) >= s.renameLimit {
			f := fault{status: http.StatusTooManyRequests, retryAfter: RenameWindow.Seconds() - now.Sub(recent[0]).Seconds()}
			f.answer(w)
			return
		}
	}
	if rename {
		s.renames[c.ID] = append(s.renames[c.ID], time.Now())
	}
	s.patches = append(s.patches, Patch{ChannelID: c.ID, Name: body.Name, Archived: body.Archived})
	if body.Archived != nil {
		c.Archived = *body.Archived
	}
	if body.Name != nil {
		c.Name = *body.Name
	}
	writeJSON(w, 200, channelJSON(c))
}

// threadBody starts a thread; in a forum it carries the post's first
// message.
type threadBody struct {
	Name    string       `json:"name"`
	Type    int          `json:"type"`
	Message *wireMessage `json:"message"`
}

func (b *threadBody) valid() bool { return b.Name != "" && len([]rune(b.Name)) <= 100 }

func (s *Server) startThread(w http.ResponseWriter, r *http.Request, body threadBody, parent *Channel) {
	if parent.Type == TypeForum && (body.Message == nil || !body.Message.valid()) {
		apiError(w, 400, CodeInvalidFormBody, "Invalid Form Body: a forum post needs a message")
		return
	}
	if parent.Type != TypeForum && parent.Type != TypeText {
		apiError(w, 400, CodeInvalidFormBody, "Invalid Form Body: not a text or forum channel")
		return
	}
	c := s.newThread(parent, body.Name)
	if body.Message != nil && parent.Type == TypeForum {
		s.messages = append(s.messages, &Message{ID: s.id(), ChannelID: c.ID, AuthorID: s.BotUserID,
			Content: body.Message.Content, AllowedMentions: body.Message.AllowedMentions, Embeds: body.Message.Embeds})
	}
	writeJSON(w, 201, channelJSON(c))
}

func (s *Server) getMember(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	roles, ok := s.members[r.PathValue("gid")+"/"+r.PathValue("uid")]
	if !ok {
		apiError(w, 404, 10007, "Unknown Member")
		return
	}
	writeJSON(w, 200, map[string]any{"user": map[string]any{"id": r.PathValue("uid"), "username": "member"}, "roles": roles})
}

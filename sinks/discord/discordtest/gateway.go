package discordtest

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Message types (UserMessage.Type): what Discord posts for a user's
// message or action.
const (
	MessageDefault           = 0
	MessageRecipientAdd      = 1
	MessageChannelNameChange = 4 // a thread renamed; the content is the new name
	MessageChannelPinned     = 6
	MessageMemberJoin        = 7
	MessageBoost             = 8
	MessageThreadCreated     = 18
	MessageReply             = 19
	MessageChatInputCommand  = 20
	MessageThreadStarter     = 21
	MessagePollResult        = 46
)

// Identify is what a client sent in op 2.
type Identify struct {
	Token   string
	Intents int
}

// gateway answers GET /gateway(/bot): the fake's own websocket URL.
func (s *Server) gateway(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, 200, map[string]any{"url": "ws://" + r.Host + "/gw", "shards": 1})
}

type gwConn struct {
	ws  *websocket.Conn
	mu  sync.Mutex
	seq int
}

// send writes a gateway payload; dispatches (op 0) are numbered.
func (c *gwConn) send(op int, t string, d any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := map[string]any{"op": op, "d": d}
	if op == 0 {
		c.seq++
		p["s"], p["t"] = c.seq, t
	}
	return c.ws.WriteJSON(p)
}

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

// serveGateway runs one gateway connection: HELLO, then heartbeats
// answered and identify or resume until the client goes.
func (s *Server) serveGateway(w http.ResponseWriter, r *http.Request) {
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &gwConn{ws: ws}
	s.mu.Lock()
	interval := s.HeartbeatInterval
	s.mu.Unlock()
	defer ws.Close()
	if c.send(10, "", map[string]any{"heartbeat_interval": interval.Milliseconds()}) != nil {
		return
	}
	for {
		var p struct {
			Op int             `json:"op"`
			D  json.RawMessage `json:"d"`
		}
		if err := ws.ReadJSON(&p); err != nil {
			s.mu.Lock()
			s.gw = slices.DeleteFunc(s.gw, func(x *gwConn) bool { return x == c })
			s.mu.Unlock()
			return
		}
		switch p.Op {
		case 1:
			s.mu.Lock()
			s.beats++
			s.mu.Unlock()
			_ = c.send(11, "", nil)
		case 2, 6:
			if !s.login(c, r.Host, p.Op, p.D) {
				return
			}
		}
	}
}

// login answers an identify (op 2) with READY or a resume (op 6) with
// RESUMED, and counts c as connected. With a wrong token it closes the
// connection the way Discord does and returns false.
func (s *Server) login(c *gwConn, host string, op int, d json.RawMessage) bool {
	var id struct {
		Token   string `json:"token"`
		Intents int    `json:"intents"`
	}
	_ = json.Unmarshal(d, &id)
	s.mu.Lock()
	ok := id.Token == "Bot "+s.Token
	if ok && op == 2 {
		s.identifies = append(s.identifies, Identify{Token: id.Token, Intents: id.Intents})
	}
	if ok && op == 6 {
		s.resumes++
	}
	s.mu.Unlock()
	if !ok {
		_ = c.ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4004, "Authentication failed."))
		return false
	}
	if op == 6 {
		_ = c.send(0, "RESUMED", map[string]any{})
	} else {
		_ = c.send(0, "READY", map[string]any{
			"v": 9, "session_id": "fake-session", "resume_gateway_url": "ws://" + host + "/gw",
			"user":   map[string]any{"id": s.BotUserID, "username": "bilibridge", "bot": true},
			"guilds": []any{},
		})
	}
	s.mu.Lock()
	s.gw = append(s.gw, c)
	s.mu.Unlock()
	return true
}

// Drop closes every gateway connection abruptly, as a network failure
// would; discordgo then reconnects and resumes (op 6).
func (s *Server) Drop() {
	s.mu.Lock()
	conns := slices.Clone(s.gw)
	s.gw = nil
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.ws.UnderlyingConn().Close()
	}
}

// UserMessage is a message a user types, for Dispatch.
type UserMessage struct {
	ChannelID string
	GuildID   string
	AuthorID  string
	Bot       bool
	WebhookID string
	Content   string
	// Type is the message type (MessageDefault when zero); other types are
	// what Discord posts for an action: a pin, a thread renamed…
	Type int
	// ReplyTo, when set, is the message replied to (message_reference).
	ReplyTo string
	// Roles, when not nil, are sent as the member field.
	Roles       []string
	Attachments []Attachment
}

// Attachment is a file on a user message.
type Attachment struct {
	URL         string
	Filename    string
	ContentType string
}

// Dispatch stores m (giving it an id) and sends it as MESSAGE_CREATE to
// every connected gateway client. It returns the message id.
func (s *Server) Dispatch(m UserMessage) string {
	s.mu.Lock()
	id := s.id()
	if m.GuildID == "" {
		if c, ok := s.channels[m.ChannelID]; ok {
			m.GuildID = c.GuildID
		}
	}
	s.messages = append(s.messages, &Message{ID: id, ChannelID: m.ChannelID, AuthorID: m.AuthorID, WebhookID: m.WebhookID, Content: m.Content, ReplyTo: m.ReplyTo})
	conns := slices.Clone(s.gw)
	s.mu.Unlock()
	d := map[string]any{
		"id": id, "channel_id": m.ChannelID, "guild_id": m.GuildID, "content": m.Content, "type": m.Type,
		"timestamp": time.Now().UTC().Format(time.RFC3339),
		"author":    map[string]any{"id": m.AuthorID, "username": "user" + m.AuthorID, "bot": m.Bot},
	}
	if m.ReplyTo != "" {
		d["message_reference"] = map[string]any{"message_id": m.ReplyTo, "channel_id": m.ChannelID, "guild_id": m.GuildID}
	}
	if m.WebhookID != "" {
		d["webhook_id"] = m.WebhookID
	}
	if m.Roles != nil {
		d["member"] = map[string]any{"roles": m.Roles}
	}
	var atts []map[string]any
	for i, a := range m.Attachments {
		atts = append(atts, map[string]any{"id": strconv.Itoa(i + 1), "url": a.URL, "proxy_url": a.URL, "filename": a.Filename, "content_type": a.ContentType})
	}
	if atts != nil {
		d["attachments"] = atts
	}
	for _, c := range conns {
		_ = c.send(0, "MESSAGE_CREATE", d)
	}
	return id
}

// RenameThread renames a thread as user userID does in the client:
// Discord then posts a CHANNEL_NAME_CHANGE message in it, in the user's
// name, whose content is the new name. It returns that message's id.
func (s *Server) RenameThread(threadID, userID, name string) string {
	s.mu.Lock()
	if c, ok := s.channels[threadID]; ok {
		c.Name = name
	}
	s.mu.Unlock()
	return s.Dispatch(UserMessage{ChannelID: threadID, AuthorID: userID, Content: name, Type: MessageChannelNameChange})
}

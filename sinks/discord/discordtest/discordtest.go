// Package discordtest is a stateful fake of the parts of Discord's REST API
// (v9) and gateway that the Discord sink uses: channels and threads (text
// and forum), channel webhooks and their messages, bot messages,
// reactions, guild members, 429 and error injection, and a websocket
// gateway that says hello, records identify, sends READY, answers
// heartbeats and dispatches MESSAGE_CREATE.
//
// Tests reach it through Client, whose Transport sends every request,
// whatever its host, to the fake: nothing goes to the network.
package discordtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Channel types.
const (
	TypeText   = 0
	TypeForum  = 15
	TypeThread = 11 // public thread
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

// Discord JSON error codes the fake answers with.
const (
	CodeUnknownChannel  = 10003
	CodeUnknownWebhook  = 10015
	CodeUnknownMessage  = 10008
	CodeMissingAccess   = 50001
	CodeThreadArchived  = 50083
	CodeInvalidFormBody = 50035
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

// Webhook is a channel webhook.
type Webhook struct {
	ID        string
	Token     string
	ChannelID string
	Name      string
}

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

// Request is a request the fake received (webhook tokens included: tests
// check what the sink sends, and the fake is not a log).
type Request struct {
	Method  string
	Path    string // escaped path, query not included
	Query   url.Values
	Pattern string // the route that matched
	Auth    string
}

// fault is an injected failure.
type fault struct {
	pattern    string
	status     int
	code       int
	retryAfter float64
	skip       int
	left       int
}

// Server is the fake Discord.
type Server struct {
	*httptest.Server
	// Token is the bot token the fake expects ("Bot " + Token).
	Token string
	// BotUserID is the bot's user id, sent in READY.
	BotUserID string
	// HeartbeatInterval is sent in HELLO; default 45s.
	HeartbeatInterval time.Duration

	mu        sync.Mutex
	next      uint64
	channels  map[string]*Channel
	deleted   map[string]bool
	webhooks  map[string]*Webhook
	messages  []*Message
	reactions []Reaction
	members   map[string][]string // guild/user -> roles
	requests  []Request
	faults    []*fault
	gw        []*gwConn
	identify  []Identify
	beats     int
	resumes   int
}

// Identify is what a client sent in op 2.
type Identify struct {
	Token   string
	Intents int
}

// New starts a fake with one guild text channel; close it with Close (or
// let t.Cleanup do it through NewT).
func New(token string) *Server {
	s := &Server{
		Token:             token,
		BotUserID:         "900000000000000001",
		HeartbeatInterval: 45 * time.Second,
		next:              1000000000000000000,
		channels:          map[string]*Channel{},
		deleted:           map[string]bool{},
		webhooks:          map[string]*Webhook{},
		members:           map[string][]string{},
	}
	s.Server = httptest.NewServer(s.routes())
	return s
}

// Cleanup is the part of testing.TB New's callers need.
type Cleanup interface{ Cleanup(func()) }

// NewT is New, closed when the test ends.
func NewT(t Cleanup, token string) *Server {
	s := New(token)
	t.Cleanup(s.Close)
	return s
}

// Close stops the server and its gateway connections.
func (s *Server) Close() {
	s.mu.Lock()
	conns := slices.Clone(s.gw)
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.ws.Close()
	}
	s.Server.Close()
}

func (s *Server) id() string {
	s.next++
	return strconv.FormatUint(s.next, 10)
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

// Channel returns a copy of a channel or thread.
func (s *Server) Channel(id string) (Channel, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.channels[id]
	if !ok {
		return Channel{}, false
	}
	return *c, true
}

// Threads returns the threads of parent, oldest first.
func (s *Server) Threads(parent string) []Channel {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Channel
	for _, c := range s.channels {
		if c.ParentID == parent {
			out = append(out, *c)
		}
	}
	slices.SortFunc(out, func(a, b Channel) int { return cmpID(a.ID, b.ID) })
	return out
}

func cmpID(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
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
	s.deleted[id] = true
}

// Webhooks returns the webhooks of a channel.
func (s *Server) Webhooks(channelID string) []Webhook {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Webhook
	for _, w := range s.webhooks {
		if w.ChannelID == channelID {
			out = append(out, *w)
		}
	}
	return out
}

// Messages returns the messages of a channel or thread, oldest first.
func (s *Server) Messages(channelID string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, m := range s.messages {
		if m.ChannelID == channelID {
			c := *m
			c.Embeds = slices.Clone(m.Embeds)
			out = append(out, c)
		}
	}
	return out
}

// AllMessages returns every message, oldest first.
func (s *Server) AllMessages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, 0, len(s.messages))
	for _, m := range s.messages {
		out = append(out, *m)
	}
	return out
}

// Reactions returns the reactions added, in order.
func (s *Server) Reactions() []Reaction {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reactions)
}

// Requests returns every request received, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// Fail makes the next n requests matching pattern (a route such as
// "POST /api/v9/webhooks/{id}/{token}") fail with status and Discord
// error code.
func (s *Server) Fail(pattern string, n, status, code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &fault{pattern: pattern, status: status, code: code, left: n})
}

// FailAfter lets skip requests matching pattern through, then fails the
// next n like Fail.
func (s *Server) FailAfter(pattern string, skip, n, status, code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &fault{pattern: pattern, status: status, code: code, skip: skip, left: n})
}

// RateLimit makes the next n requests matching pattern answer 429 with
// retry_after seconds, the way Discord does (body and headers).
func (s *Server) RateLimit(pattern string, n int, retryAfter float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &fault{pattern: pattern, status: http.StatusTooManyRequests, retryAfter: retryAfter, left: n})
}

// Client returns an http.Client that sends every request to the fake,
// rewriting scheme and host: point a discordgo session's Client at it.
func (s *Server) Client() *http.Client {
	u, _ := url.Parse(s.URL)
	return &http.Client{Timeout: 10 * time.Second, Transport: RewriteTransport{Target: u, Base: http.DefaultTransport}}
}

// RewriteTransport sends every request to Target's scheme and host.
type RewriteTransport struct {
	Target *url.URL
	Base   http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (t RewriteTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.URL.Scheme, r.URL.Host, r.Host = t.Target.Scheme, t.Target.Host, t.Target.Host
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(r)
}

// ---- REST ----

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	h := func(pattern string, webhookAuth bool, fn func(w http.ResponseWriter, r *http.Request)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			s.mu.Lock()
			s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.Query(), Pattern: pattern, Auth: r.Header.Get("Authorization")})
			if !webhookAuth && r.Header.Get("Authorization") != "Bot "+s.Token {
				s.mu.Unlock()
				apiError(w, http.StatusUnauthorized, 0, "401: Unauthorized")
				return
			}
			for i, f := range s.faults {
				if f.pattern != pattern || f.left <= 0 {
					continue
				}
				if f.skip > 0 {
					f.skip--
					break
				}
				f.left--
				if f.left == 0 {
					s.faults = slices.Delete(s.faults, i, i+1)
				}
				s.mu.Unlock()
				if f.status == http.StatusTooManyRequests {
					ra := strconv.FormatFloat(f.retryAfter, 'f', -1, 64)
					w.Header().Set("Retry-After", strconv.Itoa(int(f.retryAfter+0.999)))
					w.Header().Set("X-RateLimit-Limit", "5")
					w.Header().Set("X-RateLimit-Remaining", "0")
					w.Header().Set("X-RateLimit-Reset-After", ra)
					w.Header().Set("X-RateLimit-Bucket", "fakebucket")
					w.Header().Set("X-RateLimit-Scope", "user")
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(http.StatusTooManyRequests)
					fmt.Fprintf(w, `{"message":"You are being rate limited.","retry_after":%s,"global":false}`, ra)
					return
				}
				apiError(w, f.status, f.code, http.StatusText(f.status))
				return
			}
			s.mu.Unlock()
			fn(w, r)
		})
	}
	h("GET /api/v9/gateway", false, s.gateway)
	h("GET /api/v9/gateway/bot", false, s.gateway)
	h("GET /api/v9/channels/{id}", false, s.getChannel)
	h("PATCH /api/v9/channels/{id}", false, s.patchChannel)
	h("POST /api/v9/channels/{id}/threads", false, s.startThread)
	h("GET /api/v9/channels/{id}/webhooks", false, s.listWebhooks)
	h("POST /api/v9/channels/{id}/webhooks", false, s.createWebhook)
	h("POST /api/v9/channels/{id}/messages", false, s.createMessage)
	h("PUT /api/v9/channels/{id}/messages/{mid}/reactions/{emoji}/@me", false, s.addReaction)
	h("GET /api/v9/guilds/{gid}/members/{uid}", false, s.getMember)
	h("POST /api/v9/webhooks/{id}/{token}", true, s.executeWebhook)
	h("PATCH /api/v9/webhooks/{id}/{token}/messages/{mid}", true, s.editWebhookMessage)
	mux.HandleFunc("GET /gw", s.serveGateway)
	mux.HandleFunc("GET /gw/", s.serveGateway)
	return mux
}

func apiError(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"message": msg, "code": code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) unknownChannel(w http.ResponseWriter) {
	apiError(w, http.StatusNotFound, CodeUnknownChannel, "Unknown Channel")
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

func (s *Server) gateway(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, 200, map[string]any{"url": "ws://" + r.Host + "/gw", "shards": 1})
}

func (s *Server) getChannel(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.channels[r.PathValue("id")]
	if !ok {
		s.unknownChannel(w)
		return
	}
	writeJSON(w, 200, channelJSON(c))
}

func (s *Server) patchChannel(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Archived *bool  `json:"archived"`
		Name     string `json:"name"`
	}
	if json.NewDecoder(r.Body).Decode(&body) != nil {
		apiError(w, 400, CodeInvalidFormBody, "Invalid Form Body")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.channels[r.PathValue("id")]
	if !ok {
		s.unknownChannel(w)
		return
	}
	if body.Archived != nil {
		c.Archived = *body.Archived
	}
	if body.Name != "" {
		c.Name = body.Name
	}
	writeJSON(w, 200, channelJSON(c))
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

func (s *Server) startThread(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Name    string       `json:"name"`
		Type    int          `json:"type"`
		Message *wireMessage `json:"message"`
	}
	if json.NewDecoder(r.Body).Decode(&body) != nil || body.Name == "" || len([]rune(body.Name)) > 100 {
		apiError(w, 400, CodeInvalidFormBody, "Invalid Form Body")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	parent, ok := s.channels[r.PathValue("id")]
	if !ok {
		s.unknownChannel(w)
		return
	}
	if parent.Type == TypeForum && (body.Message == nil || !body.Message.valid()) {
		apiError(w, 400, CodeInvalidFormBody, "Invalid Form Body: a forum post needs a message")
		return
	}
	if parent.Type != TypeForum && parent.Type != TypeText {
		apiError(w, 400, CodeInvalidFormBody, "Invalid Form Body: not a text or forum channel")
		return
	}
	c := &Channel{ID: s.id(), GuildID: parent.GuildID, Type: TypeThread, Name: body.Name, ParentID: parent.ID}
	s.channels[c.ID] = c
	if body.Message != nil && parent.Type == TypeForum {
		s.messages = append(s.messages, &Message{ID: s.id(), ChannelID: c.ID, AuthorID: s.BotUserID,
			Content: body.Message.Content, AllowedMentions: body.Message.AllowedMentions, Embeds: body.Message.Embeds})
	}
	writeJSON(w, 201, channelJSON(c))
}

func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.channels[r.PathValue("id")]; !ok {
		s.unknownChannel(w)
		return
	}
	out := []map[string]any{}
	for _, wh := range s.webhooks {
		if wh.ChannelID == r.PathValue("id") {
			out = append(out, map[string]any{"id": wh.ID, "type": 1, "channel_id": wh.ChannelID, "name": wh.Name, "token": wh.Token})
		}
	}
	writeJSON(w, 200, out)
}

func (s *Server) createWebhook(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Name string `json:"name"`
	}
	if json.NewDecoder(r.Body).Decode(&body) != nil || body.Name == "" {
		apiError(w, 400, CodeInvalidFormBody, "Invalid Form Body")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.channels[r.PathValue("id")]
	if !ok {
		s.unknownChannel(w)
		return
	}
	if c.ParentID != "" {
		apiError(w, 400, CodeInvalidFormBody, "Invalid Form Body: webhooks belong to a channel, not a thread")
		return
	}
	wh := &Webhook{ID: s.id(), Token: "whtok-" + s.id(), ChannelID: c.ID, Name: body.Name}
	s.webhooks[wh.ID] = wh
	writeJSON(w, 200, map[string]any{"id": wh.ID, "type": 1, "channel_id": wh.ChannelID, "name": wh.Name, "token": wh.Token})
}

func (s *Server) createMessage(w http.ResponseWriter, r *http.Request) {
	var body wireMessage
	if json.NewDecoder(r.Body).Decode(&body) != nil || !body.valid() {
		apiError(w, 400, CodeInvalidFormBody, "Invalid Form Body")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.channels[r.PathValue("id")]
	if !ok {
		s.unknownChannel(w)
		return
	}
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

func (s *Server) addReaction(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.channels[r.PathValue("id")]; !ok {
		s.unknownChannel(w)
		return
	}
	s.reactions = append(s.reactions, Reaction{ChannelID: r.PathValue("id"), MessageID: r.PathValue("mid"), Emoji: r.PathValue("emoji")})
	w.WriteHeader(http.StatusNoContent)
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

func (s *Server) webhookFor(w http.ResponseWriter, r *http.Request) (*Webhook, bool) {
	wh, ok := s.webhooks[r.PathValue("id")]
	if !ok || wh.Token != r.PathValue("token") {
		apiError(w, 404, CodeUnknownWebhook, "Unknown Webhook")
		return nil, false
	}
	return wh, true
}

func (s *Server) executeWebhook(w http.ResponseWriter, r *http.Request) {
	var body wireMessage
	if json.NewDecoder(r.Body).Decode(&body) != nil || !body.valid() {
		apiError(w, 400, CodeInvalidFormBody, "Invalid Form Body")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	wh, ok := s.webhookFor(w, r)
	if !ok {
		return
	}
	parent := s.channels[wh.ChannelID]
	if parent == nil {
		s.unknownChannel(w)
		return
	}
	target := parent
	if tid := r.URL.Query().Get("thread_id"); tid != "" {
		t, ok := s.channels[tid]
		if !ok || t.ParentID != wh.ChannelID {
			s.unknownChannel(w)
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
		target = &Channel{ID: s.id(), GuildID: parent.GuildID, Type: TypeThread, Name: body.ThreadName, ParentID: parent.ID}
		s.channels[target.ID] = target
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

func (s *Server) editWebhookMessage(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Content         *string         `json:"content"`
		Embeds          *[]Embed        `json:"embeds"`
		AllowedMentions json.RawMessage `json:"allowed_mentions"`
	}
	if json.NewDecoder(r.Body).Decode(&body) != nil {
		apiError(w, 400, CodeInvalidFormBody, "Invalid Form Body")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	wh, ok := s.webhookFor(w, r)
	if !ok {
		return
	}
	var m *Message
	for _, x := range s.messages {
		if x.ID == r.PathValue("mid") && x.WebhookID == wh.ID {
			m = x
		}
	}
	if m == nil {
		apiError(w, 404, CodeUnknownMessage, "Unknown Message")
		return
	}
	if m.ChannelID != wh.ChannelID && r.URL.Query().Get("thread_id") != m.ChannelID {
		apiError(w, 404, CodeUnknownMessage, "Unknown Message")
		return
	}
	if _, ok := s.channels[m.ChannelID]; !ok {
		s.unknownChannel(w)
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

// ---- gateway ----

type gwConn struct {
	ws  *websocket.Conn
	mu  sync.Mutex
	seq int
}

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
			var id struct {
				Token   string `json:"token"`
				Intents int    `json:"intents"`
			}
			_ = json.Unmarshal(p.D, &id)
			s.mu.Lock()
			ok := id.Token == "Bot "+s.Token
			if ok && p.Op == 2 {
				s.identify = append(s.identify, Identify{Token: id.Token, Intents: id.Intents})
			}
			if ok && p.Op == 6 {
				s.resumes++
			}
			s.mu.Unlock()
			if !ok {
				_ = ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4004, "Authentication failed."))
				return
			}
			if p.Op == 6 {
				_ = c.send(0, "RESUMED", map[string]any{})
			} else {
				_ = c.send(0, "READY", map[string]any{
					"v": 9, "session_id": "fake-session", "resume_gateway_url": "ws://" + r.Host + "/gw",
					"user":   map[string]any{"id": s.BotUserID, "username": "bilibridge", "bot": true},
					"guilds": []any{},
				})
			}
			s.mu.Lock()
			s.gw = append(s.gw, c)
			s.mu.Unlock()
		}
	}
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

// Resumes returns how many op 6 resumes were answered.
func (s *Server) Resumes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.resumes
}

// Identifies returns the op 2 payloads received.
func (s *Server) Identifies() []Identify {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.identify)
}

// Heartbeats returns how many op 1 heartbeats were answered.
func (s *Server) Heartbeats() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.beats
}

// Connected reports how many gateway clients finished identifying.
func (s *Server) Connected() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.gw)
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

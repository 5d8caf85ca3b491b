// Package telegramtest is a stateful fake Telegram Bot API server for
// tests. It speaks the real wire format: every call is
// POST /bot<token>/<method> with a multipart/form-data body (an empty body
// for calls without parameters), nested objects arrive as JSON strings,
// uploads as form files, and every answer is {"ok":true,"result":…} or
// {"ok":false,"error_code":…,"description":…,"parameters":{…}}.
//
// It keeps chats (forum or not), forum topics (created, closed, deleted),
// the messages the bot sent or edited, reactions, files and a queue of
// updates served by getUpdates with Telegram's offset semantics. Faults can
// be injected for the next calls of a method.
package telegramtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/go-telegram/bot/models"
)

// BotID is the id of the fake's bot (the token's first part).
const BotID int64 = 7000000001

// DefaultToken is a token the fake accepts when Server.Token is not set.
const DefaultToken = "7000000001:AAFakeTokenForTestsOnly_xyz"

// Telegram's limits.
const (
	MaxTextLen    = 4096
	MaxCaptionLen = 1024
	MaxTopicName  = 128
)

// AllowedReactions are the emoji Telegram accepts in ReactionTypeEmoji.
var AllowedReactions = []string{"👍", "👎", "❤", "🔥", "🥰", "👏", "😁", "🤔", "🤯", "😱", "🤬", "😢", "🎉", "🤩",
	"🤮", "💩", "🙏", "👌", "🕊", "🤡", "🥱", "🥴", "😍", "🐳", "❤‍🔥", "🌚", "🌭", "💯", "🤣", "⚡", "🍌", "🏆",
	"💔", "🤨", "😐", "🍓", "🍾", "💋", "🖕", "😈", "😴", "😭", "🤓", "👻", "👨‍💻", "👀", "🎃", "🙈", "😇", "😨",
	"🤝", "✍", "🤗", "🫡", "🎅", "🎄", "☃", "💅", "🤪", "🗿", "🆒", "💘", "🙉", "🦄", "😘", "💊", "🙊", "😎",
	"👾", "🤷‍♂", "🤷", "🤷‍♀", "😡"}

// Fault is an error answer injected for a call.
type Fault struct {
	// Code is error_code (429, 400, 403, 500…). HTTPStatus defaults to it.
	Code        int
	Description string
	RetryAfter  int
	HTTPStatus  int
	// RawBody, when set, is sent instead of a JSON answer (a proxy's HTML
	// error page).
	RawBody string
	// Drop closes the connection without an answer, as a network failure
	// would; the call is not served (nothing is posted).
	Drop bool
	// Hold, when not nil, keeps the call waiting until it is closed (or
	// the client gives up) before the fault is answered: a call that
	// hangs, as when the bridge is stuck or dies in the middle of it.
	Hold <-chan struct{}
}

// Dropped is a connection closed without an answer.
func Dropped() Fault { return Fault{Drop: true} }

// TooManyRequests is a 429 asking to wait n seconds.
func TooManyRequests(n int) Fault {
	return Fault{Code: 429, Description: fmt.Sprintf("Too Many Requests: retry after %d", n), RetryAfter: n}
}

// BadRequest is a 400 with the given description (without the
// "Bad Request: " prefix).
func BadRequest(desc string) Fault { return Fault{Code: 400, Description: "Bad Request: " + desc} }

// ServerError is a 500 answered in JSON.
func ServerError() Fault { return Fault{Code: 500, Description: "Internal Server Error"} }

// BadGateway is a 502 HTML page from a proxy, not JSON.
func BadGateway() Fault {
	return Fault{HTTPStatus: 502, RawBody: "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"}
}

// Chat is a chat the bot is a member of.
type Chat struct {
	ID      int64
	Title   string
	IsForum bool
	// Kicked makes every call for the chat answer 403.
	Kicked bool
}

// Topic is a forum topic.
type Topic struct {
	ThreadID int
	Name     string
	Closed   bool
	Deleted  bool
}

// Message is a message in a chat: sent by the bot, or injected as a user's.
type Message struct {
	ChatID    int64
	ID        int
	ThreadID  int
	FromBot   bool
	FromUser  int64
	Method    string // sendMessage, sendPhoto; "" for injected ones
	Text      string
	Caption   string
	ParseMode string
	// Photo is the photo's URL or file_id as given; PhotoUpload the bytes
	// of an uploaded photo (Photo is then "upload:<filename>").
	Photo       string
	PhotoUpload []byte
	ReplyTo     int
	ReplyMarkup string
	// LinkPreview is the raw link_preview_options field.
	LinkPreview string
	Edits       int
	Reactions   []string
	Service     bool // topic creation
}

// Call is one request the fake served.
type Call struct {
	Method string
	Params map[string]string
	Files  map[string][]byte
}

// Server is the fake Bot API.
type Server struct {
	*httptest.Server
	// Token is the only token accepted (default DefaultToken).
	Token string
	// PollWait bounds a long poll (default 100ms), whatever timeout asked.
	PollWait time.Duration

	mu        sync.Mutex
	chats     map[int64]*Chat
	topics    map[int64]map[int]*Topic
	msgs      map[int64][]*Message
	nextMsg   map[int64]int
	updates   []json.RawMessage
	updateIDs []int64
	nextUpd   int64
	confirmed int64
	faults    map[string][]pendingFault
	calls     []Call
	files     map[string]fileEntry
	badURLs   map[string]bool
	nextFile  int
	notify    chan struct{}
	webhook   Webhook
}

// Webhook is the webhook set with setWebhook.
type Webhook struct {
	URL            string
	SecretToken    string
	AllowedUpdates string // the raw JSON array
	MaxConnections int
}

type fileEntry struct {
	path string
	data []byte
}

// NewServer starts a fake Bot API, closed when the test ends.
func NewServer(t testing.TB) *Server {
	s := &Server{
		Token:    DefaultToken,
		PollWait: 100 * time.Millisecond,
		chats:    map[int64]*Chat{},
		topics:   map[int64]map[int]*Topic{},
		msgs:     map[int64][]*Message{},
		nextMsg:  map[int64]int{},
		faults:   map[string][]pendingFault{},
		files:    map[string]fileEntry{},
		badURLs:  map[string]bool{},
		nextUpd:  100000,
		notify:   make(chan struct{}),
	}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	if t != nil {
		t.Cleanup(s.Close)
	}
	return s
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

// FailNext makes the next n calls of method answer f.
func (s *Server) FailNext(method string, n int, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.faults[method] = append(s.faults[method], pendingFault{f: f})
	}
}

// FailAfter lets the next skip calls of method through, then answers f
// once (a fault in the middle of a multi-message delivery).
func (s *Server) FailAfter(method string, skip int, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[method] = append(s.faults[method], pendingFault{skip: skip, f: f})
}

type pendingFault struct {
	skip int
	f    Fault
}

// FailURL makes sendPhoto with this URL answer "failed to get HTTP URL
// content", as Telegram does when it cannot fetch an image.
func (s *Server) FailURL(u string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.badURLs[u] = true
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
	s.nextFile++
	n := s.nextFile
	id := fmt.Sprintf("AgACAgIAAxkBAAI%06d", n)
	s.files[id] = fileEntry{path: fmt.Sprintf("photos/file_%d.jpg", n), data: data}
	small := id + "_s"
	s.files[small] = fileEntry{path: fmt.Sprintf("photos/file_%d_s.jpg", n), data: data}
	s.mu.Unlock()
	return s.inject(chat, thread, from, replyTo, func(m *models.Message) {
		m.Caption = caption
		m.Photo = []models.PhotoSize{
			{FileID: small, FileUniqueID: "s" + strconv.Itoa(n), Width: 90, Height: 90, FileSize: len(data)},
			{FileID: id, FileUniqueID: "u" + strconv.Itoa(n), Width: 800, Height: 800, FileSize: len(data)},
		}
	})
}

// Webhook returns the webhook set (zero when none).
func (s *Server) Webhook() Webhook {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.webhook
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
	close(s.notify)
	s.notify = make(chan struct{})
	return u.ID
}

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

func (s *Server) newID(chat int64) int {
	if s.nextMsg[chat] == 0 {
		s.nextMsg[chat] = 1
	}
	id := s.nextMsg[chat]
	s.nextMsg[chat]++
	return id
}

func (s *Server) find(chat int64, id int) *Message {
	for _, m := range s.msgs[chat] {
		if m.ID == id {
			return m
		}
	}
	return nil
}

func (m *Message) model(c *Chat) *models.Message {
	out := &models.Message{ID: m.ID, Date: int(time.Now().Unix()), Text: m.Text, Caption: m.Caption,
		Chat: models.Chat{ID: c.ID, Type: models.ChatTypeSupergroup, Title: c.Title, IsForum: c.IsForum}}
	if m.FromBot {
		out.From = &models.User{ID: BotID, IsBot: true, FirstName: "bilibridge", Username: "bilibridge_bot"}
	} else {
		out.From = &models.User{ID: m.FromUser, FirstName: "user"}
	}
	if m.ThreadID != 0 && c.IsForum {
		out.MessageThreadID, out.IsTopicMessage = m.ThreadID, true
	}
	if m.Photo != "" {
		out.Photo = []models.PhotoSize{{FileID: "AgACAgIAAxkBAAIsent" + strconv.Itoa(m.ID), FileUniqueID: "sent" + strconv.Itoa(m.ID), Width: 320, Height: 320}}
	}
	if m.Service {
		out.ForumTopicCreated = &models.ForumTopicCreated{Name: m.Text}
		out.Text = ""
	}
	return out
}

// apiError is an error answer.
type apiError struct {
	code int
	desc string
}

func (e *apiError) Error() string { return e.desc }

func badRequest(desc string) error { return &apiError{400, "Bad Request: " + desc} }

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	// File downloads: GET /file/bot<token>/<path>.
	if rest, ok := strings.CutPrefix(r.URL.Path, "/file/bot"); ok {
		s.serveFile(w, rest)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/bot")
	token, method, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 || method == "" {
		writeJSON(w, 404, map[string]any{"ok": false, "error_code": 404, "description": "Not Found"})
		return
	}
	if token != s.Token {
		writeJSON(w, 401, map[string]any{"ok": false, "error_code": 401, "description": "Unauthorized"})
		return
	}
	if r.Method != http.MethodPost {
		writeJSON(w, 400, map[string]any{"ok": false, "error_code": 400, "description": "Bad Request: the fake only takes POST"})
		return
	}
	params, files, err := parseForm(r)
	if err != nil {
		writeJSON(w, 400, map[string]any{"ok": false, "error_code": 400, "description": "Bad Request: " + err.Error()})
		return
	}
	s.mu.Lock()
	s.calls = append(s.calls, Call{Method: method, Params: params, Files: files})
	var fault *Fault
	if q := s.faults[method]; len(q) > 0 {
		if q[0].skip > 0 {
			q[0].skip--
		} else {
			f := q[0].f
			s.faults[method] = q[1:]
			fault = &f
		}
	}
	s.mu.Unlock()
	if fault != nil {
		if fault.Hold != nil {
			select {
			case <-fault.Hold:
			case <-r.Context().Done():
				return
			}
		}
		if fault.Drop {
			dropConn(w)
			return
		}
		writeFault(w, *fault)
		return
	}
	var result any
	if method == "getUpdates" {
		result, err = s.getUpdates(r, params)
	} else {
		s.mu.Lock()
		result, err = s.call(method, params, files)
		s.mu.Unlock()
	}
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			ae = &apiError{400, "Bad Request: " + err.Error()}
		}
		writeFault(w, Fault{Code: ae.code, Description: ae.desc})
		return
	}
	writeJSON(w, 200, map[string]any{"ok": true, "result": result})
}

func (s *Server) serveFile(w http.ResponseWriter, rest string) {
	token, path, ok := strings.Cut(rest, "/")
	if !ok || token != s.Token {
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	}
	s.mu.Lock()
	var data []byte
	found := false
	for _, f := range s.files {
		if f.path == path {
			data, found = f.data, true
			break
		}
	}
	s.mu.Unlock()
	if !found {
		http.Error(w, "Not Found", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", http.DetectContentType(data))
	_, _ = w.Write(data)
}

// parseForm reads a multipart body; an empty body (getMe) is no params.
func parseForm(r *http.Request) (map[string]string, map[string][]byte, error) {
	params, files := map[string]string{}, map[string][]byte{}
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return params, files, nil
	}
	mt, mp, err := mime.ParseMediaType(ct)
	if err != nil {
		return nil, nil, fmt.Errorf("bad Content-Type: %v", err)
	}
	if mt == "application/x-www-form-urlencoded" {
		if err := r.ParseForm(); err != nil {
			return nil, nil, err
		}
		for k := range r.PostForm {
			params[k] = r.PostForm.Get(k)
		}
		return params, files, nil
	}
	if mt != "multipart/form-data" {
		return nil, nil, fmt.Errorf("unexpected Content-Type %s", mt)
	}
	mr := multipart.NewReader(r.Body, mp["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			if len(params) == 0 && len(files) == 0 {
				// An empty multipart body: a call without parameters.
				return params, files, nil
			}
			return nil, nil, err
		}
		b, err := io.ReadAll(p)
		if err != nil {
			return nil, nil, err
		}
		if p.FileName() != "" {
			files[p.FormName()] = b
			params[p.FormName()] = "attach:" + p.FileName()
		} else {
			params[p.FormName()] = string(b)
		}
	}
	return params, files, nil
}

// dropConn closes the call's connection without an answer.
func dropConn(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("telegramtest: the response writer cannot drop its connection")
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(fmt.Sprintf("telegramtest: dropping a connection: %v", err))
	}
	_ = conn.Close()
}

func writeFault(w http.ResponseWriter, f Fault) {
	status := f.HTTPStatus
	if status == 0 {
		status = f.Code
	}
	if f.RawBody != "" {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, f.RawBody)
		return
	}
	body := map[string]any{"ok": false, "error_code": f.Code, "description": f.Description}
	if f.RetryAfter > 0 {
		body["parameters"] = map[string]any{"retry_after": f.RetryAfter}
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

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

// call serves every method but getUpdates; s.mu is held.
func (s *Server) call(method string, p map[string]string, files map[string][]byte) (any, error) {
	switch method {
	case "getMe":
		return models.User{ID: BotID, IsBot: true, FirstName: "bilibridge", Username: "bilibridge_bot"}, nil
	case "deleteWebhook":
		s.webhook = Webhook{}
		return true, nil
	case "setWebhook":
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
	case "getFile":
		f, ok := s.files[p["file_id"]]
		if !ok {
			return nil, badRequest("wrong file_id or the file is temporarily unavailable")
		}
		return models.File{FileID: p["file_id"], FileUniqueID: "u" + p["file_id"], FileSize: int64(len(f.data)), FilePath: f.path}, nil
	}
	chat, err := s.chat(p)
	if err != nil {
		return nil, err
	}
	switch method {
	case "getChat":
		typ := models.ChatTypeGroup
		if chat.IsForum || chat.ID < -1000000000000 {
			typ = models.ChatTypeSupergroup
		}
		if chat.ID > 0 {
			typ = models.ChatTypePrivate
		}
		return models.ChatFullInfo{ID: chat.ID, Type: typ, Title: chat.Title, IsForum: chat.IsForum}, nil
	case "sendMessage", "sendPhoto":
		return s.send(method, chat, p, files)
	case "editMessageText", "editMessageCaption":
		return s.edit(method, chat, p)
	case "createForumTopic":
		if !chat.IsForum {
			return nil, badRequest("the chat is not a forum")
		}
		name := p["name"]
		if n := utf8Len(name); n == 0 || n > MaxTopicName {
			return nil, badRequest("TOPIC_NAME_INVALID")
		}
		id := s.newID(chat.ID)
		s.topics[chat.ID][id] = &Topic{ThreadID: id, Name: name}
		s.msgs[chat.ID] = append(s.msgs[chat.ID], &Message{ChatID: chat.ID, ID: id, ThreadID: id, FromBot: true, Service: true, Text: name})
		return models.ForumTopic{MessageThreadID: id, Name: name, IconColor: 7322096}, nil
	case "editForumTopic", "closeForumTopic", "reopenForumTopic", "deleteForumTopic":
		if !chat.IsForum {
			return nil, badRequest("the chat is not a forum")
		}
		id, _ := strconv.Atoi(p["message_thread_id"])
		tp := s.topics[chat.ID][id]
		if tp == nil || tp.Deleted {
			return nil, badRequest("message thread not found")
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
	case "setMessageReaction":
		id, _ := strconv.Atoi(p["message_id"])
		m := s.find(chat.ID, id)
		if m == nil {
			return nil, badRequest("message to react not found")
		}
		var rs []struct {
			Type  string `json:"type"`
			Emoji string `json:"emoji"`
		}
		if p["reaction"] != "" {
			if err := json.Unmarshal([]byte(p["reaction"]), &rs); err != nil {
				return nil, badRequest("can't parse reaction types JSON object")
			}
		}
		m.Reactions = nil
		for _, r := range rs {
			if r.Type != "emoji" || !slices.Contains(AllowedReactions, r.Emoji) {
				return nil, badRequest("REACTION_INVALID")
			}
			m.Reactions = append(m.Reactions, r.Emoji)
		}
		return true, nil
	}
	return nil, &apiError{404, "Not Found: method not found"}
}

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

func (s *Server) send(method string, c *Chat, p map[string]string, files map[string][]byte) (any, error) {
	m := &Message{ChatID: c.ID, FromBot: true, Method: method, ParseMode: p["parse_mode"], ReplyMarkup: p["reply_markup"], LinkPreview: p["link_preview_options"]}
	if t := p["message_thread_id"]; t != "" {
		id, _ := strconv.Atoi(t)
		tp := s.topics[c.ID][id]
		switch {
		case !c.IsForum || tp == nil || tp.Deleted:
			return nil, badRequest("message thread not found")
		case tp.Closed:
			return nil, badRequest("TOPIC_CLOSED")
		}
		m.ThreadID = id
	}
	if rp := p["reply_parameters"]; rp != "" {
		var r models.ReplyParameters
		if err := json.Unmarshal([]byte(rp), &r); err != nil {
			return nil, badRequest("can't parse reply parameters JSON object")
		}
		if s.find(c.ID, r.MessageID) == nil && !r.AllowSendingWithoutReply {
			return nil, badRequest("message to be replied not found")
		}
		m.ReplyTo = r.MessageID
	}
	if rm := p["reply_markup"]; rm != "" {
		if err := checkMarkup(rm); err != nil {
			return nil, err
		}
	}
	switch method {
	case "sendMessage":
		m.Text = p["text"]
		if strings.TrimSpace(m.Text) == "" {
			return nil, badRequest("message text is empty")
		}
		n, err := visibleLen(m.Text, m.ParseMode)
		if err != nil {
			return nil, err
		}
		if n > MaxTextLen {
			return nil, badRequest("message is too long")
		}
	case "sendPhoto":
		m.Caption = p["caption"]
		n, err := visibleLen(m.Caption, m.ParseMode)
		if err != nil {
			return nil, err
		}
		if n > MaxCaptionLen {
			return nil, badRequest("message caption is too long")
		}
		photo := p["photo"]
		switch {
		case strings.HasPrefix(photo, "attach:"):
			m.Photo, m.PhotoUpload = "upload:"+strings.TrimPrefix(photo, "attach:"), files["photo"]
			if len(m.PhotoUpload) == 0 {
				return nil, badRequest("file must be non-empty")
			}
		case strings.HasPrefix(photo, "http://") || strings.HasPrefix(photo, "https://"):
			if s.badURLs[photo] {
				return nil, badRequest("failed to get HTTP URL content")
			}
			m.Photo = photo
		case photo == "":
			return nil, badRequest("there is no photo in the request")
		default:
			if _, ok := s.files[photo]; !ok {
				return nil, badRequest("wrong file identifier/HTTP URL specified")
			}
			m.Photo = photo
		}
	}
	m.ID = s.newID(c.ID)
	s.msgs[c.ID] = append(s.msgs[c.ID], m)
	return m.model(c), nil
}

func (s *Server) edit(method string, c *Chat, p map[string]string) (any, error) {
	id, _ := strconv.Atoi(p["message_id"])
	m := s.find(c.ID, id)
	if m == nil || !m.FromBot || m.Service {
		return nil, badRequest("message to edit not found")
	}
	if method == "editMessageText" {
		if m.Photo != "" {
			return nil, badRequest("there is no text in the message to edit")
		}
		n, err := visibleLen(p["text"], p["parse_mode"])
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, badRequest("message text is empty")
		}
		if n > MaxTextLen {
			return nil, badRequest("MESSAGE_TOO_LONG")
		}
		if p["text"] == m.Text {
			return nil, badRequest("message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message")
		}
		m.Text = p["text"]
	} else {
		if m.Photo == "" {
			return nil, badRequest("there is no caption in the message to edit")
		}
		n, err := visibleLen(p["caption"], p["parse_mode"])
		if err != nil {
			return nil, err
		}
		if n > MaxCaptionLen {
			return nil, badRequest("message caption is too long")
		}
		if p["caption"] == m.Caption {
			return nil, badRequest("message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message")
		}
		m.Caption = p["caption"]
	}
	m.ParseMode = p["parse_mode"]
	m.Edits++
	return m.model(c), nil
}

// checkMarkup accepts an inline keyboard of URL buttons with http(s)
// URLs, as Telegram would (other schemes are refused).
func checkMarkup(raw string) error {
	var mk struct {
		InlineKeyboard [][]struct {
			Text     string           `json:"text"`
			URL      string           `json:"url"`
			CopyText *json.RawMessage `json:"copy_text"`
		} `json:"inline_keyboard"`
	}
	if err := json.Unmarshal([]byte(raw), &mk); err != nil {
		return badRequest("can't parse reply keyboard markup JSON object")
	}
	for _, row := range mk.InlineKeyboard {
		for _, b := range row {
			if b.Text == "" {
				return badRequest("text buttons are unallowed in the inline keyboard")
			}
			if b.CopyText != nil {
				// go-telegram/bot's InlineKeyboardButton always sends
				// "copy_text":{"text":""}; Telegram refuses a button with
				// two actions (reported in go-telegram/bot#167).
				var ct struct {
					Text string `json:"text"`
				}
				if json.Unmarshal(*b.CopyText, &ct) != nil || ct.Text == "" || b.URL != "" {
					return badRequest("BUTTON_COPY_TEXT_INVALID")
				}
				continue
			}
			if !strings.HasPrefix(b.URL, "https://") && !strings.HasPrefix(b.URL, "http://") && !strings.HasPrefix(b.URL, "tg://") {
				return badRequest("BUTTON_URL_INVALID")
			}
		}
	}
	return nil
}

// htmlTags are the tags Telegram's HTML parse mode accepts.
var htmlTags = map[string]bool{"b": true, "strong": true, "i": true, "em": true, "u": true, "ins": true,
	"s": true, "strike": true, "del": true, "span": true, "tg-spoiler": true, "a": true, "code": true,
	"pre": true, "blockquote": true, "tg-emoji": true}

// visibleLen parses text in parse mode HTML the way Telegram does (strict:
// only the supported tags, properly nested; '<', '>' and '&' only as
// entities) and returns the length of the visible text in UTF-16 code
// units, which is how Telegram counts its limits.
func visibleLen(text, mode string) (int, error) {
	if !strings.EqualFold(mode, "HTML") {
		return len(utf16.Encode([]rune(text))), nil
	}
	var visible strings.Builder
	var stack []string
	for i := 0; i < len(text); {
		switch text[i] {
		case '<':
			end := strings.IndexByte(text[i:], '>')
			if end < 0 {
				return 0, badRequest(fmt.Sprintf("can't parse entities: unclosed start tag at byte offset %d", i))
			}
			tag := text[i+1 : i+end]
			closing := strings.HasPrefix(tag, "/")
			name := strings.TrimPrefix(tag, "/")
			if sp := strings.IndexAny(name, " \t\n"); sp >= 0 {
				if closing {
					return 0, badRequest("can't parse entities: unexpected end tag")
				}
				if err := checkAttrs(name[:sp], name[sp+1:]); err != nil {
					return 0, err
				}
				name = name[:sp]
			}
			if !htmlTags[name] {
				return 0, badRequest(fmt.Sprintf("can't parse entities: unsupported start tag \"%s\" at byte offset %d", name, i))
			}
			if closing {
				if len(stack) == 0 || stack[len(stack)-1] != name {
					return 0, badRequest(fmt.Sprintf("can't parse entities: can't find end tag corresponding to start tag \"%s\"", name))
				}
				stack = stack[:len(stack)-1]
			} else {
				stack = append(stack, name)
			}
			i += end + 1
		case '>':
			return 0, badRequest(fmt.Sprintf("can't parse entities: character '>' is reserved at byte offset %d", i))
		case '&':
			end := strings.IndexByte(text[i:], ';')
			if end < 0 {
				return 0, badRequest(fmt.Sprintf("can't parse entities: unescaped '&' at byte offset %d", i))
			}
			ent := text[i+1 : i+end]
			switch {
			case ent == "lt", ent == "gt", ent == "amp", ent == "quot":
				visible.WriteByte('x')
			case strings.HasPrefix(ent, "#") && len(ent) > 1 && isDigits(ent[1:]):
				visible.WriteByte('x')
			default:
				return 0, badRequest(fmt.Sprintf("can't parse entities: unsupported entity \"&%s;\" at byte offset %d", ent, i))
			}
			i += end + 1
		default:
			visible.WriteByte(text[i])
			i++
		}
	}
	if len(stack) > 0 {
		return 0, badRequest(fmt.Sprintf("can't parse entities: can't find end tag corresponding to start tag \"%s\"", stack[len(stack)-1]))
	}
	return len(utf16.Encode([]rune(visible.String()))), nil
}

func checkAttrs(tag, attrs string) error {
	if tag != "a" && tag != "span" && tag != "code" && tag != "tg-emoji" && tag != "blockquote" {
		return badRequest("can't parse entities: unexpected attribute")
	}
	if tag == "a" {
		v, ok := strings.CutPrefix(strings.TrimSpace(attrs), "href=\"")
		if !ok || !strings.HasSuffix(v, "\"") || strings.ContainsAny(strings.TrimSuffix(v, "\""), "\"<>") {
			return badRequest("can't parse entities: bad href attribute")
		}
	}
	return nil
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func utf8Len(s string) int { return len([]rune(s)) }

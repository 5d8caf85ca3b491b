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
	"strings"
	"sync"
	"testing"
	"time"
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

// Call is one request the fake served.
type Call struct {
	Method string
	Params map[string]string
	Files  map[string][]byte
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

// apiError is an error answer.
type apiError struct {
	code int
	desc string
}

func (e *apiError) Error() string { return e.desc }

func badRequest(desc string) error { return &apiError{400, "Bad Request: " + desc} }

// jsonParam decodes a parameter that Telegram takes as a JSON-serialized
// object; what names it in Telegram's answer when it does not parse.
func jsonParam[T any](raw, what string) (T, error) {
	var v T
	if err := json.Unmarshal([]byte(raw), &v); err != nil {
		return v, badRequest("can't parse " + what + " JSON object")
	}
	return v, nil
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	// File downloads: GET /file/bot<token>/<path>.
	if rest, ok := strings.CutPrefix(r.URL.Path, "/file/bot"); ok {
		s.serveFile(w, rest)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/bot")
	token, method, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 || method == "" {
		writeError(w, &apiError{404, "Not Found"})
		return
	}
	if token != s.Token {
		writeError(w, &apiError{401, "Unauthorized"})
		return
	}
	if r.Method != http.MethodPost {
		writeError(w, badRequest("the fake only takes POST"))
		return
	}
	params, files, err := parseForm(r)
	if err != nil {
		writeError(w, err)
		return
	}
	if f := s.record(method, params, files); f != nil {
		answerFault(w, r, *f)
		return
	}
	var result any
	if method == "getUpdates" {
		// A long poll takes s.mu only while it looks, so that updates can
		// be injected while it waits.
		result, err = s.getUpdates(r, params)
	} else {
		s.mu.Lock()
		result, err = s.call(method, params, files)
		s.mu.Unlock()
	}
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, 200, map[string]any{"ok": true, "result": result})
}

// record keeps the call (a faulted one too: tests count what was tried)
// and returns the fault to answer it with, if one is due.
func (s *Server) record(method string, params map[string]string, files map[string][]byte) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, Call{Method: method, Params: params, Files: files})
	q := s.faults[method]
	if len(q) == 0 {
		return nil
	}
	if q[0].skip > 0 {
		q[0].skip--
		return nil
	}
	f := q[0].f
	s.faults[method] = q[1:]
	return &f
}

// call serves every method but getUpdates; s.mu is held.
func (s *Server) call(method string, p map[string]string, files map[string][]byte) (any, error) {
	switch method {
	case "getMe":
		return botUser(), nil
	case "deleteWebhook":
		s.webhook = Webhook{}
		return true, nil
	case "setWebhook":
		return s.setWebhook(p)
	case "getFile":
		return s.getFile(p)
	}
	// Every other method is about a chat, which is looked up first: a
	// missing chat or a kicked bot is the answer whatever the method, an
	// unknown one included.
	chat, err := s.chat(p)
	if err != nil {
		return nil, err
	}
	switch method {
	case "getChat":
		return getChat(chat), nil
	case "sendMessage", "sendPhoto":
		return s.send(method, chat, p, files)
	case "editMessageText", "editMessageCaption":
		return s.edit(method, chat, p)
	case "createForumTopic":
		return s.createTopic(chat, p)
	case "editForumTopic", "closeForumTopic", "reopenForumTopic", "deleteForumTopic":
		return s.changeTopic(method, chat, p)
	case "setMessageReaction":
		return s.react(chat, p)
	}
	return nil, &apiError{404, "Not Found: method not found"}
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

// answerFault answers an injected fault, once its Hold is released.
func answerFault(w http.ResponseWriter, r *http.Request, f Fault) {
	if f.Hold != nil {
		select {
		case <-f.Hold:
		case <-r.Context().Done():
			return
		}
	}
	if f.Drop {
		dropConn(w)
		return
	}
	writeFault(w, f)
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

// writeError answers err in Telegram's error envelope: an *apiError as it
// is, any other error (a body that does not parse) as a 400.
func writeError(w http.ResponseWriter, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = &apiError{400, "Bad Request: " + err.Error()}
	}
	writeFault(w, Fault{Code: ae.code, Description: ae.desc})
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

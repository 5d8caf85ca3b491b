package discordtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"
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

// Server is the fake Discord.
type Server struct {
	*httptest.Server
	// Token is the bot token the fake expects ("Bot " + Token).
	Token string
	// BotUserID is the bot's user id, sent in READY.
	BotUserID string
	// HeartbeatInterval is sent in HELLO; default 45s.
	HeartbeatInterval time.Duration

	mu          sync.Mutex
	next        uint64
	channels    map[string]*Channel
	webhooks    map[string]*Webhook
	messages    []*Message
	reactions   []Reaction
	members     map[string][]string // guild/user -> roles
	patches     []Patch
	renames     map[string][]time.Time // channel -> when it was renamed
	renameLimit int                    // see LimitRenames
	requests    []Request
	faults      []*fault
	gw          []*gwConn
	identifies  []Identify
	beats       int
	resumes     int
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
		webhooks:          map[string]*Webhook{},
		members:           map[string][]string{},
		renames:           map[string][]time.Time{},
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

// id returns a new snowflake; s.mu is held.
func (s *Server) id() string {
	s.next++
	return strconv.FormatUint(s.next, 10)
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

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	// Bot routes need the bot token; webhook routes are authorized by the
	// token in their path.
	bot := func(pattern string, fn http.HandlerFunc) { mux.HandleFunc(pattern, s.guard(pattern, false, fn)) }
	webhook := func(pattern string, fn http.HandlerFunc) { mux.HandleFunc(pattern, s.guard(pattern, true, fn)) }
	bot("GET /api/v9/gateway", s.gateway)
	bot("GET /api/v9/gateway/bot", s.gateway)
	bot("GET /api/v9/channels/{id}", inChannel(s, s.getChannel))
	bot("PATCH /api/v9/channels/{id}", inChannel(s, s.patchChannel))
	bot("POST /api/v9/channels/{id}/threads", inChannel(s, s.startThread))
	bot("GET /api/v9/channels/{id}/webhooks", inChannel(s, s.listWebhooks))
	bot("POST /api/v9/channels/{id}/webhooks", inChannel(s, s.createWebhook))
	bot("POST /api/v9/channels/{id}/messages", inChannel(s, s.createMessage))
	bot("PUT /api/v9/channels/{id}/messages/{mid}/reactions/{emoji}/@me", inChannel(s, s.addReaction))
	bot("GET /api/v9/guilds/{gid}/members/{uid}", s.getMember)
	webhook("POST /api/v9/webhooks/{id}/{token}", byWebhook(s, s.executeWebhook))
	webhook("PATCH /api/v9/webhooks/{id}/{token}/messages/{mid}", byWebhook(s, s.editWebhookMessage))
	mux.HandleFunc("GET /gw", s.serveGateway)
	mux.HandleFunc("GET /gw/", s.serveGateway)
	return mux
}

// guard serves a REST route: the request is recorded, refused without
// the bot token unless webhookAuth, and answered with an injected fault
// when one is due; otherwise fn serves it.
func (s *Server) guard(pattern string, webhookAuth bool, fn http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		authorized, f := s.admit(r, pattern, webhookAuth)
		switch {
		case !authorized:
			apiError(w, http.StatusUnauthorized, 0, "401: Unauthorized")
		case f != nil:
			f.answer(w)
		default:
			fn(w, r)
		}
	}
}

// admit records r and checks its token; it returns the fault to answer
// r with, if one is due (a refused request takes none).
func (s *Server) admit(r *http.Request, pattern string, webhookAuth bool) (authorized bool, due *fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.Query(), Pattern: pattern, Auth: r.Header.Get("Authorization")})
	if !webhookAuth && r.Header.Get("Authorization") != "Bot "+s.Token {
		return false, nil
	}
	// The first fault for the route decides: it lets the request through
	// while it skips, and is gone once used up.
	for i, f := range s.faults {
		if f.pattern != pattern || f.left <= 0 {
			continue
		}
		if f.skip > 0 {
			f.skip--
			return true, nil
		}
		f.left--
		if f.left == 0 {
			s.faults = slices.Delete(s.faults, i, i+1)
		}
		answer := *f
		return true, &answer
	}
	return true, nil
}

// answer answers the fault: a 429 the way Discord rate limits (body and
// headers), or a JSON error.
func (f *fault) answer(w http.ResponseWriter) {
	if f.status != http.StatusTooManyRequests {
		apiError(w, f.status, f.code, http.StatusText(f.status))
		return
	}
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
}

// validator is a request body with rules beyond its JSON shape.
type validator interface{ valid() bool }

// decode reads a JSON request body. One that does not parse, or that its
// own valid method refuses, is answered 400 Invalid Form Body, and ok is
// false.
// none is the body of a request that has none.
type none struct{}

// inChannel adapts a handler of channel {id}: it decodes the body as B,
// locks the server and looks the channel up, answering Discord's error
// when either fails, so that each handler only acts.
func inChannel[B any](s *Server, act func(w http.ResponseWriter, r *http.Request, body B, c *Channel)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, ok := decode[B](w, r)
		if !ok {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if c, ok := s.channel(w, r.PathValue("id")); ok {
			act(w, r, body, c)
		}
	}
}

// byWebhook is inChannel for the webhook of a webhook route.
func byWebhook[B any](s *Server, act func(w http.ResponseWriter, r *http.Request, body B, wh *Webhook)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, ok := decode[B](w, r)
		if !ok {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if wh, ok := s.webhook(w, r); ok {
			act(w, r, body, wh)
		}
	}
}

func decode[T any](w http.ResponseWriter, r *http.Request) (body T, ok bool) {
	if _, empty := any(body).(none); empty {
		return body, true
	}
	err := json.NewDecoder(r.Body).Decode(&body)
	if v, rules := any(&body).(validator); err != nil || rules && !v.valid() {
		apiError(w, 400, CodeInvalidFormBody, "Invalid Form Body")
		return body, false
	}
	return body, true
}

// apiError answers Discord's JSON error envelope.
func apiError(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, map[string]any{"message": msg, "code": code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

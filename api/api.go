// Package api is bilibridge's HTTP API under /api/v1: sending messages,
// the team's conversations (assignee, status, notes, read state,
// history), a live stream of events, and dead letters.
//
// One policy for everything: every request is authenticated here (the
// service token API_TOKEN, a member's personal token, or a browser
// session), every error is JSON {"error", "code"}, every list pages with
// an opaque cursor. The routes are one table (routes), which the OpenAPI
// document served at /api/v1/openapi.json is checked against.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/send"
	"github.com/bilibridge/bilibridge/sinks"
	"github.com/bilibridge/bilibridge/team"
)

// Prefix is where the API is mounted.
const Prefix = "/api/"

// MaxBodyBytes bounds a request body.
const MaxBodyBytes = 64 << 10

// DefaultSendWait bounds how long POST /api/v1/messages?wait=true waits.
const DefaultSendWait = 30 * time.Second

// Outbox is what the API needs of sending: queue a message, look a
// command up. *send.Outbox implements it.
type Outbox interface {
	send.Submitter
	Command(ctx context.Context, uid int64, commandID string) (*send.Command, error)
}

// Members resolves a member's personal token and lists the team
// (*team.Members implements it).
type Members interface {
	ByToken(ctx context.Context, token string) (*team.Member, error)
	List(ctx context.Context) ([]team.Member, error)
}

// Authenticator recognises a request by other means than a bearer token
// (the browser inbox's session cookie). It returns ok false when the
// request does not carry its credential at all, and an error when it
// carries a bad one.
type Authenticator interface {
	Authenticate(r *http.Request) (id Identity, ok bool, err error)
}

// Config configures the API.
type Config struct {
	// Token is the service token (API_TOKEN); empty: no service token.
	Token string
	// Members checks members' personal tokens; nil: none.
	Members Members
	// Sessions recognises the browser inbox's sessions; nil: none.
	Sessions Authenticator

	Outbox      Outbox
	Team        *team.Service
	Projection  *team.Projection // the live events of GET /api/v1/events
	Stream      jetstream.Stream // BILI: what a resumed event stream missed
	DeadLetters *sinks.DeadLetters
	// Uploads keeps images pasted in the browser inbox, and UploadsURL is
	// where the sender fetches them (this server's GET /api/v1/images/,
	// at an address the sender reaches); either empty: uploads are off.
	Uploads    jetstream.ObjectStore
	UploadsURL string
	// Status reports the bridge's accounts, sinks and sender (GET
	// /api/v1/status); nil: the route answers 503.
	Status func(ctx context.Context) any
	// Presence is who has which conversation open in the browser inbox;
	// nil: nobody is shown.
	Presence *team.Presence
	Subjects events.Subjects

	// SendWait bounds ?wait=true; default DefaultSendWait.
	SendWait time.Duration
	// Heartbeat is how often an idle event stream sends a comment, so
	// that proxies keep it and a gone client is noticed; default 15s.
	Heartbeat time.Duration
	// EventBuffer is how many live events a client of the event stream
	// may fall behind before it is switched to reading the stream;
	// default 128 (each slot costs every client ~170 bytes).
	EventBuffer int
	Logger      *slog.Logger
	Now         func() time.Time
}

// Server serves the API. It is an http.Handler for Prefix.
type Server struct {
	cfg Config
	log *slog.Logger
	mux *http.ServeMux
}

// New returns the API of cfg.
func New(cfg Config) *Server {
	if cfg.SendWait <= 0 {
		cfg.SendWait = DefaultSendWait
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 15 * time.Second
	}
	if cfg.EventBuffer <= 0 {
		cfg.EventBuffer = 128
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "api"), mux: http.NewServeMux()}
	for _, rt := range s.routes() {
		s.mux.Handle(rt.Method+" "+rt.Path, s.authenticated(rt.Public, rt.handler))
	}
	s.mux.HandleFunc(Prefix, func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, codeNotFound, "no such API route: "+r.Method+" "+r.URL.Path)
	})
	return s
}

// route is one endpoint of the API.
type route struct {
	Method, Path string
	// Public routes need no credentials (the API's own description).
	Public  bool
	handler http.HandlerFunc
}

// routes is every endpoint: the mux serves these and nothing else, and
// the OpenAPI document must describe exactly these.
func (s *Server) routes() []route {
	return []route{
		{Method: "POST", Path: "/api/v1/messages", handler: s.postMessage},
		{Method: "GET", Path: "/api/v1/messages/{command_id}", handler: s.getMessage},
		{Method: "POST", Path: "/api/v1/messages/preview", handler: s.previewMessage},
		{Method: "GET", Path: "/api/v1/conversations", handler: s.listConversations},
		{Method: "GET", Path: "/api/v1/conversations/{account_uid}/{session_type}/{talker_id}", handler: s.getConversation},
		{Method: "GET", Path: "/api/v1/conversations/{account_uid}/{session_type}/{talker_id}/messages", handler: s.conversationMessages},
		{Method: "POST", Path: "/api/v1/conversations/{account_uid}/{session_type}/{talker_id}/assign", handler: s.assign},
		{Method: "POST", Path: "/api/v1/conversations/{account_uid}/{session_type}/{talker_id}/status", handler: s.setStatus},
		{Method: "POST", Path: "/api/v1/conversations/{account_uid}/{session_type}/{talker_id}/notes", handler: s.addNote},
		{Method: "POST", Path: "/api/v1/conversations/{account_uid}/{session_type}/{talker_id}/read", handler: s.markRead},
		{Method: "POST", Path: "/api/v1/conversations/{account_uid}/{session_type}/{talker_id}/presence", handler: s.presence},
		{Method: "GET", Path: "/api/v1/events", handler: s.events},
		{Method: "GET", Path: "/api/v1/dead-letters", handler: s.listDeadLetters},
		{Method: "POST", Path: "/api/v1/dead-letters/{id}/replay", handler: s.replayDeadLetter},
		{Method: "GET", Path: "/api/v1/me", handler: s.me},
		{Method: "GET", Path: "/api/v1/status", handler: s.status},
		{Method: "GET", Path: "/api/v1/members", handler: s.members},
		{Method: "POST", Path: "/api/v1/images", handler: s.uploadImage},
		{Method: "GET", Path: "/api/v1/images/{id}", Public: true, handler: s.image},
		{Method: "GET", Path: "/api/v1/openapi.json", Public: true, handler: s.openAPI},
	}
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	s.mux.ServeHTTP(w, r)
}

// members is GET /api/v1/members: the team's names and roles (whom a
// conversation can be assigned to).
func (s *Server) members(w http.ResponseWriter, r *http.Request) {
	type member struct {
		Name string    `json:"name"`
		Role team.Role `json:"role"`
	}
	out := []member{}
	if s.cfg.Members != nil {
		list, err := s.cfg.Members.List(r.Context())
		if err != nil {
			s.fail(w, r, err)
			return
		}
		for _, m := range list {
			out = append(out, member{m.Name, m.Role})
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"members": out})
}

// status is GET /api/v1/status: each account (login, polling), each sink
// (state, backlog, last delivery, dead letters) and the sender (queue,
// last outcome), as this process sees them.
func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Status == nil {
		writeError(w, http.StatusServiceUnavailable, codeUnavailable, "status is not available here")
		return
	}
	writeJSON(w, http.StatusOK, s.cfg.Status(r.Context()))
}

// me is GET /api/v1/me: who the credentials belong to.
func (s *Server) me(w http.ResponseWriter, r *http.Request) {
	id := identity(r.Context())
	writeJSON(w, http.StatusOK, map[string]any{"member": id.Actor.Member, "service": id.Actor.Service, "role": id.Role})
}

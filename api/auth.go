package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"

	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/team"
)

// Identity is who a request acts for: a member, or the service token.
type Identity struct {
	Actor events.Actor
	// Role is the member's role (admin, agent); empty for the service.
	Role team.Role
	// Session is true for the browser inbox (a session cookie), false
	// for a bearer token.
	Session bool
}

// ErrForbidden is an Authenticator's answer to a request that carries a
// valid credential but may not do this (a browser request without its
// CSRF token).
var ErrForbidden = errors.New("forbidden")

type identityKey struct{}

// WithIdentity returns ctx carrying id.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// identity is the request's Identity; the middleware sets it before any
// handler runs.
func identity(ctx context.Context) Identity {
	id, _ := ctx.Value(identityKey{}).(Identity)
	return id
}

// authenticated runs h for requests whose credentials check out, with
// their Identity in the context, and answers the others 401 (or 403).
func (s *Server) authenticated(public bool, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if public {
			h(w, r)
			return
		}
		id, status, msg := s.authenticate(r)
		if status != 0 {
			if status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="bilibridge"`)
			}
			code := codeUnauthorized
			if status == http.StatusForbidden {
				code = codeForbidden
			} else if status == http.StatusServiceUnavailable {
				code = codeUnavailable
			}
			writeError(w, status, code, msg)
			return
		}
		h(w, r.WithContext(WithIdentity(r.Context(), id)))
	})
}

// authenticate checks the bearer token (the service token, then members'
// tokens) or, without one, the browser session. It returns a status and
// message when the request may not go on.
func (s *Server) authenticate(r *http.Request) (Identity, int, string) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		tok = strings.TrimSpace(tok)
		if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
			return Identity{}, http.StatusUnauthorized, "the Authorization header must be: Bearer <token>"
		}
		if s.cfg.Token != "" && sameToken(tok, s.cfg.Token) {
			return Identity{Actor: events.Actor{Service: true}}, 0, ""
		}
		if s.cfg.Members != nil {
			m, err := s.cfg.Members.ByToken(r.Context(), tok)
			switch {
			case err == nil:
				return Identity{Actor: events.Actor{Member: m.Name}, Role: m.Role}, 0, ""
			case !errors.Is(err, team.ErrBadToken):
				s.log.Warn("cannot check a member token", "err", err)
				return Identity{}, http.StatusServiceUnavailable, "the token cannot be checked right now; try again"
			}
		}
		return Identity{}, http.StatusUnauthorized, "wrong or revoked token"
	}
	if s.cfg.Sessions != nil {
		id, ok, err := s.cfg.Sessions.Authenticate(r)
		switch {
		case errors.Is(err, ErrForbidden):
			return Identity{}, http.StatusForbidden, "the request lacks its CSRF token; reload the page"
		case err != nil:
			return Identity{}, http.StatusUnauthorized, "the session has ended; sign in again"
		case ok:
			return id, 0, ""
		}
	}
	if s.cfg.Token == "" && s.cfg.Members == nil {
		return Identity{}, http.StatusUnauthorized, "the API has no credentials configured: set API_TOKEN, or add a member with `bilibridge member add`"
	}
	return Identity{}, http.StatusUnauthorized, "missing credentials: send Authorization: Bearer <token>, with API_TOKEN or a member's token (`bilibridge member token NAME`)"
}

// sameToken compares in constant time, over digests so that not even the
// length leaks.
func sameToken(got, want string) bool {
	a, b := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

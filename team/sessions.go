package team

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Session is a member signed in to the browser inbox.
type Session struct {
	Member string
	Role   Role
	// CSRF is the token every state-changing request of the session must
	// carry beside its cookie.
	CSRF    string
	Created time.Time
}

// sessionRecord is the value of s.<sha256 of the session token> in
// bucket bili_sessions: the token itself is never stored, so a copy of
// the bucket opens no session.
type sessionRecord struct {
	Member   string    `json:"member"`
	MemberID string    `json:"member_id"`
	Password string    `json:"password"` // a digest of the password hash: a new password ends the session
	CSRF     string    `json:"csrf"`
	Created  time.Time `json:"created"`
	Seen     time.Time `json:"seen"`
}

// refreshEvery is how often a session in use is written back, which
// restarts the bucket's TTL (bus.SessionTTL): a session ends after that
// long without use.
const refreshEvery = time.Hour

// Sessions are the browser inbox's sign-ins, kept in a KV bucket
// (bili_sessions) so that they survive restarts and every bridge process
// knows them.
type Sessions struct {
	kv      jetstream.KeyValue
	members *Members
	now     func() time.Time
}

// NewSessions returns the sessions kept in kv (bus.Store.Sessions) for
// the members of ms.
func NewSessions(kv jetstream.KeyValue, ms *Members) *Sessions {
	return &Sessions{kv: kv, members: ms, now: time.Now}
}

// Start signs the member called name in with password: it returns the
// session's token (for the cookie) and the session. A wrong name or
// password is ErrBadLogin.
func (s *Sessions) Start(ctx context.Context, name, password string) (string, *Session, error) {
	m, err := s.members.CheckPassword(ctx, name, password)
	if err != nil {
		return "", nil, err
	}
	rec, _, err := s.members.record(ctx, m.Name)
	if err != nil {
		return "", nil, err
	}
	token := base64.RawURLEncoding.EncodeToString(randomBytes(32))
	now := s.now().UTC()
	sr := sessionRecord{Member: m.Name, MemberID: rec.ID, Password: passwordDigest(rec.PasswordHash),
		CSRF: base64.RawURLEncoding.EncodeToString(randomBytes(24)), Created: now, Seen: now}
	b, err := json.Marshal(sr)
	if err != nil {
		return "", nil, err
	}
	if _, err := s.kv.Create(ctx, sessionKey(token), b); err != nil {
		return "", nil, fmt.Errorf("storing the session: %w", err)
	}
	return token, &Session{Member: m.Name, Role: m.Role, CSRF: sr.CSRF, Created: now}, nil
}

// Get returns the session of token. A token that is unknown, expired, of
// a removed member or from before a password change is ErrBadToken.
func (s *Sessions) Get(ctx context.Context, token string) (*Session, error) {
	if token == "" || len(token) > 100 || strings.ContainsAny(token, " .") {
		return nil, ErrBadToken
	}
	e, err := s.kv.Get(ctx, sessionKey(token))
	if isNotFound(err) {
		return nil, ErrBadToken
	}
	if err != nil {
		return nil, fmt.Errorf("reading the session: %w", err)
	}
	var sr sessionRecord
	if err := json.Unmarshal(e.Value(), &sr); err != nil {
		return nil, ErrBadToken
	}
	rec, _, err := s.members.record(ctx, sr.Member)
	switch {
	case errors.Is(err, ErrNoMember):
		_ = s.kv.Delete(ctx, sessionKey(token))
		return nil, ErrBadToken
	case err != nil:
		return nil, err
	case rec.ID != sr.MemberID || passwordDigest(rec.PasswordHash) != sr.Password:
		_ = s.kv.Delete(ctx, sessionKey(token))
		return nil, ErrBadToken
	}
	if now := s.now(); now.Sub(sr.Seen) > refreshEvery {
		sr.Seen = now.UTC()
		if b, err := json.Marshal(sr); err == nil {
			// Compare-and-set: an End meanwhile is not undone.
			_, _ = s.kv.Update(ctx, sessionKey(token), b, e.Revision())
		}
	}
	return &Session{Member: rec.Name, Role: rec.Role, CSRF: sr.CSRF, Created: sr.Created}, nil
}

// End signs the session of token out.
func (s *Sessions) End(ctx context.Context, token string) error {
	if token == "" {
		return nil
	}
	if err := s.kv.Delete(ctx, sessionKey(token)); err != nil && !isNotFound(err) {
		return err
	}
	return nil
}

func sessionKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return "s." + hex.EncodeToString(sum[:])
}

func passwordDigest(hash string) string {
	sum := sha256.Sum256([]byte(hash))
	return hex.EncodeToString(sum[:8])
}

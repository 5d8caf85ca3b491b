// Package redact keeps secrets out of errors and log lines. A bot token
// lives in every Telegram API URL, a webhook's query may carry a token,
// and an error message quotes the URL it failed on: each integration
// scrubs what it knows to be secret with the same few tools here.
package redact

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// Mark is what a secret becomes.
const Mark = "[redacted]"

// minSecret is the shortest value scrubbed: shorter ones (a query value
// like "1") would blank out ordinary words.
const minSecret = 4

// Scrubber replaces known secret values in text. The zero value scrubs
// nothing; it is safe for concurrent use.
type Scrubber struct {
	mu      sync.RWMutex
	secrets []string
	r       *strings.Replacer
}

// New returns a Scrubber of secrets (empty or short ones are ignored).
func New(secrets ...string) *Scrubber {
	s := &Scrubber{}
	for _, v := range secrets {
		s.Add(v)
	}
	return s
}

// Add makes s scrub secret too (a token learnt later).
func (s *Scrubber) Add(secret string) {
	if len(secret) < minSecret {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if slices.Contains(s.secrets, secret) {
		return
	}
	s.secrets = append(s.secrets, secret)
	// Longest first, so that a whole query goes before its parts.
	slices.SortFunc(s.secrets, func(a, b string) int { return len(b) - len(a) })
	args := make([]string, 0, 2*len(s.secrets))
	for _, v := range s.secrets {
		args = append(args, v, Mark)
	}
	s.r = strings.NewReplacer(args...)
}

// String returns text with every secret replaced by Mark.
func (s *Scrubber) String(text string) string {
	if s == nil {
		return text
	}
	s.mu.RLock()
	r := s.r
	s.mu.RUnlock()
	if r == nil {
		return text
	}
	return r.Replace(text)
}

// Error returns err with a scrubbed message that still unwraps to err,
// so errors.Is and errors.As keep working; nil stays nil.
func (s *Scrubber) Error(err error) error {
	if err == nil {
		return nil
	}
	return &scrubbed{msg: s.String(err.Error()), err: err}
}

type scrubbed struct {
	msg string
	err error
}

func (e *scrubbed) Error() string { return e.msg }
func (e *scrubbed) Unwrap() error { return e.err }

// URLSecrets are the parts of u that may be secret: its raw query, each
// query value raw and decoded, and its password.
func URLSecrets(u *url.URL) []string {
	out := []string{u.RawQuery}
	for _, part := range strings.Split(u.RawQuery, "&") {
		_, v, _ := strings.Cut(part, "=")
		out = append(out, v)
		if dv, err := url.QueryUnescape(v); err == nil {
			out = append(out, dv)
		}
	}
	if p, ok := u.User.Password(); ok {
		out = append(out, p)
	}
	return out
}

// URL shows u as scheme, host and path: user info is dropped and a query
// becomes "?[redacted]".
func URL(u *url.URL) string {
	r := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	out := r.String()
	if u.RawQuery != "" || u.ForceQuery {
		out += "?" + Mark
	}
	return out
}

// URLString is URL for a URL in text form; text that is no URL is
// replaced whole.
func URLString(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return Mark
	}
	return URL(u)
}

// URLError strips the query and user info from the URL a *url.Error
// quotes (the Go HTTP client's errors name the URL they failed on); other
// errors are returned as they are.
func URLError(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err
	}
	return &url.Error{Op: ue.Op, URL: URLString(ue.URL), Err: ue.Err}
}

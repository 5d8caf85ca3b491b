// Package webhook is the webhook sink: it POSTs each event's CloudEvent JSON
// to an HTTP(S) endpoint, signed as Standard Webhooks specifies
// (webhook-id, webhook-timestamp, webhook-signature), and tells the runtime
// whether a failure is worth retrying. Retries themselves live in the
// runtime; one Deliver is one attempt.
//
// Receivers written in Go can check requests with Verify.
package webhook

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/redact"
	"github.com/bilibridge/bilibridge/sinks"
)

const (
	// DefaultTimeout bounds one attempt when Config.Timeout is zero.
	DefaultTimeout = 15 * time.Second
	// MaxRetryAfter caps the wait a Retry-After header can ask for.
	MaxRetryAfter = time.Hour
	// maxResponse is how much of a response body is read.
	maxResponse = 64 << 10
	// maxExcerpt is how much of a response body an error quotes.
	maxExcerpt = 200
	userAgent  = "bilibridge-webhook/1"
)

// DefaultEvents are the event types delivered when Config.Events is empty.
var DefaultEvents = []string{events.TypeMessage, events.TypeRecall}

// Config of one endpoint.
type Config struct {
	URL string
	// Secrets sign every request, one signature each (several during a
	// key rotation). None: requests go unsigned, and New logs a warning.
	Secrets []Secret
	// Events are the event types to deliver; empty means DefaultEvents.
	Events []string
	// Timeout bounds one attempt, response included; zero means
	// DefaultTimeout.
	Timeout time.Duration
	// HTTPClient sends the requests; nil means a client of its own. It is
	// copied, never changed: the copy does not follow redirects.
	HTTPClient *http.Client
	// Logger: nil means slog.Default().
	Logger *slog.Logger
	// Now: nil means time.Now.
	Now func() time.Time
}

// Sink delivers events to one webhook endpoint. It implements sinks.Sink
// and sinks.Filter, and is safe for concurrent use.
type Sink struct {
	url      string // as configured: it may hold a token in its query
	redacted string // for errors and logs
	scrub    *redact.Scrubber
	name     string
	secrets  []Secret
	types    []string // in the order of allTypes
	timeout  time.Duration
	client   *http.Client
	log      *slog.Logger
	now      func() time.Time
}

var (
	_ sinks.Sink   = (*Sink)(nil)
	_ sinks.Filter = (*Sink)(nil)
)

// allTypes lists every event type a webhook can receive, in the order
// Subjects returns their filters.
var allTypes = events.Types

// maxIdlePerHost keeps a connection per conversation in flight alive.
const maxIdlePerHost = 128

// New checks cfg and returns its sink.
func New(cfg Config) (*Sink, error) {
	u, err := parseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	types, err := eventSet(cfg.Events)
	if err != nil {
		return nil, err
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("webhook: negative timeout %s", cfg.Timeout)
	}
	for i, sec := range cfg.Secrets {
		if len(sec.key) == 0 {
			return nil, fmt.Errorf("webhook: secret %d is empty (use ParseSecrets)", i+1)
		}
	}
	s := &Sink{
		url:      cfg.URL,
		redacted: redact.URL(u),
		scrub:    redact.New(redact.URLSecrets(u)...),
		name:     sinkName(cfg.URL),
		secrets:  slices.Clone(cfg.Secrets),
		types:    types,
		timeout:  cfg.Timeout,
		log:      cfg.Logger,
		now:      cfg.Now,
	}
	if s.timeout == 0 {
		s.timeout = DefaultTimeout
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("sink", s.name, "url", s.redacted)
	if s.now == nil {
		s.now = time.Now
	}
	var c http.Client
	if cfg.HTTPClient != nil {
		c = *cfg.HTTPClient
	} else {
		// The sink runtime delivers many conversations at once to one host;
		// Go's default keeps 2 idle connections per host, which turns a
		// backlog into a TLS handshake per event.
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = maxIdlePerHost
		t.MaxIdleConns = maxIdlePerHost
		c.Transport = t
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	s.client = &c
	if len(s.secrets) == 0 {
		s.log.Warn("webhook: no WEBHOOK_SECRET: requests are not signed, so the receiver cannot tell them from forgeries")
	}
	for i, sec := range s.secrets {
		if len(sec.key) < minKeyLen {
			s.log.Warn("webhook: secret shorter than Standard Webhooks recommends", "secret", i+1, "bytes", len(sec.key), "recommended", minKeyLen)
		}
	}
	return s, nil
}

// sinkName is "webhook-" followed by the first 8 hex digits of the SHA-256
// of url.
func sinkName(url string) string {
	sum := sha256.Sum256([]byte(url))
	return "webhook-" + hex.EncodeToString(sum[:4])
}

// Name is "webhook-" followed by the first 8 hex digits of the SHA-256 of
// the URL: stable across restarts, one NATS token ([a-z0-9-]), and it
// reveals nothing of a token in the URL. Changing the URL, its query
// included, changes the name (and so the runtime's consumer).
func (s *Sink) Name() string { return s.name }

// Describe is "webhook <the URL with its secrets hidden>".
func (s *Sink) Describe() string { return "webhook " + s.redacted }

// Subjects returns the subject filters of the sink's event types.
func (s *Sink) Subjects(sub events.Subjects) []string {
	var out []string
	for _, t := range s.types {
		if f := sub.ForType(t); f != "" && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

func (s *Sink) wants(typ string) bool { return slices.Contains(s.types, typ) }

// Deliver POSTs ev once. It returns nil for an event type the sink does
// not deliver and for the sink's own dead letters (delivering those to the
// endpoint that failed would only feed a loop). Otherwise: 2xx is nil; 410
// is sinks.Disabled; 408, 409, 425, 429, 5xx, timeouts and network errors
// are retryable, with sinks.RetryAfter when the response says Retry-After
// (capped at MaxRetryAfter); a redirect and any other 4xx are
// sinks.Permanent. Errors name the URL without its query.
func (s *Sink) Deliver(ctx context.Context, ev events.Event) error {
	if !s.wants(ev.Type) || s.ownDeadLetter(ev) {
		return nil
	}
	body, err := ev.Marshal()
	if err != nil {
		return sinks.Permanent(fmt.Errorf("webhook: encoding event %s: %w", ev.ID, err))
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return sinks.Permanent(s.errorf("building the request: %v", err))
	}
	now := s.now()
	ts := strconv.FormatInt(now.Unix(), 10)
	h := req.Header
	h["Content-Type"] = []string{"application/json"}
	h["User-Agent"] = []string{userAgent}
	h["Webhook-Id"] = []string{ev.ID}
	h["Webhook-Timestamp"] = []string{ts}
	if len(s.secrets) > 0 {
		sigs := make([]string, len(s.secrets))
		for i, sec := range s.secrets {
			sigs[i] = Sign(sec, ev.ID, now, body)
		}
		h["Webhook-Signature"] = []string{strings.Join(sigs, " ")}
	}

	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		return s.transportError(parent, ctx, err)
	}
	err = s.verdict(resp, now)
	if s.log.Enabled(ctx, slog.LevelDebug) {
		s.log.LogAttrs(ctx, slog.LevelDebug, "webhook: delivered", slog.String("id", ev.ID),
			slog.Int("status", resp.StatusCode), slog.Duration("took", time.Since(start)))
	}
	return err
}

// verdict reads (a bounded part of) the response and judges it.
func (s *Sink) verdict(resp *http.Response, now time.Time) error {
	defer resp.Body.Close()
	code := resp.StatusCode
	if code >= 200 && code < 300 {
		_, _ = io.CopyN(io.Discard, resp.Body, maxResponse)
		return nil
	}
	var buf [maxExcerpt]byte
	n, _ := io.ReadFull(resp.Body, buf[:])
	_, _ = io.CopyN(io.Discard, resp.Body, maxResponse-int64(n))
	what := http.StatusText(code)
	if what == "" {
		what = "status"
	}
	msg := fmt.Sprintf("%d %s", code, what)
	if ex := excerpt(buf[:n]); ex != "" {
		msg += ": " + ex
	}
	switch {
	case code == http.StatusGone:
		return sinks.Disabled(s.errorf("endpoint answered %s; it asked not to be sent anything more", msg))
	case code >= 300 && code < 400:
		loc := "nowhere"
		if l, err := resp.Location(); err == nil {
			loc = redact.URL(l)
		}
		return sinks.Permanent(s.errorf("endpoint answered %s redirecting to %s; redirects are not followed: configure the final URL", msg, loc))
	case code == http.StatusRequestTimeout, code == http.StatusConflict, code == http.StatusTooEarly,
		code == http.StatusTooManyRequests, code >= 500, code < 200:
		err := s.errorf("endpoint answered %s", msg)
		if d := retryAfter(resp.Header.Get("Retry-After"), now); d > 0 {
			return sinks.RetryAfter(err, d)
		}
		return err
	default: // other 4xx
		return sinks.Permanent(s.errorf("endpoint answered %s", msg))
	}
}

// transportError turns a failed Do into a retryable error that does not
// repeat the URL (url.Error would print it with its query).
func (s *Sink) transportError(parent, attempt context.Context, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if parent.Err() == nil && errors.Is(attempt.Err(), context.DeadlineExceeded) {
		return s.scrub.Error(fmt.Errorf("webhook %s: no response within %s: %w", s.redacted, s.timeout, err))
	}
	return s.scrub.Error(fmt.Errorf("webhook %s: %w", s.redacted, err))
}

func (s *Sink) errorf(format string, args ...any) error {
	return errors.New(s.scrub.String("webhook " + s.redacted + ": " + fmt.Sprintf(format, args...)))
}

func (s *Sink) ownDeadLetter(ev events.Event) bool {
	if ev.Type != events.TypeDeadLetter {
		return false
	}
	var d struct {
		Sink string `json:"sink"`
	}
	return json.Unmarshal(ev.Data, &d) == nil && d.Sink == s.name
}

// retryAfter reads a Retry-After header, seconds or an HTTP date, capped at
// MaxRetryAfter; zero when absent, malformed or in the past.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter
		}
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), MaxRetryAfter)
}

// excerpt is at most maxExcerpt bytes of b as one printable line.
func excerpt(b []byte) string {
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	for len(s) > maxExcerpt {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}

// ParseURLs parses WEBHOOK_URLS: comma-separated absolute http or https
// URLs. Blank entries are skipped; a repeated URL is an error (two sinks
// would share one name). An empty string is no URL.
func ParseURLs(s string) ([]string, error) {
	var out []string
	for i, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if _, err := parseURL(part); err != nil {
			return nil, fmt.Errorf("webhook: URL %d of WEBHOOK_URLS: %w", i+1, err)
		}
		if slices.Contains(out, part) {
			return nil, fmt.Errorf("webhook: URL %d of WEBHOOK_URLS repeats an earlier one", i+1)
		}
		out = append(out, part)
	}
	return out, nil
}

// parseURL checks that raw is an absolute http(s) URL. Its errors do not
// quote raw, which may hold a token.
func parseURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("webhook: no URL")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("webhook: malformed URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("webhook: URL scheme %q: want http or https", u.Scheme)
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, errors.New("webhook: URL without a host")
	}
	return u, nil
}

// eventSet checks the configured event types, defaulting to DefaultEvents,
// and returns them in the order of allTypes.
func eventSet(types []string) ([]string, error) {
	if len(types) == 0 {
		types = DefaultEvents
	}
	for _, t := range types {
		if !slices.Contains(allTypes, strings.TrimSpace(t)) {
			return nil, fmt.Errorf("webhook: unknown event type %q (known: %s)", t, strings.Join(allTypes, ", "))
		}
	}
	var out []string
	for _, t := range allTypes {
		if slices.ContainsFunc(types, func(c string) bool { return strings.TrimSpace(c) == t }) {
			out = append(out, t)
		}
	}
	return out, nil
}

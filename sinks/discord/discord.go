// Package discord is the Discord sink: a Discord channel becomes the
// team's Bilibili inbox.
//
// Inbound, every Bilibili conversation gets a thread of its own (a post
// when the channel is a forum), and each message is posted there through a
// channel webhook with the Bilibili sender's name and avatar. Mentions are
// always neutralised. The conversation→thread mapping and the webhook
// live in the NATS KV bucket of sink state (bili_state), so they survive
// restarts; the posted messages (for de-duplication and recall edits)
// and echoes live in the bucket of per-event records (bili_records), and
// expire with the events (see the keys in state.go).
//
// Replies: Run connects to the gateway; a message typed in a conversation
// thread by an allowed user (or a member with an allowed role) becomes a
// send command; what Discord posts for an action there (the thread
// renamed, a pin…) is ignored. Its outcome comes back as a send.succeeded event (a ✅
// reaction) or a send.failed event (a reply with the reason). Text
// commands typed in a thread: "/status", "/read" and "/help". A message
// starting with "//" is a remark for the thread only and is not sent.
//
// The team inbox (Config.Team): members linked to a Discord account may
// reply too, and type team commands (/claim, /assign, /done, /snooze,
// /note…) in a conversation's thread. Team events, wherever the action
// was taken, show on the thread: its name carries the assignee and a done
// or snoozed mark ("✅ [ana] name · uid"), a done conversation's thread
// is archived, and notes made elsewhere are posted, marked as internal.
// Discord allows about two renames of a thread in ten minutes: the thread
// is renamed only when its name changes, and a 429 goes back to the
// runtime, which waits.
//
// Rate limits: discordgo never sleeps on a 429 here (its retry is off and
// every request carries the caller's context); the 429 comes back to the
// runtime as sinks.RetryAfter. Its pre-emptive bucket waits are capped at
// maxLibrarySleep by clamping the rate-limit headers it reads.
package discord

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/redact"
	"github.com/bilibridge/bilibridge/send"
	"github.com/bilibridge/bilibridge/sinks"
)

const (
	// DefaultAPIURL is Discord's REST base URL.
	DefaultAPIURL = "https://discord.com"
	// WebhookName is the name of the channel webhook the sink posts with.
	WebhookName = "bilibridge"
	// Platform is events.Origin.Platform of replies typed in Discord.
	Platform = "discord"

	maxContent      = 2000
	maxThreadName   = 100
	maxUsername     = 80
	maxEmbeds       = 10
	archiveMinutes  = 10080
	maxLibrarySleep = 2 * time.Second
	requestTimeout  = 20 * time.Second
)

// Config of the Discord sink.
type Config struct {
	// Token is the bot token, without the "Bot " prefix.
	Token string
	// ChannelID is the text or forum channel that holds the threads.
	ChannelID string
	// APIURL is the REST base URL; empty means DefaultAPIURL. Any other
	// value sends every request (REST and the gateway lookup) there.
	APIURL string
	// AllowedUsers are the user ids whose messages in a conversation
	// thread are sent to Bilibili; AllowedRoles the role ids whose members'
	// are. Both empty: no replies.
	AllowedUsers, AllowedRoles []string
	// State is the KV bucket of sink state (bus.Store.State), for
	// what must last: threads, the webhook. Required.
	State jetstream.KeyValue
	// Records is the KV bucket of per-event records (bus.Store.Records):
	// what was posted for an event, echoes of replies. They may expire with
	// the events. Required.
	Records jetstream.KeyValue
	// Outbox queues replies, for the account of the conversation they
	// answer; nil: replies are off.
	Outbox send.Submitter
	// Status answers the "/status" text command; nil: not available.
	Status func() string
	// MarkRead answers the "/read" text command: mark the account's
	// conversation read on Bilibili up to seqno (the last message the sink
	// posted in its thread). nil: not available.
	MarkRead func(ctx context.Context, accountUID int64, sessionType int, talkerID, seqno uint64) error
	// MultiAccount names the account in thread names: set it when the
	// bridge serves more than one.
	MultiAccount bool
	// Team is the team inbox: team commands typed in a thread act through
	// it, and members linked to a Discord account may reply and use
	// commands without being in AllowedUsers or AllowedRoles. nil: team
	// commands answer that the team inbox is off.
	Team Team
	// Location dates "/snooze tomorrow" (9:00 there); default time.Local.
	Location *time.Location
	// Now is the clock snoozes are dated from; default time.Now.
	Now func() time.Time
	// HTTPClient sends REST requests; nil means a client with a 20s
	// timeout. Its Transport is wrapped, never changed.
	HTTPClient *http.Client
	// Logger: nil means slog.Default().
	Logger *slog.Logger
}

// Sink is the Discord sink. It implements sinks.Sink and sinks.Filter;
// Run adds replies from the gateway.
type Sink struct {
	cfg     Config
	channel string
	name    string
	dg      *discordgo.Session
	state   jetstream.KeyValue // Config.State
	records jetstream.KeyValue // Config.Records
	echoes  sinks.Echoes
	log     *slog.Logger
	users   map[string]bool
	roles   map[string]bool

	mu      sync.Mutex
	redact  *redact.Scrubber // the bot token and webhook tokens
	parent  *discordgo.Channel
	hook    *webhookRec
	threads map[string]string        // conversation key → thread id checked by this process
	convs   map[string]*conversation // thread id → conversation
	botUser string
	convMu  map[string]*sync.Mutex
}

var (
	_ sinks.Sink   = (*Sink)(nil)
	_ sinks.Filter = (*Sink)(nil)
)

// New checks cfg and returns its sink. It makes no request.
func New(cfg Config) (*Sink, error) {
	cfg.Token = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(cfg.Token), "Bot "))
	if cfg.Token == "" {
		return nil, errors.New("discord: no bot token")
	}
	if _, err := strconv.ParseUint(cfg.ChannelID, 10, 64); err != nil {
		return nil, fmt.Errorf("discord: channel id %q is not a Discord id", cfg.ChannelID)
	}
	if cfg.State == nil {
		return nil, errors.New("discord: no state bucket")
	}
	if cfg.Records == nil {
		return nil, errors.New("discord: no records bucket")
	}
	users, err := idSet("user", cfg.AllowedUsers)
	if err != nil {
		return nil, err
	}
	roles, err := idSet("role", cfg.AllowedRoles)
	if err != nil {
		return nil, err
	}
	s := &Sink{
		cfg: cfg, channel: cfg.ChannelID, name: "discord-" + cfg.ChannelID, state: cfg.State, records: cfg.Records,
		echoes: sinks.Echoes{KV: cfg.Records, Prefix: "dc.noted." + cfg.ChannelID},
		users:  users, roles: roles, redact: redact.New(cfg.Token),
		threads: map[string]string{}, convs: map[string]*conversation{}, convMu: map[string]*sync.Mutex{},
	}
	if s.cfg.Location == nil {
		s.cfg.Location = time.Local
	}
	if s.cfg.Now == nil {
		s.cfg.Now = time.Now
	}
	s.log = cfg.Logger
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("sink", s.name)

	var target *url.URL
	if cfg.APIURL != "" && strings.TrimRight(cfg.APIURL, "/") != DefaultAPIURL {
		u, err := url.Parse(cfg.APIURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("discord: API URL %q is not an http(s) URL", cfg.APIURL)
		}
		target = u
	}
	var c http.Client
	if cfg.HTTPClient != nil {
		c = *cfg.HTTPClient
	} else {
		c.Timeout = requestTimeout
	}
	c.Transport = &transport{base: c.Transport, target: target}

	dg, err := discordgo.New("Bot " + cfg.Token)
	if err != nil {
		return nil, fmt.Errorf("discord: %w", err)
	}
	dg.Client = &c
	dg.ShouldRetryOnRateLimit = false
	dg.MaxRestRetries = 1
	dg.StateEnabled = true
	dg.Identify.Intents = discordgo.IntentGuildMessages | discordgo.IntentMessageContent
	dg.LogLevel = discordgo.LogError
	// Handle gateway events one at a time, in order: two quick replies in
	// a thread are queued in the order they were typed.
	dg.SyncEvents = true
	dg.Dialer = &websocket.Dialer{Proxy: http.ProxyFromEnvironment, HandshakeTimeout: requestTimeout}
	s.dg = dg
	return s, nil
}

func idSet(what string, ids []string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, id := range ids {
		id = strings.TrimSpace(id)
		if id == "" {
			continue
		}
		if _, err := strconv.ParseUint(id, 10, 64); err != nil {
			return nil, fmt.Errorf("discord: allowed %s %q is not a Discord id", what, id)
		}
		out[id] = true
	}
	return out, nil
}

// Name is "discord-<channel id>".
func (s *Sink) Name() string { return s.name }

// Describe is "discord channel <id>".
func (s *Sink) Describe() string { return "discord channel " + s.channel }

// Subjects: messages, recalls, send results, account status, and team
// actions (shown on the threads, whether or not Config.Team is set: the
// browser and the API change the team state too).
func (s *Sink) Subjects(sub events.Subjects) []string {
	return append(sub.Deliverable(), sub.ForType(events.TypeTeamAssigned))
}

// transport rewrites requests to the configured API host and clamps the
// rate-limit headers discordgo sleeps on.
type transport struct {
	base   http.RoundTripper
	target *url.URL
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.target != nil {
		req = req.Clone(req.Context())
		req.URL.Scheme, req.URL.Host, req.Host = t.target.Scheme, t.target.Host, t.target.Host
	}
	base := t.base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	// discordgo sleeps before the next request of a bucket (or of every
	// bucket, for a global limit) until the reset it read here, ignoring
	// any context. Keep those sleeps short; a longer wait comes back to
	// the runtime as a 429 with its retry_after.
	h := resp.Header
	h.Del("X-RateLimit-Global")
	h.Del("X-RateLimit-Reset")
	if ra := h.Get("X-RateLimit-Reset-After"); ra != "" {
		if f, err := strconv.ParseFloat(ra, 64); err != nil || f > maxLibrarySleep.Seconds() {
			h.Set("X-RateLimit-Reset-After", strconv.FormatFloat(maxLibrarySleep.Seconds(), 'f', -1, 64))
		}
	}
	return resp, nil
}

// opts are the request options of every call: the caller's context and no
// sleeping on a 429.
func opts(ctx context.Context) []discordgo.RequestOption {
	return []discordgo.RequestOption{discordgo.WithContext(ctx), discordgo.WithRetryOnRatelimit(false)}
}

// ---- errors ----

// addSecret makes scrub hide v (a webhook token learnt at run time).
func (s *Sink) addSecret(v string) { s.redact.Add(v) }

// scrub hides the bot token and webhook tokens in text.
func (s *Sink) scrub(text string) string { return s.redact.String(text) }

// apiStatus returns the HTTP status and Discord error code of err, or
// zeros when it is not an API error.
func apiStatus(err error) (status, code int) {
	var re *discordgo.RESTError
	if errors.As(err, &re) && re.Response != nil {
		status = re.Response.StatusCode
		if re.Message != nil {
			code = re.Message.Code
		}
	}
	return status, code
}

// classify turns a discordgo error into the verdict the runtime reads,
// with a message that never holds a token (discordgo's errors quote
// request URLs, and webhook URLs hold the webhook's token). The original
// error is not wrapped for the same reason.
func (s *Sink) classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var rl *discordgo.RateLimitError
	if errors.As(err, &rl) && rl.RateLimit != nil && rl.TooManyRequests != nil {
		after := rl.RetryAfter
		return sinks.RetryAfter(fmt.Errorf("discord: %s: rate limited (retry after %s)", op, after), after)
	}
	var re *discordgo.RESTError
	if errors.As(err, &re) && re.Response != nil {
		status, code := apiStatus(err)
		msg := ""
		if re.Message != nil {
			msg = re.Message.Message
		}
		e := errors.New(s.scrub(fmt.Sprintf("discord: %s: HTTP %d, code %d: %s", op, status, code, msg)))
		switch {
		case status == http.StatusUnauthorized:
			return sinks.Disabled(fmt.Errorf("%w (is DISCORD_BOT_TOKEN right?)", e))
		case status == http.StatusForbidden:
			return sinks.Disabled(fmt.Errorf("%w (does the bot have access to channel %s, with Manage Webhooks, Create Public Threads and Send Messages in Threads?)", e, s.channel))
		case status == http.StatusTooManyRequests:
			return sinks.RetryAfter(e, 0)
		case status == http.StatusRequestTimeout:
			return e
		case status >= 400 && status < 500:
			return sinks.Permanent(e)
		}
		return e
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("discord: %s: %w", op, context.DeadlineExceeded)
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("discord: %s: %w", op, context.Canceled)
	}
	return errors.New(s.scrub(fmt.Sprintf("discord: %s: %v", op, err)))
}

// Package telegram is the Telegram sink: a forum supergroup (or any chat)
// becomes the team's Bilibili inbox, and replies typed there go back to
// Bilibili through the outbox.
//
// Inbound, each Bilibili conversation gets its own forum topic ("name ·
// uid"), created on its first message and remembered in the KV bucket
// bili_state, so it survives restarts; a deleted topic is recreated and a
// closed one reopened before the message is delivered. In a chat that is
// not a forum every message carries a header naming the talker. Messages
// are rendered in HTML parse mode with everything escaped; images are sent
// as photos by URL, downloaded (from public addresses only: the URLs come
// from outside) and uploaded when Telegram cannot fetch them, and posted
// as a link when that fails too. One rate limiter per chat is shared by
// every topic, and a 429's retry_after is handed to the runtime exactly.
//
// KV keys, <chat> being the chat id. What must outlast the events lives
// in bili_state (Config.State):
//
//	tg.topic.<chat>.<uid>.<session_type>.<talker>  → topic (thread id, name) and the team state it shows
//	tg.thread.<chat>.<thread>                       → conversation of a topic
//	tg.offset.<chat>                                → last update handled (Run)
//	tg.updates.<chat>                               → update ids handled in the last day (WebhookHandler)
//	tg.repliesoff.<chat>                            → the "replies are off" notice was posted
//
// Records about one event or one posted message live in bili_records
// (Config.Records), whose keys expire with the events (STREAM_MAX_AGE
// after their last write); one or more are written per DM, so in
// bili_state they would pile up forever:
//
//	tg.msg.<chat>.<event id>                        → Telegram messages posted for an event
//	tg.merged.<chat>.<message id>                   → the parts of a merged message (DeliverBatch)
//	tg.conv.<chat>.<message id>                     → conversation of a posted message (flat chats)
//	tg.echo.<uid>.<msg_key>                         → a reply sent from Telegram, not to be posted again
//	tg.noted.<chat>.<uid>.<st>.<talker>.<hash>      → a note typed here as /note, not to be posted again
//	tg.file.<id>                                    → a photo reply served by FileHandler
//
// A record is needed only while its event can still be delivered,
// recalled or echoed, that is while the event is in the stream: it is
// written when the event is delivered, so it outlives it. tg.conv is the
// one a member may want later, to reply to an old message in a flat chat;
// a reply to a message older than the stream is rare, and is ignored as
// one to a message the bridge never posted. Earlier versions wrote the
// records to bili_state; they are not moved: nothing reads them there
// any more, and they stay harmlessly.
//
// Outbound, Run long-polls getUpdates (or, with a webhook URL, registers
// the webhook that WebhookHandler serves) and turns the allowed users'
// messages into send commands; see Run.
//
// The team inbox (Config.Team): members linked to a Telegram account may
// reply too, and type team commands (/claim, /assign, /done, /snooze,
// /note…) in a conversation's topic. Team events, wherever the action was
// taken, show on the topic: its name carries the assignee and a done or
// snoozed mark ("✅ [ana] name · uid"), a done conversation's topic is
// closed, and notes made elsewhere are posted, marked as internal.
package telegram

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-telegram/bot"
	"github.com/go-telegram/bot/models"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/kvkey"
	"github.com/bilibridge/bilibridge/netguard"
	"github.com/bilibridge/bilibridge/redact"
	"github.com/bilibridge/bilibridge/send"
	"github.com/bilibridge/bilibridge/sinks"
)

// DefaultAPIURL is Telegram's Bot API.
const DefaultAPIURL = "https://api.telegram.org"

// Defaults of the per-chat rate limiter: Telegram allows about 20
// messages a minute in a group.
const (
	DefaultRatePerMinute = 20
	DefaultBurst         = 3
)

// Config configures a Telegram sink.
type Config struct {
	// Token is the bot token (TELEGRAM_BOT_TOKEN). It never appears in
	// logs, errors or events.
	Token string
	// ChatID is the forum supergroup or chat (TELEGRAM_CHAT_ID).
	ChatID int64
	// APIURL is the Bot API base URL; default DefaultAPIURL.
	APIURL string
	// AllowedUsers may reply to Bilibili (TELEGRAM_ALLOWED_USERS); empty:
	// replies are off, and the bot says so once in the chat.
	AllowedUsers []int64
	// State is the KV bucket bili_state (Store.State), for what must
	// last: topics, offsets. Required.
	State jetstream.KeyValue
	// Records is the KV bucket bili_records (Store.Records), for the
	// per-event records (what was posted for an event, echoes, photo
	// replies), which may expire with the events. Required.
	Records jetstream.KeyValue
	// Outbox takes replies; nil: replies are off.
	Outbox send.Submitter
	// HTTPClient makes the Bot API calls. Its Timeout, if any, must be
	// longer than PollTimeout. Default: a client without timeout (every
	// call is bounded by its context).
	HTTPClient *http.Client
	Logger     *slog.Logger
	Now        func() time.Time
	// Status answers /status (login state, last good poll, queue depth).
	Status func() string
	// MarkRead answers /read: it marks the conversation read on Bilibili.
	MarkRead func(ctx context.Context, uid int64, sessionType int, talkerID uint64) error
	// MultiAccount names the account in topic names: set it when the
	// bridge serves more than one.
	MultiAccount bool
	// FileProxyURL is where FileHandler is reachable by the sender (for
	// example https://bridge.example.com/telegram/files). Photo replies
	// are passed to the outbox as <FileProxyURL>/<random id>, so the
	// Telegram file URL, which holds the bot token, never leaves the
	// process. Empty: photo replies are refused with a note in the chat.
	FileProxyURL string
	// FileTTL is how long a photo reply's proxy URL works; default 24h.
	FileTTL time.Duration
	// RatePerMinute and Burst shape the chat's rate limiter; defaults
	// DefaultRatePerMinute and DefaultBurst.
	RatePerMinute float64
	Burst         int
	// PollTimeout is getUpdates' long-poll timeout; default 50s.
	PollTimeout time.Duration
	// Forum, when set, says whether the chat is a forum instead of asking
	// Telegram (getChat) on first use.
	Forum *bool
	// Location is the time zone of the times shown in merged messages;
	// default time.Local.
	Location *time.Location
	// WebhookURL, when set, is the public https URL where Telegram posts
	// updates (WebhookHandler must be served there) instead of Run
	// polling getUpdates.
	WebhookURL string
	// WebhookSecret is the secret token Telegram sends with every webhook
	// call (1-256 characters: A-Z, a-z, 0-9, _ and -); required with
	// WebhookURL. It never appears in logs or errors.
	WebhookSecret string

	// Team is the team inbox: /claim-style commands typed in a topic act
	// through it, and members linked to a Telegram account may reply and
	// use commands without being in AllowedUsers. nil: team commands
	// answer that the team inbox is off.
	Team Team

	// AllowPrivateImages lets the sink download the pictures of Bilibili
	// messages (those Telegram could not fetch by itself) from loopback,
	// private and link-local addresses: for tests, or a trusted LAN. By
	// default such URLs, which come from outside, are downloaded through
	// netguard: public addresses only, no proxy.
	AllowPrivateImages bool
}

// Sink delivers events to one Telegram chat. It implements sinks.Sink and
// sinks.Filter and is safe for concurrent use.
type Sink struct {
	cfg     Config
	bot     *bot.Bot
	http    *http.Client // the Bot API, file downloads included
	images  *http.Client // pictures of Bilibili messages: URLs from outside
	apiURL  string
	chatTok string // the chat id as a KV key token
	echoes  sinks.Echoes
	name    string
	log     *slog.Logger
	now     func() time.Time
	limiter *rate.Limiter
	allowed map[int64]bool
	redact  *redact.Scrubber // the bot token

	forumMu sync.Mutex
	forum   *bool

	meMu sync.Mutex
	me   string // the bot's username, once asked (getMe)

	// updMu orders the handling of updates (process).
	updMu    sync.Mutex
	failures map[int64]int // update_id → failed attempts

	// convLocks order, within the process, a team command's answer before
	// the delivery of the team event it caused (see lockConv).
	convMu    sync.Mutex
	convLocks map[string]*sync.Mutex
}

var (
	_ sinks.Sink   = (*Sink)(nil)
	_ sinks.Filter = (*Sink)(nil)
)

// New checks cfg and returns its sink. It makes no network call.
func New(cfg Config) (*Sink, error) {
	if strings.TrimSpace(cfg.Token) == "" {
		return nil, errors.New("telegram: the bot token is empty")
	}
	if cfg.ChatID == 0 {
		return nil, errors.New("telegram: the chat id is empty")
	}
	if cfg.State == nil {
		return nil, errors.New("telegram: no KV bucket for the sink's state")
	}
	if cfg.Records == nil {
		return nil, errors.New("telegram: no KV bucket for the sink's per-event records")
	}
	if cfg.APIURL == "" {
		cfg.APIURL = DefaultAPIURL
	}
	cfg.APIURL = strings.TrimRight(cfg.APIURL, "/")
	if cfg.FileProxyURL != "" {
		if !httpURL(cfg.FileProxyURL) {
			return nil, errors.New("telegram: the file proxy URL must be an absolute http(s) URL")
		}
		cfg.FileProxyURL = strings.TrimRight(cfg.FileProxyURL, "/")
	}
	if cfg.WebhookURL != "" {
		if !strings.HasPrefix(cfg.WebhookURL, "https://") || !httpURL(cfg.WebhookURL) {
			return nil, errors.New("telegram: the webhook URL must be an absolute https URL")
		}
		if !validSecretToken(cfg.WebhookSecret) {
			return nil, errors.New("telegram: webhook mode needs a secret token of 1-256 characters A-Z, a-z, 0-9, _ and -")
		}
	}
	if cfg.FileTTL <= 0 {
		cfg.FileTTL = 24 * time.Hour
	}
	if cfg.RatePerMinute <= 0 {
		cfg.RatePerMinute = DefaultRatePerMinute
	}
	if cfg.Burst <= 0 {
		cfg.Burst = DefaultBurst
	}
	if cfg.PollTimeout <= 0 {
		cfg.PollTimeout = 50 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Location == nil {
		cfg.Location = time.Local
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	s := &Sink{
		cfg:     cfg,
		http:    hc,
		images:  netguard.Client(netguard.Options{AllowPrivate: cfg.AllowPrivateImages}),
		apiURL:  cfg.APIURL,
		chatTok: strconv.FormatInt(cfg.ChatID, 10),
		echoes:  sinks.Echoes{KV: cfg.Records, Prefix: "tg.noted." + strconv.FormatInt(cfg.ChatID, 10)},
		name:    "telegram-" + strings.ReplaceAll(strconv.FormatInt(cfg.ChatID, 10), "-", "_"),
		now:     cfg.Now,
		limiter: rate.NewLimiter(rate.Limit(cfg.RatePerMinute/60), cfg.Burst),
		allowed: map[int64]bool{},
		redact:  redact.New(cfg.Token),
		forum:   cfg.Forum,

		failures:  map[int64]int{},
		convLocks: map[string]*sync.Mutex{},
	}
	s.log = cfg.Logger.With("sink", s.name)
	for _, u := range cfg.AllowedUsers {
		s.allowed[u] = true
	}
	b, err := bot.New(cfg.Token, bot.WithServerURL(cfg.APIURL), bot.WithSkipGetMe(),
		bot.WithHTTPClient(cfg.PollTimeout+10*time.Second, hc),
		bot.WithErrorsHandler(func(err error) { s.log.Debug("telegram library", "err", s.scrub(err)) }),
		bot.WithDefaultHandler(func(context.Context, *bot.Bot, *models.Update) {}))
	if err != nil {
		return nil, fmt.Errorf("telegram: %v", s.scrub(err))
	}
	s.bot = b
	return s, nil
}

// Name is "telegram-<chat id>", with '-' as '_'.
func (s *Sink) Name() string { return s.name }

// Describe is "telegram chat <id>".
func (s *Sink) Describe() string { return "telegram chat " + strconv.FormatInt(s.cfg.ChatID, 10) }

// Subjects: messages, recalls, send results, account status, and team
// actions (shown on the topics, whether or not Config.Team is set: the
// browser and the API change the team state too).
func (s *Sink) Subjects(sub events.Subjects) []string {
	return append(sub.Deliverable(), sub.ForType(events.TypeTeamAssigned))
}

// Deliver posts one event.
func (s *Sink) Deliver(ctx context.Context, ev events.Event) error {
	switch ev.Type {
	case events.TypeMessage:
		var d events.MessageData
		if err := ev.DecodeData(&d); err != nil {
			return sinks.Permanent(err)
		}
		return s.deliverMessage(ctx, ev.ID, d)
	case events.TypeRecall:
		var d events.RecallData
		if err := ev.DecodeData(&d); err != nil {
			return sinks.Permanent(err)
		}
		return s.deliverRecall(ctx, ev.ID, d)
	case events.TypeSendSucceeded, events.TypeSendFailed:
		var d events.SendResultData
		if err := ev.DecodeData(&d); err != nil {
			return sinks.Permanent(err)
		}
		return s.deliverResult(ctx, ev, d)
	case events.TypeAccountStatus:
		var d events.AccountStatusData
		if err := ev.DecodeData(&d); err != nil {
			return sinks.Permanent(err)
		}
		return s.post(ctx, ev.ID, nil, 0, func(bool) []part { return []part{{Text: statusText(d)}} })
	case events.TypeTeamAssigned:
		var d events.AssignedData
		if err := ev.DecodeData(&d); err != nil {
			return sinks.Permanent(err)
		}
		return s.deliverTeamState(ctx, d.TeamBase, func(r *topicRecord) {
			r.Assignee = ""
			if d.Assignee != nil {
				r.Assignee = *d.Assignee
			}
		})
	case events.TypeTeamStatus:
		var d events.StatusData
		if err := ev.DecodeData(&d); err != nil {
			return sinks.Permanent(err)
		}
		return s.deliverTeamState(ctx, d.TeamBase, func(r *topicRecord) { r.Status = d.Status })
	case events.TypeTeamNote:
		var d events.NoteData
		if err := ev.DecodeData(&d); err != nil {
			return sinks.Permanent(err)
		}
		return s.deliverNote(ctx, ev.ID, d)
	}
	// team.read and anything newer: nothing to show.
	return nil
}

func (s *Sink) deliverMessage(ctx context.Context, id string, d events.MessageData) error {
	if d.Message.Direction == events.DirectionOut {
		key := echoKey(d.AccountUID, d.Message.MsgKey)
		if _, err := s.cfg.Records.Get(ctx, key); err == nil {
			s.log.Debug("not posting the echo of a reply sent from Telegram", "event", id)
			_ = s.cfg.Records.Delete(ctx, key)
			return nil
		} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("telegram: reading the echo record: %w", err)
		}
	}
	conv := &conversation{UID: d.AccountUID, Conversation: d.Conversation}
	return s.post(ctx, id, conv, 0, func(flat bool) []part { return renderMessage(d, flat) })
}

// conversation is a conversation of an account, as the sink knows it.
type conversation struct {
	UID int64 `json:"uid,string"`
	events.Conversation
}

func (c *conversation) String() string {
	return fmt.Sprintf("%d.%d.%d", c.UID, c.SessionType, c.TalkerID)
}

// postedRecord is what was posted for an event: the Telegram messages in
// order, and the first one's HTML (what a recall edits).
type postedRecord struct {
	Done      bool   `json:"done"`
	Thread    int    `json:"thread,omitempty"`
	IDs       []int  `json:"ids"`
	FirstHTML string `json:"first_html,omitempty"`
	FirstIsPh bool   `json:"first_is_photo,omitempty"`
	// Merged: the event is part Part of a merged message, IDs[0]
	// (DeliverBatch).
	Merged bool `json:"merged,omitempty"`
	Part   int  `json:"part,omitempty"`
	// Lead and Batch, on a later part of a merged message, point to the
	// record of its first part (event Lead), written before the message
	// was sent: the part was posted once that record is Done with the
	// same Batch. So one KV write right after the message records every
	// part, and an attempt that never got that far is not taken as
	// posted.
	Lead  string `json:"lead,omitempty"`
	Batch string `json:"batch,omitempty"`
}

// posted reads what was posted for an event: ok false when nothing was.
// A later part of a merged message is resolved through its first part.
func (s *Sink) posted(ctx context.Context, eventID string) (rec postedRecord, ok bool, err error) {
	key := s.msgKey(eventID)
	if found, err := s.loadJSON(ctx, s.cfg.Records, key, &rec); !found || err != nil {
		return postedRecord{}, false, err
	}
	if rec.Done || rec.Lead == "" {
		return rec, true, nil
	}
	var lead postedRecord
	if found, err := s.loadJSON(ctx, s.cfg.Records, s.msgKey(rec.Lead), &lead); !found || err != nil {
		return postedRecord{}, false, err
	}
	if !lead.Done || !lead.Merged || lead.Batch != rec.Batch || len(lead.IDs) == 0 {
		return postedRecord{}, false, nil // that attempt never posted the message
	}
	rec = postedRecord{Done: true, Thread: lead.Thread, IDs: lead.IDs, Merged: true, Part: rec.Part}
	_ = s.saveJSON(ctx, s.cfg.Records, key, rec) // spares the next reader the indirection
	return rec, true, nil
}

// loadJSON reads key of kv into v; false when the key does not exist or
// does not hold what v expects.
func (s *Sink) loadJSON(ctx context.Context, kv jetstream.KeyValue, key string, v any) (bool, error) {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("telegram: reading the posted record: %w", err)
	}
	return json.Unmarshal(e.Value(), v) == nil, nil
}

// post sends the parts of an event once: what was posted is recorded
// under tg.msg.<chat>.<event id> after each message, so a redelivery
// (after a failed part, or in another process after a crash) posts
// nothing twice and resumes after the last message sent. conv nil posts
// to the General topic (or the chat). thread, when not zero, is the topic
// to use when conv is nil.
func (s *Sink) post(ctx context.Context, eventID string, conv *conversation, thread int, render func(flat bool) []part) error {
	_, err := s.postReport(ctx, eventID, conv, thread, render)
	return err
}

// postReport is post, also reporting whether a closed topic was reopened
// to post in it.
func (s *Sink) postReport(ctx context.Context, eventID string, conv *conversation, thread int, render func(flat bool) []part) (reopened bool, err error) {
	key := s.msgKey(eventID)
	rec, _, err := s.posted(ctx, eventID)
	if err != nil {
		return false, err
	}
	if rec.Done {
		s.log.Debug("already posted", "event", eventID)
		return false, nil
	}
	forum, err := s.isForum(ctx)
	if err != nil {
		return false, err
	}
	parts := render(!forum)
	t := &target{conv: conv, thread: thread}
	if forum && conv != nil {
		if t.thread, err = s.topic(ctx, conv); err != nil {
			return false, err
		}
	}
	for i := len(rec.IDs); i < len(parts); i++ {
		id, isPhoto, sentHTML, err := s.sendPart(ctx, t, parts[i])
		if err != nil {
			// The record is current already; writing it again here could
			// undo what another process, which took the redelivery while
			// this one was stuck, recorded meanwhile.
			return false, err
		}
		if i == 0 {
			rec.FirstHTML, rec.FirstIsPh = sentHTML, isPhoto
		}
		rec.IDs, rec.Thread, rec.Done = append(rec.IDs, id), t.thread, i == len(parts)-1
		// Recorded before anything else: a crash from here on must not
		// post this part again. A failed write before the last part is
		// only logged (by saveJSON): going on and recording at the end
		// posts fewer parts twice than a retry would.
		if err := s.saveJSON(ctx, s.cfg.Records, key, rec); err != nil && rec.Done {
			return false, fmt.Errorf("telegram: recording the posted messages: %w", err)
		}
		if !forum && conv != nil {
			s.recordConv(ctx, id, conv)
		}
	}
	if !rec.Done { // nothing left to send: a record from an older version, or no parts
		rec.Done = true
		if err := s.saveJSON(ctx, s.cfg.Records, key, rec); err != nil {
			return false, fmt.Errorf("telegram: recording the posted messages: %w", err)
		}
	}
	return t.reopened, nil
}

// convKey maps a message posted in a flat chat to its conversation, so
// that a member's reply to it reaches the right talker. It is in Records:
// a reply to a message older than the stream (STREAM_MAX_AGE, 30 days by
// default) is rare, and is then ignored like a reply to anything else.
func (s *Sink) convKey(msgID int) string { return "tg.conv." + s.chatTok + "." + strconv.Itoa(msgID) }

// recordConv records the conversation of message msgID (flat chats).
func (s *Sink) recordConv(ctx context.Context, msgID int, conv *conversation) {
	if _, err := s.cfg.Records.Put(ctx, s.convKey(msgID), []byte(conv.String())); err != nil {
		s.log.Warn("could not record the conversation of a posted message; replies to it will be ignored", "err", err)
	}
}

// saveJSON writes v under key of kv (State or Records).
func (s *Sink) saveJSON(ctx context.Context, kv jetstream.KeyValue, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = kv.Put(context.WithoutCancel(ctx), key, b)
	if err != nil {
		s.log.Warn("KV write failed", "key", key, "err", err)
	}
	return err
}

// target is where an event's messages go.
type target struct {
	conv   *conversation
	thread int
	// reopened: sendPart reopened the closed topic to post in it.
	reopened bool
}

// sendPart sends one part, recreating a deleted topic or reopening a
// closed one once. It returns the message id, whether it is a photo, and
// the HTML that was sent.
func (s *Sink) sendPart(ctx context.Context, t *target, p part) (int, bool, string, error) {
	for attempt := 0; ; attempt++ {
		id, isPhoto, h, err := s.sendOnce(ctx, t.thread, p)
		if err == nil {
			return id, isPhoto, h, nil
		}
		if attempt == 0 && t.conv != nil && t.thread != 0 {
			switch {
			case topicGone(err):
				s.log.Info("the conversation's topic is gone; creating it again", "conversation", t.conv.String(), "thread", t.thread)
				th, cerr := s.createTopic(ctx, t.conv)
				if cerr != nil {
					return 0, false, "", cerr
				}
				t.thread = th
				continue
			case topicClosed(err):
				s.log.Info("the conversation's topic is closed; reopening it", "conversation", t.conv.String(), "thread", t.thread)
				if rerr := s.wait(ctx); rerr != nil {
					return 0, false, "", rerr
				}
				_, rerr := s.bot.ReopenForumTopic(ctx, &bot.ReopenForumTopicParams{ChatID: s.cfg.ChatID, MessageThreadID: t.thread})
				if rerr != nil && topicGone(rerr) {
					th, cerr := s.createTopic(ctx, t.conv)
					if cerr != nil {
						return 0, false, "", cerr
					}
					t.thread = th
				} else if rerr != nil && !notModified(rerr) {
					return 0, false, "", s.verdict(rerr)
				} else {
					t.reopened = true
				}
				continue
			}
		}
		return 0, false, "", s.verdict(err)
	}
}

// sendOnce sends a part in thread; errors are the library's, unscrubbed.
func (s *Sink) sendOnce(ctx context.Context, thread int, p part) (int, bool, string, error) {
	if err := s.wait(ctx); err != nil {
		return 0, false, "", err
	}
	var markup models.ReplyMarkup
	if len(p.Buttons) > 0 {
		markup = &urlKeyboard{InlineKeyboard: p.Buttons}
	}
	var reply *models.ReplyParameters
	if p.ReplyTo != 0 {
		reply = &models.ReplyParameters{MessageID: p.ReplyTo, AllowSendingWithoutReply: true}
	}
	if p.Photo != "" {
		params := &bot.SendPhotoParams{ChatID: s.cfg.ChatID, MessageThreadID: thread, Photo: &models.InputFileString{Data: p.Photo},
			Caption: p.Caption, ParseMode: models.ParseModeHTML, ReplyMarkup: markup, ReplyParameters: reply}
		m, err := s.bot.SendPhoto(ctx, params)
		if err == nil {
			return m.ID, true, p.Caption, nil
		}
		if !urlRefused(err) {
			return 0, false, "", err
		}
		// Telegram could not fetch it: download it and upload it. The URL
		// comes from a Bilibili message: the guarded client keeps it from
		// reaching into the network the bridge runs in.
		data, name, derr := s.download(ctx, s.images, p.Photo)
		if derr == nil {
			params.Photo = &models.InputFileUpload{Filename: name, Data: strings.NewReader(string(data))}
			m, err = s.bot.SendPhoto(ctx, params)
			if err == nil {
				return m.ID, true, p.Caption, nil
			}
			if !urlRefused(err) && !strings.Contains(err.Error(), "IMAGE_PROCESS_FAILED") && !strings.Contains(err.Error(), "PHOTO_INVALID") {
				return 0, false, "", err
			}
		}
		s.log.Info("the image could be neither fetched by Telegram nor uploaded; posting its link", "err", derr)
		p = part{Text: p.Fallback, Buttons: p.Buttons, ReplyTo: p.ReplyTo}
	}
	m, err := s.bot.SendMessage(ctx, &bot.SendMessageParams{ChatID: s.cfg.ChatID, MessageThreadID: thread, Text: p.Text,
		ParseMode: models.ParseModeHTML, ReplyMarkup: markup, ReplyParameters: reply,
		LinkPreviewOptions: &models.LinkPreviewOptions{IsDisabled: bot.True()}})
	if err != nil {
		return 0, false, "", err
	}
	return m.ID, false, p.Text, nil
}

// wait takes a token from the chat's rate limiter.
func (s *Sink) wait(ctx context.Context) error {
	if err := s.limiter.Wait(ctx); err != nil {
		return fmt.Errorf("telegram: waiting for the chat's rate limit: %w", err)
	}
	return nil
}

// isForum asks Telegram once whether the chat is a forum.
func (s *Sink) isForum(ctx context.Context) (bool, error) {
	s.forumMu.Lock()
	defer s.forumMu.Unlock()
	if s.forum != nil {
		return *s.forum, nil
	}
	c, err := s.bot.GetChat(ctx, &bot.GetChatParams{ChatID: s.cfg.ChatID})
	if err != nil {
		return false, s.verdict(err)
	}
	f := c.IsForum
	s.forum = &f
	s.log.Info("chat checked", "forum", f)
	return f, nil
}

// topicRecord is a conversation's topic (tg.topic.<chat>.<conv>), and
// the team state its name and its being closed show. Thread is 0 while
// the conversation has no topic here: a team action on it is kept for the
// topic to come.
type topicRecord struct {
	Thread int    `json:"thread"`
	Name   string `json:"name"` // the topic's name, as last set
	// Talker and Kind name the conversation in titles made for team
	// events, whose data may lack the name.
	Talker string `json:"talker,omitempty"`
	Kind   string `json:"kind,omitempty"`
	// Assignee and Status are the team state the topic shows: its name
	// carries both, and it is closed while the status is done.
	Assignee string `json:"assignee,omitempty"`
	Status   string `json:"status,omitempty"`
}

func (s *Sink) topicKey(c *conversation) string {
	return fmt.Sprintf("tg.topic.%s.%d.%d.%d", s.chatTok, c.UID, c.SessionType, c.TalkerID)
}

// loadTopic reads the conversation's topic record; a missing or
// unreadable one is the zero record.
func (s *Sink) loadTopic(ctx context.Context, c *conversation) (topicRecord, error) {
	var rec topicRecord
	e, err := s.cfg.State.Get(ctx, s.topicKey(c))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return rec, nil
	}
	if err != nil {
		return rec, fmt.Errorf("telegram: reading the topic map: %w", err)
	}
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		s.log.Warn("unreadable topic record; starting a new one", "conversation", c.String(), "err", err)
		return topicRecord{}, nil
	}
	return rec, nil
}

// topic returns the conversation's topic, creating it on first use, and
// renaming it when the talker's name changed.
func (s *Sink) topic(ctx context.Context, c *conversation) (int, error) {
	rec, err := s.loadTopic(ctx, c)
	if err != nil {
		return 0, err
	}
	if rec.Thread == 0 {
		return s.createTopic(ctx, c)
	}
	if c.Name == "" {
		return rec.Thread, nil
	}
	talkerChanged := c.Name != rec.Talker || (c.Kind != "" && c.Kind != rec.Kind)
	if name := s.topicName(c, rec); name != rec.Name {
		if err := s.wait(ctx); err != nil {
			return 0, err
		}
		_, err := s.bot.EditForumTopic(ctx, &bot.EditForumTopicParams{ChatID: s.cfg.ChatID, MessageThreadID: rec.Thread, Name: name})
		if err == nil || notModified(err) {
			rec.Name = name
			talkerChanged = true
		} else {
			s.log.Debug("could not rename a topic", "thread", rec.Thread, "err", s.scrub(err))
		}
	}
	if talkerChanged {
		rec.Talker = c.Name
		if c.Kind != "" {
			rec.Kind = c.Kind
		}
		_ = s.saveJSON(ctx, s.cfg.State, s.topicKey(c), rec)
	}
	return rec.Thread, nil
}

// topicName is the topic of conversation c: TopicName, marked with the
// team state of rec (see teamPrefix) and, when the bridge serves several
// accounts, followed by the account. The talker's name and kind come from
// rec when c lacks them (team events).
func (s *Sink) topicName(c *conversation, rec topicRecord) string {
	conv := c.Conversation
	if conv.Name == "" {
		conv.Name = rec.Talker
	}
	if conv.Kind == "" {
		conv.Kind = rec.Kind
	}
	prefix := sinks.TeamPrefix(rec.Assignee, rec.Status)
	suffix := ""
	if s.cfg.MultiAccount {
		suffix = " → " + strconv.FormatInt(c.UID, 10)
	}
	return prefix + topicNameWithin(conv, maxTopicName-utf16Len(prefix)-utf16Len(suffix)) + suffix
}

// createTopic opens the conversation's topic, named with the team state
// recorded for it, if any.
func (s *Sink) createTopic(ctx context.Context, c *conversation) (int, error) {
	rec, err := s.loadTopic(ctx, c)
	if err != nil {
		return 0, err
	}
	if err := s.wait(ctx); err != nil {
		return 0, err
	}
	name := s.topicName(c, rec)
	tp, err := s.bot.CreateForumTopic(ctx, &bot.CreateForumTopicParams{ChatID: s.cfg.ChatID, Name: name})
	if err != nil {
		return 0, s.verdict(err)
	}
	if _, err := s.cfg.State.Put(ctx, "tg.thread."+s.chatTok+"."+strconv.Itoa(tp.MessageThreadID), []byte(c.String())); err != nil {
		return 0, fmt.Errorf("telegram: recording the topic: %w", err)
	}
	rec.Thread, rec.Name = tp.MessageThreadID, name
	if c.Name != "" {
		rec.Talker = c.Name
	}
	if c.Kind != "" {
		rec.Kind = c.Kind
	}
	if err := s.saveJSON(ctx, s.cfg.State, s.topicKey(c), rec); err != nil {
		return 0, fmt.Errorf("telegram: recording the topic: %w", err)
	}
	s.log.Info("topic created", "conversation", c.String(), "thread", tp.MessageThreadID)
	return tp.MessageThreadID, nil
}

// lookupTopic returns the conversation's topic without creating it.
func (s *Sink) lookupTopic(ctx context.Context, c *conversation) int {
	rec, _ := s.loadTopic(ctx, c)
	return rec.Thread
}

func (s *Sink) deliverRecall(ctx context.Context, id string, d events.RecallData) error {
	rec, ok, err := s.posted(ctx, events.MessageID(d.AccountUID, d.RecalledMsgKey))
	if err != nil {
		return err
	}
	if !ok || len(rec.IDs) == 0 {
		s.log.Debug("recall of a message that was not posted here", "event", id)
		return nil
	}
	note := noteRecalled
	if d.BySystem {
		note = noteRemoved
	}
	if rec.Merged {
		return s.recallMerged(ctx, id, rec, note)
	}
	limit := maxText
	if rec.FirstIsPh {
		limit = maxCaption
	}
	edited := note
	if rec.FirstHTML != "" {
		if full := note + "\n<s>" + rec.FirstHTML + "</s>"; visibleLen(full) <= limit {
			edited = full
		}
	}
	if err := s.wait(ctx); err != nil {
		return err
	}
	if rec.FirstIsPh {
		_, err = s.bot.EditMessageCaption(ctx, &bot.EditMessageCaptionParams{ChatID: s.cfg.ChatID, MessageID: rec.IDs[0], Caption: edited, ParseMode: models.ParseModeHTML})
	} else {
		_, err = s.bot.EditMessageText(ctx, &bot.EditMessageTextParams{ChatID: s.cfg.ChatID, MessageID: rec.IDs[0], Text: edited, ParseMode: models.ParseModeHTML,
			LinkPreviewOptions: &models.LinkPreviewOptions{IsDisabled: bot.True()}})
	}
	return s.editResult(id, err)
}

// deliverResult shows a send result on the Telegram message the reply
// came from: a 👍 reaction on success (✅ is not among Telegram's
// reaction emoji), a reply with the reason on failure.
func (s *Sink) deliverResult(ctx context.Context, ev events.Event, d events.SendResultData) error {
	o := d.Origin
	if o == nil || o.Platform != "telegram" {
		return nil
	}
	chatStr, msgStr, ok := strings.Cut(o.Ref, ":")
	msgID, err := strconv.Atoi(msgStr)
	if !ok || chatStr != s.chatTok || err != nil {
		return nil // another chat's reply
	}
	if ev.Type == events.TypeSendSucceeded {
		keys := append([]string(nil), d.MsgKeys...)
		if d.MsgKey != 0 {
			keys = append(keys, strconv.FormatUint(d.MsgKey, 10))
		}
		for _, k := range keys {
			if k == "" {
				continue
			}
			if _, err := s.cfg.Records.Put(ctx, "tg.echo."+strconv.FormatInt(d.AccountUID, 10)+"."+kvkey.Token(k), []byte(ev.ID)); err != nil {
				return fmt.Errorf("telegram: recording the echo of a reply: %w", err)
			}
		}
		if err := s.wait(ctx); err != nil {
			return err
		}
		_, err := s.bot.SetMessageReaction(ctx, &bot.SetMessageReactionParams{ChatID: s.cfg.ChatID, MessageID: msgID,
			Reaction: []models.ReactionType{{Type: models.ReactionTypeTypeEmoji, ReactionTypeEmoji: &models.ReactionTypeEmoji{Emoji: ReactionSent}}}})
		if err != nil && strings.Contains(err.Error(), "message to react not found") {
			return nil
		}
		if err != nil {
			return s.verdict(err)
		}
		return nil
	}
	reason := d.Error
	if reason == "" {
		reason = "unknown error"
	}
	conv := &conversation{UID: d.AccountUID, Conversation: d.Conversation}
	thread := 0
	if forum, err := s.isForum(ctx); err == nil && forum {
		thread = s.lookupTopic(ctx, conv)
	}
	text := "❌ <b>Not sent to Bilibili</b>\n" + esc(reason)
	return s.post(ctx, ev.ID, nil, thread, func(bool) []part { return []part{{Text: text, ReplyTo: msgID}} })
}

// ReactionSent is the reaction put on a reply that reached Bilibili.
const ReactionSent = "👍"

func echoKey(uid int64, msgKey uint64) string {
	return "tg.echo." + strconv.FormatInt(uid, 10) + "." + strconv.FormatUint(msgKey, 10)
}

// Error classification.

func topicGone(err error) bool {
	e := err.Error()
	return strings.Contains(e, "message thread not found") || strings.Contains(e, "TOPIC_DELETED") || strings.Contains(e, "TOPIC_ID_INVALID")
}

func topicClosed(err error) bool { return strings.Contains(err.Error(), "TOPIC_CLOSED") }

// notModified: Telegram refuses a topic change that changes nothing (a
// name it has already, closing a closed topic); the change is there.
func notModified(err error) bool { return strings.Contains(err.Error(), "TOPIC_NOT_MODIFIED") }

func urlRefused(err error) bool {
	e := err.Error()
	return errors.Is(err, bot.ErrorBadRequest) && (strings.Contains(e, "failed to get HTTP URL content") ||
		strings.Contains(e, "wrong file identifier") || strings.Contains(e, "wrong type of the web page content") ||
		strings.Contains(e, "IMAGE_PROCESS_FAILED") || strings.Contains(e, "PHOTO_INVALID_DIMENSIONS"))
}

// scrub hides the bot token in err's text and names the sink, keeping
// the error chain for errors.Is and errors.As.
func (s *Sink) scrub(err error) error {
	if err == nil {
		return nil
	}
	if !strings.HasPrefix(err.Error(), "telegram: ") {
		err = fmt.Errorf("telegram: %w", err)
	}
	return s.redact.Error(err)
}

// verdict classifies a Bot API error for the runtime: 429 → retry after
// exactly retry_after; 403, 401, 404, "chat not found" and a migrated
// chat → disable the sink; other 400s → permanent; the rest (network,
// 5xx, undecodable answers) → retry with backoff.
func (s *Sink) verdict(err error) error {
	if err == nil {
		return nil
	}
	err = s.scrub(err)
	var tm *bot.TooManyRequestsError
	if errors.As(err, &tm) {
		return sinks.RetryAfter(err, time.Duration(tm.RetryAfter)*time.Second)
	}
	var me *bot.MigrateError
	if errors.As(err, &me) {
		return sinks.Disabled(fmt.Errorf("%w: the group became a supergroup; set TELEGRAM_CHAT_ID to %d", err, me.MigrateToChatID))
	}
	switch {
	case errors.Is(err, bot.ErrorForbidden), errors.Is(err, bot.ErrorUnauthorized), errors.Is(err, bot.ErrorNotFound):
		return sinks.Disabled(err)
	case errors.Is(err, bot.ErrorBadRequest):
		if strings.Contains(err.Error(), "chat not found") {
			return sinks.Disabled(err)
		}
		return sinks.Permanent(err)
	}
	return err
}

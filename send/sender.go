package send

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bilibridge/bilibridge/backoff"
	"github.com/bilibridge/bilibridge/bilibili"
	"github.com/bilibridge/bilibridge/bus"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/kvkey"
)

// SenderAPI is what the sender needs from the Bilibili client
// (*bilibili.Client implements it). The client paces send_msg itself
// (1/s, burst 3, inside the account's request budget), so the sender adds
// no limiter of its own.
type SenderAPI interface {
	SendText(ctx context.Context, sessionType int, to uint64, text string) (*bilibili.SendResult, error)
	SendImage(ctx context.Context, sessionType int, to uint64, img bilibili.UploadedImage, imageType string) (*bilibili.SendResult, error)
	UploadImage(ctx context.Context, filename string, data []byte) (*bilibili.UploadedImage, error)
	FetchSessionMsgs(ctx context.Context, p bilibili.FetchParams) (*bilibili.MessagePage, error)
}

// MaxSendTextRunes is the longest text one send command may carry; it is
// split into parts of at most bilibili.MaxTextRunes.
const MaxSendTextRunes = 10000

// MaxCommandIDLen bounds a command_id (and so an idempotency_key).
const MaxCommandIDLen = 128

// DefaultSendRetrySchedule is the wait before each retry of a command that
// failed with a retryable error (21020 sending too fast, risk control,
// timeouts, 5xx): 10 attempts over about 15 minutes, then it fails.
var DefaultSendRetrySchedule = []time.Duration{
	5 * time.Second, 15 * time.Second, 30 * time.Second, time.Minute, 90 * time.Second,
	2 * time.Minute, 150 * time.Second, 3 * time.Minute, 4 * time.Minute,
}

// DefaultSendRetryWindow bounds the time a command keeps being retried,
// counted from its first attempt (across restarts).
const DefaultSendRetryWindow = 20 * time.Minute

// sendBlockDuration is how long Bilibili blocks sending after 21046.
const sendBlockDuration = 24 * time.Hour

// echoSlack is how much earlier than the send started a message found by
// the never-send-twice lookup may be stamped (clock skew, second rounding).
const echoSlack = 5 * time.Second

// SenderConfig configures a Sender.
type SenderConfig struct {
	// AccountUID is the account whose commands this sender consumes
	// (subjects <prefix>.<uid>.send.>).
	AccountUID int64
	API        SenderAPI
	// Outbox is stream BILI_OUTBOX. Records is the KV bucket of command
	// progress and outcomes and of which message went out for which
	// command (Store.Records); State holds the 24-hour send block
	// (Store.State).
	Outbox    jetstream.Stream
	Records   jetstream.KeyValue
	State     jetstream.KeyValue
	Publisher *bus.Publisher
	Subjects  events.Subjects
	// RetrySchedule is the wait before each retry; len+1 attempts in all.
	// Default DefaultSendRetrySchedule.
	RetrySchedule []time.Duration
	// RetryWindow bounds retrying from the first attempt; default
	// DefaultSendRetryWindow.
	RetryWindow time.Duration
	// Images downloads image_url commands; default: an ImageFetcher with
	// its defaults (10 MiB, public addresses only).
	Images *ImageFetcher
	// AckWait is how long JetStream waits before redelivering a command a
	// crashed process held; the sender keeps a command it works on alive.
	// Default 30s.
	AckWait time.Duration
	Logger  *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Sender sends the commands of stream BILI_OUTBOX to Bilibili for one
// account, one at a time and in order, through a durable pull consumer
// shared by every bridge process of that account.
//
// A command's progress and outcome live in KV under CommandKey: a command
// whose outcome is recorded is never sent again (its result is published
// again instead), and a long text split into parts resumes after the last
// part that went out. Before each send_msg the part is marked in flight;
// when a send ends without a definite answer (a timeout, a server error,
// a code nobody knows: the message may have gone out), the conversation
// is searched back to the send's start for it before anything is sent
// again. Every message that went out is recorded against its command
// (SentKey), so that an identical message of another command, earlier or
// from before a restart, is never taken for this one.
type Sender struct {
	cfg SenderConfig
	log *slog.Logger

	mu           sync.Mutex
	blockedUntil time.Time
}

// NewSender returns a sender for cfg.
func NewSender(cfg SenderConfig) *Sender {
	if cfg.RetrySchedule == nil {
		cfg.RetrySchedule = DefaultSendRetrySchedule
	}
	if cfg.RetryWindow <= 0 {
		cfg.RetryWindow = DefaultSendRetryWindow
	}
	if cfg.Images == nil {
		cfg.Images = &ImageFetcher{}
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Sender{cfg: cfg, log: cfg.Logger.With("component", "sender")}
}

// SenderConsumerName is the durable consumer of account uid's sender.
func SenderConsumerName(uid int64) string { return "sender_" + strconv.FormatInt(uid, 10) }

// CommandKey is the KV key (bucket Records) of a command's progress and
// outcome: cmd.<uid>.<command_id> (see kvkey for ids that are not plain).
func CommandKey(uid int64, commandID string) string {
	return kvkey.Join("cmd", strconv.FormatInt(uid, 10), commandID)
}

// SentKey is the KV key (bucket Records) that says which command a
// message the account sent belongs to: sent.<uid>.<msg_key>.
func SentKey(uid int64, msgKey uint64) string {
	return kvkey.Join("sent", strconv.FormatInt(uid, 10), strconv.FormatUint(msgKey, 10))
}

// OutboxMsgID is the Nats-Msg-Id of a command on BILI_OUTBOX:
// "<uid>:<command_id>". The account is part of it because the outbox is
// shared by every account: the same idempotency key used for two
// accounts is two commands.
func OutboxMsgID(uid int64, commandID string) string {
	return strconv.FormatInt(uid, 10) + ":" + commandID
}

func blockedKey(uid int64) string { return "sender." + strconv.FormatInt(uid, 10) + ".blocked" }

// ValidCommandID reports whether id may be a command_id: 1 to 128
// printable ASCII characters, no spaces (it becomes a Nats-Msg-Id header).
func ValidCommandID(id string) bool {
	if id == "" || len(id) > MaxCommandIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

// Command states in KV.
const (
	cmdQueued    = "queued" // accepted by Submit, not yet taken by the sender
	cmdSending   = "sending"
	cmdSucceeded = "succeeded"
	cmdFailed    = "failed"
)

// record is a command's progress and outcome in KV.
type record struct {
	CommandID   string    `json:"command_id"`
	State       string    `json:"state"`
	SessionType int       `json:"session_type"`
	TalkerID    uint64    `json:"talker_id,string"`
	Started     time.Time `json:"started,omitzero"`
	Attempts    int       `json:"attempts"`
	// RequestHash identifies what was asked (conversation and content),
	// so that an idempotency key reused for something else is refused.
	RequestHash string `json:"request_hash,omitempty"`
	// MsgKeys are the parts sent so far, in order.
	MsgKeys []string `json:"msg_keys,omitempty"`
	// InFlight is the part whose send_msg started without a known
	// outcome: it may have gone out.
	InFlight *inFlightPart `json:"in_flight,omitempty"`
	// Image is the uploaded image of an image_url command.
	Image     *bilibili.UploadedImage `json:"image,omitempty"`
	ImageType string                  `json:"image_type,omitempty"`
	// Result and Finished are set once the command is done; a failure has
	// a FailureClass (see failureClass).
	Result       *events.SendResultData `json:"result,omitempty"`
	Finished     time.Time              `json:"finished,omitzero"`
	FailureClass string                 `json:"failure_class,omitempty"`
}

type inFlightPart struct {
	Part  int       `json:"part"`
	Since time.Time `json:"since"`
}

func (r *record) done() bool {
	return r != nil && r.Result != nil && (r.State == cmdSucceeded || r.State == cmdFailed)
}

func (r *record) resultType() string {
	if r.State == cmdSucceeded {
		return events.TypeSendSucceeded
	}
	return events.TypeSendFailed
}

// loadRecord reads a command's record; nil when there is none.
func loadRecord(ctx context.Context, kv jetstream.KeyValue, key string) (*record, uint64, error) {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	var r record
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return nil, 0, fmt.Errorf("command record %s is corrupt: %w", key, err)
	}
	return &r, e.Revision(), nil
}

// Run consumes the account's commands until ctx ends.
func (s *Sender) Run(ctx context.Context) error {
	uid := s.cfg.AccountUID
	filter := s.cfg.Subjects.Sends(uid)
	cfg := jetstream.ConsumerConfig{
		Durable:       SenderConsumerName(uid),
		Description:   "bilibridge sender of account " + strconv.FormatInt(uid, 10),
		FilterSubject: filter,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.cfg.AckWait,
		// One command at a time, in order, across every process.
		MaxAckPending: 1,
	}
	var cons jetstream.Consumer
	for failures := 1; ; failures++ {
		var err error
		if cons, err = s.cfg.Outbox.CreateOrUpdateConsumer(ctx, cfg); err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		// NATS may be restarting: the commands wait in the outbox.
		wait := backoff.Jitter(backoff.Exp(time.Second, failures, time.Minute), 0.1)
		s.log.Warn("sender: cannot make its consumer yet; trying again", "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
	s.loadBlock(ctx)
	it, err := cons.Messages(jetstream.PullMaxMessages(1))
	if err != nil {
		return fmt.Errorf("sender: consuming: %w", err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	s.log.Info("sender started", "consumer", SenderConsumerName(uid), "filter", filter)
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			s.log.Debug("sender: next", "err", err)
			continue
		}
		s.handle(ctx, msg)
	}
}

// handle processes one command to its end (acked or termed), or leaves it
// to a redelivery when the process is stopping or KV is unavailable.
func (s *Sender) handle(ctx context.Context, msg jetstream.Msg) {
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go s.keepAlive(hctx, msg)

	route, err := s.cfg.Subjects.ParseSubject(msg.Subject())
	if err != nil || route.Kind != "send" || route.UID != s.cfg.AccountUID {
		s.log.Warn("sender: dropping a command on an unusable subject", "subject", msg.Subject(), "err", err)
		_ = msg.Term()
		return
	}
	var cmd events.SendCommand
	decodeErr := json.Unmarshal(msg.Data(), &cmd)
	id := cmd.CommandID
	if decodeErr != nil || !ValidCommandID(id) {
		id = fallbackCommandID(msg)
	}
	conv := events.Conversation{SessionType: route.SessionType, TalkerID: route.TalkerID, Kind: events.ConversationUser}
	if route.SessionType == bilibili.SessionGroup {
		conv.Kind = events.ConversationGroup
	}
	log := s.log.With("command_id", id, "conversation", conv.Subject())
	key := CommandKey(s.cfg.AccountUID, id)

	rec, rev, err := loadRecord(hctx, s.cfg.Records, key)
	if err != nil {
		s.retryLater(ctx, msg, log, "reading the command's record", err)
		return
	}
	if rec.done() {
		log.Info("command already done; publishing its recorded result again", "state", rec.State)
		s.publishAndAck(ctx, msg, log, rec, false)
		return
	}
	if rec == nil {
		rec = &record{CommandID: id, SessionType: conv.SessionType, TalkerID: conv.TalkerID}
	}
	if rec.State == "" || rec.State == cmdQueued {
		rec.State = cmdSending
	}
	if rec.Started.IsZero() {
		rec.Started = s.cfg.Now()
	}
	st := &command{s: s, key: key, rec: rec, rev: rev, cmd: cmd, conv: conv, log: log}

	if reason := validateCommand(decodeErr, cmd, route); reason != "" {
		log.Warn("malformed send command", "reason", reason)
		st.finishFailed(0, reason, ClassInvalidCommand)
		if err := st.save(hctx); err != nil {
			s.retryLater(ctx, msg, log, "recording the outcome", err)
			return
		}
		s.publishAndAck(ctx, msg, log, rec, true)
		return
	}
	if until := s.blocked(); !until.IsZero() {
		blocked := &bilibili.APIError{Endpoint: "send_msg", Code: bilibili.CodeSendBlocked}
		log.Info("not sending: the account is blocked from sending", "until", until)
		st.finishFailed(bilibili.CodeSendBlocked, bilibili.Reason(blocked), bilibili.ClassBlocked.String())
	} else if !s.process(hctx, st) {
		// Stopping, or the record could not be written: a redelivery
		// continues from what KV holds.
		if ctx.Err() != nil {
			_ = msg.Nak()
		} else {
			_ = msg.NakWithDelay(time.Second)
		}
		return
	}
	if err := st.save(hctx); err != nil {
		s.retryLater(ctx, msg, log, "recording the outcome", err)
		return
	}
	s.publishAndAck(ctx, msg, log, rec, false)
}

// process sends the command, retrying what may pass later. It returns
// false when the command must be left for a redelivery.
func (s *Sender) process(ctx context.Context, st *command) bool {
	for {
		err := st.attempt(ctx)
		if err == nil {
			st.finishSucceeded()
			st.log.Info("sent", "parts", len(st.rec.MsgKeys), "msg_key", st.rec.Result.MsgKey)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		var re *recordError
		if errors.As(err, &re) {
			st.log.Warn("sender: cannot record progress; retrying later", "err", re.err)
			return false
		}
		code := bilibili.Code(err)
		if bilibili.IsBlocked(err) {
			s.block(ctx, s.cfg.Now().Add(sendBlockDuration))
		}
		n := st.rec.Attempts
		exhausted := n > len(s.cfg.RetrySchedule) || s.cfg.Now().Sub(st.rec.Started) >= s.cfg.RetryWindow
		if !sendRetryable(err) || exhausted {
			st.log.Warn("send failed", "err", err, "code", code, "attempts", n)
			st.finishFailed(code, failureReason(err), failureClass(err))
			return true
		}
		wait := s.cfg.RetrySchedule[n-1]
		wait = backoff.Jitter(wait, 0.1)
		st.log.Info("send failed; retrying", "err", err, "code", code, "attempt", n, "retry_in", wait)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
	}
}

// command is one command being worked on.
type command struct {
	s    *Sender
	key  string
	rec  *record
	rev  uint64
	cmd  events.SendCommand
	conv events.Conversation
	log  *slog.Logger
}

// recordError is a KV write that failed: nothing may be sent without its
// in-flight mark on record.
type recordError struct{ err error }

func (e *recordError) Error() string { return "recording progress: " + e.err.Error() }
func (e *recordError) Unwrap() error { return e.err }

// save writes the record, refusing to overwrite a revision it did not
// read: a second process working on the same command (after an expired
// ack wait) stops at its next write instead of sending.
func (st *command) save(ctx context.Context) error {
	b, err := json.Marshal(st.rec)
	if err != nil {
		return err
	}
	var rev uint64
	if st.rev == 0 {
		rev, err = st.s.cfg.Records.Create(ctx, st.key, b)
	} else {
		rev, err = st.s.cfg.Records.Update(ctx, st.key, b, st.rev)
	}
	if err != nil {
		return &recordError{err}
	}
	st.rev = rev
	return nil
}

// parts are the contents to send: text parts, or the image URL.
func (st *command) parts() []string {
	if st.cmd.Text != "" {
		return bilibili.SplitText(st.cmd.Text)
	}
	if st.rec.Image != nil {
		return []string{st.rec.Image.URL}
	}
	return nil
}

// attempt sends what is left of the command once.
func (st *command) attempt(ctx context.Context) error {
	s := st.s
	st.rec.Attempts++
	if err := st.save(ctx); err != nil {
		return err
	}
	if st.cmd.ImageURL != "" && st.rec.Image == nil {
		img, err := s.cfg.Images.Fetch(ctx, st.cmd.ImageURL)
		if err != nil {
			var ie *ImageError
			if errors.As(err, &ie) {
				return err
			}
			return &downloadError{err}
		}
		up, err := s.cfg.API.UploadImage(ctx, img.Filename, img.Data)
		if err != nil {
			return err
		}
		st.rec.Image, st.rec.ImageType = up, img.Type
		if err := st.save(ctx); err != nil {
			return err
		}
	}
	parts := st.parts()
	if fl := st.rec.InFlight; fl != nil {
		// The last send may have gone out: look before sending again.
		if fl.Part != len(st.rec.MsgKeys) || fl.Part >= len(parts) {
			return &recordError{fmt.Errorf("in-flight part %d does not follow the %d parts sent", fl.Part, len(st.rec.MsgKeys))}
		}
		key, err := s.findSent(ctx, st, parts[fl.Part], fl.Since)
		if err != nil {
			return fmt.Errorf("checking whether the last send went out: %w", err)
		}
		st.rec.InFlight = nil
		if key != 0 {
			st.log.Info("the send without an answer went out; not sending it again", "part", fl.Part, "msg_key", key)
			if err := s.claim(ctx, key, st.rec.CommandID); err != nil {
				return &recordError{err}
			}
			st.rec.MsgKeys = append(st.rec.MsgKeys, strconv.FormatUint(key, 10))
		}
		if err := st.save(ctx); err != nil {
			return err
		}
	}
	for i := len(st.rec.MsgKeys); i < len(parts); i++ {
		st.rec.InFlight = &inFlightPart{Part: i, Since: s.cfg.Now()}
		if err := st.save(ctx); err != nil {
			return err
		}
		var res *bilibili.SendResult
		var err error
		if st.cmd.Text != "" {
			res, err = s.cfg.API.SendText(ctx, st.conv.SessionType, st.conv.TalkerID, parts[i])
		} else {
			res, err = s.cfg.API.SendImage(ctx, st.conv.SessionType, st.conv.TalkerID, *st.rec.Image, st.rec.ImageType)
		}
		if err != nil {
			if ctx.Err() == nil && !bilibili.MaybeTookEffect(err) {
				// Bilibili answered: nothing went out.
				st.rec.InFlight = nil
				if serr := st.save(ctx); serr != nil {
					return serr
				}
			}
			return err
		}
		if err := s.claim(ctx, res.MsgKey, st.rec.CommandID); err != nil {
			return &recordError{err}
		}
		st.rec.InFlight = nil
		st.rec.MsgKeys = append(st.rec.MsgKeys, strconv.FormatUint(res.MsgKey, 10))
		if err := st.save(ctx); err != nil {
			return err
		}
	}
	return nil
}

// findSent looks for a part among the conversation's messages since the
// send began (less some slack), paging back as far as that: sent by the
// account, same type and content, and not a message that belongs to a
// command already (SentKey) — an identical text sent for another
// command a moment earlier, or before a restart, is not this one. It
// returns its msg_key, or 0.
func (s *Sender) findSent(ctx context.Context, st *command, part string, since time.Time) (uint64, error) {
	wantType := bilibili.MsgTypeText
	if st.cmd.Text == "" {
		wantType = bilibili.MsgTypeImage
	}
	earliest := since.Add(-echoSlack).Unix()
	var end uint64
	for range maxFindPages {
		page, err := s.cfg.API.FetchSessionMsgs(ctx, bilibili.FetchParams{SessionType: st.conv.SessionType, TalkerID: st.conv.TalkerID, EndSeqno: end, Size: findPageSize})
		if err != nil {
			return 0, err
		}
		older := false
		for i := range page.Messages { // newest first
			m := &page.Messages[i]
			if m.Timestamp < earliest {
				older = true
				continue
			}
			if m.SenderUID != s.cfg.AccountUID || m.MsgType != wantType || slices.Contains(st.rec.MsgKeys, strconv.FormatUint(m.MsgKey, 10)) {
				continue
			}
			if !sameContent(m, part) {
				continue
			}
			owner, err := s.owner(ctx, m.MsgKey)
			if err != nil {
				return 0, err
			}
			if owner == "" || owner == st.rec.CommandID {
				return m.MsgKey, nil
			}
		}
		if older || !page.HasMore || len(page.Messages) == 0 {
			return 0, nil
		}
		end = page.MinSeqno
	}
	return 0, fmt.Errorf("more than %d pages of messages since the send began", maxFindPages)
}

// The look-back of findSent: pages of findPageSize, at most maxFindPages
// (a fan group can be busy; the send began minutes ago at most).
const (
	findPageSize = 50
	maxFindPages = 40
)

func sameContent(m *bilibili.Message, part string) bool {
	c, err := m.Decode()
	if err != nil {
		return false
	}
	switch c := c.(type) {
	case *bilibili.TextContent:
		return c.Content == part || strings.TrimSpace(c.Content) == strings.TrimSpace(part)
	case *bilibili.ImageContent:
		return c.URL == part
	}
	return false
}

// claim records that message msgKey went out for commandID.
func (s *Sender) claim(ctx context.Context, msgKey uint64, commandID string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := s.cfg.Records.Put(ctx, SentKey(s.cfg.AccountUID, msgKey), []byte(commandID)); err != nil {
		return fmt.Errorf("recording message %d of command %s: %w", msgKey, commandID, err)
	}
	return nil
}

// owner returns the command message msgKey went out for, or "".
func (s *Sender) owner(ctx context.Context, msgKey uint64) (string, error) {
	e, err := s.cfg.Records.Get(ctx, SentKey(s.cfg.AccountUID, msgKey))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return string(e.Value()), nil
}

func (st *command) finishSucceeded() {
	r := st.rec
	r.State, r.InFlight, r.Finished = cmdSucceeded, nil, st.s.cfg.Now()
	res := st.resultData()
	if n := len(r.MsgKeys); n > 0 {
		res.MsgKey, _ = strconv.ParseUint(r.MsgKeys[n-1], 10, 64)
	}
	r.Result = res
}

func (st *command) finishFailed(code int, reason, class string) {
	r := st.rec
	r.State, r.InFlight, r.Finished, r.FailureClass = cmdFailed, nil, st.s.cfg.Now(), class
	res := st.resultData()
	res.ErrorCode, res.Error = code, reason
	r.Result = res
}

func (st *command) resultData() *events.SendResultData {
	return &events.SendResultData{
		AccountUID:   st.s.cfg.AccountUID,
		CommandID:    st.rec.CommandID,
		Conversation: st.conv,
		MsgKeys:      append([]string(nil), st.rec.MsgKeys...),
		Origin:       st.cmd.Origin,
	}
}

// resultEvent is the result event of a finished record; the same record
// always gives the same event.
func resultEvent(rec *record) (events.Event, error) {
	res := rec.Result
	return events.New(res.AccountUID, rec.resultType(), events.SendResultID(res.AccountUID, rec.CommandID),
		res.Conversation.Subject(), rec.Finished, res)
}

// publishAndAck publishes a finished command's result, then acks (or, for
// a malformed command, terms) it.
func (s *Sender) publishAndAck(ctx context.Context, msg jetstream.Msg, log *slog.Logger, rec *record, term bool) {
	ev, err := resultEvent(rec)
	if err == nil {
		conv := rec.Result.Conversation
		err = s.cfg.Publisher.Publish(ctx, s.cfg.Subjects.Sent(s.cfg.AccountUID, conv.SessionType, conv.TalkerID), ev)
	}
	if err != nil {
		// The outcome is on record: the redelivery publishes it.
		s.retryLater(ctx, msg, log, "publishing the result", err)
		return
	}
	if term {
		err = msg.Term()
	} else {
		err = msg.Ack()
	}
	if err != nil {
		log.Warn("sender: ack failed; the redelivery will find the recorded outcome", "err", err)
	}
}

func (s *Sender) retryLater(ctx context.Context, msg jetstream.Msg, log *slog.Logger, what string, err error) {
	if ctx.Err() != nil {
		_ = msg.Nak()
		return
	}
	log.Warn("sender: "+what+" failed; retrying", "err", err)
	_ = msg.NakWithDelay(2 * time.Second)
}

// keepAlive stops JetStream from redelivering the command while it is
// worked on (retries can wait minutes).
func (s *Sender) keepAlive(ctx context.Context, msg jetstream.Msg) {
	t := time.NewTicker(max(s.cfg.AckWait/3, 100*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = msg.InProgress()
		}
	}
}

// blocked returns when the 21046 block ends, or zero when not blocked.
func (s *Sender) blocked() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg.Now().Before(s.blockedUntil) {
		return s.blockedUntil
	}
	return time.Time{}
}

func (s *Sender) block(ctx context.Context, until time.Time) {
	s.mu.Lock()
	s.blockedUntil = until
	s.mu.Unlock()
	s.log.Warn("Bilibili blocked sending from this account; failing send commands until the block ends", "until", until)
	b, _ := until.MarshalText()
	if _, err := s.cfg.State.Put(ctx, blockedKey(s.cfg.AccountUID), b); err != nil {
		s.log.Warn("sender: could not record the block", "err", err)
	}
}

func (s *Sender) loadBlock(ctx context.Context) {
	e, err := s.cfg.State.Get(ctx, blockedKey(s.cfg.AccountUID))
	if err != nil {
		return
	}
	var until time.Time
	if until.UnmarshalText(e.Value()) == nil && s.cfg.Now().Before(until) {
		s.mu.Lock()
		s.blockedUntil = until
		s.mu.Unlock()
		s.log.Warn("sending is blocked by Bilibili; failing send commands until the block ends", "until", until)
	}
}

// validateCommand returns why a command cannot be sent, or "".
func validateCommand(decodeErr error, cmd events.SendCommand, route events.Route) string {
	switch {
	case decodeErr != nil:
		return "The send command is not valid JSON."
	case cmd.CommandID == "":
		return "The send command has no command_id."
	case !ValidCommandID(cmd.CommandID):
		return "The command_id must be 1 to 128 printable ASCII characters without spaces."
	}
	return validateSend(route.SessionType, route.TalkerID, cmd.Text, cmd.ImageURL)
}

// validateSend checks what to send and where; it returns the reason it
// cannot be sent, or "".
func validateSend(sessionType int, talker uint64, text, imageURL string) string {
	switch {
	case sessionType != bilibili.SessionUser && sessionType != bilibili.SessionGroup:
		return "session_type must be 1 (user) or 2 (fan group)."
	case talker == 0:
		return "talker_id must be a positive integer."
	case text != "" && imageURL != "":
		return "Give either text or image_url, not both."
	case text == "" && imageURL == "":
		return "Give text or image_url."
	case imageURL != "":
		if err := CheckImageURL(imageURL); err != nil {
			return err.Error() + "."
		}
	case utf8.RuneCountInString(text) > MaxSendTextRunes:
		return fmt.Sprintf("text is longer than %d characters.", MaxSendTextRunes)
	case len(bilibili.SplitText(text)) == 0 || strings.TrimSpace(text) == "":
		return "text is empty."
	}
	return ""
}

// downloadError is an image download that may pass later.
type downloadError struct{ err error }

func (e *downloadError) Error() string { return e.err.Error() }
func (e *downloadError) Unwrap() error { return e.err }

func sendRetryable(err error) bool {
	var ie *ImageError
	if errors.As(err, &ie) {
		return false
	}
	var de *downloadError
	if errors.As(err, &de) {
		return true
	}
	return bilibili.Classify(err).Retryable()
}

// failureReason says in plain words why a command failed.
func failureReason(err error) string {
	var ie *ImageError
	if errors.As(err, &ie) {
		return "The image could not be used: " + ie.Reason + "."
	}
	var de *downloadError
	if errors.As(err, &de) {
		return "The image could not be downloaded: " + de.Error() + "."
	}
	return bilibili.Reason(err)
}

// Failure classes beyond bilibili.Class's names (Outcome.FailureClass).
const (
	// ClassInvalidCommand is a malformed or invalid command.
	ClassInvalidCommand = "invalid_command"
	// ClassImage is an image that could not be used.
	ClassImage = "image"
)

// failureClass sorts a failure: a bilibili.Class name, or one of the
// classes above.
func failureClass(err error) string {
	var ie *ImageError
	if errors.As(err, &ie) {
		return ClassImage
	}
	var de *downloadError
	if errors.As(err, &de) {
		return bilibili.ClassTransient.String()
	}
	return bilibili.Classify(err).String()
}

// fallbackCommandID names a command without a usable command_id, so its
// failure can still be reported and recorded.
func fallbackCommandID(msg jetstream.Msg) string {
	id := msg.Headers().Get(nats.MsgIdHdr)
	if _, rest, ok := strings.Cut(id, ":"); ok {
		id = rest
	}
	if ValidCommandID(id) {
		return id
	}
	if md, err := msg.Metadata(); err == nil {
		return "outbox-" + strconv.FormatUint(md.Sequence.Stream, 10)
	}
	sum := sha256.Sum256(msg.Data())
	return "outbox-" + hex.EncodeToString(sum[:8])
}

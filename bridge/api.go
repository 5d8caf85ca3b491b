package bridge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bilibridge/bilibridge/bilibili"
	"github.com/bilibridge/bilibridge/bus"
	"github.com/bilibridge/bilibridge/events"
)

// MessagesPath is where the API is mounted: HTTPServer.Handle(MessagesPattern, api).
const (
	MessagesPath    = "/api/v1/messages"
	MessagesPattern = "POST " + MessagesPath
)

// MaxAPIBodyBytes bounds a request body of the API.
const MaxAPIBodyBytes = 64 << 10

// DefaultAPIWait bounds how long ?wait=true waits for the result.
const DefaultAPIWait = 30 * time.Second

// SendRequest is a message to send and where to.
type SendRequest struct {
	// AccountUID is the account that sends; zero means the outbox's own.
	AccountUID  int64
	SessionType int    // bilibili.SessionUser or bilibili.SessionGroup
	TalkerID    uint64 // the user's mid or the fan group's id
	// Command carries the text or image_url, the origin and, optionally,
	// the command_id (the idempotency key; a UUIDv7 when empty).
	Command events.SendCommand
}

// ValidationError is a SendRequest that cannot be sent as it is.
type ValidationError struct{ Reason string }

func (e *ValidationError) Error() string { return e.Reason }

// ConflictError is an idempotency key (command_id) already used for
// another request: another conversation or other content.
type ConflictError struct{ CommandID string }

func (e *ConflictError) Error() string {
	return fmt.Sprintf("the idempotency key %q was already used for a different message", e.CommandID)
}

// Validate checks r the way the sender will, so that callers hear about
// a bad request at once rather than from a send.failed event.
func (r SendRequest) Validate() error {
	if id := r.Command.CommandID; id != "" && !ValidCommandID(id) {
		return &ValidationError{"idempotency_key (command_id) must be 1 to 128 printable ASCII characters without spaces."}
	}
	if reason := validateSend(r.SessionType, r.TalkerID, r.Command.Text, r.Command.ImageURL); reason != "" {
		return &ValidationError{reason}
	}
	return nil
}

// SendOutcome is what Submit knows about a command.
type SendOutcome struct {
	CommandID string
	// Result is the send result once the sender finished the command; nil
	// while it is queued (no wait, or the wait ran out).
	Result *events.SendResultData
	// Succeeded is true when Result is a send.succeeded.
	Succeeded bool
	// FailureClass sorts a failure (when the outcome came with its KV
	// record): a bilibili.Class name, "invalid_command" or "image".
	FailureClass string
}

// Outbox submits send commands for one account: the path shared by the
// HTTP API and `bilibridge send`.
type Outbox struct {
	NC *nats.Conn
	JS jetstream.JetStream
	// Records is the KV bucket of command records (Store.Records). Submit
	// records each command before queuing it, so that a reused
	// idempotency key is recognised and a finished command is answered
	// from its record. Required.
	Records    jetstream.KeyValue
	Subjects   events.Subjects
	AccountUID int64
	// PublishTimeout bounds queuing the command; default 10s.
	PublishTimeout time.Duration
}

// Submit records req as a queued command (KV Records) and queues it on
// stream BILI_OUTBOX with Nats-Msg-Id = OutboxMsgID(account, command_id),
// so a retry with the same command_id inside the stream's duplicate
// window (24h) is dropped, and the sender sends a command_id at most once
// in any case. The same command_id asked again for the same conversation
// and content is the same command (its outcome is returned); for anything
// else it is a *ConflictError. With wait > 0 Submit then waits up to wait
// for the result; a command that already finished returns its recorded
// result at once. Other errors are a *ValidationError for a bad request,
// or a failure to queue.
func (o *Outbox) Submit(ctx context.Context, req SendRequest, wait time.Duration) (*SendOutcome, error) {
	if req.AccountUID != 0 && req.AccountUID != o.AccountUID {
		return nil, fmt.Errorf("outbox of account %d asked to send as account %d", o.AccountUID, req.AccountUID)
	}
	if err := req.Validate(); err != nil {
		return nil, err
	}
	cmd := req.Command
	if cmd.CommandID == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return nil, err
		}
		cmd.CommandID = id.String()
	}
	out := &SendOutcome{CommandID: cmd.CommandID}
	resultID := events.SendResultID(o.AccountUID, cmd.CommandID)
	created, err := o.record(ctx, cmd.CommandID, req)
	if err != nil {
		return nil, err
	}

	// Subscribe before publishing, so a fast result cannot slip by.
	var results chan *nats.Msg
	if wait > 0 && o.NC != nil {
		results = make(chan *nats.Msg, 64)
		sub, err := o.NC.ChanSubscribe(o.Subjects.Sent(o.AccountUID, req.SessionType, req.TalkerID), results)
		if err != nil {
			return nil, fmt.Errorf("subscribing to send results: %w", err)
		}
		defer func() { _ = sub.Unsubscribe() }()
	}
	if o.recorded(ctx, out) {
		return out, nil
	}

	data, err := json.Marshal(cmd)
	if err != nil {
		return nil, err
	}
	timeout := o.PublishTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	pub := &bus.Publisher{JS: o.JS}
	ack, err := pub.PublishRaw(pctx, o.Subjects.Send(o.AccountUID, req.SessionType, req.TalkerID), OutboxMsgID(o.AccountUID, cmd.CommandID), data, nil)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("queuing the send command: %w", err)
	}
	if ack.Duplicate && created {
		// Someone queued this command_id without a record (straight onto
		// NATS): it is not the request this caller made.
		o.forget(ctx, cmd.CommandID)
		return nil, &ConflictError{CommandID: cmd.CommandID}
	}
	if wait <= 0 {
		return out, nil
	}

	timer := time.NewTimer(wait)
	defer timer.Stop()
	// The result event is what normally ends the wait; the record is
	// checked now and then in case the event went by unseen (a reconnect).
	poll := time.NewTicker(2 * time.Second)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return out, nil
		case <-timer.C:
			o.recorded(ctx, out)
			return out, nil
		case <-poll.C:
			if o.recorded(ctx, out) {
				return out, nil
			}
		case m := <-results:
			ev, err := events.Parse(m.Data)
			if err != nil || ev.ID != resultID {
				continue
			}
			// The record (written before the event) also says why it failed.
			if o.recorded(ctx, out) {
				return out, nil
			}
			var res events.SendResultData
			if err := ev.DecodeData(&res); err != nil {
				continue
			}
			out.Result, out.Succeeded = &res, ev.Type == events.TypeSendSucceeded
			return out, nil
		}
	}
}

// record creates the command's record, state queued, unless it exists:
// then the request must be the same one (same conversation and content).
// It reports whether it created the record.
func (o *Outbox) record(ctx context.Context, id string, req SendRequest) (bool, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	rec := &commandRecord{CommandID: id, State: cmdQueued, SessionType: req.SessionType, TalkerID: req.TalkerID, RequestHash: requestHash(req)}
	b, err := json.Marshal(rec)
	if err != nil {
		return false, err
	}
	key := CommandKey(o.AccountUID, id)
	_, err = o.Records.Create(ctx, key, b)
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return false, fmt.Errorf("recording the send command: %w", err)
	}
	old, _, err := loadCommand(ctx, o.Records, key)
	if err != nil {
		return false, fmt.Errorf("reading the send command's record: %w", err)
	}
	if old != nil && old.RequestHash != "" && old.RequestHash != rec.RequestHash {
		return false, &ConflictError{CommandID: id}
	}
	return false, nil
}

// forget removes a record record created for nothing.
func (o *Outbox) forget(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = o.Records.Delete(ctx, CommandKey(o.AccountUID, id))
}

// requestHash identifies a request's conversation and content.
func requestHash(req SendRequest) string {
	h := sha256.New()
	fmt.Fprintf(h, "%d\x00%d\x00%s\x00%s", req.SessionType, req.TalkerID, req.Command.Text, req.Command.ImageURL)
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// recorded fills out from the command's KV record when it is done.
func (o *Outbox) recorded(ctx context.Context, out *SendOutcome) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	rec, _, err := loadCommand(ctx, o.Records, CommandKey(o.AccountUID, out.CommandID))
	if err != nil || !rec.done() {
		return false
	}
	out.Result, out.Succeeded, out.FailureClass = rec.Result, rec.State == cmdSucceeded, rec.FailureClass
	return true
}

// APIConfig configures the HTTP API.
type APIConfig struct {
	// Token is the bearer token (API_TOKEN). While it is empty the API
	// answers every request with 404, as if it were not mounted.
	Token string
	// Outboxes has one outbox per account the bridge serves. With several,
	// a request names its account in "account_uid".
	Outboxes []*Outbox
	// Wait bounds ?wait=true; default DefaultAPIWait.
	Wait   time.Duration
	Logger *slog.Logger
}

// API is POST /api/v1/messages: it queues a DM for the sender.
//
// Request: `Authorization: Bearer <API_TOKEN>` and a JSON body of at most
// 64 KiB: {"session_type":1,"talker_id":"293793435","text":"…"} or with
// "image_url" instead of "text", and an optional "idempotency_key" (the
// command_id; the same key is sent at most once). talker_id is a decimal
// string (a JSON number is accepted too). When the bridge serves several
// accounts, "account_uid" (a decimal string) says which one sends; with
// one account it may be left out. Unknown fields are refused.
//
// Responses (JSON):
//
//	202 {"command_id"}                         queued (also: ?wait=true ran out of time)
//	200 {"command_id","msg_key","msg_keys"}    ?wait=true and it was sent
//	400 {"error"}                              malformed or invalid request
//	401 {"error"}                              missing or wrong bearer token
//	404                                        the API is off (API_TOKEN empty)
//	413 {"error"}                              body over 64 KiB
//	503 {"error"}                              the command could not be queued (NATS)
//
// With ?wait=true a failed send answers {"command_id","error_code","error"}
// (error_code is Bilibili's code, 0 when the bridge refused the command)
// with a status chosen by what went wrong:
//
//	400 Bilibili refused the request as invalid (21007 too long, 21026
//	    yourself, 21035 type, 21037 image host, -400), or the sender
//	    refused the command as malformed
//	422 the recipient does not accept it (21047 one message to a
//	    stranger, 25003 privacy, 25005 blacklisted), the fan group is gone
//	    (700013, 700014), a phone binding is needed (21015), the image
//	    could not be used, or any other refusal
//	429 sending too fast (21020, -509, after the retries) or blocked for
//	    24h (21046), or risk control (-352, -412, -799)
//	502 Bilibili could not be reached (timeouts, 5xx) or answered with a
//	    code the bridge does not know, after the retries
//	503 the Bilibili login has expired (-101, -111)
type API struct {
	token [sha256.Size]byte
	on    bool
	cfg   APIConfig
	log   *slog.Logger
}

// NewAPI returns the API handler.
func NewAPI(cfg APIConfig) *API {
	if cfg.Wait <= 0 {
		cfg.Wait = DefaultAPIWait
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &API{token: sha256.Sum256([]byte(cfg.Token)), on: cfg.Token != "", cfg: cfg, log: cfg.Logger.With("component", "api")}
}

// apiRequest is the JSON body of POST /api/v1/messages.
type apiRequest struct {
	SessionType    *int            `json:"session_type"`
	TalkerID       json.RawMessage `json:"talker_id"`
	Text           string          `json:"text"`
	ImageURL       string          `json:"image_url"`
	IdempotencyKey string          `json:"idempotency_key"`
	AccountUID     json.RawMessage `json:"account_uid"`
}

type apiError struct {
	Error string `json:"error"`
}

type apiQueued struct {
	CommandID string `json:"command_id"`
}

type apiSent struct {
	CommandID string   `json:"command_id"`
	MsgKey    string   `json:"msg_key"`
	MsgKeys   []string `json:"msg_keys,omitempty"`
}

type apiFailed struct {
	CommandID string `json:"command_id"`
	ErrorCode int    `json:"error_code"`
	Error     string `json:"error"`
}

func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !a.on {
		http.NotFound(w, r)
		return
	}
	if !a.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="bilibridge"`)
		writeJSON(w, http.StatusUnauthorized, apiError{"missing or wrong bearer token"})
		return
	}
	if r.ContentLength > MaxAPIBodyBytes {
		writeJSON(w, http.StatusRequestEntityTooLarge, apiError{"the request body is larger than 64 KiB"})
		return
	}
	wait := false
	if v := r.URL.Query().Get("wait"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, apiError{"wait must be true or false"})
			return
		}
		wait = b
	}
	req, uid, status, msg := decodeAPIRequest(w, r)
	if status != 0 {
		writeJSON(w, status, apiError{msg})
		return
	}
	outbox, msg := a.outbox(uid)
	if outbox == nil {
		writeJSON(w, http.StatusBadRequest, apiError{msg})
		return
	}
	var d time.Duration
	if wait {
		d = a.cfg.Wait
	}
	out, err := outbox.Submit(r.Context(), req, d)
	var ve *ValidationError
	var ce *ConflictError
	switch {
	case errors.As(err, &ve):
		writeJSON(w, http.StatusBadRequest, apiError{ve.Reason})
		return
	case errors.As(err, &ce):
		writeJSON(w, http.StatusConflict, apiError{ce.Error()})
		return
	case err != nil:
		a.log.Warn("could not queue a send command", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, apiError{"the message could not be queued; try again"})
		return
	}
	a.log.Info("send command queued", "command_id", out.CommandID, "wait", wait)
	switch {
	case out.Result == nil:
		writeJSON(w, http.StatusAccepted, apiQueued{out.CommandID})
	case out.Succeeded:
		writeJSON(w, http.StatusOK, apiSent{CommandID: out.CommandID, MsgKey: strconv.FormatUint(out.Result.MsgKey, 10), MsgKeys: out.Result.MsgKeys})
	default:
		writeJSON(w, FailureStatus(out.Result.ErrorCode, out.FailureClass), apiFailed{CommandID: out.CommandID, ErrorCode: out.Result.ErrorCode, Error: out.Result.Error})
	}
}

// authorized compares the bearer token in constant time (over digests, so
// not even its length leaks).
func (a *API) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(got[:], a.token[:]) == 1
}

// decodeAPIRequest reads and checks the body; a non-zero status is the
// answer to give.
// outbox picks the account's outbox; uid 0 means "the only account".
func (a *API) outbox(uid uint64) (*Outbox, string) {
	o, err := Outboxes(a.cfg.Outboxes).For(int64(uid))
	if err != nil {
		return nil, err.Error()
	}
	return o, ""
}

// Outboxes are the outboxes of every account a bridge serves; Submit
// routes a request by its AccountUID.
type Outboxes []*Outbox

// For returns the outbox of account uid; zero means the only one.
func (os Outboxes) For(uid int64) (*Outbox, error) {
	if uid == 0 {
		if len(os) == 1 {
			return os[0], nil
		}
		return nil, fmt.Errorf("account_uid is required: this bridge serves %d accounts", len(os))
	}
	for _, o := range os {
		if o.AccountUID == uid {
			return o, nil
		}
	}
	return nil, fmt.Errorf("account_uid %d is not an account this bridge serves", uid)
}

// Submit queues req on its account's outbox.
func (os Outboxes) Submit(ctx context.Context, req SendRequest, wait time.Duration) (*SendOutcome, error) {
	o, err := os.For(req.AccountUID)
	if err != nil {
		return nil, &ValidationError{Reason: err.Error()}
	}
	return o.Submit(ctx, req, wait)
}

// decodeAPIRequest reads and checks the body; it returns the request, the
// account_uid (0 when absent) or an HTTP status and message.
func decodeAPIRequest(w http.ResponseWriter, r *http.Request) (SendRequest, uint64, int, string) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxAPIBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return SendRequest{}, 0, http.StatusRequestEntityTooLarge, "the request body is larger than 64 KiB"
		}
		return SendRequest{}, 0, http.StatusBadRequest, "could not read the request body"
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var in apiRequest
	if err := dec.Decode(&in); err != nil {
		return SendRequest{}, 0, http.StatusBadRequest, "the body is not a valid JSON request: " + err.Error()
	}
	if dec.More() {
		return SendRequest{}, 0, http.StatusBadRequest, "the body holds more than one JSON value"
	}
	if in.SessionType == nil {
		return SendRequest{}, 0, http.StatusBadRequest, "session_type must be 1 (user) or 2 (fan group)."
	}
	talker, ok := parseTalkerID(in.TalkerID)
	if !ok {
		return SendRequest{}, 0, http.StatusBadRequest, "talker_id must be a positive integer, preferably as a decimal string."
	}
	var uid uint64
	if len(in.AccountUID) > 0 {
		if uid, ok = parseTalkerID(in.AccountUID); !ok {
			return SendRequest{}, 0, http.StatusBadRequest, "account_uid must be a positive integer, preferably as a decimal string."
		}
	}
	return SendRequest{
		SessionType: *in.SessionType,
		TalkerID:    talker,
		Command: events.SendCommand{
			CommandID: in.IdempotencyKey,
			Text:      in.Text,
			ImageURL:  in.ImageURL,
			Origin:    &events.Origin{Platform: "api"},
		},
	}, uid, 0, ""
}

// parseTalkerID accepts "293793435" or 293793435 (read from the literal,
// never through a float).
func parseTalkerID(raw json.RawMessage) (uint64, bool) {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" {
		return 0, false
	}
	if s[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, false
		}
		s = strings.TrimSpace(s)
	}
	id, err := strconv.ParseUint(s, 10, 64)
	return id, err == nil && id > 0
}

// FailureStatus is the HTTP status the API answers for a failed send,
// from its failure class (SendOutcome.FailureClass) or, when that is
// unknown, Bilibili's error code.
func FailureStatus(code int, class string) int {
	if class == "" && code != 0 {
		class = bilibili.Classify(&bilibili.APIError{Code: code}).String()
	}
	switch class {
	case bilibili.ClassInvalidRequest.String(), classInvalidCommand:
		return http.StatusBadRequest
	case bilibili.ClassRateLimited.String(), bilibili.ClassBlocked.String(), bilibili.ClassRiskControl.String():
		return http.StatusTooManyRequests
	case bilibili.ClassLoginExpired.String():
		return http.StatusServiceUnavailable
	case bilibili.ClassTransient.String(), bilibili.ClassUnknown.String():
		return http.StatusBadGateway
	}
	// refused_by_peer, permanent, image
	return http.StatusUnprocessableEntity
}

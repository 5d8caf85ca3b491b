package send

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bilibridge/bilibridge/bilibili"
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

// HandlerConfig configures the HTTP API of sending.
type HandlerConfig struct {
	// Token is the bearer token (API_TOKEN). While it is empty the API
	// answers every request with 404, as if it were not mounted.
	Token string
	// Outbox queues the commands. When the bridge serves several accounts
	// a request names its account in "account_uid".
	Outbox Submitter
	// Wait bounds ?wait=true; default DefaultAPIWait.
	Wait   time.Duration
	Logger *slog.Logger
}

// Handler is POST /api/v1/messages: it queues a DM for the sender.
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
type Handler struct {
	token [sha256.Size]byte
	on    bool
	cfg   HandlerConfig
	log   *slog.Logger
}

// NewHandler returns the API handler.
func NewHandler(cfg HandlerConfig) *Handler {
	if cfg.Wait <= 0 {
		cfg.Wait = DefaultAPIWait
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Handler{token: sha256.Sum256([]byte(cfg.Token)), on: cfg.Token != "", cfg: cfg, log: cfg.Logger.With("component", "api")}
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

func (a *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
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
	req.AccountUID = int64(uid)
	var d time.Duration
	if wait {
		d = a.cfg.Wait
	}
	out, err := a.cfg.Outbox.Submit(r.Context(), req, d)
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
func (a *Handler) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(got[:], a.token[:]) == 1
}

// decodeAPIRequest reads and checks the body; it returns the request, the
// account_uid (0 when absent) or an HTTP status and message.
func decodeAPIRequest(w http.ResponseWriter, r *http.Request) (Request, uint64, int, string) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxAPIBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return Request{}, 0, http.StatusRequestEntityTooLarge, "the request body is larger than 64 KiB"
		}
		return Request{}, 0, http.StatusBadRequest, "could not read the request body"
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var in apiRequest
	if err := dec.Decode(&in); err != nil {
		return Request{}, 0, http.StatusBadRequest, "the body is not a valid JSON request: " + err.Error()
	}
	if dec.More() {
		return Request{}, 0, http.StatusBadRequest, "the body holds more than one JSON value"
	}
	if in.SessionType == nil {
		return Request{}, 0, http.StatusBadRequest, "session_type must be 1 (user) or 2 (fan group)."
	}
	talker, ok := parseTalkerID(in.TalkerID)
	if !ok {
		return Request{}, 0, http.StatusBadRequest, "talker_id must be a positive integer, preferably as a decimal string."
	}
	var uid uint64
	if len(in.AccountUID) > 0 {
		if uid, ok = parseTalkerID(in.AccountUID); !ok {
			return Request{}, 0, http.StatusBadRequest, "account_uid must be a positive integer, preferably as a decimal string."
		}
	}
	return Request{
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

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

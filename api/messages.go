package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/bilibridge/bilibridge/bilibili"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/send"
)

// sendRequest is the body of POST /api/v1/messages.
type sendRequest struct {
	SessionType    *int            `json:"session_type"`
	TalkerID       json.RawMessage `json:"talker_id"`
	Text           string          `json:"text"`
	ImageURL       string          `json:"image_url"`
	IdempotencyKey string          `json:"idempotency_key"`
	AccountUID     json.RawMessage `json:"account_uid"`
}

// postMessage is POST /api/v1/messages: it queues a DM for the sender.
//
// The body is {"session_type":1,"talker_id":"293793435","text":"…"} or
// with "image_url" instead of "text", an optional "idempotency_key" (the
// command_id; the same key is sent at most once) and, when the bridge
// serves several accounts, "account_uid". Ids are decimal strings (a JSON
// number is read from its literal, never through a float).
//
//	202 {"command_id"}                      queued (also: ?wait=true ran out of time)
//	200 {"command_id","msg_key","msg_keys"} ?wait=true and it was sent
//
// With ?wait=true a failed send answers {"command_id","error_code",
// "error","code":"send_failed"} (error_code is Bilibili's, 0 when the
// bridge refused the command itself) with a status chosen by what went
// wrong (failureStatus).
func (s *Server) postMessage(w http.ResponseWriter, r *http.Request) {
	wait := false
	if v := r.URL.Query().Get("wait"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, codeBadRequest, "wait must be true or false")
			return
		}
		wait = b
	}
	var in sendRequest
	if !decodeBody(w, r, &in) {
		return
	}
	if in.SessionType == nil {
		writeError(w, http.StatusBadRequest, codeBadRequest, "session_type must be 1 (user) or 2 (fan group).")
		return
	}
	talker, ok := parseID(in.TalkerID)
	if !ok {
		writeError(w, http.StatusBadRequest, codeBadRequest, "talker_id must be a positive integer, preferably as a decimal string.")
		return
	}
	var uid uint64
	if len(in.AccountUID) > 0 {
		if uid, ok = parseID(in.AccountUID); !ok || uid > 1<<63-1 {
			writeError(w, http.StatusBadRequest, codeBadRequest, "account_uid must be a positive integer, preferably as a decimal string.")
			return
		}
	}
	origin := &events.Origin{Platform: "api"}
	id := identity(r.Context())
	if id.Session {
		origin.Platform = "web"
	}
	origin.User = id.Actor.Member
	req := send.Request{
		AccountUID:  int64(uid),
		SessionType: *in.SessionType,
		TalkerID:    talker,
		Command:     events.SendCommand{CommandID: in.IdempotencyKey, Text: in.Text, ImageURL: in.ImageURL, Origin: origin},
	}
	var d = s.cfg.SendWait
	if !wait {
		d = 0
	}
	out, err := s.cfg.Outbox.Submit(r.Context(), req, d)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("send command queued", "command_id", out.CommandID, "wait", wait, "by", origin.User)
	switch {
	case out.Result == nil:
		writeJSON(w, http.StatusAccepted, map[string]string{"command_id": out.CommandID})
	case out.Succeeded:
		writeJSON(w, http.StatusOK, map[string]any{"command_id": out.CommandID,
			"msg_key": strconv.FormatUint(out.Result.MsgKey, 10), "msg_keys": out.Result.MsgKeys})
	default:
		writeJSON(w, failureStatus(out.Result.ErrorCode, out.FailureClass), map[string]any{"command_id": out.CommandID,
			"error_code": out.Result.ErrorCode, "error": out.Result.Error, "code": codeSendFailed})
	}
}

// getMessage is GET /api/v1/messages/{command_id}: the command's state
// (queued, sending, succeeded, failed) and outcome.
func (s *Server) getMessage(w http.ResponseWriter, r *http.Request) {
	var uid int64
	if v := r.URL.Query().Get("account_uid"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			writeError(w, http.StatusBadRequest, codeBadRequest, "account_uid must be a positive integer")
			return
		}
		uid = n
	}
	c, err := s.cfg.Outbox.Command(r.Context(), uid, r.PathValue("command_id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

// previewMessage is POST /api/v1/messages/preview {"text": "…"}: the
// parts the text would be sent as (Bilibili takes at most 500 characters
// a message), so that a writer sees the split before sending.
func (s *Server) previewMessage(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Text string `json:"text"`
	}
	if !decodeBody(w, r, &in) {
		return
	}
	parts := bilibili.SplitText(in.Text)
	if parts == nil {
		parts = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"parts": parts})
}

// parseID accepts "293793435" or 293793435.
func parseID(raw json.RawMessage) (uint64, bool) {
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

// failureStatus is the HTTP status of a failed send, from its failure
// class or, when that is unknown, Bilibili's error code:
//
//	400 Bilibili refused the request as invalid (21007 too long, 21026
//	    yourself, 21035 type, 21037 image host, -400), or the sender
//	    refused the command as malformed
//	422 the recipient does not accept it (21047, 25003, 25005), the fan
//	    group is gone (700013, 700014), a phone binding is needed (21015),
//	    the image could not be used, or any other refusal
//	429 sending too fast (21020, -509, after the retries), blocked for
//	    24h (21046), or risk control (-352, -412, -799)
//	502 Bilibili could not be reached (timeouts, 5xx) or answered with a
//	    code the bridge does not know, after the retries
//	503 the Bilibili login has expired (-101, -111)
func failureStatus(code int, class string) int {
	if class == "" && code != 0 {
		class = bilibili.Classify(&bilibili.APIError{Code: code}).String()
	}
	switch class {
	case bilibili.ClassInvalidRequest.String(), send.ClassInvalidCommand:
		return http.StatusBadRequest
	case bilibili.ClassRateLimited.String(), bilibili.ClassBlocked.String(), bilibili.ClassRiskControl.String():
		return http.StatusTooManyRequests
	case bilibili.ClassLoginExpired.String():
		return http.StatusServiceUnavailable
	case bilibili.ClassTransient.String(), bilibili.ClassUnknown.String():
		return http.StatusBadGateway
	}
	return http.StatusUnprocessableEntity
}

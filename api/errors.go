package api

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/bilibridge/bilibridge/send"
	"github.com/bilibridge/bilibridge/sinks"
	"github.com/bilibridge/bilibridge/team"
)

// Error codes: the "code" of an error answer, for programs to branch on.
const (
	codeBadRequest     = "bad_request"
	codeUnauthorized   = "unauthorized"
	codeForbidden      = "forbidden"
	codeNotFound       = "not_found"
	codeNoConversation = "no_conversation"
	codeNoMember       = "no_member"
	codeNoCommand      = "no_command"
	codeNoDeadLetter   = "no_dead_letter"
	codeConflict       = "conflict"
	codeTooLarge       = "too_large"
	codeUnavailable    = "unavailable"
	codeSendFailed     = "send_failed"
)

// apiError is the body of every error answer.
type apiError struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, apiError{Error: msg, Code: code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// fail answers err: the caller's mistakes as 4xx with what to fix, the
// rest as 503 (logged, not shown: it may name internals).
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ie *team.InputError
	var ve *send.ValidationError
	var ce *send.ConflictError
	switch {
	case errors.As(err, &ie):
		writeError(w, http.StatusBadRequest, codeBadRequest, ie.Reason)
	case errors.As(err, &ve):
		writeError(w, http.StatusBadRequest, codeBadRequest, ve.Reason)
	case errors.As(err, &ce):
		writeError(w, http.StatusConflict, codeConflict, ce.Error())
	case errors.Is(err, team.ErrNoConversation):
		writeError(w, http.StatusNotFound, codeNoConversation, "the bridge has not seen this conversation")
	case errors.Is(err, team.ErrNoMember):
		writeError(w, http.StatusBadRequest, codeNoMember, "no team member has this name")
	case errors.Is(err, send.ErrNoCommand):
		writeError(w, http.StatusNotFound, codeNoCommand, "no send command has this id")
	case errors.Is(err, sinks.ErrNoDeadLetter):
		writeError(w, http.StatusNotFound, codeNoDeadLetter, "no dead letter has this id")
	case errors.Is(err, team.ErrNotVisibleYet):
		// Done, not to be retried: 202, not a 5xx a client would repeat.
		writeJSON(w, http.StatusAccepted, map[string]string{"status": "accepted", "message": "recorded; it shows in a moment"})
	default:
		s.log.Warn("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusServiceUnavailable, codeUnavailable, "the bridge could not do this right now; try again")
	}
}

package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/team"
)

// Page sizes of the lists.
const (
	defaultLimit = 50
	maxLimit     = 200
)

// conversationView is a conversation as the API shows it.
type conversationView struct {
	AccountUID   string            `json:"account_uid"`
	SessionType  int               `json:"session_type"`
	TalkerID     string            `json:"talker_id"`
	Kind         string            `json:"kind,omitempty"`
	Name         string            `json:"name"`
	Avatar       string            `json:"avatar,omitempty"`
	LastMessage  *team.LastMessage `json:"last_message"`
	Unread       int               `json:"unread"`
	Status       string            `json:"status"`
	SnoozedUntil *time.Time        `json:"snoozed_until"`
	Assignee     *string           `json:"assignee"`
	UpdatedAt    time.Time         `json:"updated_at"`
	LastActivity time.Time         `json:"last_activity"`
	// ReadUpTo is the newest message the team has read.
	ReadUpTo string `json:"read_up_to,omitempty"`
	// Notes are shown on one conversation, not in lists.
	Notes *[]events.Note `json:"notes,omitempty"`
}

func viewOf(c *team.Conversation, withNotes bool) conversationView {
	v := conversationView{
		AccountUID: strconv.FormatInt(c.AccountUID, 10), SessionType: c.SessionType, TalkerID: strconv.FormatUint(c.TalkerID, 10),
		Kind: c.Kind, Name: c.Name, Avatar: c.Avatar, LastMessage: c.LastMessage, Unread: c.Unread, Status: c.Status,
		SnoozedUntil: c.SnoozedUntil, Assignee: c.Assignee, UpdatedAt: c.UpdatedAt, LastActivity: c.LastActivity,
	}
	if c.ReadUpTo != 0 {
		v.ReadUpTo = strconv.FormatUint(c.ReadUpTo, 10)
	}
	if withNotes {
		notes := c.Notes
		if notes == nil {
			notes = []events.Note{}
		}
		v.Notes = &notes
	}
	return v
}

// listConversations is GET /api/v1/conversations: filters status
// (open, snoozed, done, all), assignee (me, none, a member), account, q;
// the most recently active first; cursor and limit page.
func (s *Server) listConversations(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := team.Filter{Status: q.Get("status"), Assignee: strings.ToLower(q.Get("assignee")), Query: q.Get("q")}
	if f.Assignee == "me" {
		me := identity(r.Context()).Actor.Member
		if me == "" {
			writeError(w, http.StatusBadRequest, codeBadRequest, "assignee=me needs a member's credentials; the service token is nobody")
			return
		}
		f.Assignee = me
	}
	account, ok := accountParam(w, r)
	if !ok {
		return
	}
	f.Account = account
	limit, ok := limitParam(w, r)
	if !ok {
		return
	}
	convs, next, err := s.cfg.Team.List(f, q.Get("cursor"), limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]conversationView, len(convs))
	for i, c := range convs {
		out[i] = viewOf(c, false)
	}
	writeJSON(w, http.StatusOK, map[string]any{"conversations": out, "next_cursor": next})
}

// getConversation is GET /api/v1/conversations/{account_uid}/{session_type}/{talker_id}.
func (s *Server) getConversation(w http.ResponseWriter, r *http.Request) {
	key, ok := conversationKey(w, r)
	if !ok {
		return
	}
	c, err := s.cfg.Team.Get(key)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, viewOf(c, true))
}

// conversationMessages is GET …/messages?before=<msg_key>&limit=: the
// messages before that one (the newest without it), oldest first; older
// than the stream, from Bilibili itself. next_cursor is the before of the
// previous page, "" when there is none.
func (s *Server) conversationMessages(w http.ResponseWriter, r *http.Request) {
	key, ok := conversationKey(w, r)
	if !ok {
		return
	}
	limit, ok := limitParam(w, r)
	if !ok {
		return
	}
	var before uint64
	v := r.URL.Query().Get("before")
	if v == "" {
		v = r.URL.Query().Get("cursor")
	}
	if v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n == 0 {
			writeError(w, http.StatusBadRequest, codeBadRequest, "before must be a msg_key")
			return
		}
		before = n
	}
	msgs, err := s.cfg.Team.Messages(r.Context(), key, before, limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if msgs == nil {
		msgs = []events.MessageData{}
	}
	next := ""
	if len(msgs) == limit {
		next = strconv.FormatUint(msgs[0].Message.MsgKey, 10)
	}
	writeJSON(w, http.StatusOK, map[string]any{"messages": msgs, "next_cursor": next})
}

// assign is POST …/assign {"assignee": "ana"|"me"|null}.
func (s *Server) assign(w http.ResponseWriter, r *http.Request) {
	key, ok := conversationKey(w, r)
	if !ok {
		return
	}
	var in struct {
		Assignee json.RawMessage `json:"assignee"`
	}
	if !decodeBody(w, r, &in) {
		return
	}
	name := ""
	switch raw := strings.TrimSpace(string(in.Assignee)); {
	case raw == "":
		writeError(w, http.StatusBadRequest, codeBadRequest, `assignee is required: a member's name, "me", or null for nobody`)
		return
	case raw == "null":
	default:
		if err := json.Unmarshal(in.Assignee, &name); err != nil || strings.TrimSpace(name) == "" {
			writeError(w, http.StatusBadRequest, codeBadRequest, `assignee must be a member's name, "me", or null for nobody`)
			return
		}
	}
	by := identity(r.Context()).Actor
	if strings.EqualFold(name, "me") {
		if by.Member == "" {
			writeError(w, http.StatusBadRequest, codeBadRequest, `"me" needs a member's credentials; the service token is nobody`)
			return
		}
		name = by.Member
	}
	c, err := s.cfg.Team.Assign(r.Context(), key, name, by)
	s.answer(w, r, http.StatusOK, c, err)
}

// setStatus is POST …/status {"status": "open"|"snoozed"|"done",
// "snoozed_until": RFC 3339, or a length such as "2h", "1d", "tomorrow"}.
func (s *Server) setStatus(w http.ResponseWriter, r *http.Request) {
	key, ok := conversationKey(w, r)
	if !ok {
		return
	}
	var in struct {
		Status       string `json:"status"`
		SnoozedUntil string `json:"snoozed_until"`
	}
	if !decodeBody(w, r, &in) {
		return
	}
	var until time.Time
	if in.Status == events.ConversationSnoozed {
		if in.SnoozedUntil == "" {
			writeError(w, http.StatusBadRequest, codeBadRequest, `snoozed_until is required with status "snoozed": a time (RFC 3339) or a length such as "2h", "1d", "tomorrow"`)
			return
		}
		t, err := time.Parse(time.RFC3339, in.SnoozedUntil)
		if err != nil {
			t, err = team.SnoozeUntil(in.SnoozedUntil, s.cfg.Now(), nil)
		}
		if err != nil {
			writeError(w, http.StatusBadRequest, codeBadRequest, "snoozed_until: "+err.Error())
			return
		}
		until = t
	}
	c, err := s.cfg.Team.SetStatus(r.Context(), key, in.Status, until, identity(r.Context()).Actor)
	s.answer(w, r, http.StatusOK, c, err)
}

// addNote is POST …/notes {"text": "…"}: a note for the team, never sent.
func (s *Server) addNote(w http.ResponseWriter, r *http.Request) {
	key, ok := conversationKey(w, r)
	if !ok {
		return
	}
	var in struct {
		Text string `json:"text"`
	}
	if !decodeBody(w, r, &in) {
		return
	}
	c, err := s.cfg.Team.AddNote(r.Context(), key, in.Text, identity(r.Context()).Actor)
	s.answer(w, r, http.StatusCreated, c, err)
}

// markRead is POST …/read {}: read up to the newest message.
func (s *Server) markRead(w http.ResponseWriter, r *http.Request) {
	key, ok := conversationKey(w, r)
	if !ok {
		return
	}
	var in struct{}
	if !decodeBody(w, r, &in) {
		return
	}
	c, err := s.cfg.Team.MarkRead(r.Context(), key, identity(r.Context()).Actor)
	s.answer(w, r, http.StatusOK, c, err)
}

// answer writes the conversation an action left, or the action's error.
func (s *Server) answer(w http.ResponseWriter, r *http.Request, status int, c *team.Conversation, err error) {
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, status, viewOf(c, true))
}

// conversationKey reads the path's account_uid, session_type, talker_id.
func conversationKey(w http.ResponseWriter, r *http.Request) (events.ConversationKey, bool) {
	uid, err1 := strconv.ParseInt(r.PathValue("account_uid"), 10, 64)
	st, err2 := strconv.Atoi(r.PathValue("session_type"))
	talker, err3 := strconv.ParseUint(r.PathValue("talker_id"), 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || uid <= 0 || talker == 0 || (st != 1 && st != 2) {
		writeError(w, http.StatusBadRequest, codeBadRequest,
			"a conversation is /api/v1/conversations/<account_uid>/<session_type 1 or 2>/<talker_id>, in decimal")
		return events.ConversationKey{}, false
	}
	return events.ConversationKey{AccountUID: uid, SessionType: st, TalkerID: talker}, true
}

// accountParam reads ?account= (0 when absent).
func accountParam(w http.ResponseWriter, r *http.Request) (int64, bool) {
	v := r.URL.Query().Get("account")
	if v == "" {
		return 0, true
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		writeError(w, http.StatusBadRequest, codeBadRequest, "account must be an account's uid")
		return 0, false
	}
	return n, true
}

// limitParam reads ?limit= (default 50, at most 200).
func limitParam(w http.ResponseWriter, r *http.Request) (int, bool) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return defaultLimit, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxLimit {
		writeError(w, http.StatusBadRequest, codeBadRequest, "limit must be 1 to 200")
		return 0, false
	}
	return n, true
}

// presence is POST …/presence {"typing": bool, "left": bool}: the member
// has the conversation open (and is typing a reply), or closed it. Other
// members see it on the event stream (event: presence).
func (s *Server) presence(w http.ResponseWriter, r *http.Request) {
	key, ok := conversationKey(w, r)
	if !ok {
		return
	}
	var in struct {
		Typing bool `json:"typing"`
		Left   bool `json:"left"`
	}
	if !decodeBody(w, r, &in) {
		return
	}
	me := identity(r.Context()).Actor.Member
	switch {
	case me == "":
		writeError(w, http.StatusBadRequest, codeBadRequest, "presence is a member's; the service token is nobody")
		return
	case s.cfg.Presence == nil:
		writeError(w, http.StatusServiceUnavailable, codeUnavailable, "presence is off on this bridge")
		return
	}
	if _, err := s.cfg.Team.Get(key); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.cfg.Presence.Say(key, me, in.Typing, in.Left); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

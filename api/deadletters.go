package api

import (
	"net/http"
	"strconv"

	"github.com/bilibridge/bilibridge/sinks"
)

// listDeadLetters is GET /api/v1/dead-letters?sink=&account=&cursor=&limit=:
// the events sinks gave up on, oldest first, with how often each was
// replayed.
func (s *Server) listDeadLetters(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := sinks.DeadLetterFilter{Sink: q.Get("sink")}
	account, ok := accountParam(w, r)
	if !ok {
		return
	}
	f.Account = account
	if c := q.Get("cursor"); c != "" {
		if _, err := strconv.ParseUint(c, 10, 64); err != nil {
			writeError(w, http.StatusBadRequest, codeBadRequest, "cursor is not one this API gave out")
			return
		}
	}
	limit, ok := limitParam(w, r)
	if !ok {
		return
	}
	list, next, err := s.cfg.DeadLetters.List(r.Context(), f, q.Get("cursor"), limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if list == nil {
		list = []sinks.DeadLetter{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"dead_letters": list, "next_cursor": next})
}

// replayDeadLetter is POST /api/v1/dead-letters/{id}/replay: the event
// goes to its sink again (and to no other), as a new delivery.
func (s *Server) replayDeadLetter(w http.ResponseWriter, r *http.Request) {
	by := identity(r.Context()).Actor
	dl, err := s.cfg.DeadLetters.Replay(r.Context(), r.PathValue("id"), by)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("dead letter replayed", "id", dl.ID, "sink", dl.Sink, "event", dl.Event.ID, "by", by.String())
	writeJSON(w, http.StatusAccepted, dl)
}

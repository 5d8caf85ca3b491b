package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bilibridge/bilibridge/bus"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/team"
)

// events is GET /api/v1/events: server-sent events of what the team sees
// happen (messages, recalls, send results, account status, team
// actions), each with id: its stream sequence, event: its CloudEvents
// type and data: the CloudEvent JSON.
//
// A client that reconnects with Last-Event-ID (or ?last_event_id=) gets
// what it missed from the stream first, then the live events, without
// a gap or a repeat. ?account= and ?types= (a comma-separated list of
// CloudEvents types) narrow the stream.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	account, ok := accountParam(w, r)
	if !ok {
		return
	}
	types := map[string]bool{}
	if v := q.Get("types"); v != "" {
		for _, t := range strings.Split(v, ",") {
			t = strings.TrimSpace(t)
			if s.cfg.Subjects.ForType(t) == "" || t == events.TypeDeadLetter {
				writeError(w, http.StatusBadRequest, codeBadRequest, fmt.Sprintf("types: %q is not a type of this stream", t))
				return
			}
			types[t] = true
		}
	}
	var last uint64
	resume := r.Header.Get("Last-Event-ID")
	if resume == "" {
		resume = q.Get("last_event_id")
	}
	if resume != "" {
		n, err := strconv.ParseUint(resume, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, codeBadRequest, "Last-Event-ID must be the id of an event this stream sent")
			return
		}
		last = n
	}
	wanted := func(subject string, ev events.Event) bool {
		if len(types) > 0 && !types[ev.Type] {
			return false
		}
		if account != 0 {
			route, err := s.cfg.Subjects.ParseSubject(subject)
			return err == nil && route.UID == account
		}
		return true
	}

	if resume == "" {
		// A new client starts from now: read before anything is written,
		// so that an event applied meanwhile is not skipped.
		last = s.cfg.Projection.Applied()
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: pass events on at once
	w.WriteHeader(http.StatusOK)
	out := &sseWriter{w: bufio.NewWriter(w), rc: rc, allowed: s.stillAuthorized(r)}
	// The first line tells EventSource how soon to reconnect.
	if out.write("retry: 2000\n\n") != nil {
		return
	}
	var presence <-chan team.PresenceUpdate
	if s.cfg.Presence != nil {
		ch, stop := s.cfg.Presence.Subscribe(64)
		defer stop()
		presence = ch
		for _, u := range s.cfg.Presence.Snapshot() {
			if account == 0 || u.Conversation.AccountUID == account {
				if out.presence(u) != nil {
					return
				}
			}
		}
	}
	s.stream(r.Context(), out, last, wanted, func(u team.PresenceUpdate) error {
		if account != 0 && u.Conversation.AccountUID != account {
			return nil
		}
		return out.presence(u)
	}, presence)
}

// stream sends the events after sequence last, then live ones, until the
// client goes or the server stops. A client too slow for the live
// events falls back to reading the stream, where it left off.
func (s *Server) stream(ctx context.Context, out *sseWriter, last uint64, wanted func(string, events.Event) bool,
	sendPresence func(team.PresenceUpdate) error, presence <-chan team.PresenceUpdate) {
	heartbeat := time.NewTicker(s.cfg.Heartbeat)
	defer heartbeat.Stop()
	for ctx.Err() == nil {
		// Subscribe first, then read what the stream has: nothing falls
		// between the two (what both have is skipped by sequence).
		live, stop := s.cfg.Projection.Subscribe(s.cfg.EventBuffer)
		if s.cfg.Projection.Applied() > last {
			// One filter, the kinds sorted out here: see Subjects.Stream.
			err := bus.Read(ctx, s.cfg.Stream, []string{s.cfg.Subjects.Stream()}, last+1, func(m bus.Stored) error {
				if s.cfg.Subjects.InInbox(m.Subject) && wanted(m.Subject, m.Event) {
					if err := out.event(m.Seq, m.Event); err != nil {
						return err
					}
				}
				last = m.Seq
				return nil
			})
			if err != nil {
				stop()
				return
			}
		}
		if !s.relay(ctx, out, live, heartbeat.C, &last, wanted, sendPresence, presence) {
			stop()
			return
		}
		stop()
	}
}

// relay sends live events until the subscription is dropped (true: read
// the stream again) or the client or server goes (false).
func (s *Server) relay(ctx context.Context, out *sseWriter, live <-chan team.Event, beat <-chan time.Time, last *uint64, wanted func(string, events.Event) bool,
	sendPresence func(team.PresenceUpdate) error, presence <-chan team.PresenceUpdate) bool {
	for {
		select {
		case <-ctx.Done():
			return false
		case u := <-presence:
			if sendPresence(u) != nil {
				return false
			}
		case <-beat:
			if out.write(": keep-alive\n\n") != nil {
				return false
			}
		case e, ok := <-live:
			if !ok {
				return true
			}
			if e.Seq <= *last {
				continue
			}
			if wanted(e.Subject, e.Event) {
				if out.event(e.Seq, e.Event) != nil {
					return false
				}
			}
			*last = e.Seq
		}
	}
}

// sseWriter writes server-sent events, each flushed at once and each
// with its own write deadline (the server's WriteTimeout would otherwise
// end every stream after a minute).
type sseWriter struct {
	w  *bufio.Writer
	rc *http.ResponseController
	// allowed says whether the request's credentials still hold; nil:
	// they are not checked again.
	allowed func() bool
}

// errCredentialsGone ends a stream whose member was removed, whose token
// was revoked or whose session ended.
var errCredentialsGone = errors.New("the credentials of the stream are no longer valid")

// stillAuthorized checks r's credentials again, at most once a second:
// an event stream is one long request, and it must end when its member
// is removed, its token revoked or its session ended, as new requests
// are refused then. A check that cannot be made (the store is
// unavailable) keeps the stream, as it would not refuse a new request
// for good either.
func (s *Server) stillAuthorized(r *http.Request) func() bool {
	var checked time.Time
	return func() bool {
		if time.Since(checked) < time.Second {
			return true
		}
		switch _, status, _ := s.authenticate(r); status {
		case 0:
			checked = time.Now()
			return true
		case http.StatusServiceUnavailable:
			return true
		}
		return false
	}
}

func (o *sseWriter) event(seq uint64, ev events.Event) error {
	data, err := ev.Marshal()
	if err != nil {
		return nil // not sendable; the next one is
	}
	return o.write(fmt.Sprintf("id: %d\nevent: %s\ndata: %s\n\n", seq, ev.Type, data))
}

// presenceEvent is the data of an event: presence.
type presenceEvent struct {
	Conversation struct {
		AccountUID  string `json:"account_uid"`
		SessionType int    `json:"session_type"`
		TalkerID    string `json:"talker_id"`
	} `json:"conversation"`
	Viewers []team.Viewer `json:"viewers"`
}

// presence writes who has a conversation open, without an id: it is not
// on the stream, and a client that reconnects gets the present anew.
func (o *sseWriter) presence(u team.PresenceUpdate) error {
	var pe presenceEvent
	pe.Conversation.AccountUID = strconv.FormatInt(u.Conversation.AccountUID, 10)
	pe.Conversation.SessionType = u.Conversation.SessionType
	pe.Conversation.TalkerID = strconv.FormatUint(u.Conversation.TalkerID, 10)
	pe.Viewers = u.Viewers
	data, err := json.Marshal(pe)
	if err != nil {
		return nil
	}
	return o.write("event: presence\ndata: " + string(data) + "\n\n")
}

func (o *sseWriter) write(s string) error {
	if o.allowed != nil && !o.allowed() {
		return errCredentialsGone
	}
	_ = o.rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := o.w.WriteString(s); err != nil {
		return err
	}
	if err := o.w.Flush(); err != nil {
		return err
	}
	return o.rc.Flush()
}

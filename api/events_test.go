package api_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/team"
	"github.com/bilibridge/bilibridge/team/teamtest"
)

// sse is a client of GET /api/v1/events.
type sse struct {
	t      *testing.T
	cancel context.CancelFunc
	events chan sseEvent
	// read, while open, holds the client from reading the response.
	read chan struct{}
}

type sseEvent struct {
	id    uint64
	typ   string
	event events.Event
	data  string
}

// listen connects to the event stream with query and lastID ("" for none).
func (r *rig) listen(query, lastID string) *sse {
	r.T.Helper()
	s := r.listenPaused(query, lastID)
	close(s.read)
	return s
}

// listenPaused connects, but reads nothing until s.read is closed.
func (r *rig) listenPaused(query, lastID string) *sse {
	r.T.Helper()
	return r.listenAs(serviceToken, query, lastID)
}

// listenAs is listenPaused with another token.
func (r *rig) listenAs(token, query, lastID string) *sse {
	r.T.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", r.srv.URL+"/api/v1/events"+query, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	client := r.srv.Client()
	resp, err := client.Do(req)
	if err != nil {
		r.T.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		r.T.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &sse{t: r.T.(*testing.T), cancel: cancel, events: make(chan sseEvent, 10000), read: make(chan struct{})}
	go func() {
		defer resp.Body.Close()
		defer close(s.events)
		<-s.read
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var cur sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if cur.typ != "" {
					s.events <- cur
				}
				cur = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				cur.id, _ = strconv.ParseUint(line[4:], 10, 64)
			case strings.HasPrefix(line, "event: "):
				cur.typ = line[7:]
			case strings.HasPrefix(line, "data: ") && cur.typ == "presence":
				cur.data = line[6:]
			case strings.HasPrefix(line, "data: "):
				ev, err := events.Parse([]byte(line[6:]))
				if err != nil && ctx.Err() == nil {
					s.t.Errorf("data is not a CloudEvent: %v", err)
				}
				cur.event = ev
			}
		}
	}()
	r.T.Cleanup(cancel)
	return s
}

// next returns the next event, failing after 10 s.
func (s *sse) next() sseEvent {
	s.t.Helper()
	select {
	case e, ok := <-s.events:
		if !ok {
			s.t.Fatal("the event stream ended")
		}
		return e
	case <-time.After(10 * time.Second):
		s.t.Fatal("no event within 10s")
	}
	return sseEvent{}
}

// A client sees messages and team actions live; one that reconnects
// with Last-Event-ID gets what it missed, once, in order, then the live
// ones.
func TestEventStreamResumes(t *testing.T) {
	r := newRig(t, options{})
	s := r.listen("", "")
	k1 := r.Message(teamtest.Conv, events.DirectionIn, "first")
	e := s.next()
	if e.typ != events.TypeMessage || e.event.ID != events.MessageID(teamtest.UID, k1) || e.id == 0 {
		t.Fatalf("first event: %+v", e)
	}
	if res := r.do("POST", convPath(teamtest.Conv, "/assign"), serviceToken, `{"assignee":"ana"}`); res.status != 200 {
		t.Fatalf("assign: %d %s", res.status, res.raw)
	}
	e = s.next()
	if e.typ != events.TypeTeamAssigned {
		t.Fatalf("after the assignment: %+v", e)
	}
	last := e.id
	s.cancel()

	// Missed while away.
	k2 := r.Message(teamtest.Conv, events.DirectionIn, "second")
	k3 := r.Message(teamtest.Conv, events.DirectionIn, "third")
	s = r.listen("", strconv.FormatUint(last, 10))
	for _, want := range []uint64{k2, k3} {
		if e := s.next(); e.event.ID != events.MessageID(teamtest.UID, want) || e.id <= last {
			t.Fatalf("resumed: %+v, want message %d after id %d", e, want, last)
		} else {
			last = e.id
		}
	}
	k4 := r.Message(teamtest.Conv, events.DirectionIn, "fourth")
	if e := s.next(); e.event.ID != events.MessageID(teamtest.UID, k4) {
		t.Fatalf("live after the resume: %+v", e)
	}
}

// ?types= narrows the stream.
func TestEventStreamTypes(t *testing.T) {
	r := newRig(t, options{})
	r.Message(teamtest.Conv, events.DirectionIn, "hello")
	r.waitConversation(teamtest.Conv)
	s := r.listen("?types="+events.TypeTeamNote, "")
	r.Message(teamtest.Conv, events.DirectionIn, "not wanted")
	r.do("POST", convPath(teamtest.Conv, "/notes"), serviceToken, `{"text":"wanted"}`)
	if e := s.next(); e.typ != events.TypeTeamNote {
		t.Fatalf("got %s, want only notes", e.typ)
	}
}

// A client that reads too slowly for the live events loses none: it is
// switched to reading the stream where it left off.
func TestSlowEventClientLosesNothing(t *testing.T) {
	r := newRig(t, options{eventBuffer: 8})
	s := r.listenPaused("", "")
	// 500 KB per event, 60 MB in all: more than the socket buffers can
	// hold (the kernel's are at most 32 MB + 4 MB on loopback), so the
	// server's writes block and the live subscription overflows, whatever
	// the timing.
	const n = 120
	big := strings.Repeat("长", 170_000)
	var want []string
	for i := range n {
		want = append(want, events.MessageID(teamtest.UID, r.Message(teamtest.Conv, events.DirectionIn, fmt.Sprint(i, big))))
	}
	// Only once the bridge has handed all of them to the live
	// subscribers does the client start reading.
	info, err := r.Store.Events.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.proc.Projection.WaitApplied(t.Context(), info.State.LastSeq); err != nil {
		t.Fatal(err)
	}
	close(s.read)
	var last uint64
	for i := range n {
		e := s.next()
		if e.event.ID != want[i] || e.id <= last {
			t.Fatalf("event %d: %s (id %d after %d), want %s", i, e.event.ID, e.id, last, want[i])
		}
		last = e.id
	}
}

// Who has a conversation open, and who is typing, reaches the other
// members at once, and goes when they leave.
func TestPresence(t *testing.T) {
	r := newRig(t, options{})
	r.Message(teamtest.Conv, events.DirectionIn, "hi")
	r.waitConversation(teamtest.Conv)
	bo := r.AddMember("bo", team.RoleAgent)
	s := r.listenAs(bo, "?types="+events.TypeTeamNote, "")
	close(s.read)
	if res := r.do("POST", convPath(teamtest.Conv, "/presence"), r.anaToken, `{"typing":true}`); res.status != 204 {
		t.Fatalf("presence: %d %s", res.status, res.raw)
	}
	e := s.next()
	want := `{"conversation":{"account_uid":"425503913","session_type":1,"talker_id":"293793435"},"viewers":[{"member":"ana","typing":true}]}`
	if e.typ != "presence" || e.data != want || e.id != 0 {
		t.Fatalf("presence event %+v, want %s without an id", e, want)
	}
	r.do("POST", convPath(teamtest.Conv, "/presence"), r.anaToken, `{"left":true}`)
	if e := s.next(); e.typ != "presence" || !strings.Contains(e.data, `"viewers":[]`) {
		t.Fatalf("after leaving: %+v", e)
	}
	if res := r.do("POST", convPath(teamtest.Conv, "/presence"), serviceToken, `{}`); res.status != 400 {
		t.Errorf("presence of the service token: %d", res.status)
	}
}

// An event stream ends when its credentials stop holding — the member's
// token revoked, or the member removed — as new requests are refused:
// an open stream must not go on carrying DMs to someone no longer on the
// team.
func TestEventStreamEndsWithItsCredentials(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(ctx context.Context, ms *team.Members) error
	}{
		{"token revoked", func(ctx context.Context, ms *team.Members) error { return ms.RevokeTokens(ctx, "ana") }},
		{"member removed", func(ctx context.Context, ms *team.Members) error { return ms.Remove(ctx, "ana") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, options{})
			s := r.listenAs(r.anaToken, "", "")
			close(s.read)
			r.Message(teamtest.Conv, events.DirectionIn, "before")
			if e := s.next(); e.typ != events.TypeMessage {
				t.Fatalf("before: %+v", e)
			}
			if err := tc.end(context.Background(), r.Members); err != nil {
				t.Fatal(err)
			}
			// Past the stream's once-a-second check of its credentials.
			time.Sleep(1200 * time.Millisecond)
			r.Message(teamtest.Conv, events.DirectionIn, "after: not for ana")
			select {
			case e, ok := <-s.events:
				if ok {
					t.Fatalf("the stream carried %s %q after its credentials went", e.typ, e.event.ID)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the stream is still open 10 s after its credentials went")
			}
		})
	}
}

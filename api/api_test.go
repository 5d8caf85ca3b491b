package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bilibridge/bilibridge/api"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/send"
	"github.com/bilibridge/bilibridge/sinks"
	"github.com/bilibridge/bilibridge/team"
	"github.com/bilibridge/bilibridge/team/teamtest"
)

const serviceToken = "svc-7f3a9c"

// rig is the API of one bridge process over a real JetStream.
type rig struct {
	*teamtest.Rig
	proc teamtest.Process
	srv  *httptest.Server
	// anaToken is the personal token of member ana.
	anaToken string
}

type options struct {
	eventBuffer int
	backfill    team.Backfill
}

func newRig(t *testing.T, o options) *rig {
	t.Helper()
	tr := teamtest.New(t)
	r := &rig{Rig: tr}
	r.anaToken = tr.AddMember("ana", team.RoleAgent)
	r.proc = tr.Process(teamtest.Options{Backfill: o.backfill})
	presence := team.NewPresence(tr.Conn.NC, events.Subjects{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = presence.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	s := api.New(api.Config{
		Token:       serviceToken,
		Members:     tr.Members,
		Outbox:      &send.Outbox{NC: tr.Conn.NC, JS: tr.Conn.JS, Records: tr.Store.Records, Accounts: []int64{teamtest.UID}},
		Team:        r.proc.Service,
		Projection:  r.proc.Projection,
		Stream:      tr.Store.Events,
		DeadLetters: &sinks.DeadLetters{Stream: tr.Store.Events, Records: tr.Store.Records, Publisher: tr.Pub},
		Heartbeat:   200 * time.Millisecond,
		EventBuffer: o.eventBuffer,
		Presence:    presence,
	})
	r.srv = httptest.NewServer(s)
	t.Cleanup(r.srv.Close)
	return r
}

// response is an API answer.
type response struct {
	status int
	body   map[string]any
	raw    string
}

// do sends method path with body ("" for none) and token ("" for none).
func (r *rig) do(method, path, token, body string) response {
	r.T.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, r.srv.URL+path, rd)
	if err != nil {
		r.T.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := r.srv.Client().Do(req)
	if err != nil {
		r.T.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := response{status: resp.StatusCode, raw: string(raw)}
	if ct := resp.Header.Get("Content-Type"); strings.HasPrefix(ct, "application/json") {
		if err := json.Unmarshal(raw, &out.body); err != nil {
			r.T.Fatalf("%s %s: %d, body %q is not JSON: %v", method, path, resp.StatusCode, raw, err)
		}
	}
	return out
}

func convPath(k events.ConversationKey, rest string) string {
	return fmt.Sprintf("/api/v1/conversations/%d/%d/%d%s", k.AccountUID, k.SessionType, k.TalkerID, rest)
}

// waitConversation waits until the projection knows k.
func (r *rig) waitConversation(k events.ConversationKey) {
	r.T.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := r.proc.Service.Get(k); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.T.Fatalf("conversation %s never showed up", k)
}

// Every route but the description needs credentials; wrong ones get a
// JSON 401 that says so, and change nothing.
func TestEveryRouteNeedsCredentials(t *testing.T) {
	r := newRig(t, options{})
	r.Message(teamtest.Conv, events.DirectionIn, "hi")
	r.waitConversation(teamtest.Conv)
	routes := []struct{ method, path, body string }{
		{"POST", "/api/v1/messages", `{"session_type":1,"talker_id":"1","text":"x"}`},
		{"GET", "/api/v1/messages/abc", ""},
		{"POST", "/api/v1/messages/preview", `{"text":"x"}`},
		{"GET", "/api/v1/conversations", ""},
		{"GET", convPath(teamtest.Conv, ""), ""},
		{"GET", convPath(teamtest.Conv, "/messages"), ""},
		{"POST", convPath(teamtest.Conv, "/assign"), `{"assignee":null}`},
		{"POST", convPath(teamtest.Conv, "/status"), `{"status":"done"}`},
		{"POST", convPath(teamtest.Conv, "/notes"), `{"text":"x"}`},
		{"POST", convPath(teamtest.Conv, "/read"), `{}`},
		{"POST", convPath(teamtest.Conv, "/presence"), `{}`},
		{"GET", "/api/v1/events", ""},
		{"GET", "/api/v1/dead-letters", ""},
		{"POST", "/api/v1/dead-letters/1/replay", ""},
		{"GET", "/api/v1/me", ""},
		{"GET", "/api/v1/members", ""},
		{"GET", "/api/v1/status", ""},
		{"POST", "/api/v1/images", "x"},
	}
	for _, rt := range routes {
		for _, tok := range []string{"", "wrong", serviceToken + "x"} {
			res := r.do(rt.method, rt.path, tok, rt.body)
			if res.status != http.StatusUnauthorized || res.body["code"] != "unauthorized" || res.body["error"] == "" {
				t.Errorf("%s %s with token %q: %d %s, want a JSON 401", rt.method, rt.path, tok, res.status, res.raw)
			}
		}
	}
	if n := len(r.TeamEvents(teamtest.Conv)); n != 0 {
		t.Errorf("%d team events from unauthenticated requests", n)
	}
	if res := r.do("GET", "/api/v1/openapi.json", "", ""); res.status != http.StatusOK {
		t.Errorf("the API description needs no credentials: %d", res.status)
	}
	if res := r.do("GET", "/api/v1/nope", serviceToken, ""); res.status != 404 || res.body["code"] != "not_found" {
		t.Errorf("an unknown route: %d %s, want a JSON 404", res.status, res.raw)
	}
}

// A conversation through the API: listed open and unread, assigned,
// noted, done, then reopened by a new DM; every answer is the state the
// action left.
func TestConversationThroughTheAPI(t *testing.T) {
	r := newRig(t, options{})
	r.Message(teamtest.Conv, events.DirectionIn, "hello")
	r.waitConversation(teamtest.Conv)

	list := r.do("GET", "/api/v1/conversations?status=open", serviceToken, "")
	convs, _ := list.body["conversations"].([]any)
	if list.status != 200 || len(convs) != 1 {
		t.Fatalf("open conversations: %d %s", list.status, list.raw)
	}
	c := convs[0].(map[string]any)
	if c["talker_id"] != fmt.Sprint(teamtest.Talker) || c["account_uid"] != fmt.Sprint(teamtest.UID) || c["unread"] != 1.0 ||
		c["status"] != "open" || c["assignee"] != nil || c["name"] != teamtest.Name {
		t.Fatalf("listed as %v", c)
	}
	if _, ok := c["notes"]; ok {
		t.Errorf("a list shows no notes: %v", c)
	}

	res := r.do("POST", convPath(teamtest.Conv, "/assign"), serviceToken, `{"assignee":"ana"}`)
	if res.status != 200 || res.body["assignee"] != "ana" {
		t.Fatalf("assign: %d %s", res.status, res.raw)
	}
	res = r.do("POST", convPath(teamtest.Conv, "/notes"), serviceToken, `{"text":"VIP, answer first"}`)
	notes, _ := res.body["notes"].([]any)
	if res.status != 201 || len(notes) != 1 || notes[0].(map[string]any)["text"] != "VIP, answer first" {
		t.Fatalf("note: %d %s", res.status, res.raw)
	}
	if by := notes[0].(map[string]any)["by"].(map[string]any); by["service"] != true {
		t.Errorf("the note is by %v, want the service", by)
	}
	res = r.do("POST", convPath(teamtest.Conv, "/read"), serviceToken, ``)
	if res.status != 200 || res.body["unread"] != 0.0 {
		t.Fatalf("read: %d %s", res.status, res.raw)
	}
	res = r.do("POST", convPath(teamtest.Conv, "/status"), serviceToken, `{"status":"done"}`)
	if res.status != 200 || res.body["status"] != "done" {
		t.Fatalf("done: %d %s", res.status, res.raw)
	}
	if l := r.do("GET", "/api/v1/conversations?status=open", serviceToken, ""); len(l.body["conversations"].([]any)) != 0 {
		t.Fatalf("a done conversation is listed open: %s", l.raw)
	}
	r.Message(teamtest.Conv, events.DirectionIn, "one more thing")
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := r.do("GET", convPath(teamtest.Conv, ""), serviceToken, "")
		if got.body["status"] == "open" && got.body["unread"] == 1.0 {
			if n, _ := got.body["notes"].([]any); len(n) != 1 {
				t.Errorf("the notes went: %s", got.raw)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new DM did not reopen it: %s", got.raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
	types := []string{}
	for _, ev := range r.TeamEvents(teamtest.Conv) {
		types = append(types, strings.TrimPrefix(ev.Type, "com.bilibili.team."))
	}
	if got := strings.Join(types, ","); !strings.HasPrefix(got, "assigned,note,read,status") {
		t.Errorf("team events %s, want the audit trail assigned,note,read,status,…", got)
	}
}

// Bad input gets a 4xx JSON error that says what is wrong, and changes
// nothing.
func TestBadInputChangesNothing(t *testing.T) {
	r := newRig(t, options{})
	r.Message(teamtest.Conv, events.DirectionIn, "hello")
	r.waitConversation(teamtest.Conv)
	unknown := events.ConversationKey{AccountUID: teamtest.UID, SessionType: 1, TalkerID: 42}
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"unknown member", "POST", convPath(teamtest.Conv, "/assign"), `{"assignee":"zoe"}`, 400, "no_member"},
		{"assignee missing", "POST", convPath(teamtest.Conv, "/assign"), `{}`, 400, "bad_request"},
		{"me for the service", "POST", convPath(teamtest.Conv, "/assign"), `{"assignee":"me"}`, 400, "bad_request"},
		{"bad snooze", "POST", convPath(teamtest.Conv, "/status"), `{"status":"snoozed","snoozed_until":"soonish"}`, 400, "bad_request"},
		{"snooze without a time", "POST", convPath(teamtest.Conv, "/status"), `{"status":"snoozed"}`, 400, "bad_request"},
		{"unknown status", "POST", convPath(teamtest.Conv, "/status"), `{"status":"archived"}`, 400, "bad_request"},
		{"empty note", "POST", convPath(teamtest.Conv, "/notes"), `{"text":"   "}`, 400, "bad_request"},
		{"unknown field", "POST", convPath(teamtest.Conv, "/notes"), `{"text":"x","pin":true}`, 400, "bad_request"},
		{"malformed JSON", "POST", convPath(teamtest.Conv, "/notes"), `{"text":`, 400, "bad_request"},
		{"unknown conversation", "POST", convPath(unknown, "/notes"), `{"text":"x"}`, 404, "no_conversation"},
		{"unknown conversation read", "GET", convPath(unknown, ""), ``, 404, "no_conversation"},
		{"bad session type", "GET", "/api/v1/conversations/425503913/7/1", ``, 400, "bad_request"},
		{"talker not a number", "GET", "/api/v1/conversations/425503913/1/abc", ``, 400, "bad_request"},
		{"bad list status", "GET", "/api/v1/conversations?status=archived", ``, 400, "bad_request"},
		{"bad cursor", "GET", "/api/v1/conversations?cursor=xyz", ``, 400, "bad_request"},
		{"bad limit", "GET", "/api/v1/conversations?limit=5000", ``, 400, "bad_request"},
		{"me for the service in a list", "GET", "/api/v1/conversations?assignee=me", ``, 400, "bad_request"},
		{"bad before", "GET", convPath(teamtest.Conv, "/messages?before=x"), ``, 400, "bad_request"},
		{"unknown command", "GET", "/api/v1/messages/no-such-command", ``, 404, "no_command"},
		{"unknown dead letter", "POST", "/api/v1/dead-letters/999999/replay", ``, 404, "no_dead_letter"},
		{"dead letter id not a number", "POST", "/api/v1/dead-letters/abc/replay", ``, 404, "no_dead_letter"},
		{"bad event types", "GET", "/api/v1/events?types=com.example.nope", ``, 400, "bad_request"},
		{"bad Last-Event-ID", "GET", "/api/v1/events?last_event_id=yesterday", ``, 400, "bad_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := r.do(tc.method, tc.path, serviceToken, tc.body)
			if res.status != tc.status || res.body["code"] != tc.code || res.body["error"] == "" {
				t.Errorf("%d %s, want %d with code %s and a message", res.status, res.raw, tc.status, tc.code)
			}
		})
	}
	if n := len(r.TeamEvents(teamtest.Conv)); n != 0 {
		t.Errorf("%d team events after refused requests", n)
	}
	got := r.do("GET", convPath(teamtest.Conv, ""), serviceToken, "")
	if got.body["assignee"] != nil || got.body["status"] != "open" || len(got.body["notes"].([]any)) != 0 {
		t.Errorf("the conversation changed: %s", got.raw)
	}
}

// Lists page by cursor, most recent first, each conversation once.
func TestListPages(t *testing.T) {
	r := newRig(t, options{})
	var keys []events.ConversationKey
	for i := range 7 {
		k := events.ConversationKey{AccountUID: teamtest.UID, SessionType: 1, TalkerID: uint64(1000 + i)}
		keys = append(keys, k)
		r.Message(k, events.DirectionIn, fmt.Sprint("question ", i))
	}
	r.waitConversation(keys[6])
	var seen []string
	cursor := ""
	for range 10 {
		res := r.do("GET", "/api/v1/conversations?limit=3&cursor="+cursor, serviceToken, "")
		if res.status != 200 {
			t.Fatalf("page: %d %s", res.status, res.raw)
		}
		for _, c := range res.body["conversations"].([]any) {
			seen = append(seen, c.(map[string]any)["talker_id"].(string))
		}
		cursor, _ = res.body["next_cursor"].(string)
		if cursor == "" {
			break
		}
	}
	want := []string{"1006", "1005", "1004", "1003", "1002", "1001", "1000"}
	if strings.Join(seen, ",") != strings.Join(want, ",") {
		t.Errorf("paged %v, want %v", seen, want)
	}
	res := r.do("GET", "/api/v1/conversations?q=question%203", serviceToken, "")
	if l := res.body["conversations"].([]any); len(l) != 1 || l[0].(map[string]any)["talker_id"] != "1003" {
		t.Errorf("q=question 3: %s", res.raw)
	}
}

// The history of a conversation pages back past what the bridge has,
// into Bilibili's past.
func TestMessagesPageBack(t *testing.T) {
	var asked []uint64
	backfill := func(_ context.Context, k events.ConversationKey, before uint64, n int) ([]events.MessageData, error) {
		asked = append(asked, before)
		var out []events.MessageData
		for i := n; i >= 1; i-- {
			seqno := before - uint64(i)
			out = append(out, events.MessageData{AccountUID: k.AccountUID, Message: events.Message{MsgKey: 9_000_000 + seqno, Seqno: seqno, Text: fmt.Sprint("old ", seqno)}})
		}
		return out, nil
	}
	r := newRig(t, options{backfill: backfill})
	for i := range 3 {
		r.Message(teamtest.Conv, events.DirectionIn, fmt.Sprint("new ", i))
	}
	r.waitConversation(teamtest.Conv)
	texts := func(res response) []string {
		var out []string
		for _, m := range res.body["messages"].([]any) {
			out = append(out, m.(map[string]any)["message"].(map[string]any)["text"].(string))
		}
		return out
	}
	res := r.do("GET", convPath(teamtest.Conv, "/messages?limit=2"), serviceToken, "")
	if got := texts(res); res.status != 200 || strings.Join(got, ",") != "new 1,new 2" || res.body["next_cursor"] == "" {
		t.Fatalf("newest page: %d %v %s", res.status, got, res.raw)
	}
	res = r.do("GET", convPath(teamtest.Conv, "/messages?limit=2&before="+res.body["next_cursor"].(string)), serviceToken, "")
	got := texts(res)
	if res.status != 200 || len(got) != 2 || !strings.HasPrefix(got[0], "old ") || got[1] != "new 0" || len(asked) != 1 {
		t.Fatalf("second page: %d %v (Bilibili asked %v)", res.status, got, asked)
	}
}

// A command's state and outcome by its id.
func TestCommandState(t *testing.T) {
	r := newRig(t, options{})
	res := r.do("POST", "/api/v1/messages", serviceToken, `{"session_type":1,"talker_id":"293793435","text":"hi","idempotency_key":"order-7"}`)
	if res.status != 202 || res.body["command_id"] != "order-7" {
		t.Fatalf("queue: %d %s", res.status, res.raw)
	}
	res = r.do("GET", "/api/v1/messages/order-7", serviceToken, "")
	if res.status != 200 || res.body["state"] != "queued" || res.body["talker_id"] != "293793435" || res.body["account_uid"] != "425503913" {
		t.Fatalf("state: %d %s", res.status, res.raw)
	}
}

// A member's token acts as the member: "me" is them, what they do is
// theirs in the audit trail; once revoked, the same token is refused at
// the next request and changes nothing.
func TestMemberToken(t *testing.T) {
	r := newRig(t, options{})
	r.Message(teamtest.Conv, events.DirectionIn, "hello")
	r.waitConversation(teamtest.Conv)

	if res := r.do("GET", "/api/v1/me", r.anaToken, ""); res.status != 200 || res.body["member"] != "ana" || res.body["role"] != "agent" {
		t.Fatalf("me: %d %s", res.status, res.raw)
	}
	if res := r.do("POST", convPath(teamtest.Conv, "/assign"), r.anaToken, `{"assignee":"me"}`); res.status != 200 || res.body["assignee"] != "ana" {
		t.Fatalf("assign me: %d %s", res.status, res.raw)
	}
	mine := r.do("GET", "/api/v1/conversations?assignee=me", r.anaToken, "")
	if l, _ := mine.body["conversations"].([]any); len(l) != 1 {
		t.Fatalf("assignee=me: %s", mine.raw)
	}
	res := r.do("POST", convPath(teamtest.Conv, "/notes"), r.anaToken, `{"text":"called them back"}`)
	if res.status != 201 {
		t.Fatalf("note: %d %s", res.status, res.raw)
	}
	evs := r.TeamEvents(teamtest.Conv)
	var note events.NoteData
	if len(evs) != 2 || evs[1].DecodeData(&note) != nil || note.By.Member != "ana" || note.Note.By.Member != "ana" {
		t.Fatalf("the note's author in the audit trail: %+v", note)
	}

	if err := r.Members.RevokeTokens(context.Background(), "ana"); err != nil {
		t.Fatal(err)
	}
	res = r.do("POST", convPath(teamtest.Conv, "/status"), r.anaToken, `{"status":"done"}`)
	if res.status != 401 || res.body["code"] != "unauthorized" {
		t.Fatalf("a revoked token: %d %s, want 401", res.status, res.raw)
	}
	if got := r.do("GET", convPath(teamtest.Conv, ""), serviceToken, ""); got.body["status"] != "open" || len(r.TeamEvents(teamtest.Conv)) != 2 {
		t.Errorf("a revoked token changed the conversation: %s", got.raw)
	}
	// A send by a member says who sent it.
	res = r.do("POST", "/api/v1/messages", r.AddMember("bo", team.RoleAdmin), `{"session_type":1,"talker_id":"293793435","text":"hi"}`)
	if res.status != 202 {
		t.Fatalf("send: %d %s", res.status, res.raw)
	}
	msg, err := r.Store.Outbox.GetLastMsgForSubject(context.Background(), "bili.425503913.send.1.293793435")
	if err != nil || !strings.Contains(string(msg.Data), `"origin":{"platform":"api","user":"bo"}`) {
		t.Errorf("the command does not name its sender: %v %s", err, msg.Data)
	}
}

// The preview shows the parts a long text is sent as.
func TestMessagePreview(t *testing.T) {
	r := newRig(t, options{})
	long := strings.Repeat("好", 480) + "\n" + strings.Repeat("多", 100)
	body, _ := json.Marshal(map[string]string{"text": long})
	res := r.do("POST", "/api/v1/messages/preview", serviceToken, string(body))
	parts, _ := res.body["parts"].([]any)
	if res.status != 200 || len(parts) != 2 || parts[0] != strings.Repeat("好", 480) || parts[1] != strings.Repeat("多", 100) {
		t.Fatalf("preview: %d %s", res.status, res.raw)
	}
}

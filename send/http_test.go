package send_test

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

	"github.com/google/uuid"

	"github.com/bilibridge/bilibridge/api"
	"github.com/bilibridge/bilibridge/bilibili"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/send"
)

const apiToken = "s3cret-token"

// messagesPath is POST /api/v1/messages.
const messagesPath = "/api/v1/messages"

// apiServer is the bridge's API (package api) over the rig's outbox.
func (r *sendRig) apiServer(token string, wait time.Duration) *httptest.Server {
	r.t.Helper()
	ts := httptest.NewServer(api.New(api.Config{
		Token: token,
		Outbox: &send.Outbox{NC: r.conn.NC, JS: r.conn.JS, Records: r.store.Records,
			Subjects: r.subjects, Accounts: []int64{sndUID}},
		SendWait: wait,
	}))
	r.t.Cleanup(ts.Close)
	return ts
}

type apiResponse struct {
	status int
	body   map[string]any
	header http.Header
}

func post(t *testing.T, ts *httptest.Server, query, auth, body string) apiResponse {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, ts.URL+messagesPath+query, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := apiResponse{status: resp.StatusCode, header: resp.Header}
	if len(raw) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &out.body); err != nil {
			t.Fatalf("status %d, body %q is not JSON: %v", resp.StatusCode, raw, err)
		}
	}
	return out
}

const bearer = "Bearer " + apiToken

func TestAPIAuth(t *testing.T) {
	r := newSendRig(t, rigOptions{})
	ts := r.apiServer(apiToken, time.Second)
	body := `{"session_type":1,"talker_id":"293793435","text":"hi"}`
	for _, auth := range []string{"", "Bearer", "Bearer wrong", "Bearer " + apiToken + "x", "Basic " + apiToken, apiToken} {
		res := post(t, ts, "", auth, body)
		if res.status != http.StatusUnauthorized || res.body["error"] == "" || res.header.Get("WWW-Authenticate") == "" {
			t.Errorf("Authorization %q: %d %v, want 401 with a JSON error", auth, res.status, res.body)
		}
	}
	if info, _ := r.store.Outbox.Info(context.Background()); info.State.Msgs != 0 {
		t.Errorf("%d commands queued by unauthorized requests", info.State.Msgs)
	}
}

// Without API_TOKEN (and without members) nothing is let in, and the
// answer says how to let someone in.
func TestAPIClosedWithoutCredentials(t *testing.T) {
	r := newSendRig(t, rigOptions{})
	ts := r.apiServer("", time.Second)
	for _, auth := range []string{"", "Bearer ", "Bearer x"} {
		res := post(t, ts, "", auth, `{"session_type":1,"talker_id":"1","text":"hi"}`)
		if res.status != http.StatusUnauthorized {
			t.Errorf("Authorization %q: %d, want 401 while API_TOKEN is empty", auth, res.status)
		}
	}
	if res := post(t, ts, "", "", `{}`); !strings.Contains(fmt.Sprint(res.body["error"]), "API_TOKEN") {
		t.Errorf("the answer does not say how to configure access: %v", res.body)
	}
	r.outboxEmpty()
}

func TestAPIValidation(t *testing.T) {
	r := newSendRig(t, rigOptions{})
	ts := r.apiServer(apiToken, time.Second)
	long := strings.Repeat("好", send.MaxSendTextRunes+1)
	for _, tc := range []struct {
		name, query, body, want string
	}{
		{"not json", "", `{"session_type":1,`, "JSON"},
		{"two values", "", `{"session_type":1,"talker_id":"1","text":"a"} {}`, "more than one"},
		{"unknown field", "", `{"session_type":1,"talker_id":"1","txt":"a"}`, "txt"},
		{"no session type", "", `{"talker_id":"1","text":"a"}`, "session_type"},
		{"session type 3", "", `{"session_type":3,"talker_id":"1","text":"a"}`, "session_type"},
		{"session type string", "", `{"session_type":"1","talker_id":"1","text":"a"}`, "JSON"},
		{"no talker", "", `{"session_type":1,"text":"a"}`, "talker_id"},
		{"talker 0", "", `{"session_type":1,"talker_id":"0","text":"a"}`, "talker_id"},
		{"talker negative", "", `{"session_type":1,"talker_id":-5,"text":"a"}`, "talker_id"},
		{"talker float", "", `{"session_type":1,"talker_id":1.5,"text":"a"}`, "talker_id"},
		{"talker word", "", `{"session_type":1,"talker_id":"abc","text":"a"}`, "talker_id"},
		{"talker too big", "", `{"session_type":1,"talker_id":"18446744073709551616","text":"a"}`, "talker_id"},
		{"neither", "", `{"session_type":1,"talker_id":"1"}`, "text or image_url"},
		{"both", "", `{"session_type":1,"talker_id":"1","text":"a","image_url":"https://x.test/a.png"}`, "not both"},
		{"blank text", "", `{"session_type":1,"talker_id":"1","text":"  \n"}`, "empty"},
		{"text too long", "", `{"session_type":1,"talker_id":"1","text":"` + long + `"}`, "longer than 10000"},
		{"image ftp", "", `{"session_type":1,"talker_id":"1","image_url":"ftp://x.test/a.png"}`, "http or https"},
		{"image relative", "", `{"session_type":1,"talker_id":"1","image_url":"/a.png"}`, "http or https"},
		{"bad key", "", `{"session_type":1,"talker_id":"1","text":"a","idempotency_key":"has space"}`, "idempotency_key"},
		{"long key", "", `{"session_type":1,"talker_id":"1","text":"a","idempotency_key":"` + strings.Repeat("k", 129) + `"}`, "idempotency_key"},
		{"bad wait", "?wait=maybe", `{"session_type":1,"talker_id":"1","text":"a"}`, "wait"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := post(t, ts, tc.query, bearer, tc.body)
			msg, _ := res.body["error"].(string)
			if res.status != http.StatusBadRequest || !strings.Contains(msg, tc.want) {
				t.Errorf("%d %v, want 400 mentioning %q", res.status, res.body, tc.want)
			}
		})
	}
	if info, _ := r.store.Outbox.Info(context.Background()); info.State.Msgs != 0 {
		t.Errorf("%d commands queued by invalid requests", info.State.Msgs)
	}
}

func TestAPIBodyLimit(t *testing.T) {
	r := newSendRig(t, rigOptions{})
	ts := r.apiServer(apiToken, time.Second)
	big := `{"session_type":1,"talker_id":"1","text":"` + strings.Repeat("a", api.MaxBodyBytes) + `"}`
	if res := post(t, ts, "", bearer, big); res.status != http.StatusRequestEntityTooLarge || res.body["error"] == nil {
		t.Errorf("%d %v, want 413", res.status, res.body)
	}
	// Without a Content-Length the reader stops at the limit.
	pr, pw := io.Pipe()
	go func() {
		_, _ = io.WriteString(pw, big)
		_ = pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPost, ts.URL+messagesPath, pr)
	req.Header.Set("Authorization", bearer)
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked: %d, want 413", resp.StatusCode)
	}
}

func TestAPIQueues(t *testing.T) {
	r := newSendRig(t, rigOptions{})
	ts := r.apiServer(apiToken, time.Second)
	// No sender yet: the command waits in the outbox.
	res := post(t, ts, "", bearer, `{"session_type":1,"talker_id":293793435,"text":"queued hello"}`)
	id, _ := res.body["command_id"].(string)
	if res.status != http.StatusAccepted || id == "" {
		t.Fatalf("%d %v, want 202 with a command_id", res.status, res.body)
	}
	if u, err := uuid.Parse(id); err != nil || u.Version() != 7 {
		t.Errorf("command_id %q is not a UUIDv7", id)
	}
	// ?wait=true that runs out of time answers 202 too.
	res = post(t, ts, "?wait=true", bearer, `{"session_type":1,"talker_id":"293793435","text":"second","idempotency_key":"slow-key"}`)
	if res.status != http.StatusAccepted || res.body["command_id"] != "slow-key" {
		t.Fatalf("%d %v, want 202 with the key after the wait ran out", res.status, res.body)
	}

	r.start(r.senderConfig())
	res0 := r.result(id)
	if res0.event.Type != events.TypeSendSucceeded || res0.data.Origin == nil || res0.data.Origin.Platform != "api" {
		t.Fatalf("%s %+v", res0.event.Type, res0.data)
	}
	r.result("slow-key")
	if got := r.sentTexts(); strings.Join(got, "|") != "queued hello|second" {
		t.Errorf("sent %q", got)
	}
}

func TestAPIWaitReturnsMsgKey(t *testing.T) {
	r := newSendRig(t, rigOptions{})
	r.start(r.senderConfig())
	ts := r.apiServer(apiToken, 15*time.Second)
	res := post(t, ts, "?wait=true", bearer, `{"session_type":1,"talker_id":"293793435","text":"hello, wait for me"}`)
	if res.status != http.StatusOK {
		t.Fatalf("%d %v, want 200", res.status, res.body)
	}
	sent := r.fake.Sent(sndUID)
	if len(sent) != 1 || res.body["msg_key"] != fmt.Sprint(sent[0].MsgKey) || res.body["command_id"] == "" {
		t.Fatalf("body %v, sent %+v", res.body, sent)
	}
}

func TestAPIStrangerLimitIs422(t *testing.T) {
	r := newSendRig(t, rigOptions{})
	r.start(r.senderConfig())
	ts := r.apiServer(apiToken, 15*time.Second)
	body := func(text string) string {
		return fmt.Sprintf(`{"session_type":1,"talker_id":"%d","text":%q}`, sndStranger, text)
	}
	if res := post(t, ts, "?wait=true", bearer, body("hello stranger")); res.status != http.StatusOK {
		t.Fatalf("first message: %d %v", res.status, res.body)
	}
	res := post(t, ts, "?wait=true", bearer, body("hello again"))
	want := bilibili.Reason(&bilibili.APIError{Code: bilibili.CodeStrangerLimit})
	if res.status != http.StatusUnprocessableEntity || res.body["error_code"] != float64(bilibili.CodeStrangerLimit) ||
		res.body["error"] != want || res.body["command_id"] == "" {
		t.Fatalf("%d %v, want 422 with error_code 21047", res.status, res.body)
	}
}

func TestAPIIdempotencyKey(t *testing.T) {
	r := newSendRig(t, rigOptions{})
	r.start(r.senderConfig())
	ts := r.apiServer(apiToken, 15*time.Second)
	body := `{"session_type":1,"talker_id":"293793435","text":"exactly once","idempotency_key":"order-42"}`
	first := post(t, ts, "?wait=true", bearer, body)
	if first.status != http.StatusOK || first.body["command_id"] != "order-42" {
		t.Fatalf("%d %v", first.status, first.body)
	}
	for _, q := range []string{"?wait=true", "", "?wait=1"} {
		again := post(t, ts, q, bearer, body)
		if again.body["command_id"] != "order-42" {
			t.Errorf("%s: %d %v, want the same command_id", q, again.status, again.body)
		}
		if q != "" && (again.status != http.StatusOK || again.body["msg_key"] != first.body["msg_key"]) {
			t.Errorf("%s: %d %v, want the first result %v", q, again.status, again.body, first.body)
		}
	}
	r.outboxEmpty()
	if n := len(r.fake.Sent(sndUID)); n != 1 {
		t.Fatalf("%d messages sent for one idempotency key, want 1", n)
	}
}

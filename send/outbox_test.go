package send_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bilibridge/bilibridge/api"
	"github.com/bilibridge/bilibridge/send"
)

func TestAPIPicksTheAccount(t *testing.T) {
	r := newSendRig(t, rigOptions{})
	const second int64 = 3546
	outbox := &send.Outbox{NC: r.conn.NC, JS: r.conn.JS, Records: r.store.Records, Subjects: r.subjects, Accounts: []int64{sndUID, second}}
	srv := httptest.NewServer(api.New(api.Config{Token: apiToken, Outbox: outbox}))
	t.Cleanup(srv.Close)
	post := func(body string) int { return post(t, srv, "", "Bearer "+apiToken, body).status }
	if code := post(`{"session_type":1,"talker_id":"1","text":"x"}`); code != 400 {
		t.Errorf("no account_uid with two accounts: %d, want 400", code)
	}
	if code := post(`{"session_type":1,"talker_id":"1","text":"x","account_uid":"999"}`); code != 400 {
		t.Errorf("unknown account: %d, want 400", code)
	}
	if code := post(`{"session_type":1,"talker_id":"1","text":"x","account_uid":"3546"}`); code != 202 {
		t.Fatalf("second account: %d, want 202", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	msg, err := r.store.Outbox.GetLastMsgForSubject(ctx, "bili.3546.send.1.1")
	if err != nil || !strings.Contains(string(msg.Data), `"text":"x"`) {
		t.Errorf("command not on the second account's subject: %v", err)
	}
}

func TestAPIRefusesHugeInputsCleanly(t *testing.T) {
	r := newSendRig(t, rigOptions{})
	srv := httptest.NewServer(api.New(api.Config{Token: apiToken, Outbox: &send.Outbox{
		NC: r.conn.NC, JS: r.conn.JS, Records: r.store.Records, Subjects: r.subjects, Accounts: []int64{sndUID}}}))
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		name string
		body string
		want int
	}{
		{"100,000-character text", `{"session_type":1,"talker_id":"1","text":"` + strings.Repeat("a", 100_000) + `"}`, http.StatusRequestEntityTooLarge},
		{"10 MB body", strings.Repeat(" ", 10<<20), http.StatusRequestEntityTooLarge},
		{"just over the text limit", `{"session_type":1,"talker_id":"1","text":"` + strings.Repeat("a", send.MaxSendTextRunes+1) + `"}`, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, srv.URL+messagesPath, strings.NewReader(tc.body))
			req.Header.Set("Authorization", "Bearer "+apiToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
	info, err := r.store.Outbox.Info(context.Background())
	if err != nil || info.State.Msgs != 0 {
		t.Errorf("something was queued: %v %v", info.State.Msgs, err)
	}
}

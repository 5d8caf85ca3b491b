package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bilibridge/bilibridge/api"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/sinks"
	"github.com/bilibridge/bilibridge/team/teamtest"
)

// `bilibridge dead list` and `replay` through a bridge's API: the list
// shows the dead letter, a replay puts its event on the sink's replay
// subject, and a wrong token or id is one clear line.
func TestDeadCommand(t *testing.T) {
	r := teamtest.New(t)
	proc := r.Process(teamtest.Options{})
	dl := &sinks.DeadLetters{Stream: r.Store.Events, Records: r.Store.Records, Publisher: r.Pub}
	srv := httptest.NewServer(api.New(api.Config{Token: "dead-letters-token", Team: proc.Service, Projection: proc.Projection, Stream: r.Store.Events, DeadLetters: dl}))
	t.Cleanup(srv.Close)
	clearEnv(t)
	t.Setenv("HTTP_ADDR", strings.TrimPrefix(srv.URL, "http://"))
	t.Setenv("API_TOKEN", "dead-letters-token")

	msg, _ := events.New(teamtest.UID, events.TypeMessage, events.MessageID(teamtest.UID, 7), teamtest.Conv.Subject(), time.Now(), events.MessageData{AccountUID: teamtest.UID})
	dead, _ := events.New(teamtest.UID, events.TypeDeadLetter, msg.ID+"-dead-hook", msg.Subject, time.Now(),
		events.DeadLetterData{Sink: "hook", Reason: "HTTP 400: bad payload", Attempts: 1, Event: msg})
	if err := r.Pub.Publish(context.Background(), events.Subjects{}.Dead(teamtest.UID, "hook"), dead); err != nil {
		t.Fatal(err)
	}

	do := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(context.Background(), append([]string{"dead"}, args...), &out, &bytes.Buffer{})
		return out.String(), err
	}
	out, err := do("list")
	if err != nil || !strings.Contains(out, msg.ID) || !strings.Contains(out, "hook") || !strings.Contains(out, "HTTP 400: bad payload") {
		t.Fatalf("dead list: %v\n%s", err, out)
	}
	id := strings.Fields(strings.Split(out, "\n")[1])[0]
	out, err = do("replay", id)
	if err != nil || !strings.Contains(out, "replayed "+id) {
		t.Fatalf("dead replay: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := r.Store.Events.GetLastMsgForSubject(ctx, events.Subjects{}.Replay(teamtest.UID, "hook"))
	if err != nil || !strings.Contains(string(m.Data), msg.ID) {
		t.Fatalf("the replay is not on the sink's replay subject: %v", err)
	}
	out, _ = do("list")
	// ID, date, time, sink, event, replays, reason…
	if f := strings.Fields(strings.Split(out, "\n")[1]); len(f) < 6 || f[5] != "1" {
		t.Errorf("the list does not count the replay:\n%s", out)
	}
	for _, tc := range []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"replay", "999999"}, "dead-letters-token", "no dead letter has this id"},
		{[]string{"replay"}, "dead-letters-token", "give dead letter ids"},
		{[]string{"list"}, "a-wrong-token-123456", "wrong or revoked token"},
		{[]string{"frobnicate"}, "dead-letters-token", "unknown command"},
	} {
		t.Setenv("API_TOKEN", tc.env)
		_, err := do(tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("dead %v: %v, want one line with %q", tc.args, err, tc.want)
		}
	}
}

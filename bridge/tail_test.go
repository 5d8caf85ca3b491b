package bridge_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bilibridge/bilibridge/bridge"
	"github.com/bilibridge/bilibridge/bus/bustest"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/testlog"
)

func TestTailPrintsOneLinePerEvent(t *testing.T) {
	conn := bustest.StartServer(t).Connect(t)
	var out testlog.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- bridge.Tail(ctx, conn.NC, "bili.>", &out) }()
	ev, err := events.New(uid, events.TypeMessage, "1-2", "1/293793435", time.Now(), events.MessageData{
		AccountUID:   uid,
		Conversation: events.Conversation{SessionType: 1, TalkerID: uint64(friend), Kind: "user", Name: "friend"},
		Message:      events.Message{Direction: "in", SenderName: "friend", Text: "hello\nthere"},
	})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := ev.Marshal()
	// Publish until Tail's subscription has reached the server and printed.
	bustest.Eventually(t, "the first line", func() bool {
		conn.NC.Publish("bili.425503913.msg.1.293793435", b)
		return strings.Count(out.String(), "\n") >= 1
	})
	conn.NC.Publish("bili.425503913.msg.1.293793435", []byte("not json"))
	bustest.Eventually(t, "the error line", func() bool {
		return strings.Contains(out.String(), "not json") || strings.Contains(out.String(), "malformed")
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if !strings.Contains(lines[0], "friend: hello there") || !strings.Contains(lines[len(lines)-1], "malformed") {
		t.Errorf("tail printed %q", lines)
	}
}

// An event from well before the tail started is marked as backlog, with
// its date; a live one is not.
func TestTailMarksTheBacklog(t *testing.T) {
	conn := bustest.StartServer(t).Connect(t)
	var out testlog.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- bridge.Tail(ctx, conn.NC, "bili.>", &out) }()
	t.Cleanup(func() { cancel(); <-done })
	old := time.Date(2026, 3, 14, 9, 30, 0, 0, time.Local)
	for i, at := range []time.Time{old, time.Now()} {
		ev, err := events.New(uid, events.TypeMessage, fmt.Sprint("1-", i), "1/293793435", at, events.MessageData{
			AccountUID: uid, Conversation: events.Conversation{SessionType: 1, TalkerID: uint64(friend), Name: "friend"},
			Message: events.Message{Direction: "in", SenderName: "friend", Text: fmt.Sprint("message ", i)},
		})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := ev.Marshal()
		want := fmt.Sprint("message ", i)
		bustest.Eventually(t, want, func() bool {
			conn.NC.Publish("bili.425503913.msg.1.293793435", b)
			return strings.Contains(out.String(), want)
		})
	}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		backlog := strings.HasPrefix(line, "[backlog, Mar 14] ")
		if strings.Contains(line, "message 0") != backlog {
			t.Errorf("line %q", line)
		}
	}
}

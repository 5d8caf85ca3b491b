package bridge

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilibridge/bilibridge/events"
)

// Tail prints one readable line per live event on subjects matching
// filter, until ctx ends. An event older than the tail by more than a
// minute (a backlog: unread messages at a first start, or what came in
// while the bridge was down) says so, with its date.
func Tail(ctx context.Context, nc *nats.Conn, filter string, w io.Writer) error {
	start := time.Now()
	ch := make(chan *nats.Msg, 256)
	sub, err := nc.ChanSubscribe(filter, ch)
	if err != nil {
		return fmt.Errorf("subscribing to %s: %w", filter, err)
	}
	defer sub.Unsubscribe()
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-ch:
			if cmd, ok := sendCommand(m); ok {
				fmt.Fprintln(w, cmd)
				continue
			}
			ev, err := events.Parse(m.Data)
			if err != nil {
				fmt.Fprintf(w, "%s: %v\n", m.Subject, err)
				continue
			}
			line := events.Line(ev)
			if ev.Time.Before(start.Add(-time.Minute)) {
				line = "[backlog, " + ev.Time.Local().Format("Jan 2") + "] " + line
			}
			fmt.Fprintln(w, line)
		}
	}
}

// sendCommand renders a send command (on the outbox, not a CloudEvent) as
// a line: the reply on its way.
func sendCommand(m *nats.Msg) (string, bool) {
	tok := strings.Split(m.Subject, ".")
	if len(tok) != 5 || tok[2] != "send" {
		return "", false
	}
	var c events.SendCommand
	if json.Unmarshal(m.Data, &c) != nil || c.CommandID == "" {
		return "", false
	}
	what := c.Text
	if what == "" {
		what = "[image] " + c.ImageURL
	}
	return fmt.Sprintf("%s ⇢ [%s/%s] queued %s: %s", time.Now().Format("15:04:05"), tok[3], tok[4], c.CommandID, oneLine(what)), true
}

// oneLine keeps a command's text to one short line.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 120 {
		s = string(r[:119]) + "…"
	}
	return s
}

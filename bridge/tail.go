package bridge

import (
	"context"
	"fmt"
	"io"

	"github.com/nats-io/nats.go"

	"github.com/bilibridge/bilibridge/events"
)

// Tail prints one readable line per live event on subjects matching
// filter, until ctx ends.
func Tail(ctx context.Context, nc *nats.Conn, filter string, w io.Writer) error {
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
			ev, err := events.Parse(m.Data)
			if err != nil {
				fmt.Fprintf(w, "%s: %v\n", m.Subject, err)
				continue
			}
			fmt.Fprintln(w, events.Line(ev))
		}
	}
}

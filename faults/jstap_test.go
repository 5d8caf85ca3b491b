package faults_test

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// jsTap listens in on a JetStream consumer's acks from the outside:
// every ack, nak or in-progress a puller sends back goes to a $JS.ACK
// subject that names the stream sequence and how often the message was
// handed out, and core NATS delivers a copy to any subscriber. It
// explains a failure after the fact: when an event was handed out
// again, and what each puller did with it.
//
// It does not tap the deliveries themselves: a subscription to _INBOX.>
// would be interest in every pull request's inbox, and the server would
// keep serving a dead process's pull requests to it.
type jsTap struct {
	consumerPrefix string

	mu      sync.Mutex
	entries []tapEntry
}

// tapEntry is one step of one event's life on the consumer.
type tapEntry struct {
	at        time.Time
	seq       uint64
	delivered int    // the delivery count of the message it concerns
	what      string // "+ACK", "-NAK", "+WPI", "+TERM"
}

// newJSTap taps the consumers whose names start with consumerPrefix.
func newJSTap(t *testing.T, nc *nats.Conn, consumerPrefix string) *jsTap {
	t.Helper()
	tap := &jsTap{consumerPrefix: consumerPrefix}
	acks, err := nc.Subscribe("$JS.ACK.>", func(m *nats.Msg) {
		seq, delivered, ok := tap.parseAck(m.Subject)
		if !ok {
			return
		}
		what := string(m.Data)
		if what == "" {
			what = "+ACK"
		}
		if i := strings.IndexByte(what, ' '); i > 0 {
			what = what[:i] // -NAK {"delay":…}
		}
		tap.mu.Lock()
		tap.entries = append(tap.entries, tapEntry{at: time.Now(), seq: seq, delivered: delivered, what: what})
		tap.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = acks.Unsubscribe() })
	return tap
}

// parseAck reads a $JS.ACK subject of a tapped consumer: the stream
// sequence and the delivery count. Both subject layouts are read:
// $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>
// and the one with domain and account hash before the stream.
func (tap *jsTap) parseAck(subject string) (seq uint64, delivered int, ok bool) {
	tok := strings.Split(subject, ".")
	if len(tok) < 9 || tok[0] != "$JS" || tok[1] != "ACK" {
		return 0, 0, false
	}
	if len(tok) > 9 {
		tok = tok[2:] // drop domain and account hash
	}
	if !strings.HasPrefix(tok[3], tap.consumerPrefix) {
		return 0, 0, false
	}
	d, err1 := strconv.Atoi(tok[4])
	s, err2 := strconv.ParseUint(tok[5], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return s, d, true
}

// history renders what was done on the consumer with stream sequence
// seq, one line per step, with clock rendering each moment; in-progress
// pings are summed up.
func (tap *jsTap) history(seq uint64, clock func(time.Time) string) string {
	tap.mu.Lock()
	defer tap.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "      stream sequence %d on the sink's consumer:", seq)
	wpi := 0
	for _, e := range tap.entries {
		if e.seq != seq {
			continue
		}
		if e.what == "+WPI" {
			wpi++
			continue
		}
		fmt.Fprintf(&b, "\n        %s  %s of hand-out %d (after %d in-progress pings)", clock(e.at), e.what, e.delivered, wpi)
		wpi = 0
	}
	if wpi > 0 {
		fmt.Fprintf(&b, "\n        then %d in-progress pings", wpi)
	}
	return b.String()
}

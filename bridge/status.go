package bridge

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/sinks"
)

// Status is what a running bridge process knows of itself: GET
// /api/v1/status, `bilibridge status`, the status page.
type Status struct {
	Accounts []AccountStatus    `json:"accounts"`
	Sinks    []sinks.SinkStatus `json:"sinks"`
	Sender   SenderStatus       `json:"sender"`
}

// AccountStatus is one Bilibili account.
type AccountStatus struct {
	UID        int64  `json:"uid,string"`
	Name       string `json:"name"`
	LoginValid bool   `json:"login_valid"`
	// Polling is true in the process that holds the account's lease.
	Polling      bool       `json:"polling"`
	LastGoodPoll *time.Time `json:"last_good_poll,omitempty"`
	LastError    string     `json:"last_error,omitempty"`
}

// SenderStatus is the way back to Bilibili.
type SenderStatus struct {
	// Queued is how many send commands wait in the outbox.
	Queued uint64 `json:"queued"`
	// Last is the newest send outcome this process has seen.
	Last *SendOutcome `json:"last,omitempty"`
}

// SendOutcome is a send command's result.
type SendOutcome struct {
	Time      time.Time `json:"time"`
	CommandID string    `json:"command_id"`
	Sent      bool      `json:"sent"`
	Error     string    `json:"error,omitempty"`
}

// Status reports the accounts, sinks and sender of this process.
func (b *Bridge) Status(ctx context.Context) Status {
	var st Status
	for _, a := range b.Accounts {
		ps := a.Poller.Status()
		as := AccountStatus{UID: a.UID, Name: a.Name, LoginValid: ps.LoginValid, Polling: ps.Leader, LastError: ps.LastError}
		if !ps.LastGoodPoll.IsZero() {
			t := ps.LastGoodPoll
			as.LastGoodPoll = &t
		}
		st.Accounts = append(st.Accounts, as)
	}
	if b.rt != nil {
		st.Sinks = b.rt.Status()
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if info, err := b.Store.Outbox.Info(ctx); err == nil {
		st.Sender.Queued = info.State.Msgs
	}
	b.mu.Lock()
	if b.lastSend != nil {
		last := *b.lastSend
		st.Sender.Last = &last
	}
	b.mu.Unlock()
	return st
}

// SummaryEvery is how often the bridge logs what it did.
const SummaryEvery = 10 * time.Minute

// summarize follows what the team sees happen (the projection's events)
// and logs every `every` what happened since the last time: messages in,
// sends, and per sink deliveries, dead letters and backlog. It also keeps
// the last send outcome for Status.
func (b *Bridge) summarize(ctx context.Context, every time.Duration, log *slog.Logger) error {
	live, stop := b.Projection.Subscribe(4096)
	defer func() { stop() }()
	tick := time.NewTicker(every)
	defer tick.Stop()
	var in, sent, failed int
	last := map[string]sinks.SinkStatus{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-live:
			if !ok {
				// Fell behind (a burst): the counts lose that burst, no more.
				live, stop = b.Projection.Subscribe(4096)
				continue
			}
			switch e.Event.Type {
			case events.TypeMessage:
				var d events.MessageData
				if e.Event.DecodeData(&d) == nil && d.Message.Direction == events.DirectionIn {
					in++
				}
			case events.TypeSendSucceeded, events.TypeSendFailed:
				var d events.SendResultData
				if e.Event.DecodeData(&d) != nil {
					continue
				}
				ok := e.Event.Type == events.TypeSendSucceeded
				if ok {
					sent++
				} else {
					failed++
				}
				b.mu.Lock()
				b.lastSend = &SendOutcome{Time: e.Event.Time, CommandID: d.CommandID, Sent: ok, Error: d.Error}
				b.mu.Unlock()
			}
		case <-tick.C:
			log.Info("summary", "every", every, "messages_in", in, "sent", sent, "send_failed", failed)
			for _, s := range b.rt.Status() {
				prev := last[s.Name]
				log.Info("summary of a sink", "sink", s.Description, "state", s.State, "delivered", s.Delivered-prev.Delivered,
					"dead_lettered", s.DeadLettered-prev.DeadLettered, "backlog", s.Backlog)
				last[s.Name] = s
			}
			in, sent, failed = 0, 0, 0
		}
	}
}

// Text is the status for people, a line per account, sink and the sender.
func (s Status) Text(now time.Time) string {
	var b strings.Builder
	ago := func(t time.Time) string { return now.Sub(t).Round(time.Second).String() + " ago" }
	for _, a := range s.Accounts {
		name := a.Name
		if name == "" {
			name = "account"
		}
		login := "login OK"
		if !a.LoginValid {
			login = "LOGIN EXPIRED: run `bilibridge login`"
		}
		poll := "no good poll yet"
		if a.LastGoodPoll != nil {
			poll = "last good poll " + ago(*a.LastGoodPoll)
		}
		if !a.Polling {
			poll = "another process polls it"
		}
		fmt.Fprintf(&b, "account %s (uid %d): %s, %s", name, a.UID, login, poll)
		if a.LastError != "" && a.LoginValid {
			fmt.Fprintf(&b, " (last error: %s)", a.LastError)
		}
		b.WriteByte('\n')
	}
	if len(s.Sinks) == 0 {
		b.WriteString("no sinks: set WEBHOOK_URLS, TELEGRAM_BOT_TOKEN or DISCORD_BOT_TOKEN to forward the DMs\n")
	}
	for _, k := range s.Sinks {
		fmt.Fprintf(&b, "%s: %s", k.Description, k.State)
		if k.State == sinks.StateDown || k.State == sinks.StateDisabled {
			fmt.Fprintf(&b, " since %s", ago(k.Since))
		}
		fmt.Fprintf(&b, ", backlog %d", k.Backlog)
		if k.LastDelivery != nil {
			fmt.Fprintf(&b, ", last delivery %s", ago(*k.LastDelivery))
		}
		if k.DeadLettered > 0 {
			fmt.Fprintf(&b, ", %d dead letters (bilibridge dead list)", k.DeadLettered)
		}
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "sender: %d queued", s.Sender.Queued)
	if l := s.Sender.Last; l != nil {
		if l.Sent {
			fmt.Fprintf(&b, ", last send %s: sent", ago(l.Time))
		} else {
			fmt.Fprintf(&b, ", last send %s: failed (%s)", ago(l.Time), l.Error)
		}
	}
	return b.String()
}

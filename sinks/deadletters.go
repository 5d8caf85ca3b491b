package sinks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bilibridge/bilibridge/bus"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/kvkey"
)

// DeadLetters lists the events sinks gave up on (stored on stream BILI
// under <prefix>.<uid>.dead.<sink>) and hands one back to its sink.
type DeadLetters struct {
	Stream    jetstream.Stream   // BILI
	Records   jetstream.KeyValue // bili_records: how often each was replayed
	Publisher *bus.Publisher
	Subjects  events.Subjects
	Now       func() time.Time
}

// DeadLetter is one dead letter, as the API lists it.
type DeadLetter struct {
	// ID is the dead letter's stream sequence.
	ID         string       `json:"id"`
	AccountUID int64        `json:"account_uid,string"`
	Sink       string       `json:"sink"`
	Reason     string       `json:"reason"`
	Attempts   int          `json:"attempts"`
	Time       time.Time    `json:"time"`
	Event      events.Event `json:"event"`
	Replays    int          `json:"replays"`
	// LastReplay and ReplayedBy describe the latest replay, if any.
	LastReplay *time.Time    `json:"last_replay,omitempty"`
	ReplayedBy *events.Actor `json:"replayed_by,omitempty"`
}

// DeadLetterFilter selects dead letters; zero fields select all.
type DeadLetterFilter struct {
	Sink    string
	Account int64
}

// ErrNoDeadLetter is an id that is not a dead letter's.
var ErrNoDeadLetter = errors.New("no dead letter with this id")

// replayRecord is kept in Records under replay.<seq>.
type replayRecord struct {
	Replays int          `json:"replays"`
	Last    time.Time    `json:"last"`
	By      events.Actor `json:"by"`
}

func replayKey(seq uint64) string { return kvkey.Join("replay", strconv.FormatUint(seq, 10)) }

// List returns up to limit dead letters that pass f, oldest first, after
// the cursor (a dead letter's id, "" for the first), and the cursor of
// the next page ("" at the end).
func (d *DeadLetters) List(ctx context.Context, f DeadLetterFilter, cursor string, limit int) ([]DeadLetter, string, error) {
	var after uint64
	if cursor != "" {
		n, err := strconv.ParseUint(cursor, 10, 64)
		if err != nil {
			return nil, "", fmt.Errorf("%w: cursor %q", ErrNoDeadLetter, cursor)
		}
		after = n
	}
	filter := d.Subjects.DeadFilter(f.Account, f.Sink)
	var out []DeadLetter
	more := false
	err := bus.Read(ctx, d.Stream, []string{filter}, after+1, func(m bus.Stored) error {
		if len(out) == limit {
			more = true
			return bus.ErrStop
		}
		dl, ok := d.decode(m.Subject, m.Seq, m.Event)
		if ok {
			out = append(out, dl)
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("reading dead letters: %w", err)
	}
	for i := range out {
		d.addReplays(ctx, &out[i])
	}
	next := ""
	if more && len(out) > 0 {
		next = out[len(out)-1].ID
	}
	return out, next, nil
}

// Get returns the dead letter with id.
func (d *DeadLetters) Get(ctx context.Context, id string) (*DeadLetter, error) {
	seq, err := strconv.ParseUint(id, 10, 64)
	if err != nil || seq == 0 {
		return nil, ErrNoDeadLetter
	}
	raw, err := d.Stream.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, ErrNoDeadLetter
	}
	if err != nil {
		return nil, fmt.Errorf("reading dead letter %s: %w", id, err)
	}
	ev, err := events.Parse(raw.Data)
	if err != nil {
		return nil, ErrNoDeadLetter
	}
	dl, ok := d.decode(raw.Subject, seq, ev)
	if !ok {
		return nil, ErrNoDeadLetter
	}
	d.addReplays(ctx, &dl)
	return &dl, nil
}

// Replay hands the dead letter's event to its sink again, on the sink's
// own replay subject: the other sinks do not see it twice. Two replays
// asked at once (a double click) publish one event.
func (d *DeadLetters) Replay(ctx context.Context, id string, by events.Actor) (*DeadLetter, error) {
	dl, err := d.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	seq, _ := strconv.ParseUint(dl.ID, 10, 64)
	n := dl.Replays + 1
	msgID := fmt.Sprintf("%s-replay-%d", dl.Event.ID, n)
	data, err := dl.Event.Marshal()
	if err != nil {
		return nil, err
	}
	if _, err := d.Publisher.PublishRaw(ctx, d.Subjects.Replay(dl.AccountUID, dl.Sink), msgID, data, nil); err != nil {
		return nil, fmt.Errorf("replaying dead letter %s: %w", id, err)
	}
	now := d.now().UTC()
	rec := replayRecord{Replays: n, Last: now, By: by}
	b, _ := json.Marshal(rec)
	// The count is what makes the next replay a new message; a lost
	// write here only lets the next replay be taken for this one.
	if _, err := d.Records.Put(ctx, replayKey(seq), b); err != nil {
		return nil, fmt.Errorf("recording the replay of dead letter %s: %w", id, err)
	}
	dl.Replays, dl.LastReplay, dl.ReplayedBy = n, &now, &by
	return dl, nil
}

func (d *DeadLetters) decode(subject string, seq uint64, ev events.Event) (DeadLetter, bool) {
	route, err := d.Subjects.ParseSubject(subject)
	if err != nil || route.Kind != "dead" || ev.Type != events.TypeDeadLetter {
		return DeadLetter{}, false
	}
	var data events.DeadLetterData
	if err := ev.DecodeData(&data); err != nil {
		return DeadLetter{}, false
	}
	return DeadLetter{ID: strconv.FormatUint(seq, 10), AccountUID: route.UID, Sink: data.Sink, Reason: data.Reason,
		Attempts: data.Attempts, Time: ev.Time, Event: data.Event}, true
}

func (d *DeadLetters) addReplays(ctx context.Context, dl *DeadLetter) {
	if d.Records == nil {
		return
	}
	seq, _ := strconv.ParseUint(dl.ID, 10, 64)
	e, err := d.Records.Get(ctx, replayKey(seq))
	if err != nil {
		return
	}
	var rec replayRecord
	if json.Unmarshal(e.Value(), &rec) == nil {
		dl.Replays, dl.LastReplay, dl.ReplayedBy = rec.Replays, &rec.Last, &rec.By
	}
}

func (d *DeadLetters) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

package telegram

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-telegram/bot"
	"github.com/go-telegram/bot/models"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/kvkey"
	"github.com/bilibridge/bilibridge/sinks"
)

var _ sinks.Batcher = (*Sink)(nil)

// DeliverBatch posts a conversation's backlog in as few Telegram messages
// as fit. Consecutive messages that render as one plain text message are
// merged into one Telegram message of at most 4096 characters, each part
// with its own time line and header (sender, "sent by the account",
// auto-reply; in a flat chat the talker once, on top). Photos, cards,
// texts long enough to be split, and other events are posted on their own,
// as Deliver posts them. A batch's parts never split a message, so the
// HTML stays valid.
//
// Every event is recorded under tg.msg.<chat>.<event id> with the message
// it ended up in, so a redelivered batch posts nothing twice, and the
// parts of a merged message under tg.merged.<chat>.<message id>, so that a
// recall edits only its own part (both in Config.Records): the part is struck through under the
// recall note, the rest of the message stays as it was.
func (s *Sink) DeliverBatch(ctx context.Context, evs []events.Event) error {
	forum, err := s.isForum(ctx)
	if err != nil {
		return err
	}
	var run []mergeItem
	flush := func() error {
		err := s.postMerged(ctx, run, forum)
		run = nil
		return err
	}
	for _, ev := range evs {
		it, how, err := s.mergeable(ctx, ev)
		if err != nil {
			if ferr := flush(); ferr != nil {
				return ferr
			}
			return err
		}
		switch how {
		case batchSkip:
			continue
		case batchMerge:
			if len(run) > 0 && run[0].conv.String() == it.conv.String() && fits(run, it, !forum) {
				run = append(run, it)
				continue
			}
			if err := flush(); err != nil {
				return err
			}
			run = []mergeItem{it}
		case batchSingle:
			if err := flush(); err != nil {
				return err
			}
			if err := s.Deliver(ctx, ev); err != nil {
				return err
			}
		}
	}
	return flush()
}

// How DeliverBatch treats an event.
const (
	batchSingle = iota // posted on its own by Deliver
	batchMerge         // a part of a merged message
	batchSkip          // already posted
)

// mergeItem is an event that can be a part of a merged message.
type mergeItem struct {
	ev   events.Event
	key  string // tg.msg key
	conv *conversation
	part mergedPart
	size int // visible length of the part, with room for a recall note
}

// mergedPart is one event's part of a merged message.
type mergedPart struct {
	Event string `json:"event"`
	Time  string `json:"time,omitempty"`
	Body  string `json:"body"`
	// Note, when set, is the recall note the part is shown with.
	Note string `json:"note,omitempty"`
}

func (p mergedPart) html() string {
	if p.Note == "" {
		return join(p.Time, p.Body)
	}
	return join(p.Time, p.Note, "<s>"+p.Body+"</s>")
}

// mergedRecord is what a merged message holds (tg.merged.<chat>.<id>).
type mergedRecord struct {
	Head  string       `json:"head,omitempty"` // flat chats: the talker
	Parts []mergedPart `json:"parts"`
}

func (m *mergedRecord) html() string {
	out := make([]string, 0, len(m.Parts)+1)
	if m.Head != "" {
		out = append(out, m.Head)
	}
	for _, p := range m.Parts {
		out = append(out, p.html())
	}
	return strings.Join(out, "\n\n")
}

const (
	noteRecalled = "🚫 <i>Recalled by the sender</i>"
	noteRemoved  = "🚫 <i>Removed by Bilibili</i>"
)

// recallRoom is kept free for each part of a merged message, so that a
// recall note always fits when a part is recalled.
var recallRoom = max(visibleLen(noteRecalled), visibleLen(noteRemoved)) + 1

// mergeable decides how DeliverBatch treats ev.
func (s *Sink) mergeable(ctx context.Context, ev events.Event) (mergeItem, int, error) {
	if ev.Type != events.TypeMessage {
		return mergeItem{}, batchSingle, nil
	}
	var d events.MessageData
	if err := ev.DecodeData(&d); err != nil {
		return mergeItem{}, 0, sinks.Permanent(err)
	}
	key := s.msgKey(ev.ID)
	rec, ok, err := s.posted(ctx, ev.ID)
	switch {
	case err != nil:
		return mergeItem{}, 0, err
	case ok && rec.Done:
		s.log.Debug("already posted", "event", ev.ID)
		return mergeItem{}, batchSkip, nil
	case ok:
		return mergeItem{}, batchSingle, nil // partly posted: Deliver resumes it
	}
	if d.Message.Direction == events.DirectionOut {
		// The echo of a reply sent from Telegram is left to Deliver.
		_, err := s.cfg.Records.Get(ctx, echoKey(d.AccountUID, d.Message.MsgKey))
		if err == nil {
			return mergeItem{}, batchSingle, nil
		} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
			return mergeItem{}, 0, fmt.Errorf("telegram: reading the echo record: %w", err)
		}
	}
	// Parts are rendered as in a forum: a flat chat's merged message names
	// the talker once, on top.
	parts := renderMessage(d, false)
	if len(parts) != 1 || parts[0].Photo != "" || len(parts[0].Buttons) > 0 || parts[0].ReplyTo != 0 {
		return mergeItem{}, batchSingle, nil
	}
	p := mergedPart{Event: ev.ID, Time: s.timeLine(d.Message.Timestamp), Body: parts[0].Text}
	it := mergeItem{ev: ev, key: key, conv: &conversation{UID: d.AccountUID, Conversation: d.Conversation}, part: p}
	it.size = visibleLen(p.html()) + recallRoom
	return it, batchMerge, nil
}

// fits reports whether it can join run in one message.
func fits(run []mergeItem, it mergeItem, flat bool) bool {
	n := visibleLen(mergedHead(run[0].conv, flat)) + 2
	for _, r := range run {
		n += r.size + 2
	}
	return n+it.size <= maxText
}

// mergedHead is the first line of a merged message in a flat chat.
func mergedHead(c *conversation, flat bool) string {
	if !flat {
		return ""
	}
	return "💬 " + talkerTitle(c.Conversation)
}

// timeLine is a part's time, in Config.Location.
func (s *Sink) timeLine(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return "<i>" + t.In(s.cfg.Location).Format("Jan 2, 15:04") + "</i>"
}

func (s *Sink) msgKey(eventID string) string {
	return "tg.msg." + s.chatTok + "." + kvkey.Token(eventID)
}

func (s *Sink) mergedKey(msgID int) string {
	return "tg.merged." + s.chatTok + "." + strconv.Itoa(msgID)
}

// postMerged posts run as one message (a run of one as Deliver would) and
// records it for every event. The later parts point to the first part's
// record before the message is sent, so that the one write of that
// record right after it records every part: a crash between writes
// cannot leave some parts unrecorded and post them again.
func (s *Sink) postMerged(ctx context.Context, run []mergeItem, forum bool) error {
	switch len(run) {
	case 0:
		return nil
	case 1:
		return s.Deliver(ctx, run[0].ev)
	}
	conv := run[0].conv
	t := &target{conv: conv}
	if forum {
		var err error
		if t.thread, err = s.topic(ctx, conv); err != nil {
			return err
		}
	}
	rec := mergedRecord{Head: mergedHead(conv, !forum)}
	for _, it := range run {
		rec.Parts = append(rec.Parts, it.part)
	}
	batch := rand.Text()
	for i, it := range run[1:] {
		if err := s.saveJSON(ctx, s.cfg.Records, it.key, postedRecord{Merged: true, Part: i + 1, Lead: run[0].ev.ID, Batch: batch}); err != nil {
			return fmt.Errorf("telegram: recording a merged message's parts: %w", err)
		}
	}
	id, _, _, err := s.sendPart(ctx, t, part{Text: rec.html()})
	if err != nil {
		return err
	}
	lead := postedRecord{Done: true, Thread: t.thread, IDs: []int{id}, Merged: true, Batch: batch}
	if err := s.saveJSON(ctx, s.cfg.Records, run[0].key, lead); err != nil {
		return fmt.Errorf("telegram: recording the posted messages: %w", err)
	}
	s.log.Debug("backlog merged into one message", "events", len(run), "message", id)
	if !forum {
		s.recordConv(ctx, id, conv)
	}
	if err := s.saveJSON(ctx, s.cfg.Records, s.mergedKey(id), rec); err != nil {
		s.log.Warn("could not record a merged message's parts; recalls will not show on it", "message", id)
	}
	// The parts are recorded already (through the first one); their own
	// records only spare later readers the indirection.
	for i, it := range run[1:] {
		_ = s.saveJSON(ctx, s.cfg.Records, it.key, postedRecord{Done: true, Thread: t.thread, IDs: []int{id}, Merged: true, Part: i + 1})
	}
	return nil
}

// recallMerged marks the recalled part of a merged message.
func (s *Sink) recallMerged(ctx context.Context, eventID string, posted postedRecord, note string) error {
	msgID := posted.IDs[0]
	e, err := s.cfg.Records.Get(ctx, s.mergedKey(msgID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		s.log.Info("recall of a part of a merged message whose parts were not recorded; not shown", "event", eventID, "message", msgID)
		return nil
	}
	if err != nil {
		return fmt.Errorf("telegram: reading a merged message: %w", err)
	}
	var rec mergedRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil || posted.Part >= len(rec.Parts) {
		return nil
	}
	// Recorded before the edit: a later recall of another part then keeps
	// this one, and a retried edit sends the same text.
	rec.Parts[posted.Part].Note = note
	if err := s.saveJSON(ctx, s.cfg.Records, s.mergedKey(msgID), rec); err != nil {
		return fmt.Errorf("telegram: recording a recall: %w", err)
	}
	if err := s.wait(ctx); err != nil {
		return err
	}
	_, err = s.bot.EditMessageText(ctx, &bot.EditMessageTextParams{ChatID: s.cfg.ChatID, MessageID: msgID, Text: rec.html(),
		ParseMode: models.ParseModeHTML, LinkPreviewOptions: &models.LinkPreviewOptions{IsDisabled: bot.True()}})
	return s.editResult(eventID, err)
}

// editResult reads the answer to a recall's edit.
func (s *Sink) editResult(eventID string, err error) error {
	switch {
	case err == nil, strings.Contains(err.Error(), "message is not modified"):
		return nil
	case strings.Contains(err.Error(), "message to edit not found"):
		s.log.Info("the recalled message is gone from the chat", "event", eventID)
		return nil
	}
	return s.verdict(err)
}

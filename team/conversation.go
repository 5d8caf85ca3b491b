package team

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/bilibridge/bilibridge/events"
)

// Conversation is what the team knows about one conversation. It is
// built only by applying the events of stream BILI, in order.
type Conversation struct {
	Key          events.ConversationKey `json:"-"`
	AccountUID   int64                  `json:"account_uid,string"`
	SessionType  int                    `json:"session_type"`
	TalkerID     uint64                 `json:"talker_id,string"`
	Kind         string                 `json:"kind,omitempty"`
	Name         string                 `json:"name,omitempty"`
	Avatar       string                 `json:"avatar,omitempty"`
	LastMessage  *LastMessage           `json:"last_message,omitempty"`
	Unread       int                    `json:"unread"`
	Status       string                 `json:"status"`
	SnoozedUntil *time.Time             `json:"snoozed_until,omitempty"`
	Assignee     *string                `json:"assignee"`
	Notes        []events.Note          `json:"notes,omitempty"`
	// UpdatedAt is the last change of any kind; LastActivity the last
	// message, which orders the list.
	UpdatedAt    time.Time `json:"updated_at"`
	LastActivity time.Time `json:"last_activity"`

	// Seq is the stream sequence of the last event applied: an event at
	// or below it was applied already (a replay after a restart).
	Seq uint64 `json:"seq"`
	// ReadUpTo is the last message the team has read; UnreadKeys the
	// incoming ones after it, oldest first.
	ReadUpTo   uint64   `json:"read_up_to,string,omitempty"`
	UnreadKeys []uint64 `json:"unread_keys,omitempty"`
	// LastIncoming is the newest incoming message, what "read" reads up
	// to, with its seqno (Bilibili's update_ack wants that).
	LastIncoming      uint64 `json:"last_incoming,string,omitempty"`
	LastIncomingSeqno uint64 `json:"last_incoming_seqno,string,omitempty"`
	// ReopenedBy is the stream sequence of the incoming message that
	// reopened the conversation, until a status event has told every
	// surface (the bridge's own, or a member's newer one). Kept with the
	// state, so that no process announces a reopening twice or never.
	ReopenedBy uint64 `json:"reopened_by,string,omitempty"`

	// search is what a search looks in (see index).
	search string
}

// LastMessage is a conversation's newest message, for the list.
type LastMessage struct {
	MsgKey    uint64      `json:"msg_key,string"`
	Direction string      `json:"direction"`
	Kind      events.Kind `json:"kind"`
	Text      string      `json:"text"`
	Sender    string      `json:"sender,omitempty"`
	Time      time.Time   `json:"time"`
}

// maxUnreadKeys bounds what is kept of an unread backlog: the count goes
// on, only the keys beyond it are not remembered one by one.
const maxUnreadKeys = 500

// EffectiveStatus is the status as of now: a snooze that ran out is open.
func (c *Conversation) EffectiveStatus(now time.Time) string {
	if c.Status == events.ConversationSnoozed && c.SnoozedUntil != nil && !now.Before(*c.SnoozedUntil) {
		return events.ConversationOpen
	}
	return c.Status
}

// change is what applying a message did that the bridge must act on.
type change struct {
	// reopened: an incoming message reopened a done or snoozed
	// conversation; the team hears of it through a status event.
	reopened bool
}

// apply applies the event at stream sequence seq. It reports whether the
// conversation changed; an event at or below c.Seq changes nothing.
func (c *Conversation) apply(seq uint64, ev events.Event) bool {
	if seq != 0 && seq <= c.Seq {
		return false
	}
	var ch change
	switch ev.Type {
	case events.TypeMessage:
		var d events.MessageData
		if ev.DecodeData(&d) != nil {
			return false
		}
		ch = c.message(&d)
	case events.TypeRecall:
		var d events.RecallData
		if ev.DecodeData(&d) != nil {
			return false
		}
		c.forget(d.RecalledMsgKey)
		if c.LastMessage != nil && c.LastMessage.MsgKey == d.RecalledMsgKey {
			c.LastMessage.Text = "(recalled) " + c.LastMessage.Text
		}
	case events.TypeSendSucceeded:
		// A reply sent from any surface reads the conversation up to it.
		c.readAll()
	case events.TypeSendFailed:
		return false
	case events.TypeTeamAssigned:
		var d events.AssignedData
		if ev.DecodeData(&d) != nil {
			return false
		}
		c.Assignee = d.Assignee
	case events.TypeTeamStatus:
		var d events.StatusData
		if ev.DecodeData(&d) != nil {
			return false
		}
		c.Status, c.SnoozedUntil = d.Status, nil
		if d.Status == events.ConversationSnoozed {
			c.SnoozedUntil = d.SnoozedUntil
		}
	case events.TypeTeamNote:
		var d events.NoteData
		if ev.DecodeData(&d) != nil {
			return false
		}
		if !slices.ContainsFunc(c.Notes, func(n events.Note) bool { return n.ID == d.Note.ID }) {
			c.Notes = append(c.Notes, d.Note)
		}
	case events.TypeTeamRead:
		var d events.ReadData
		if ev.DecodeData(&d) != nil {
			return false
		}
		c.readUpTo(d.ReadUpTo)
	default:
		return false
	}
	if seq != 0 {
		c.Seq = seq
		if ch.reopened {
			c.ReopenedBy = seq
		}
	}
	if ev.Type == events.TypeTeamStatus {
		c.ReopenedBy = 0
	}
	if ev.Time.After(c.UpdatedAt) {
		c.UpdatedAt = ev.Time
	}
	if c.Status == "" {
		c.Status = events.ConversationOpen
	}
	return true
}

func (c *Conversation) message(d *events.MessageData) change {
	var ch change
	conv := d.Conversation
	if conv.Name != "" {
		c.Name = conv.Name
	}
	if conv.Avatar != "" {
		c.Avatar = conv.Avatar
	}
	if conv.Kind != "" {
		c.Kind = conv.Kind
	}
	m := d.Message
	if c.LastMessage == nil || !m.Timestamp.Before(c.LastMessage.Time) {
		c.LastMessage = &LastMessage{MsgKey: m.MsgKey, Direction: m.Direction, Kind: m.Kind, Text: m.Text, Sender: m.SenderName, Time: m.Timestamp}
		if m.Timestamp.After(c.LastActivity) {
			c.LastActivity = m.Timestamp
		}
	}
	if m.Direction == events.DirectionOut {
		// The account answered (from the phone or the bridge): read.
		c.readAll()
		return ch
	}
	if slices.Contains(c.UnreadKeys, m.MsgKey) || (c.ReadUpTo != 0 && m.MsgKey == c.ReadUpTo) {
		return ch
	}
	c.Unread++
	if len(c.UnreadKeys) < maxUnreadKeys {
		c.UnreadKeys = append(c.UnreadKeys, m.MsgKey)
	}
	c.LastIncoming, c.LastIncomingSeqno = m.MsgKey, m.Seqno
	if c.Status == events.ConversationDone || c.Status == events.ConversationSnoozed {
		c.Status, c.SnoozedUntil = events.ConversationOpen, nil
		ch.reopened = true
	}
	return ch
}

// readAll marks every message read.
func (c *Conversation) readAll() {
	c.Unread, c.UnreadKeys = 0, nil
	if c.LastIncoming != 0 {
		c.ReadUpTo = c.LastIncoming
	}
}

// readUpTo marks read every incoming message up to key (msg_keys grow
// with time). What came after key stays unread: a read sent by a process
// that had not seen a newer DM yet must not read that one too.
func (c *Conversation) readUpTo(key uint64) {
	switch {
	case key <= c.ReadUpTo:
		return // read already
	case key >= c.LastIncoming:
		c.readAll()
		c.ReadUpTo = key
		return
	}
	// The unread keys are the oldest unread ones, ascending (the count
	// goes on past maxUnreadKeys): those up to key are read.
	n := 0
	for n < len(c.UnreadKeys) && c.UnreadKeys[n] <= key {
		n++
	}
	// Past what is remembered of a long backlog, how many of the
	// forgotten ones key reads is unknown: only the remembered count.
	c.Unread = max(0, c.Unread-n)
	c.UnreadKeys = slices.Clone(c.UnreadKeys[n:])
	c.ReadUpTo = key
}

// forget takes a recalled message out of the unread ones.
func (c *Conversation) forget(key uint64) {
	if i := slices.Index(c.UnreadKeys, key); i >= 0 {
		c.UnreadKeys = slices.Delete(slices.Clone(c.UnreadKeys), i, i+1)
		c.Unread = max(0, c.Unread-1)
	}
}

// clone is a deep copy, for handing out.
func (c *Conversation) clone() *Conversation {
	b, _ := json.Marshal(c)
	var out Conversation
	_ = json.Unmarshal(b, &out)
	out.Key = c.Key
	return &out
}

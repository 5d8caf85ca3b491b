package events

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Team event types: a team member (or an automation, or the bridge itself)
// acted on a conversation. They are the audit trail of the shared inbox
// and what every surface (Telegram, Discord, the browser, webhooks) shows.
const (
	TypeTeamAssigned = "com.bilibili.team.assigned"
	TypeTeamStatus   = "com.bilibili.team.status"
	TypeTeamNote     = "com.bilibili.team.note"
	TypeTeamRead     = "com.bilibili.team.read"
)

// Conversation statuses, as the team works them.
const (
	ConversationOpen    = "open"
	ConversationSnoozed = "snoozed"
	ConversationDone    = "done"
)

// ConversationKey identifies a conversation of an account.
type ConversationKey struct {
	AccountUID  int64  `json:"account_uid,string"`
	SessionType int    `json:"session_type"`
	TalkerID    uint64 `json:"talker_id,string"`
}

// String is "<account>.<session type>.<talker>", also usable in a KV key.
func (k ConversationKey) String() string {
	return fmt.Sprintf("%d.%d.%d", k.AccountUID, k.SessionType, k.TalkerID)
}

// Subject is the conversation's CloudEvents subject.
func (k ConversationKey) Subject() string { return ConversationSubject(k.SessionType, k.TalkerID) }

// ParseConversationKey reads the String form.
func ParseConversationKey(s string) (ConversationKey, error) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return ConversationKey{}, fmt.Errorf("events: conversation key %q: want <account>.<session type>.<talker>", s)
	}
	uid, err1 := strconv.ParseInt(parts[0], 10, 64)
	st, err2 := strconv.Atoi(parts[1])
	talker, err3 := strconv.ParseUint(parts[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || uid <= 0 || talker == 0 {
		return ConversationKey{}, fmt.Errorf("events: conversation key %q is not <account>.<session type>.<talker>", s)
	}
	return ConversationKey{AccountUID: uid, SessionType: st, TalkerID: talker}, nil
}

// Actor says who acted: a member, the service token (an automation), or
// the bridge itself (a snooze that ran out).
type Actor struct {
	Member  string `json:"member,omitempty"`
	Service bool   `json:"service,omitempty"`
	System  bool   `json:"system,omitempty"`
}

// String names the actor for people.
func (a Actor) String() string {
	switch {
	case a.Member != "":
		return a.Member
	case a.Service:
		return "an automation"
	}
	return "the bridge"
}

// TeamBase is what every team event's data holds.
type TeamBase struct {
	AccountUID   int64        `json:"account_uid,string"`
	Conversation Conversation `json:"conversation"`
	By           Actor        `json:"by"`
}

// Key is the conversation the event is about.
func (b TeamBase) Key() ConversationKey {
	return ConversationKey{AccountUID: b.AccountUID, SessionType: b.Conversation.SessionType, TalkerID: b.Conversation.TalkerID}
}

// AssignedData is the data of com.bilibili.team.assigned.
type AssignedData struct {
	TeamBase
	// Assignee is the member now answering the conversation; null: nobody.
	Assignee *string `json:"assignee"`
}

// StatusData is the data of com.bilibili.team.status.
type StatusData struct {
	TeamBase
	Status       string     `json:"status"` // ConversationOpen, ConversationSnoozed or ConversationDone
	SnoozedUntil *time.Time `json:"snoozed_until,omitempty"`
}

// Note is an internal note on a conversation: for the team, never sent.
type Note struct {
	ID   string    `json:"id"`
	Text string    `json:"text"`
	Time time.Time `json:"time"`
	By   Actor     `json:"by"`
}

// NoteData is the data of com.bilibili.team.note.
type NoteData struct {
	TeamBase
	Note Note `json:"note"`
}

// ReadData is the data of com.bilibili.team.read: the team has read the
// conversation up to a message.
type ReadData struct {
	TeamBase
	ReadUpTo uint64 `json:"read_up_to,string"`
}

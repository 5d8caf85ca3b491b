package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/bilibridge/bilibridge/bilibili"
)

// Conversation kinds.
const (
	ConversationUser   = "user"
	ConversationGroup  = "group"
	ConversationSystem = "system"
)

// Message directions.
const (
	DirectionIn  = "in"
	DirectionOut = "out"
)

// Message statuses.
const (
	StatusNormal       = "normal"
	StatusRecalled     = "recalled"
	StatusImageExpired = "image_expired"
)

// Conversation names the other side of a DM conversation.
type Conversation struct {
	SessionType int    `json:"session_type"`
	TalkerID    uint64 `json:"talker_id,string"`
	Kind        string `json:"kind"`
	Name        string `json:"name,omitempty"`
	Avatar      string `json:"avatar,omitempty"`
}

// Subject is the conversation's CloudEvents subject.
func (c Conversation) Subject() string { return ConversationSubject(c.SessionType, c.TalkerID) }

// Message is the normalized form of one Bilibili DM.
type Message struct {
	MsgKey     uint64           `json:"msg_key,string"`
	Seqno      uint64           `json:"seqno,string"`
	Direction  string           `json:"direction"`
	SenderUID  int64            `json:"sender_uid,string"`
	SenderName string           `json:"sender_name,omitempty"`
	Timestamp  time.Time        `json:"timestamp"`
	MsgType    int              `json:"msg_type"`
	Kind       bilibili.Kind    `json:"kind"`
	Text       string           `json:"text"`
	Images     []bilibili.Image `json:"images,omitempty"`
	Card       *bilibili.Card   `json:"card,omitempty"`
	MsgSource  int              `json:"msg_source"`
	AutoReply  bool             `json:"auto_reply"`
	Status     string           `json:"status"`
	// Content is the decoded content as Bilibili sent it: the object for
	// JSON contents, a string otherwise.
	Content json.RawMessage `json:"content"`
}

// MessageData is the data of a com.bilibili.dm.message event.
type MessageData struct {
	AccountUID   int64        `json:"account_uid,string"`
	Conversation Conversation `json:"conversation"`
	Message      Message      `json:"message"`
}

// RecallData is the data of a com.bilibili.dm.recall event.
type RecallData struct {
	AccountUID     int64        `json:"account_uid,string"`
	Conversation   Conversation `json:"conversation"`
	RecalledMsgKey uint64       `json:"recalled_msg_key,string"`
	// BySystem is true when Bilibili removed the message, not its sender.
	BySystem  bool      `json:"by_system"`
	SenderUID int64     `json:"sender_uid,string"`
	Timestamp time.Time `json:"timestamp"`
}

// Origin says where a send command was typed.
type Origin struct {
	Platform string `json:"platform"`
	User     string `json:"user,omitempty"`
	// Ref locates the message the command came from (chat/message ids),
	// so the sink can show the outcome on it.
	Ref string `json:"ref,omitempty"`
}

// SendResultData is the data of the send.succeeded and send.failed events.
type SendResultData struct {
	AccountUID   int64        `json:"account_uid,string"`
	CommandID    string       `json:"command_id"`
	Conversation Conversation `json:"conversation"`
	// MsgKey is the key of the last part sent; MsgKeys lists every part
	// when a long text was split.
	MsgKey    uint64   `json:"msg_key,string,omitempty"`
	MsgKeys   []string `json:"msg_keys,omitempty"`
	ErrorCode int      `json:"error_code,omitempty"`
	Error     string   `json:"error,omitempty"`
	Origin    *Origin  `json:"origin,omitempty"`
}

// Account states.
const (
	StateLoggedIn        = "logged_in"
	StateCookieRefreshed = "cookie_refreshed"
	StateLoginExpired    = "login_expired"
	StateRiskControl     = "risk_control"
	StateSinkDisabled    = "sink_disabled"
	// StateConversationSkipped: Bilibili refuses a conversation for good
	// (a dissolved fan group); its unread messages were not forwarded.
	StateConversationSkipped = "conversation_skipped"
)

// AccountStatusData is the data of a com.bilibili.account.status event.
type AccountStatusData struct {
	AccountUID int64  `json:"account_uid,string"`
	State      string `json:"state"`
	// Message says in plain words what happened and what to do.
	Message string `json:"message"`
	// Conversation, ErrorCode and UnreadSkipped are set when the status
	// concerns one conversation (conversation_skipped): which one,
	// Bilibili's code, and how many unread messages were not forwarded.
	Conversation  *Conversation `json:"conversation,omitempty"`
	ErrorCode     int           `json:"error_code,omitempty"`
	UnreadSkipped int           `json:"unread_skipped,omitempty"`
}

// NewAccountStatus builds an account.status event. Its id is random: two
// reports of the same state are two events.
func NewAccountStatus(uid int64, state, message string, t time.Time) (Event, error) {
	return New(uid, TypeAccountStatus, fmt.Sprintf("%d-account-%s", uid, uuid.NewString()), "", t,
		AccountStatusData{AccountUID: uid, State: state, Message: message})
}

// DeadLetterData is the data of a com.bilibili.dead_letter event.
type DeadLetterData struct {
	Sink     string `json:"sink"`
	Reason   string `json:"reason"`
	Attempts int    `json:"attempts"`
	Event    Event  `json:"event"`
}

// SendCommand is the payload of a send command on the outbox.
type SendCommand struct {
	CommandID string  `json:"command_id"`
	Text      string  `json:"text,omitempty"`
	ImageURL  string  `json:"image_url,omitempty"`
	Origin    *Origin `json:"origin,omitempty"`
}

// Source is what the poller knows about a message beyond Bilibili's
// message object.
type Source struct {
	AccountUID   int64
	Conversation Conversation
	// SenderName names the sender when it differs from the conversation
	// (fan-group members); empty means the conversation name or, for
	// outgoing messages, the account.
	SenderName string
}

// FromMessage converts a Bilibili message into its event: a recall event
// for msg_type 5, a message event otherwise. Content that does not decode
// still becomes an event (kind unknown, the raw content kept); the decode
// error is returned beside it for the log.
func FromMessage(src Source, m *bilibili.Message) (Event, error) {
	subject := src.Conversation.Subject()
	id := MessageID(src.AccountUID, m.MsgKey)
	content, decodeErr := m.Decode()
	if rc, ok := content.(*bilibili.RecallContent); ok {
		ev, err := New(src.AccountUID, TypeRecall, id, subject, m.Time(), RecallData{
			AccountUID:     src.AccountUID,
			Conversation:   src.Conversation,
			RecalledMsgKey: rc.MsgKey,
			BySystem:       m.SysCancel || m.MsgType == 8, // 8: the retired system recall
			SenderUID:      m.SenderUID,
			Timestamp:      m.Time(),
		})
		return ev, err
	}
	dir := DirectionIn
	if m.SenderUID == src.AccountUID {
		dir = DirectionOut
	}
	data := MessageData{
		AccountUID:   src.AccountUID,
		Conversation: src.Conversation,
		Message: Message{
			MsgKey:     m.MsgKey,
			Seqno:      m.MsgSeqno,
			Direction:  dir,
			SenderUID:  m.SenderUID,
			SenderName: src.SenderName,
			Timestamp:  m.Time(),
			MsgType:    m.MsgType,
			Kind:       content.Kind(),
			Text:       content.Text(),
			Images:     content.Images(),
			Card:       content.Card(),
			MsgSource:  m.MsgSource,
			AutoReply:  isAutoReply(m.MsgSource),
			Status:     status(m.MsgStatus),
			Content:    rawContent(m.Content),
		},
	}
	ev, err := New(src.AccountUID, TypeMessage, id, subject, m.Time(), data)
	if err != nil {
		return ev, err
	}
	if decodeErr != nil {
		return ev, fmt.Errorf("events: message %d: %w", m.MsgKey, decodeErr)
	}
	return ev, nil
}

// isAutoReply: msg_source 8–11 are the uploader's auto-replies, 19 the AI one.
func isAutoReply(source int) bool { return (source >= 8 && source <= 11) || source == 19 }

func status(s int) string {
	switch s {
	case bilibili.StatusRecalled:
		return StatusRecalled
	case bilibili.StatusImageExpired:
		return StatusImageExpired
	}
	return StatusNormal
}

// rawContent keeps a JSON object or array content as it is (compacted), and
// turns anything else into a JSON string, so the field is always valid JSON.
func rawContent(s string) json.RawMessage {
	b := []byte(s)
	if json.Valid(b) && len(bytes.TrimSpace(b)) > 0 {
		switch bytes.TrimSpace(b)[0] {
		case '{', '[':
			var buf bytes.Buffer
			if json.Compact(&buf, b) == nil {
				return buf.Bytes()
			}
		}
	}
	q, _ := json.Marshal(s)
	return q
}

// SendResultID is the deterministic id of a send command's result event.
func SendResultID(uid int64, commandID string) string {
	return strconv.FormatInt(uid, 10) + "-sent-" + commandID
}

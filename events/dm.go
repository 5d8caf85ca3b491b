package events

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
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

// Kind is what a message is, for a consumer choosing how to show it.
type Kind string

// Message kinds (message.kind in a message event).
const (
	KindText        Kind = "text"
	KindImage       Kind = "image"
	KindSticker     Kind = "sticker"
	KindShare       Kind = "share"
	KindNotice      Kind = "notice"
	KindVideo       Kind = "video"
	KindArticle     Kind = "article"
	KindPicture     Kind = "picture"
	KindWorks       Kind = "works"
	KindTip         Kind = "tip"
	KindGroupSystem Kind = "group_system"
	KindUnknown     Kind = "unknown"
)

// Image is a picture in a message.
type Image struct {
	URL    string  `json:"url"`
	Width  int     `json:"width,omitempty"`
	Height int     `json:"height,omitempty"`
	Type   string  `json:"type,omitempty"`
	SizeKB float64 `json:"size_kb,omitempty"`
}

// Card is the platform-neutral shape of a card-like message (a shared
// video, an article, a notice): sinks turn it into an embed or a block.
type Card struct {
	Title       string      `json:"title,omitempty"`
	Description string      `json:"description,omitempty"`
	URL         string      `json:"url,omitempty"`
	Cover       string      `json:"cover,omitempty"`
	Buttons     []Button    `json:"buttons,omitempty"`
	Fields      []CardField `json:"fields,omitempty"`
}

// Button is a link button of a card.
type Button struct {
	Text string `json:"text"`
	URL  string `json:"url"`
}

// CardField is a key/value row of a card.
type CardField struct {
	Title string `json:"title"`
	Value string `json:"value"`
}

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
	MsgKey     uint64    `json:"msg_key,string"`
	Seqno      uint64    `json:"seqno,string"`
	Direction  string    `json:"direction"`
	SenderUID  int64     `json:"sender_uid,string"`
	SenderName string    `json:"sender_name,omitempty"`
	Timestamp  time.Time `json:"timestamp"`
	MsgType    int       `json:"msg_type"`
	Kind       Kind      `json:"kind"`
	Text       string    `json:"text"`
	Images     []Image   `json:"images,omitempty"`
	Card       *Card     `json:"card,omitempty"`
	MsgSource  int       `json:"msg_source"`
	AutoReply  bool      `json:"auto_reply"`
	Status     string    `json:"status"`
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

// SendResultID is the deterministic id of a send command's result event.
func SendResultID(uid int64, commandID string) string {
	return strconv.FormatInt(uid, 10) + "-sent-" + commandID
}
